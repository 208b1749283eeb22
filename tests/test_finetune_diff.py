"""Model diffing for the feature that moved: planted latents are found, noise is not called an effect, and the
command runs end to end on a tiny model's finetune-shift run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from featurescope.errors import FeaturescopeError
from featurescope.evidence.nulls import EFFECT
from featurescope.finetune import diff
from featurescope.stats import NOT_DISTINGUISHABLE


def test_moved_latents_discounts_what_the_control_fine_tune_also_moved():
    g = torch.Generator().manual_seed(0)
    before = torch.rand(40, 100, generator=g)
    after_t = before + 0.01 * torch.randn(40, 100, generator=g)
    after_c = before + 0.01 * torch.randn(40, 100, generator=g)
    after_t[:, 7] += 1.0  # the trait's latent
    after_t[:, 3] += 2.0  # generic: any fine-tune moves it
    after_c[:, 3] += 2.0
    inc_t, inc_c = diff.latent_increase(after_t, before), diff.latent_increase(after_c, before)
    assert diff.moved_latents(inc_t, None, 2) == [3, 7]
    assert diff.moved_latents(inc_t, inc_c, 1) == [7]
    # mismatched items: jaxtyping's hook (tests) or the function's own check (an install without the hook)
    import jaxtyping

    with pytest.raises((ValueError, jaxtyping.TypeCheckError)):
        diff.latent_increase(after_t[:5], before)


def test_increase_expression_link_is_found_when_planted_and_not_for_noise():
    rng = np.random.default_rng(0)
    n_ft, n_lat = 18, 60
    expr = rng.uniform(0, 60, n_ft)
    incs = torch.tensor(rng.normal(size=(n_ft, n_lat)))
    incs[:, 5] = torch.tensor(expr / 30 + rng.normal(scale=0.2, size=n_ft))
    controls = [j for j in range(n_lat) if j != 5]
    planted = diff.increase_expression_evidence(incs, expr, 5, controls)
    assert planted.estimate.value > 0.8 and planted.verdict == EFFECT
    noise = diff.increase_expression_evidence(incs, expr, 9, [j for j in controls if j != 9])
    assert noise.verdict == NOT_DISTINGUISHABLE


def test_passage_firing_is_found_when_planted_and_not_for_noise():
    g = torch.Generator().manual_seed(1)
    q = torch.rand(60, 40, generator=g)
    b = torch.rand(60, 40, generator=g)
    q[:, 2] += 0.6
    planted = diff.passage_evidence(q, b, 2, [j for j in range(40) if j != 2])
    assert planted.estimate.value > 0.5 and planted.verdict == EFFECT
    noise = diff.passage_evidence(q, b, 11, [j for j in range(40) if j not in (2, 11)])
    assert noise.verdict == NOT_DISTINGUISHABLE


def test_split_halves_and_density():
    assert diff.split_halves(5) == ([0, 2, 4], [1, 3])
    z = torch.tensor([[0.0, 1.0], [2.0, 0.0], [0.0, 3.0], [0.0, 0.0]])
    assert diff.firing_density(z).tolist() == [0.25, 0.5]


# -- end to end on a tiny random model -----------------------------------------------------------------------------


def test_finetune_diff_end_to_end(tmp_path, tiny_pair):
    from sae_lens import StandardSAE, StandardSAEConfig

    from featurescope.finetune.diffing import FinetuneDiffConfig, run_finetune_diff
    from featurescope.finetune.run import run_finetune_shift
    from tests.test_finetune import _cfg, _LengthJudge, _tiny_data, _vector

    hf, tok, PersonaVector = tiny_pair
    data = _tiny_data(tmp_path / "data")
    cfg = _cfg(data, _vector(tmp_path, PersonaVector), seeds=(0, 1), preventative_set=None, checkpoint_every=0)
    run = tmp_path / "run"
    run_finetune_shift(cfg, run, device="cpu", progress=False, model=(hf, tok), judge=_LengthJudge())

    scfg = StandardSAEConfig(d_in=32, d_sae=64)
    scfg.metadata.hook_name = "blocks.1.hook_resid_post"
    sae = StandardSAE(scfg)
    torch.nn.init.normal_(sae.W_enc, std=0.3)
    passages = tmp_path / "pairs.jsonl"
    passages.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"p{i}",
                    "questionable": f"He lied to them all, {i} times.",
                    "benign": f"She helped {i} of them.",
                }
            )
            + "\n"
            for i in range(6)
        )
    )
    dcfg = FinetuneDiffConfig(n_controls=5, n_edit_controls=1, steer_fracs=(0.5,), passages=str(passages))
    res = run_finetune_diff(run, dcfg, model=(hf, tok), sae=sae, judge=_LengthJudge(), progress=False)
    t = res["traits"]["evil"]
    assert t["selected_on"] == {"finetune": "evil-strong-s0", "control": "neutral-s0"}
    assert t["latent"] not in t["controls"] and len(t["controls"]) == 5
    assert t["questions"] == {"selection (all traits)": 2, "held out (this trait)": 1}  # 3 questions: 0, 2 | 1
    assert t["increase_vs_expression"]["n_finetunes"] == 4  # the two selection fine-tunes are left out
    assert {"steering", "ablation"} <= set(t["edits"])
    assert t["edits"]["ablation"]["finetune"] == "evil-strong-s1"
    out = run / "diff"
    rows = [json.loads(x) for x in (out / "latents.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(len(r["control_increases"]) == 5 for r in rows)
    assert sum(1 for _ in (out / "passages.jsonl").open()) == 6
    conds = {json.loads(x)["condition"] for x in (out / "steering.jsonl").read_text().splitlines()}
    assert {"base", "steer 0.5", "ablate", "finetuned evil-strong-s1"} == conds
    assert (out / "diff.png").exists() and json.loads((out / "summary.json").read_text())["command"] == "finetune-diff"

    # both commands' summaries render in the report (strict: a renderer failure raises)
    from featurescope.report import write_report

    info = write_report([run], tmp_path / "rep" / "report.html", strict=True)
    page = (tmp_path / "rep" / "report.html").read_text()
    assert info["n_runs"] == 2 and "renderer failed" not in page and "could not read key numbers" not in page
    assert "Fine-tuning selects a persona" in page and "questionable-character passages" in page

    # an SAE at a layer the run did not keep is refused, naming the layers kept
    scfg.metadata.hook_name = "blocks.0.hook_resid_post"
    with pytest.raises(FeaturescopeError, match="one of the run's layers"):
        run_finetune_diff(run, dcfg, model=(hf, tok), sae=StandardSAE(scfg), judge=_LengthJudge(), progress=False)
