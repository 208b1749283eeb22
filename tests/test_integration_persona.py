"""Persona vectors and the demo on the real offline checkpoints (marked integration; CI runs them)."""

import json

import pytest

import featurescope as fs
from featurescope.persona import ExtractionConfig, extract, project, steer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def smol():
    return fs.load_model("offline:smollm2-135m-instruct")


@pytest.fixture(scope="module")
def judge():
    return fs.EmbeddingJudge()


def test_offline_judge_beats_chance_on_hand_labels(judge):
    from featurescope.judge import agreement

    r = agreement(judge)
    assert r["n"] >= 60
    assert r["accuracy"] > r["chance"]  # weak but above chance; the figures are in benchmarks/RESULTS.md
    assert r["spearman"] > 0


def test_extraction_and_causal_steering_on_smollm2(smol, judge):
    res = extract(
        smol,
        "evil",
        judge,
        config=ExtractionConfig(n_questions=3, n_pairs=2, max_new_tokens=24, pos_threshold=40, neg_threshold=60),
        progress=False,
    )
    v = res["vectors"]["response_mean"]
    assert v.vectors.shape == (30, 576) and v.n_pos > 0 and v.n_neg > 0
    # positive responses project higher than negative ones at most layers
    assert sum(d > 0 for d in res["separation"]["cohens_d"]) >= 25
    # steering is causal: responses generated under +alpha v sit further along v (read without steering)
    hook = smol.resid_hook(8)
    qs = [[{"role": "user", "content": q}] for q in fs.load_trait("evil").eval_questions[:4]]
    proj = {}
    for alpha in (-6.0, 0.0, 6.0):
        with steer(smol, v, alpha, hook=hook):
            gens = fs.generate(smol, qs, max_new_tokens=24, progress=False)
        acts = fs.capture(smol, [g.formatted for g in gens if g.formatted is not None], [hook], progress=False)
        proj[alpha] = float(project(acts[hook], v.at(hook)).mean())
    assert proj[-6.0] < proj[0.0] < proj[6.0], proj


@pytest.mark.slow
def test_demo_quick(tmp_path):
    from featurescope.demo import post_model, run_demo

    run_demo(tmp_path / "demo", quick=True)
    s = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert set(s["inputs"]["models"]) == {"offline:gemma-3-270m", post_model()}
    part = s["results"]["decompose-evil"]  # done, or skipped because a shipped SAE is missing from the checkout
    assert part == "done" or part.startswith("skipped: missing"), part
    html = (tmp_path / "demo" / "report.html").read_text()
    assert "featurescope demo" in html and "data:image/png;base64," in html
    p = json.loads((tmp_path / "demo" / "persona-evil" / "summary.json").read_text())
    assert p["results"]["chosen_layer"] in (8, 15) and (tmp_path / "demo" / "persona-evil" / "steering.png").exists()
    # second run reuses the persona part
    run_demo(tmp_path / "demo", quick=True)
    s2 = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert s2["timings_s"]["persona"] < 1.0
    assert s2["timings_s"]["decompose-evil"] < 1.0
