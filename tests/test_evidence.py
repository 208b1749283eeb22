"""Evidence: planted answers both ways (noise is not an effect, a planted effect is found), massive-activation
handling recovers a planted trait direction, the axis nulls, and `inspect` on a tiny model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from featurescope.evidence import (
    EFFECT,
    axis_pc1_evidence,
    handle_vector,
    held_out_separation,
    layer_profile,
    massive_dims,
    random_directions,
    robust_mean,
    share_on_dims,
    split_half_pc_cosines,
    summarise_null,
    verdict,
)
from featurescope.evidence.run import choose_handling, compare_handlings
from featurescope.stats import NOT_DISTINGUISHABLE, Estimate


def _pairs(n_q: int, d: int, effect: float, seed: int) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    g = torch.Generator().manual_seed(seed)
    direction = torch.zeros(d)
    direction[0] = 1.0
    pos = torch.randn(n_q, d, generator=g) + effect * direction
    neg = torch.randn(n_q, d, generator=g)
    return pos, neg, list(range(n_q))


def test_verdict_rules():
    assert verdict(Estimate(1.0, 0.8, 1.2, 10), 0.0) == EFFECT
    assert verdict(Estimate(1.0, -0.1, 1.2, 10), 0.0) == NOT_DISTINGUISHABLE
    null = summarise_null([0.0, 0.1, 0.9, 1.0], 0.95)
    assert verdict(Estimate(1.0, 0.95, 1.2, 10), null) == NOT_DISTINGUISHABLE  # overlaps the null's interval
    assert verdict(Estimate(float("nan"), float("nan"), float("nan"), 0), 0.0) == NOT_DISTINGUISHABLE
    assert null.p_value == pytest.approx(2 / 5)


def test_noise_is_not_called_an_effect():
    calls = 0
    for seed in range(8):
        pos, neg, q = _pairs(24, 16, 0.0, seed)
        ev = held_out_separation(pos, neg, q, q, n_splits=5, n_boot=60, n_perm=60, seed=seed)
        calls += ev.verdict == EFFECT
    assert calls <= 1  # the overlap rule is conservative: at most ~5% expected, allow one in eight


def test_planted_separation_is_found():
    for seed in range(3):
        pos, neg, q = _pairs(40, 16, 2.5, seed)
        ev = held_out_separation(pos, neg, q, q, n_splits=5, n_boot=60, n_perm=60, seed=seed)
        assert ev.verdict == EFFECT, ev.line()
        assert ev.estimate.value > 1.0 and ev.null.hi < 1.0


def test_random_directions_norm_and_share():
    r = random_directions(5, 32, norm=3.0, dims=[1, 7], share=0.4, seed=1)
    assert torch.allclose(r.norm(dim=-1), torch.full((5,), 3.0), atol=1e-5)
    for v in r:
        assert share_on_dims(v, [1, 7]) == pytest.approx(0.4, abs=1e-5)
    iso = random_directions(200, 64, seed=0)
    assert float(iso[:, 0].pow(2).mean()) == pytest.approx(1 / 64, rel=0.4)


def _massive_tokens(n_resp: int, seed: int, trait: float):
    """Responses whose tokens carry a huge dim-0 value that fluctuates per response, plus a small trait signal on
    dims 5..9 for the positive side."""
    g = torch.Generator().manual_seed(seed)
    d = 48
    planted = torch.zeros(d)
    planted[5:10] = 1.0
    planted = planted / planted.norm()
    out = []
    for _ in range(n_resp):
        n_tok = 12
        x = torch.randn(n_tok, d, generator=g)
        x[:, 0] += 1000.0 + 60.0 * torch.randn(1, generator=g)  # massive, persistent, varies by response
        x += trait * planted
        out.append(x)
    return out, planted


def test_massive_dimension_handling_recovers_the_planted_direction():
    pos, planted = _massive_tokens(30, 0, trait=3.0)
    neg, _ = _massive_tokens(30, 1, trait=0.0)
    every = torch.cat(pos + neg)
    assert massive_dims(every) == [0]
    mean = every.mean(0)
    raw = torch.stack([t.mean(0) for t in pos]).mean(0) - torch.stack([t.mean(0) for t in neg]).mean(0)
    cos = torch.nn.functional.cosine_similarity
    c_raw = float(cos(raw, planted, dim=0))
    c_drop = float(cos(handle_vector(raw, "drop_massive", dims=[0]), planted, dim=0))
    c_proj = float(cos(handle_vector(raw, "project_mean", mean=mean), planted, dim=0))
    assert c_drop >= 0.95 and c_proj >= 0.95
    assert c_raw < 0.5  # measurably lower without handling
    tab = compare_handlings(pos, neg, list(range(30)), n_boot=40, n_perm=40)
    rows = tab["rows"]
    assert rows["drop_massive"]["share_on_massive"] == 0.0
    assert rows["none"]["share_on_massive"] > 0.5
    assert rows["drop_massive"]["held_out_d"]["estimate"]["value"] > rows["none"]["held_out_d"]["estimate"]["value"]
    assert choose_handling(tab) in ("drop_massive", "project_mean")


def test_token_handlings():
    x = torch.ones(10, 4)
    x[3] *= 100.0  # one outlier-norm token
    assert torch.allclose(robust_mean(x, "exclude_outliers"), torch.ones(4))
    assert torch.allclose(robust_mean(x, "trimmed"), torch.ones(4))
    r = robust_mean(x, "rms")
    assert torch.allclose(r, torch.ones(4), atol=1e-5)
    assert float(robust_mean(x, "none")[0]) == pytest.approx(10.9)
    with pytest.raises(ValueError, match="unknown token handling"):
        robust_mean(x, "median")


def test_layer_profile_finds_bos_and_massive_dim():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 32, generator=g)
    x[:, 4] += 500.0
    bos = torch.randn(1, 32, generator=g) * 200
    p = layer_profile("blocks.0.hook_resid_post", x, bos)
    assert p.massive_dims == [4]
    assert p.bos_norm_ratio is not None and p.bos_norm_ratio > 1.5
    assert p.mean_share_on_massive > 0.99
    assert p.mean_share_of_energy > 0.9


def test_axis_nulls_both_ways():
    g = torch.Generator().manual_seed(0)
    # planted: roles spread along one direction, the default far out at its end -> distinguishable
    d, R = 32, 30
    u = torch.zeros(d)
    u[0] = 1.0
    roles = torch.randn(R, d, generator=g) * 0.3 + torch.randn(R, 1, generator=g) * 3.0 * u
    default = roles.mean(0) + 25.0 * u
    ev = axis_pc1_evidence(roles, default, n_boot=200)
    assert ev.estimate.value > 0.9 and ev.verdict == EFFECT, ev.line()
    # noise: isotropic roles and a default that is just another role -> not distinguishable
    roles = torch.randn(R, d, generator=g)
    ev = axis_pc1_evidence(roles[1:], roles[0], n_boot=200)
    assert ev.verdict == NOT_DISTINGUISHABLE, ev.line()
    sh = split_half_pc_cosines(roles, n=20)
    assert sh.shape == (20, 3) and float(sh.max()) <= 1.0 + 1e-5


def test_null_p_value_is_uniform_under_the_null():
    rng = np.random.default_rng(0)
    ps = [summarise_null(rng.normal(size=200), float(rng.normal())).p_value for _ in range(300)]
    assert 0.4 < float(np.mean(ps)) < 0.6
    assert float(np.mean(np.asarray(ps) < 0.05)) < 0.1


def test_inspect_cli_on_a_tiny_model(tmp_path, tiny_chat, monkeypatch):
    from featurescope.cli.main import main

    rows = [{"id": str(i), "question": f"q{i}?", "pos": f"bad bad {i}", "neg": f"good {i}"} for i in range(10)]
    src = tmp_path / "w.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows))
    monkeypatch.setattr("featurescope.cli.inspect.load_model", lambda name, **kw: tiny_chat)  # imported at its top
    out = tmp_path / "m"
    assert main(["inspect", "massive", "--model", "x", "--written", str(src), "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert len(s["results"]["layers"]) == tiny_chat.n_layers
    assert (out / "layers.jsonl").read_text().count("\n") == tiny_chat.n_layers
    out2 = tmp_path / "h"
    assert (
        main(["inspect", "handling", "--model", "x", "--written", str(src), "--layers", "0,1", "--out", str(out2)]) == 0
    )
    s = json.loads((out2 / "summary.json").read_text())
    for h in ("blocks.0.hook_resid_post", "blocks.1.hook_resid_post"):
        tab = s["results"]["per_hook"][h]
        assert set(tab["rows"]) == {"none", "exclude_outliers", "trimmed", "rms", "project_mean", "drop_massive"}
        assert tab["chosen"] in tab["rows"]
    with pytest.raises(SystemExit) as e:  # --layers is required: a parse error before anything loads
        main(["inspect", "handling", "--model", "x", "--written", str(src), "--out", str(out2)])
    assert e.value.code == 2


def test_reduce_batch_leaves_outlier_tokens_out_of_means():
    from featurescope.forward import reduce_batch

    act = torch.ones(1, 6, 4)
    act[0, 3] *= 50.0  # an outlier-norm token inside the response
    roles = torch.tensor([[1, 1, 3, 3, 3, 3]])
    last, lens = torch.tensor([1]), torch.tensor([6])
    plain, c = reduce_batch(act, roles, last, lens, "response_mean", False)
    robust, c2 = reduce_batch(act, roles, last, lens, "response_mean", False, outlier_k=4.0)
    assert float(plain[0, 0]) > 10 and torch.allclose(robust, torch.ones(1, 4))
    assert c is not None and c2 is not None and int(c[0]) == 4 and int(c2[0]) == 3


def test_flag_summary_and_correlation_evidence_both_ways():
    from featurescope.evidence import EFFECT
    from featurescope.evidence.nulls import correlation_evidence
    from featurescope.persona import flag_summary

    rng = np.random.default_rng(0)
    rows = [
        {
            "id": i,
            "dataset": "evil" if i < 20 else "neutral",
            "trait": "evil" if i < 20 else None,
            "trait_laden": i < 20,
        }
        for i in range(40)
    ]
    planted = [float(x) + (2.0 if i < 20 else 0.0) for i, x in enumerate(rng.normal(size=40))]
    s = flag_summary(rows, planted, "evil")
    assert s["auroc_evidence"]["verdict"] == EFFECT and s["auroc_trait_vs_neutral"] > 0.8
    assert len(s["per_sample"]) == 40 and s["per_sample"][0]["trait_laden"] is True
    noise = rng.normal(size=40).tolist()
    assert flag_summary(rows, noise, "evil")["auroc_evidence"]["verdict"] == NOT_DISTINGUISHABLE
    assert "auroc_evidence" not in flag_summary([{"dataset": "x"}] * 3, [0.0, 1.0, 2.0], "evil")
    x = rng.normal(size=60)
    assert correlation_evidence(x, x + 0.5 * rng.normal(size=60), n_boot=300, n_perm=300).verdict == EFFECT
    assert correlation_evidence(x, rng.normal(size=60), n_boot=300, n_perm=300).verdict == NOT_DISTINGUISHABLE


class _LengthJudge:
    """Trait score = answer length: steering that changes the text at all changes the score."""

    name = "length"

    def score_many(self, trait, questions, answers):
        from featurescope.judges.base import Score

        return [Score(trait=float(len(a)), coherence=100.0) for a in answers]


def test_handling_steering_at_equal_norm(tmp_path, tiny_chat):
    """Every handling's vector steered at the same norm, against random directions of that norm, per question."""
    from featurescope.evidence.run import run_handling

    rows = [{"id": str(i), "question": f"q{i}?", "pos": f"bad bad {i}", "neg": f"good {i}"} for i in range(10)]
    res = run_handling(
        tiny_chat,
        rows,
        [0, 1],
        tmp_path / "h",
        source="w",
        trait="evil",
        steer_layer=1,
        judge=_LengthJudge(),
        alpha=4.0,
        seeds=(0, 1),
        n_questions=3,
    )
    st = res["steering"]
    assert st["hook"] == "blocks.1.hook_resid_post" and st["seeds"] == [0, 1] and st["best"] in st["rows"]
    assert set(st["rows"]) == {"none", "exclude_outliers", "trimmed", "rms", "project_mean", "drop_massive"}
    for r in st["rows"].values():
        assert len(r["per_question"]) == 3 and r["effect"]["verdict"] in (EFFECT, NOT_DISTINGUISHABLE)
        assert r["effect_per_unit_norm"] == pytest.approx(r["effect"]["estimate"]["value"] / st["norm"])
    s = json.loads((tmp_path / "h" / "summary.json").read_text())
    assert "steering" in s["results"]
