"""featurescope.features: paired Assistant / character contexts and the shared-latent test (planted latents found,
noise not called shared), the shipped pairs, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from featurescope.errors import DataError
from featurescope.features import chance_count, load_pairs, shared_latents, theme_z, z_crit


def _acts(n_per_theme: int = 30, latents: int = 300, planted: dict[str, list[int]] | None = None, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    themes = [t for t in ("dilemma", "threat", "withholding") for _ in range(n_per_theme)]
    a = torch.rand(len(themes), latents, generator=g).pow(4)  # sparse-ish, non-negative
    c = torch.rand(len(themes), latents, generator=g).pow(4)
    for t, js in (planted or {}).items():
        rows = [i for i, x in enumerate(themes) if x == t]
        for j in js:
            a[rows, j] += 1.0 + 0.2 * torch.rand(len(rows), generator=g)
            c[rows, j] += 1.0 + 0.2 * torch.rand(len(rows), generator=g)
    return a, c, themes


def test_planted_shared_latents_are_found_and_one_sided_ones_are_not():
    a, c, themes = _acts(planted={"threat": [7, 42], "dilemma": [100]})
    # a latent that fires on the theme for the Assistant only is not "shared"
    rows = [i for i, x in enumerate(themes) if x == "withholding"]
    a[rows, 200] += 2.0
    res = shared_latents(a, c, themes, n_perm=300)
    assert set(res["threat"].latents) == {7, 42}
    assert res["dilemma"].latents == [100]
    assert res["withholding"].latents == []
    assert all(z > res["threat"].threshold for z in res["threat"].z_assistant + res["threat"].z_character)


def test_noise_gives_no_shared_latents_and_the_chance_count_is_zero():
    a, c, themes = _acts(seed=3)
    res = shared_latents(a, c, themes, n_perm=300)
    assert sum(len(r.latents) for r in res.values()) == 0
    a, c, themes = _acts(planted={"threat": [7]}, seed=4)
    assert chance_count(a, c, themes, n_shuffles=3, n_perm=150) == [0, 0, 0]


def test_theme_z_and_threshold():
    x = torch.zeros(20, 3)
    x[:10, 1] = 1.0
    x += 0.01 * torch.randn(20, 3, generator=torch.Generator().manual_seed(0))
    z = theme_z(x, [True] * 10 + [False] * 10, n_perm=200)
    assert z[1] > 4 and abs(float(z[0])) < 3.5  # perfect separation of 10 vs 10: z = sqrt(19) at most
    assert z_crit(1) == pytest.approx(1.645, abs=1e-3) and z_crit(4096 * 3) > 4.4
    with pytest.raises(ValueError):
        theme_z(x, [True] * 20)


def test_shipped_pairs_have_three_themes_of_at_least_twenty():
    pairs = load_pairs()
    counts: dict[str, int] = {}
    for p in pairs:
        counts[p.theme] = counts.get(p.theme, 0) + 1
        assert p.assistant_conversation()[-1]["role"] == "assistant"
        assert p.character_conversation()[-1]["content"] == p.character
    assert set(counts) == {"dilemma", "withholding", "threat"} and min(counts.values()) >= 20


def test_malformed_pairs_are_refused(tmp_path):
    f = tmp_path / "pairs.jsonl"
    row = {"id": "dilemma-01", "theme": "dilemma", "user": "u", "assistant": "a", "character": "c"}
    f.write_text(json.dumps(row) + "\n" + json.dumps({**row, "id": "dilemma-02", "character": ""}) + "\n")
    with pytest.raises(DataError, match=r"pairs.jsonl:2: field 'character'"):
        load_pairs(f)
    f.write_text(json.dumps(row) + "\n")
    with pytest.raises(DataError, match="fewer than 20 pairs"):
        load_pairs(f)


def test_run_shared_finds_a_planted_latent_end_to_end(char_tok, tmp_path):
    """A tiny model whose '!' token carries SAE latent 5: threat pairs (both members) shout, the others do not."""
    import featurescope as fs
    from featurescope.features import PairedContext, run_shared
    from tests.conftest import make_tiny_tl
    from tests.test_saes_decompose import make_sae

    sae = make_sae(model_name="planted-features")
    tl = make_tiny_tl(char_tok, seed=5)
    with torch.no_grad():
        tl.W_E[char_tok.convert_tokens_to_ids("!")] += 50 * sae.W_dec[5]
    model = fs.from_hooked_transformer(tl, name="planted-features", stage="post-trained", tokenizer=char_tok)
    pairs = []
    for t in ("dilemma", "threat", "withholding"):
        for i in range(20):
            mark = "!!!" if t == "threat" else "..."
            pairs.append(PairedContext(f"{t}-{i}", t, f"hi {i}", f"no {mark} wait {i}", f"she ran {mark} {i}"))
    res = run_shared(model, sae, tmp_path, pairs=pairs, n_perm=200, n_shuffles=2, cards=True)
    assert 5 in [d["latent"] for d in res["themes"]["threat"]["latents"]]  # (random extra rows overlap it too)
    assert res["themes"]["dilemma"]["latents"] == [] and res["themes"]["withholding"]["latents"] == []
    assert res["chance_counts"] == [0, 0] and res["verdict"].startswith("shared latents found")
    assert (tmp_path / "cards.html").exists() and (tmp_path / "per_pair.jsonl").exists()
    assert json.loads((tmp_path / "summary.json").read_text())["command"] == "features shared"


# -- feature steering ---------------------------------------------------------------------------------------------


def test_clamp_hook_keeps_the_error_term_and_equals_the_long_way():
    from featurescope.features.steer import clamp_exact, latent_edit_hook
    from tests.test_saes_decompose import make_sae

    sae = make_sae()
    h = torch.randn(2, 5, 32, generator=torch.Generator().manual_seed(0)) * 3
    out = latent_edit_hook(sae, 5, mode="clamp", value=7.0)(h)
    assert torch.allclose(out, clamp_exact(sae, h, 5, 7.0), atol=1e-4)
    # the error term survives: the edit moves h only along latent 5's decoder row
    delta = (out - h).reshape(-1, 32)
    assert torch.allclose(delta, (delta @ sae.W_dec[5])[:, None] * sae.W_dec[5][None], atol=1e-4)
    # the pitfall: recomputing the "error" from the edited activation hands the edit back
    bad = out - (sae.decode(sae.encode(out)) - sae.decode(sae.encode(h)))
    assert (bad - h).norm() < (out - h).norm()


def test_density_matched_controls():
    from featurescope.features.steer import density_matched

    d = torch.tensor([1e-3] * 10 + [1e-1] * 10)
    c = density_matched(d, 2, 4, exclude=[3])
    assert len(c) == 4 and all(i < 10 and i not in (2, 3) for i in c)
    assert density_matched(d, 2, 4, exclude=[3]) == c  # seeded


@pytest.fixture(scope="module")
def bang_model(char_tok):
    """A tiny model whose last residual direction W_dec[5] (of a synthetic SAE at its last block) promotes '!'."""
    import featurescope as fs
    from tests.conftest import make_tiny_tl
    from tests.test_saes_decompose import make_sae

    sae = make_sae(hook="blocks.2.hook_resid_post", model_name="bang")
    tl = make_tiny_tl(char_tok, seed=7)
    with torch.no_grad():
        tl.W_U[:, char_tok.convert_tokens_to_ids("!")] += 3.0 * sae.W_dec[5] / sae.W_dec[5].norm()
    return fs.from_hooked_transformer(tl, name="bang", stage="post-trained", tokenizer=char_tok), sae


class _BangJudge:
    name = "bang"

    def score_many(self, trait, questions, answers):
        from featurescope.judges.base import Score

        return [Score(100.0 * a.count("!") / max(len(a), 1), 90.0) for a in answers]


def test_every_generated_token_is_edited(bang_model):
    from featurescope.features.steer import latent_edit_hook
    from featurescope.generate import generate

    model, sae = bang_model
    seen: list[int] = []
    hook = latent_edit_hook(sae, 5, mode="clamp", value=3.0, seen=seen)
    gens = generate(model, [[{"role": "user", "content": "hi"}]], max_new_tokens=6, fwd_hooks=[(sae.cfg.metadata.hook_name, hook)],
                    progress=False)  # fmt: skip
    n_new = gens[0].new_tokens
    assert seen[0] > 1 and all(s == 1 for s in seen[1:])  # the prompt pass, then one pass per new token (KV cache)
    assert len(seen) >= min(n_new, 6)


def test_latent_steering_finds_the_planted_latent_and_not_a_random_one(bang_model):
    from featurescope.features.steer import latent_steering

    model, sae = bang_model
    density = torch.full((sae.cfg.d_sae,), 1e-2)
    res = latent_steering(model, sae, [5], "bang", _BangJudge(), [f"question {i}?" for i in range(8)], density,
                          mode="add", alpha=40.0, n_random=3, seeds=(0, 1), max_new_tokens=8, progress=False)  # fmt: skip
    ev = res["latents"]["5"]["evidence"]
    assert ev["estimate"]["value"] > 20 and ev["verdict"] != "not distinguishable from the null"
    assert res["latents"]["5"]["edited_passes"] >= 8 * 2  # every question's generation went through the hook
    res = latent_steering(model, sae, [40], "bang", _BangJudge(), [f"question {i}?" for i in range(8)], density,
                          mode="add", alpha=40.0, n_random=3, seeds=(0, 1), max_new_tokens=8, progress=False)  # fmt: skip
    assert res["latents"]["40"]["evidence"]["verdict"] == "not distinguishable from the null"


class _BangBreaksJudge(_BangJudge):
    """'!' is the trait, but an answer of mostly '!' is also incoherent (as steering that breaks the text)."""

    def score_many(self, trait, questions, answers):
        from featurescope.judges.base import Score

        return [Score(s.trait, 100.0 - s.trait) for s in super().score_many(trait, questions, answers)]


def test_latent_steering_that_breaks_the_text_is_not_read_as_a_trait_effect(bang_model):
    """The planted latent pushed hard fills answers with '!': the trait score rises beyond the null, but the
    answers' coherence falls under the threshold, so the latent is marked incoherent and its line says the change is
    not a trait effect; answers to read are kept for each arm."""
    from featurescope.features.steer import latent_steering, steering_summary

    model, sae = bang_model
    density = torch.full((sae.cfg.d_sae,), 1e-2)
    res = latent_steering(model, sae, [5], "bang", _BangBreaksJudge(), [f"question {i}?" for i in range(8)], density,
                          mode="add", alpha=40.0, n_random=3, seeds=(0, 1), max_new_tokens=8, progress=False)  # fmt: skip
    r = res["latents"]["5"]
    assert r["evidence"]["verdict"] != "not distinguishable from the null"  # the judge's trait score did move
    assert not r["coherent"] and np.mean(r["coherence"]) < 50 <= np.mean(res["unsteered_coherence"])
    assert "not read as a trait effect" in r["line"]
    assert len(r["examples"]) == 3 and len(res["unsteered_examples"]) == 3 and r["examples"][0].count("!") > 0
    summ = steering_summary(res)["latents"]["5"]
    assert summ["coherent"] is False and summ["coherence"] < 50 and summ["controls_coherence"] is not None
    # the coherent planted judge keeps the latent readable
    ok = latent_steering(model, sae, [5], "bang", _BangJudge(), [f"question {i}?" for i in range(8)], density,
                         mode="add", alpha=40.0, n_random=3, seeds=(0,), max_new_tokens=8, progress=False)  # fmt: skip
    assert ok["latents"]["5"]["coherent"] and "not read" not in ok["latents"]["5"]["line"]


def test_features_steer_command_writes_strict_json_and_a_summary(bang_model, tmp_path, monkeypatch, capsys):
    """``featurescope features steer`` end to end on the planted model (loaders stubbed): steering.json is strict
    JSON (the overlap-only null has no p-value: null, never NaN), summary.json carries the inputs and each latent's
    verdict, and the printed line shows no 'p = nan'."""
    from types import SimpleNamespace

    from featurescope import models, saes, traits
    from featurescope.cli.main import main
    from featurescope.features import interpret
    from featurescope.judges import choose

    model, sae = bang_model
    monkeypatch.setattr(models, "load_model", lambda name, **kw: model)
    monkeypatch.setattr(saes, "load_sae", lambda name, **kw: sae)
    trait = SimpleNamespace(name="bang", eval_questions=[f"question {i}?" for i in range(8)])
    monkeypatch.setattr(traits, "load_trait", lambda name: trait)
    monkeypatch.setattr(choose, "get_judge", lambda name: _BangJudge())
    monkeypatch.setattr(interpret, "heldout_texts", lambda: [("t", "some text here! and more.")] * 6)
    out = tmp_path / "steer"
    rc = main(["features", "steer", "--latents", "5", "--mode", "add", "--alpha", "40", "--n-random", "3",
               "--seeds", "0,1", "--max-new-tokens", "8", "--out", str(out)])  # fmt: skip
    assert rc == 0
    text = capsys.readouterr().out
    assert "latent 5 (add)" in text and "p = nan" not in text

    def strict(t: str):
        return json.loads(t, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))

    res = strict((out / "steering.json").read_text())
    assert res["latents"]["5"]["evidence"]["null"]["p_value"] is None
    summ = strict((out / "summary.json").read_text())
    assert summ["command"] == "features steer" and summ["inputs"]["latents"] == [5] and summ["inputs"]["alpha"] == 40
    r5 = summ["results"]["latents"]["5"]
    assert r5["evidence"]["verdict"] == res["latents"]["5"]["evidence"]["verdict"] and len(r5["controls"]) == 3
    assert r5["edited_passes"] == res["latents"]["5"]["edited_passes"] >= 8 * 2
    assert summ["results"]["mode"] == "add" and summ["results"]["n_questions"] == 8
    # the report renders it: one number per latent with its null and verdict
    from featurescope.report.records import load_run
    from featurescope.report.render_features import steer_numbers

    (num,) = steer_numbers(load_run(out))
    assert "latent 5" in num.label and num.verdict == r5["evidence"]["verdict"]


# -- interpretation score ----------------------------------------------------------------------------------------


def test_set_p_empirical_calls_noise_noise_and_finds_a_planted_set():
    """Both ways: a set drawn from the null itself gets a uniform-ish p (not small on average); a set shifted by
    2 null SDs per latent (10 latents) gets p near its floor; a heavy-tailed null is not read as normal."""
    from featurescope.features.interpret import set_p_empirical

    rng = np.random.default_rng(0)
    pool = rng.normal(20, 5, size=300)
    ps = [set_p_empirical(rng.choice(pool, 10, replace=False), pool, n_draws=2000, seed=i) for i in range(40)]
    assert 0.3 < float(np.mean(ps)) < 0.7 and min(ps) > 0.001
    assert set_p_empirical(rng.normal(30, 5, size=10), pool, n_draws=2000) < 0.002
    heavy = np.concatenate([np.full(280, 20.0), np.full(20, 60.0)])  # 7% of null latents score 60
    two_outliers = [60.0, 60.0] + [20.0] * 8  # set z ~ 2.3 reads as rare; random sets get this often
    assert set_p_empirical(two_outliers, heavy, n_draws=4000) > 0.05
    assert np.isnan(set_p_empirical([1.0, 2.0], [1.0])) and np.isnan(set_p_empirical([], pool))


def test_set_interval_evidence_needs_the_whole_set_not_a_few_latents():
    """The interval rule, both ways: ten latents each 2 null SDs up are distinguishable; a set whose mean is carried
    by three strong latents of ten (set z well above 3, empirical p small) is not - its interval over latents is
    wide and reaches the random sets' band; a set from the null itself is not."""
    from featurescope.features.interpret import set_interval_evidence, set_p_empirical

    rng = np.random.default_rng(1)
    pool = rng.normal(19, 5, size=200)
    strong = set_interval_evidence(rng.normal(29, 2, size=10), pool)
    assert strong is not None and strong["verdict"] == "distinguishable from the null"
    carried = [40.0, 40.0, 37.0] + [18.0] * 7
    assert set_p_empirical(carried, pool) < 0.01
    ev = set_interval_evidence(carried, pool)
    assert ev is not None and ev["verdict"] == "not distinguishable from the null"
    assert ev["estimate"]["lo"] < ev["null"]["hi"] < ev["estimate"]["value"]
    assert (
        set_interval_evidence(rng.choice(pool, 10, replace=False), pool)["verdict"] != "distinguishable from the null"
    )
    assert set_interval_evidence([1.0, 2.0], [1.0]) is None


def test_interpretation_score_finds_the_planted_latent_and_not_random_ones(char_tok, tmp_path):
    """'!' carries latents 5, 9, 20 of a synthetic SAE; the judge scores contexts with '!' as the trait."""
    import featurescope as fs
    from featurescope.features.interpret import latent_contexts, run_interpret
    from tests.conftest import make_tiny_tl
    from tests.test_saes_decompose import make_sae

    sae = make_sae()
    tl = make_tiny_tl(char_tok, seed=5)
    with torch.no_grad():
        tl.W_E[char_tok.convert_tokens_to_ids("!")] += 30 * sae.W_dec[[5, 9, 20]].sum(0) / 3**0.5
    model = fs.from_hooked_transformer(tl, name="planted", stage="post-trained", tokenizer=char_tok)
    g = torch.Generator().manual_seed(0)
    letters = "abcdefghijklmnopqrstuvwxyz "
    texts = []
    for i in range(120):
        body = "".join(letters[int(k)] for k in torch.randint(0, len(letters), (30,), generator=g))
        texts.append(("t", body + ("!" if i % 6 == 0 else ".")))
    ctx = latent_contexts(model, sae, [t for _, t in texts], n_top=4, window=8, progress=False)
    assert ctx["density"].shape == (48,) and ctx["n_tokens"] == sum(len(t) for _, t in texts)
    res = run_interpret(model, sae, {"planted": [5, 9, 20], "random": [1, 2, 3]}, "bang", _BangJudge(), tmp_path,
                        texts=texts, n_null=20, progress=False)  # fmt: skip
    assert res["views"]["planted"]["set_z_density_matched"] >= 3 and res["target_met"]
    assert res["views"]["random"]["set_z_density_matched"] < 3
    # without the normal approximation too: random sets of pooled null latents rarely reach the planted set's mean
    assert res["views"]["planted"]["set_p_empirical"] < 0.01 < res["views"]["random"]["set_p_empirical"]
    assert res["views"]["random"]["interval_evidence"]["verdict"] == "not distinguishable from the null"
    assert len(res["matched_scores"]) >= 10
    assert (tmp_path / "scores.jsonl").exists()


def test_label_measure_scores_contexts_by_provenance_and_refuses_unknown_measures(char_tok, tmp_path):
    """The assistant-voice path: a latent's score is the mean label of the texts its top contexts come from. '!'
    carries latents 5, 9, 20; the texts that end in '!' are labelled 100 (say, Assistant speech), the others 0."""
    import featurescope as fs
    from featurescope.errors import FeaturescopeError
    from featurescope.features.interpret import (
        assistant_voice_texts,
        context_rows,
        interpretation_scores,
        latent_contexts,
        run_interpret,
    )
    from tests.conftest import make_tiny_tl
    from tests.test_saes_decompose import make_sae

    sae = make_sae()
    tl = make_tiny_tl(char_tok, seed=5)
    with torch.no_grad():
        tl.W_E[char_tok.convert_tokens_to_ids("!")] += 30 * sae.W_dec[[5, 9, 20]].sum(0) / 3**0.5
    model = fs.from_hooked_transformer(tl, name="planted", stage="post-trained", tokenizer=char_tok)
    g = torch.Generator().manual_seed(1)
    letters = "abcdefghijklmnopqrstuvwxyz "
    texts = ["".join(letters[int(k)] for k in torch.randint(0, 27, (30,), generator=g)) for _ in range(120)]
    texts = [t + ("!" if i % 6 == 0 else ".") for i, t in enumerate(texts)]
    labels = [100.0 if t.endswith("!") else 0.0 for t in texts]
    ctx = latent_contexts(model, sae, texts, n_top=4, window=8, progress=False)
    assert all(labels[r] == 100.0 for r in context_rows(ctx, 5))
    res = interpretation_scores(model, sae, ctx, [5, 9, 20, 1, 2, 3], None, None, n_null=20, labels=labels)
    z = {j: res["latents"][str(j)]["z_density_matched"] for j in (5, 9, 20, 1, 2, 3)}
    assert all(res["latents"][str(j)]["score"] == 100.0 for j in (5, 9, 20))
    assert min(z[5], z[9], z[20]) > 1 and max(z[1], z[2], z[3]) < min(z[5], z[9], z[20])
    assert sum(res["latents"][str(j)]["score"] for j in (1, 2, 3)) / 3 < 50
    with pytest.raises(FeaturescopeError, match="unknown interpretation measure 'vibes'"):
        run_interpret(model, sae, {"x": [5]}, None, None, tmp_path, measure="vibes", progress=False)
    # the shipped labelled texts: both voices present, the paired contexts' members on both sides
    lab = assistant_voice_texts(n_general=0, n_answers=20)
    srcs = {s.split(":")[0] for s, _, _ in lab}
    assert {"pairs", "passages"} <= srcs and {c for _, _, c in lab} == {0, 1}
    assert sum(c for s, _, c in lab if s.startswith("pairs")) * 2 == sum(1 for s, _, _ in lab if s.startswith("pairs"))
