"""Stages: sAE transfer (drives the models)."""

from __future__ import annotations

from typing import Any

from jaxtyping import Bool, Float
from torch import Tensor

from ..models import Model
from ..saes import ce_loss_recovered, check_sae, reconstruction_metrics
from .texts import TokenRows


def transfer_metrics(
    sae: Any,
    model: Model,
    rows: TokenRows,
    acts: Float[Tensor, "n d"],
    keep: Bool[Tensor, " n"],
    hook: str,
    *,
    ce_rows: int = 12,
    ce_batch: int = 4,
    outlier_quantile: float = 0.01,
) -> dict[str, Any]:
    """:func:`featurescope.saes.reconstruction_metrics` on the kept activations and
    :func:`featurescope.saes.ce_loss_recovered` on the first ``ce_rows`` rows (averaged over batches as
    :func:`featurescope.saes.evaluate_sae` does). CE batches are small: sae-lens holds three full-vocabulary logit
    tensors at once (3 x 16 x 128 x 262k fp32 = 6 GB for Gemma at batch 16)."""

    check_sae(sae, model, hook, allow_other_model=True)
    rec = reconstruction_metrics(sae, acts[keep], outlier_quantile=outlier_quantile)
    rec.pop("firing_counts")
    out: dict[str, Any] = {**rec, "n_special_excluded": int((~keep).sum())}
    if ce_rows > 0:
        ce = [
            ce_loss_recovered(sae, model, rows.tokens[i : min(i + ce_batch, ce_rows)], hook)
            for i in range(0, min(ce_rows, len(rows.tokens)), ce_batch)
        ]
        m = {k: sum(c[k] for c in ce) / len(ce) for k in ("ce_clean", "ce_with_sae", "ce_zero_ablation")}
        den = m["ce_zero_ablation"] - m["ce_clean"]
        m["ce_loss_recovered"] = (m["ce_zero_ablation"] - m["ce_with_sae"]) / den if den != 0 else float("nan")
        out.update(m, ce_rows=min(ce_rows, len(rows.tokens)))
    return out
