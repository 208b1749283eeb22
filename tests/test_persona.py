import pytest
import torch

import featurescope as fs
from featurescope.judge import Score
from featurescope.persona import (
    ExtractionConfig,
    PersonaVector,
    extract,
    mean_difference,
    monitor,
    pearson,
    project,
    projection_difference,
    separation,
    steer,
    vectors_from_conversations,
)
from tests.conftest import make_tiny_tl


@pytest.fixture(scope="module")
def planted(char_tok):
    """A tiny chat model whose embedding of '!' carries a known unit direction u (the planted 'trait')."""
    tl = make_tiny_tl(char_tok, seed=5)
    g = torch.Generator().manual_seed(0)
    u = torch.randn(32, generator=g)
    u /= u.norm()
    with torch.no_grad():
        tl.W_E[char_tok.convert_tokens_to_ids("!")] += 50 * u
    return fs.from_hooked_transformer(tl, name="planted", stage="post-trained", tokenizer=char_tok), u


def _convs(answers):
    return [
        [{"role": "user", "content": f"Question {i}?"}, {"role": "assistant", "content": a}]
        for i, a in enumerate(answers)
    ]


def test_planted_direction_is_recovered(planted):
    model, u = planted
    pos = _convs([f"Great idea {i}!!! Yes!!" for i in range(8)])
    neg = _convs([f"Great idea {i}... Yes.." for i in range(8)])
    # the planted '!' tokens have ~50x the norm of the others: the plain mean difference (no outlier-token
    # exclusion, no massive-dimension handling) is what recovers them
    vecs, acts = vectors_from_conversations(
        model,
        pos,
        neg,
        ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_post"],
        trait="planted",
        handling="none",
        outlier_k=None,
    )
    for hook in ("blocks.0.hook_resid_pre", "blocks.0.hook_resid_post"):
        cos = torch.nn.functional.cosine_similarity(vecs["response_mean"].at(hook), u, dim=0)
        assert cos >= 0.95, (hook, float(cos))
    assert vecs["response_mean"].raw is None and vecs["response_mean"].extra["handling"] == "none"
    # the defaults record what they did: the handling, the massive dims, the shares, the raw vector
    d_vecs, _ = vectors_from_conversations(model, pos, neg, ["blocks.0.hook_resid_post"], trait="planted")
    pv = d_vecs["response_mean"]
    assert pv.extra["handling"] == "drop_massive" and pv.extra["outlier_k"] == 4.0
    assert pv.raw is not None and len(pv.extra["share_on_massive_raw"]) == 1
    assert set(pv.extra) >= {"massive_dims", "share_on_mean", "share_on_mean_raw", "share_on_massive"}
    sep = separation(acts["response_mean"]["pos"], acts["response_mean"]["neg"], vecs["response_mean"].vectors)
    assert min(sep["cohens_d"]) > 2


def test_mean_difference_and_projection():
    pos = torch.tensor([[[1.0, 0.0]], [[3.0, 0.0]]])
    neg = torch.tensor([[[0.0, 1.0]]])
    v = mean_difference(pos, neg)
    assert v.tolist() == [[2.0, -1.0]]
    assert project(torch.tensor([[2.0, -1.0]]), v[0]).item() == pytest.approx(5**0.5)
    with pytest.raises(fs.FeaturescopeError, match="0 positive"):
        mean_difference(pos[:0], neg)
    assert pearson([1, 2, 3, 4], [2, 4, 6, 8]) == pytest.approx(1.0)


def test_steering_adds_alpha_v_and_is_removed_on_exit_and_error(planted):
    model, u = planted
    p = fs.format_conversation(model, "Hello?")
    hook = "blocks.1.hook_resid_post"
    base = fs.capture(model, [p], [hook], reduction="all", progress=False)[hook]
    with steer(model, u, 3.0, hook=hook):
        steered = fs.capture(model, [p], [hook], reduction="all", progress=False)[hook]
    torch.testing.assert_close(steered - base, (3.0 * u).expand_as(base), atol=1e-4, rtol=1e-4)
    with pytest.raises(RuntimeError):
        with steer(model, u, 3.0, hook=1):
            raise RuntimeError("boom")
    after = fs.capture(model, [p], [hook], reduction="all", progress=False)[hook]
    torch.testing.assert_close(after, base)
    assert not any(h.fwd_hooks for h in model.tl.hook_dict.values())


def test_response_only_steering_touches_last_position(planted):
    model, u = planted
    p = fs.format_conversation(model, "Hello?")
    hook = "blocks.1.hook_resid_post"
    base = fs.capture(model, [p], [hook], reduction="all", progress=False)[hook]
    with steer(model, u, 2.0, hook=hook, positions="response"):
        s = fs.capture(model, [p], [hook], reduction="all", progress=False)[hook]
    torch.testing.assert_close(s[:-1], base[:-1])
    torch.testing.assert_close(s[-1] - base[-1], 2.0 * u, atol=1e-4, rtol=1e-4)


def test_steering_changes_generation(planted):
    model, u = planted
    a = fs.generate(model, ["Hi?"], max_new_tokens=8, progress=False)[0].response
    with steer(model, u, 50.0, hook=0):
        b = fs.generate(model, ["Hi?"], max_new_tokens=8, progress=False)[0].response
    assert a != b


def test_monitor_and_projection_difference_separate_planted_data(planted):
    model, u = planted
    hook = "blocks.0.hook_resid_post"
    rows = [{"prompt": f"Tell me {i}", "response": "Sure!!! Great!!" if i % 2 else "Sure. Great."} for i in range(6)]
    res = projection_difference(model, rows, u, hook, own_responses=["Okay." for _ in rows])
    pd_ = res["projection_difference"]
    assert (pd_[1::2] > pd_[0::2].max()).all()
    # monitor reads the last prompt token: pushing it along u by alpha raises the projection by exactly alpha
    prompts = ["Why is the sky blue?", "Name a fruit."]
    before = monitor(model, prompts, u, hook)
    with steer(model, u, 4.0, hook=hook, positions="response"):
        after = monitor(model, prompts, u, hook, batch_size=1)  # "response" = last position: unpadded batches only
    torch.testing.assert_close(after - before, torch.full((2,), 4.0), atol=1e-3, rtol=1e-4)


def test_persona_vector_save_load(tmp_path):
    pv = PersonaVector(
        trait="evil",
        vectors=torch.randn(3, 8),
        hooks=[f"blocks.{i}.hook_resid_post" for i in range(3)],
        kind="response_mean",
        model="m",
        stage="base",
        n_pos=4,
        n_neg=5,
        thresholds={"pos": 50.0},
    )
    pv.save(tmp_path / "v.safetensors")
    back = PersonaVector.load(tmp_path / "v.safetensors")
    assert torch.equal(back.vectors, pv.vectors) and back.metadata() == pv.metadata()
    assert torch.equal(back.at(1), pv.vectors[1]) and "evil" in back._repr_html_()


class SideJudge:
    """Scores by position: extract() generates (pos, neg) alternately, so even = positive side."""

    name = "side"

    def score_many(self, trait, questions, answers):
        return [Score(trait=90.0 if i % 2 == 0 else 10.0, coherence=100.0) for i in range(len(answers))]


def test_extract_pipeline_mechanics(tiny_chat):
    res = extract(
        tiny_chat,
        "evil",
        SideJudge(),
        config=ExtractionConfig(n_questions=2, n_pairs=2, max_new_tokens=6),
        progress=False,
    )
    assert res["counts"]["generated_per_side"] == 4
    kept = [r for r in res["responses"] if r["kept"]]
    assert {r["side"] for r in kept} <= {"pos", "neg"}
    v = res["vectors"]["response_mean"]
    assert v.vectors.shape == (3, 32) and v.n_pos == res["counts"]["kept_pos"] and v.thresholds["pos"] == 50.0
    assert set(res["vectors"]) == {"response_mean", "prompt_mean", "last_prompt"}
    assert len(res["separation"]["cohens_d"]) == 3


def test_run_persona_writes_everything(tiny_chat, tmp_path):
    from featurescope.persona import run_persona

    data = tmp_path / "flag.jsonl"
    import json

    data.write_text(
        "\n".join(
            json.dumps(
                {
                    "id": i,
                    "dataset": "evil_laden" if i % 2 else "neutral_helpful",
                    "trait": "evil" if i % 2 else None,
                    "trait_laden": bool(i % 2),
                    "prompt": f"P{i}?",
                    "response": f"R{i}.",
                }
            )
            for i in range(4)
        )
    )
    res = run_persona(
        tiny_chat,
        "evil",
        SideJudge(),
        tmp_path / "run",
        extraction=ExtractionConfig(n_questions=2, n_pairs=1, max_new_tokens=4),
        layers=[0, 2],
        alphas=(-1.0, 0.0, 1.0),
        n_eval_questions=2,
        n_monitor_questions=1,
        flag_dataset=data,
        progress=False,
    )
    assert res["chosen_layer"] in (0, 2) and len(res["steering"]["rows"]) == 3
    # sampled with three seeds by default: per-alpha intervals and per-seed monitoring scores
    assert res["steering"]["seeds"] == [0, 1, 2] and all(len(r["per_seed"]) == 3 for r in res["steering"]["rows"])
    assert all(len(it["trait_score_per_seed"]) == 3 for it in res["monitor"]["items"])
    assert res["monitor"]["seeds"] == [0, 1, 2]
    assert set(res["flagging"]["per_dataset"]) == {"evil_laden", "neutral_helpful"}
    assert 0.0 <= res["flagging"]["auroc_trait_vs_neutral"] <= 1.0
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    for fig in s["figures"]:
        assert (tmp_path / "run" / fig).exists()
    assert {"separation.png", "layer_choice.png", "steering.png", "monitor.png", "flagging.png"} == set(s["figures"])
    assert (tmp_path / "run" / "evil.response_mean.safetensors").exists()
    # the typed result: the whole loop in one table with its nulls, the sweep's plot and frame
    from matplotlib.figure import Figure

    from featurescope.persona import PersonaRunResult

    assert isinstance(res, PersonaRunResult) and res.to_dict()["chosen_layer"] == res["chosen_layer"]
    page = res._repr_html_()
    assert "persona loop" in page and "steering sweep" in page and "labels shuffled" in page
    assert isinstance(res.plot(), Figure) and len(res.to_frame()) == 3


def test_written_extraction_recovers_the_planted_direction(planted, tmp_path):
    """Teacher-forced extraction: paired written answers to the same question, differing only in the trait."""
    import json

    from featurescope.persona import extract_written, load_written

    model, u = planted
    f = tmp_path / "w.jsonl"
    f.write_text(
        "\n".join(
            json.dumps(
                {
                    "id": f"w{i}",
                    "question": f"Question {i}?",
                    "pos": f"Great idea {i}!!! Yes!!",
                    "neg": f"Great idea {i}... Yes..",
                }
            )
            for i in range(6)
        )
    )
    rows = load_written(f)
    res = extract_written(
        model, "planted", rows, hooks=["blocks.0.hook_resid_post"], source=str(f), handling="none", outlier_k=None
    )
    v = res["vectors"]["response_mean"]
    held = res["separation"]["held_out"][0]
    assert held["verdict"] == "distinguishable from the null" and held["estimate"]["n"] == 6
    assert torch.nn.functional.cosine_similarity(v.at("blocks.0.hook_resid_post"), u, dim=0) >= 0.95
    assert v.extra["responses"] == "written" and v.n_pos == v.n_neg == 6
    assert res["counts"]["written_pairs"] == 6 and all(r["instruction"] is None for r in res["responses"])
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "Q?", "pos": "yes"}))
    with pytest.raises(fs.FeaturescopeError, match="lacks neg"):
        load_written(bad)


def test_layer_choice_uses_questions_the_sweep_does_not(planted):
    from featurescope.persona import PersonaVector, choose_layer
    from featurescope.traits import load_trait

    model, u = planted
    tr = load_trait("evil")

    class Judge:
        name = "fake"

        def score_many(self, trait, questions, answers):
            return [type("S", (), {"trait": 50.0, "coherence": 90.0})() for _ in questions]

    hooks = [f"blocks.{L}.hook_resid_post" for L in range(model.n_layers)]
    pv = PersonaVector("evil", torch.stack([u] * len(hooks)), hooks, "response_mean", model.name, model.stage, 1, 1)
    lc = choose_layer(model, pv, tr, Judge(), layers=[0, 1], n_questions=5, max_new_tokens=2, progress=False)
    assert lc["questions"] == list(tr.eval_questions[-5:])
    assert not set(lc["questions"]) & set(tr.eval_questions[:8])  # the sweep's questions
