"""Crosscoder seed control and cards (issue 18): `crosscoder compare` on planted decoders (a permuted, noisy copy;
independent random decoders; mismatched runs), and feature cards for post-only / base-only latents from held-out
pairs with their positions."""

from __future__ import annotations

import argparse
import html
import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from featurescope.errors import FeaturescopeError
from featurescope.runs import write_summary
from featurescope.stages.crosscoder import CrosscoderWeights
from tests.test_crosscoder import HOOK, _rows

N, D = 96, 32


def _cc(W_dec: torch.Tensor, seed: int = 0, source: str = "") -> CrosscoderWeights:
    g = torch.Generator().manual_seed(seed)
    n, d = W_dec.shape[1], W_dec.shape[2]
    return CrosscoderWeights(torch.randn(2, d, n, generator=g), torch.zeros(n), W_dec, torch.zeros(2, d), source=source)


def _planted_decoder(seed: int = 0, n: int = N, d: int = D) -> torch.Tensor:
    """Latents 0-9 base-only (post half ~0), 10-19 post-only (base half ~0), the rest shared."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(2, n, d, generator=g)
    W[1, :10] *= 0.01
    W[0, 10:20] *= 0.01
    return W


def _copy(W: torch.Tensor, seed: int = 1, noise: float = 0.02) -> tuple[torch.Tensor, torch.Tensor]:
    """``W``'s latents in another order, each coordinate scaled by 1 + noise x N(0, 1) (the classes stay)."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(W.shape[1], generator=g)
    return W[:, perm] * (1 + noise * torch.randn(W.shape, generator=g)), perm


def test_a_permuted_noisy_copy_is_reused_with_the_same_classes():
    from featurescope.crosscoder_compare import compare_crosscoders, format_comparison

    W = _planted_decoder()
    Wb, perm = _copy(W)
    truly = [10, 11, 12, 13]
    in_b = perm.argsort()  # A's latent j is B's latent in_b[j]
    res = compare_crosscoders(_cc(W), _cc(Wb, seed=1), truly_a=truly, truly_b=in_b[10:20].tolist())
    assert res["reuse"]["a_to_b"] > 0.98 and res["reuse"]["b_to_a"] > 0.98, res["reuse"]
    assert res["reuse"]["a_to_b_post_half"] > 0.9 and res["reuse"]["chance"] < 0.02, res["reuse"]
    for c in ("base_only", "shared", "post_only", "truly_chat_only"):
        assert res["by_class_of_a"][c]["matched"] > 0.98 and res["by_class_of_a"][c]["chance"] < 0.05, c
    assert res["by_class_of_a"]["truly_chat_only"]["n"] == len(truly)
    ag = res["class_agreement"]
    assert ag["agreement"] > 0.98 and ag["n_matched_pairs"] >= 0.98 * N
    assert ag["table"][0][0] == 10 and ag["table"][2][2] == 10 and ag["agreement_by_chance"] < 0.8, ag
    assert ag["truly_chat_only_match_also_truly_chat_only_in_b"] == 1.0
    assert res["converged"] and res["relative_norm_correlation_of_matched_pairs"] > 0.99
    assert res["class_fractions_from_decoders"]["a"] == pytest.approx(
        {"base_only": 10 / N, "shared": 76 / N, "post_only": 10 / N}
    )
    text = format_comparison(res)
    assert "of A's truly chat-only latents (4) 100% have a match in B (chance 0%)" in text
    assert "converged across seeds" in text and "NOT CONVERGED" not in text


def test_independent_decoders_are_reused_at_the_chance_level():
    from featurescope.crosscoder_compare import compare_crosscoders, format_comparison

    # a low width and a lower threshold give the null a chance level well above 0, to be met
    d, n = 4, 200
    g = torch.Generator().manual_seed(0)
    a, b = _cc(torch.randn(2, n, d, generator=g)), _cc(torch.randn(2, n, d, generator=g))
    res = compare_crosscoders(a, b, threshold=0.85, seed=3)
    ru = res["reuse"]
    assert 0.1 < ru["chance"] < 0.9, ru
    assert abs(ru["a_to_b"] - ru["chance"]) < 0.12 and abs(ru["a_to_b_post_half"] - ru["chance_post_half"]) < 0.12, ru
    # at the default threshold both sit at 0 in 2 x 32 dimensions: no reuse, and the verdict says so
    res = compare_crosscoders(_cc(_planted_decoder(0)), _cc(_planted_decoder(5)))
    assert res["reuse"]["a_to_b"] < 0.05 and res["reuse"]["chance"] < 0.05 and not res["converged"]
    text = format_comparison(res)
    assert "NOT CONVERGED ACROSS SEEDS" in text and "not evidence" in text


def test_crosscoders_of_other_widths_are_refused_naming_both():
    from featurescope.crosscoder_compare import compare_crosscoders

    with pytest.raises(FeaturescopeError, match=r"different widths \(n_latents: A 96, B 64"):
        compare_crosscoders(_cc(_planted_decoder()), _cc(_planted_decoder(n=64)))
    with pytest.raises(FeaturescopeError, match=r"d_model: A 32, B 16"):
        compare_crosscoders(_cc(_planted_decoder()), _cc(_planted_decoder(d=16)))


def _write_run(
    folder: Path,
    W_dec: torch.Tensor,
    *,
    hook: str = HOOK,
    seed: int = 42,
    k: int = 8,
    report: dict[str, Any] | None = None,
) -> Path:
    """A `crosscoder train` run folder: crosscoder/ in sae-lens' layout (cfg.json, sae_weights.safetensors,
    featurescope_run.json) and summary.json with the report."""
    n, d = W_dec.shape[1], W_dec.shape[2]
    cc = folder / "crosscoder"
    cc.mkdir(parents=True)
    g = torch.Generator().manual_seed(seed)
    save_file(
        {
            "W_enc": torch.randn(2 * d, n, generator=g),
            "W_dec": W_dec.transpose(0, 1).reshape(n, 2 * d).contiguous(),
            "b_enc": torch.zeros(n),
            "b_dec": torch.zeros(2 * d),
            "threshold": torch.zeros(n),
        },
        str(cc / "sae_weights.safetensors"),
    )
    meta = {"hook_name": hook, "base_model": "tiny-base", "post_model": "tiny-chat", "activation_scales": [1.0, 1.0]}
    (cc / "cfg.json").write_text(json.dumps({"architecture": "jumprelu_crosscoder", "metadata": meta}))
    run = {"base_model": "tiny-base", "post_model": "tiny-chat", "hook": hook, "d_model": d, "d_sae": n, "seed": seed}
    run |= {"k": k, "training_tokens": 1000}
    (cc / "featurescope_run.json").write_text(json.dumps(run))
    if report is not None:
        write_summary(
            folder, "crosscoder train", inputs={"hook": hook, "seed": seed}, results={"report": report}, timings={}
        )
    return folder


def _report(truly: list[int], n: int = N) -> dict[str, Any]:
    th = {"base_only_r_below": 0.1, "post_only_r_above": 0.9, "nu_max": 0.2, "recon_floor": 0.1}
    counts = {"base_only": 10, "post_only": 10, "shared": n - 20}
    return {
        "n_latents": n,
        "thresholds": th,
        "counts": counts,
        "post_only_passing_latent_scaling": len(truly),
        "true_post_only_latents": truly,
    }


def test_compare_runs_reads_run_folders_writes_a_summary_and_refuses_other_setups(tmp_path, capsys):
    from featurescope.cli.main import main
    from featurescope.crosscoder_compare import compare_runs

    W = _planted_decoder()
    Wb, perm = _copy(W)
    inv = perm.argsort()  # B's latent perm^-1[j] is A's latent j
    a = _write_run(tmp_path / "a", W, report=_report([10, 11]))
    b = _write_run(tmp_path / "b", Wb, seed=43, report=_report([int(inv[10]), int(inv[15])]))
    res = compare_runs(a, b / "crosscoder", tmp_path / "cmp")  # a run folder or its crosscoder/ folder
    assert res["runs"]["a"]["report_from"] == str(a / "summary.json") and res["runs"]["b"]["setup"]["seed"] == 43
    assert res["runs"]["a"]["class_fractions"]["truly_chat_only"] == pytest.approx(2 / N)
    assert res["by_class_of_a"]["truly_chat_only"]["matched"] == 1.0
    assert res["class_agreement"]["truly_chat_only_match_also_truly_chat_only_in_b"] == 0.5
    assert "new (truly chat-only) latents: A 2.1%, B 2.1% (PSM: < 1%" in res["text"]
    assert res["notes"] == []
    summary = json.loads((tmp_path / "cmp" / "summary.json").read_text())
    assert summary["command"] == "crosscoder compare" and summary["results"]["converged"] is True
    assert summary["results"]["class_agreement"]["table"][2][2] == 10

    # the command: flags, printout, summary
    assert main(["crosscoder", "compare", "--a", str(a), "--b", str(b), "--out", str(tmp_path / "cli")]) == 0
    out = capsys.readouterr().out
    assert "of A's truly chat-only latents (2) 100% have a match in B (chance 0%)" in out and "verdict:" in out
    assert json.loads((tmp_path / "cli" / "summary.json").read_text())["cli"]["settings"]["threshold"] == 0.7

    # other training settings or the same seed: compared, with a note
    same_seed = _write_run(tmp_path / "s", Wb, k=16, report=_report([]))
    notes = compare_runs(a, same_seed)["notes"]
    assert notes == [
        "the runs differ in more than the seed (k: A 8, B 16): not a pure seed control",
        "both runs have seed 42: not a seed control",
    ]

    other_hook = _write_run(tmp_path / "h", Wb, hook="blocks.2.hook_resid_post", report=_report([]))
    with pytest.raises(FeaturescopeError, match=r"hook: A 'blocks.1.hook_resid_post', B 'blocks.2.hook_resid_post'"):
        compare_runs(a, other_hook)
    narrow = _write_run(tmp_path / "n", _planted_decoder(n=64), report=_report([], n=64))
    with pytest.raises(FeaturescopeError, match=r"n_latents: A 96, B 64"):
        compare_runs(a, narrow)
    assert main(["crosscoder", "compare", "--a", str(a), "--b", str(narrow), "--out", str(tmp_path / "x")]) == 2
    assert "n_latents: A 96, B 64" in capsys.readouterr().err
    with pytest.raises(FeaturescopeError, match="not a crosscoder run"):
        compare_runs(a, tmp_path)


def test_compare_cli_parses_and_requires_its_flags():
    from featurescope.cli import crosscoder as cli

    p = argparse.ArgumentParser()
    cli.register(p.add_subparsers(dest="command"))
    a = p.parse_args(["crosscoder", "compare", "--a", "x", "--b", "y", "--out", "o"])
    assert (a.a, a.b, a.out, a.threshold, a.seed, a.converged_at) == ("x", "y", "o", 0.7, 0, 0.5)
    assert a.func is cli.cmd_crosscoder_compare and not hasattr(a, "base")
    for argv in (["--a", "x", "--out", "o"], ["--b", "y", "--out", "o"], ["--a", "x", "--b", "y"]):
        with pytest.raises(SystemExit):
            p.parse_args(["crosscoder", "compare", *argv])
    with pytest.raises(SystemExit) as e:
        p.parse_args(["crosscoder", "compare", "--help"])
    assert e.value.code == 0
    assert p.parse_args(["crosscoder", "eval", "--crosscoder", "c", "--out", "o"]).cards == 8
    assert p.parse_args(["crosscoder", "train", "--cards", "0", "--out", "o"]).cards == 0


# -- cards ------------------------------------------------------------------------------------------------------


def test_held_out_pairs_are_pair_activations_with_their_positions(tiny_base, tiny_chat, monkeypatch):
    import featurescope.crosscoder_data as cd
    from featurescope.crosscoder import held_out_pairs, pair_activations

    rows = _rows(tiny_base.tokenizer, 20, ctx=17)
    rows[3, -4:] = tiny_base.tokenizer.pad_token_id
    real = cd._hook_acts

    def spiky(model, r, h, stop):  # an outlier token in the second chunk of rows
        a = real(model, r, h, stop)
        if model is tiny_base and len(r) == 4:
            a[1, 7] *= 100
        return a

    monkeypatch.setattr(cd, "_hook_acts", spiky)
    want = torch.cat(list(pair_activations(tiny_base, tiny_chat, rows, HOOK)))
    held = held_out_pairs(tiny_base, tiny_chat, rows, HOOK)
    assert torch.equal(held.pairs, want) and held.where is not None and len(held.where) == len(want)
    assert len(want) == 20 * 16 - 4 - 1 and [17, 7] not in held.where.tolist()
    assert held.where[:3].tolist() == [[0, 1], [0, 2], [0, 3]] and held.where[-1].tolist() == [19, 16]
    _, cache = tiny_chat.tl.run_with_cache(rows, names_filter=[HOOK])
    for i in (0, 50, len(want) - 1):
        r, p = held.where[i].tolist()
        torch.testing.assert_close(held.pairs[i, 32:], cache[HOOK][r, p])
    assert held_out_pairs(tiny_base, tiny_chat, rows, HOOK, positions=False).where is None


def _planted_card_crosscoder(pairs: torch.Tensor, targets: dict[int, int]) -> CrosscoderWeights:
    """Latent j reads the direction of held-out token ``targets[j]`` (a JumpReLU that fires near it only); latent 0
    writes into the post model only (post-only), latent 1 into the base model only (base-only), the rest both."""
    g = torch.Generator().manual_seed(0)
    n, d = 12, pairs.shape[-1] // 2
    W_enc = torch.randn(2, d, n, generator=g) * 0.01
    thr = torch.full((n,), 1e6)
    for j, t in targets.items():
        u = F.normalize(pairs[t], dim=0)
        W_enc[:, :, j] = u.view(2, d)
        thr[j] = 0.8 * float(pairs[t] @ u)  # fires on tokens within ~37 degrees of the target, not shorter
    W_dec = torch.randn(2, n, d, generator=g)
    W_dec[0, 0] = 0.0
    W_dec[1, 1] = 0.0
    return CrosscoderWeights(W_enc, torch.zeros(n), W_dec, torch.zeros(2, d), threshold=thr)


def test_cards_show_a_planted_latents_top_context(tiny_base, tiny_chat, tmp_path):
    from featurescope.crosscoder import analyse_crosscoder, crosscoder_cards, held_out_pairs, write_cards_html

    tok = tiny_base.tokenizer
    rows = _rows(tok, 8, ctx=25, seed=3)
    held = held_out_pairs(tiny_base, tiny_chat, rows, HOOK)
    assert held.where is not None
    cc = _planted_card_crosscoder(held.pairs, {0: 40, 1: 100, 2: 150})
    f = cc.encode(held.pairs.unflatten(-1, (2, 32)))
    top = int(f[:, 0].argmax())  # the planted latent's strongest token (its own target, or one just like it)
    assert float(f[:, 0].max()) > 0 and int((f[:, 0] > 0).sum()) < len(held.pairs) // 4
    rep, ten = analyse_crosscoder(cc, held.pairs)
    assert 0 in rep["true_post_only_latents"] + rep["flagged_post_only_latents"] and rep["counts"]["base_only"] == 1

    sections, records = crosscoder_cards(cc, tiny_base, tiny_chat, held, rep, ten, hook=HOOK, per_class=3)
    post = next(v for k, v in records.items() if k.startswith("post-only"))
    base = next(v for k, v in records.items() if k.startswith("base-only"))
    assert [x["latent"] for x in post] == [0] and [x["latent"] for x in base] == [1]
    (rec,) = post
    r, p = held.where[top].tolist()
    assert rec["top_row_position"] == [r, p] and rec["relative_norm"] == 1.0 and rec["class"] == "post_only"
    assert rec["max_activation"] == pytest.approx(float(f[:, 0].max())) and 0 < rec["density"] < 0.25
    window = [tok.decode([i]) for i in rows[r, max(1, p - 12) : p + 4].tolist()]
    assert rec["top_context"] == "".join(window)
    assert base[0]["verdict"].startswith("not tested")

    page = write_cards_html(tmp_path, sections, "planted").read_text()
    card = sections[next(k for k in sections if k.startswith("post-only"))][0]
    assert card.model == "tiny-chat" and "r = 1.000" in card.label and "Latent Scaling" in card.label
    assert sections[next(k for k in sections if k.startswith("base-only"))][0].model == "tiny-base"
    assert "feature 0" in page and "post-only, r = 1.000" in page and "data:image/png;base64" in page
    hot = f"title='{rec['max_activation']:.2f}'>{html.escape(tok.decode([int(rows[r, p])]))}</span>"
    assert hot in page  # the planted latent's top token, highlighted in its context

    with pytest.raises(FeaturescopeError, match="row, position"):
        crosscoder_cards(cc, tiny_base, tiny_chat, type(held)(held.pairs, rows), rep, ten, hook=HOOK)
