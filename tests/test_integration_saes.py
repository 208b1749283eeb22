"""The SAEs shipped in ``saes/`` on the real offline checkpoints: they load, fit their model and hook, their
``eval.json`` is complete, and a fresh evaluation on held-out text agrees with it.

Run with ``pytest -m integration``; CI runs them (~1 min).
"""

import json
from pathlib import Path

import pytest
import torch

import featurescope as fs
from featurescope import corpus
from featurescope.saes import SAEMismatchError, check_sae, evaluate_sae, load_sae

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1] / "saes"
SHIPPED = sorted(p.parent for p in ROOT.glob("*/*/eval.json"))
EVAL_KEYS = {
    "l0",
    "fraction_variance_explained",
    "ce_loss_recovered",
    "dead_fraction",
    "training_tokens",
    "retrain",
    "corpus",
    "heldout_tokens",
}


def test_at_least_two_base_layers_are_shipped_compactly():
    base = [p for p in SHIPPED if p.parent.name == "gemma-3-270m"]
    assert len(base) >= 2, f"shipped base SAEs: {base}"
    for p in SHIPPED:
        assert (p / "cfg.json").exists() and (p / "sae_weights.safetensors").exists()
        from safetensors import safe_open

        with safe_open(str(p / "sae_weights.safetensors"), "pt") as f:
            dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}
        assert dtypes <= {"F16", "BF16"}, (p, dtypes)
        ev = json.loads((p / "eval.json").read_text())
        assert EVAL_KEYS <= set(ev), (p, EVAL_KEYS - set(ev))


@pytest.fixture(scope="module")
def models():
    return {}


def _model(models, folder):
    """The model the SAE names in its own cfg.json (every shipped SAE is for an offline checkpoint)."""
    name = json.loads((folder / "cfg.json").read_text())["metadata"]["model_name"]
    assert name == f"offline:{folder.parent.name}", (folder, name)
    if name not in models:
        models[name] = fs.load_model(name)
    return models[name]


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_sae_fits_its_model_and_reproduces_its_eval(folder, models):
    model = _model(models, folder)
    sae = load_sae(folder)
    hook = check_sae(sae, model)
    assert hook == f"blocks.{folder.name.split('_')[1]}.hook_resid_post"
    with pytest.raises(SAEMismatchError):
        check_sae(
            sae,
            model,
            hook="blocks.0.hook_resid_post" if hook != "blocks.0.hook_resid_post" else "blocks.1.hook_resid_post",
        )
    ev = json.loads((folder / "eval.json").read_text())
    rows = corpus.sequences(model.tokenizer, "heldout", context_size=128, max_sequences=32, seed=1)
    fresh = evaluate_sae(
        sae, model, rows, hook, ce_batches=1, batch_size=8
    )  # CE on 8 rows: the 262k unembedding is slow
    # 4k held-out tokens (CE: 1k) vs the 32k of eval.json: the same quantities within sampling noise
    assert fresh["fraction_variance_explained"] == pytest.approx(ev["fraction_variance_explained"], abs=0.05)
    assert fresh["l0"] == pytest.approx(ev["l0"], rel=0.25)
    assert fresh["ce_loss_recovered"] > ev["ce_loss_recovered"] - 0.15
    # mean ablation is reported next to zero ablation (at layer 2 of Gemma it can be even worse than uniform:
    # the mean carries the massive dimension 400), with the CE increase in nats
    assert fresh["ce_mean_ablation"] > fresh["ce_clean"] + 1.0
    assert fresh["ce_increase_nats"] == pytest.approx(fresh["ce_with_sae"] - fresh["ce_clean"], abs=1e-6)
    assert -1.0 < fresh["ce_loss_recovered_vs_mean"] <= 1.0 + 1e-6
    with torch.no_grad():
        assert torch.isfinite(sae.W_dec).all()
