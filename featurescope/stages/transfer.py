"""Stages: SAE transfer (drives the models), and its null over random LoRAs."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from jaxtyping import Bool, Float
from torch import Tensor
from tqdm.auto import tqdm

from ..evidence.nulls import Evidence, summarise_null, verdict
from ..models import Model
from ..saes import ce_loss_recovered, check_sae, reconstruction_metrics
from ..stats import Estimate
from .texts import TokenRows, capture_rows


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


def random_lora_null_fve(
    base_sae: Any,
    make_model: Callable[[int], Model],
    seeds: Sequence[int],
    rows: Mapping[str, TokenRows],
    hook: str,
    observed: Mapping[str, float],
    *,
    batch_size: int = 8,
    outlier_quantile: float = 0.01,
    progress: bool = False,
) -> dict[str, Any]:
    """The transfer null over many random LoRAs: for each seed, ``make_model(seed)`` (the base model with a random
    LoRA of the adapter's per-module weight change, loaded one at a time and dropped after use) read by the base
    SAE on the same rows; FVE only (CE needs the full-vocabulary logits and is what makes one seed slow).

    ``observed``: the base SAE's FVE on the post-trained model per text set. Per set: the draws, their central 95%,
    the rank p-value of an FVE as low as the observed one (``(1 + #draws <= observed) / (1 + n)``) and the verdict -
    distinguishable only when the observed FVE lies outside the draws' central 95% interval."""
    fve: dict[str, list[float]] = {k: [] for k in rows}
    for seed in tqdm(list(seeds), desc="random-LoRA null", disable=not progress):
        model = make_model(seed)
        for set_k, r in rows.items():
            acts, _, keep = capture_rows(model, r, hook, batch_size)
            rec = reconstruction_metrics(base_sae, acts[keep], outlier_quantile=outlier_quantile)
            fve[set_k].append(float(rec["fraction_variance_explained"]))
        del model
    out: dict[str, Any] = {"seeds": list(seeds), "fve": fve, "evidence": {}}
    for set_k, draws in fve.items():
        obs = float(observed[set_k])
        d = np.asarray(draws, dtype=np.float64)
        null = summarise_null(d, obs, f"{len(d)} random LoRAs of the adapter's per-module ||dW||")
        est = Estimate(obs, obs, obs, 1)
        out["evidence"][set_k] = {
            **Evidence(f"base SAE FVE on the post-trained model ({set_k})", est, null, verdict(est, null)).to_dict(),
            "p_lower": (1 + int((d <= obs).sum())) / (1 + len(d)),
        }
    return out
