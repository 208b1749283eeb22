"""Stages: SAE transfer (drives the models), and its null over random LoRAs.

The FVE of an SAE on one model's activations pools every kept token of a text set; its interval resamples the text
rows (items), not tokens: :func:`per_row_reconstruction` splits the pooled sums of squares by row,
:func:`fve_bootstrap` / :func:`fve_difference_bootstrap` resample rows."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from jaxtyping import Bool, Float
from numpy.typing import ArrayLike
from torch import Tensor
from tqdm.auto import tqdm

from ..evidence.nulls import Evidence, Null, summarise_null, verdict
from ..models import Model
from ..saes import ce_loss_recovered, check_sae, outlier_mask, reconstruction_metrics
from ..stats import Estimate, bootstrap
from .constants import StagesError
from .texts import TokenRows, capture_rows

#: How the FVE intervals are made (recorded next to them).
FVE_INTERVAL_HOW = (
    "percentile bootstrap over text rows (items, not tokens): FVE = 1 - sum(SSE_row) / sum(SST_row) over rows "
    "resampled with replacement; SST about the pooled mean of the kept tokens, held fixed; the paired difference "
    "resamples the same rows for both models"
)


def per_row_reconstruction(
    sae: Any,
    acts: Float[Tensor, "n d"],
    keep: Bool[Tensor, " n"],
    n_rows: int,
    *,
    outlier_quantile: float = 0.01,
    batch_size: int = 4096,
) -> dict[str, list[float] | list[int]]:
    """Per text row, the sums :func:`featurescope.saes.reconstruction_metrics` pools for its FVE of ``sae`` on
    ``acts[keep]``: ``sse`` (squared reconstruction error), ``sst`` (squared deviation from the pooled mean of all
    kept tokens) and ``n_tokens``, on the same token set (``keep``, then the top ``outlier_quantile`` norms of the
    kept tokens dropped) and with the same dtype handling. ``acts`` is ``[n_rows * context, d]`` flattened in row
    order (:func:`~featurescope.stages.texts.capture_rows`), so token ``t`` belongs to row ``t // context``.
    ``1 - sum(sse) / sum(sst)`` is ``reconstruction_metrics``' FVE (up to float summation order)."""
    n = int(acts.shape[0])
    if n_rows <= 0 or n % n_rows:
        raise StagesError(f"per-row FVE: {n} activations do not split into {n_rows} rows of equal length")
    row_of = torch.arange(n) // (n // n_rows)
    x_kept = acts[keep]
    rid = row_of[keep.cpu()]
    out_ok = outlier_mask(x_kept, outlier_quantile).cpu()
    x_all, rid = x_kept[out_ok.to(x_kept.device)], rid[out_ok]
    mean = x_all.float().mean(0)
    sst_tok = ((x_all.float() - mean) ** 2).sum(-1).double().cpu()
    sse_tok = torch.zeros(len(x_all), dtype=torch.float64)
    with torch.no_grad():
        for i in range(0, len(x_all), batch_size):
            x = x_all[i : i + batch_size].to(sae.W_dec.dtype).to(sae.W_dec.device)
            r = sae.decode(sae.encode(x))
            sse_tok[i : i + len(x)] = ((r.float() - x.float()) ** 2).sum(-1).double().cpu()
    zeros = torch.zeros(n_rows, dtype=torch.float64)
    return {
        "sse": zeros.index_add(0, rid, sse_tok).tolist(),
        "sst": zeros.index_add(0, rid, sst_tok).tolist(),
        "n_tokens": torch.bincount(rid, minlength=n_rows).tolist(),
    }


def _fve(sse: np.ndarray, sst: np.ndarray) -> float:
    den = float(sst.sum())
    return 1.0 - float(sse.sum()) / den if den > 0 else float("nan")


def fve_bootstrap(
    sse_rows: ArrayLike, sst_rows: ArrayLike, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> Estimate:
    """FVE = 1 - sum(sse) / sum(sst) over rows, with a percentile interval over rows resampled with replacement
    (:func:`featurescope.stats.bootstrap`); ``n`` is the number of rows."""
    return bootstrap(_fve, sse_rows, sst_rows, n_boot=n_boot, seed=seed, level=level)


def fve_difference_bootstrap(
    a_sse: ArrayLike,
    a_sst: ArrayLike,
    b_sse: ArrayLike,
    b_sst: ArrayLike,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> Estimate:
    """Paired FVE difference ``FVE(b) - FVE(a)`` for the same rows read by two models (b: the post-trained model,
    a: the base model), with a percentile interval over rows, the same resampled row indices for both."""

    def diff(ae: np.ndarray, at: np.ndarray, be: np.ndarray, bt: np.ndarray) -> float:
        return _fve(be, bt) - _fve(ae, at)

    return bootstrap(diff, a_sse, a_sst, b_sse, b_sst, n_boot=n_boot, seed=seed, level=level)


def fve_difference_evidence(
    name: str,
    base_rows: Mapping[str, Sequence[float]],
    post_rows: Mapping[str, Sequence[float]],
    *,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """:func:`fve_difference_bootstrap` (post minus base) as an evidence record (``Evidence.to_dict()``) against a
    difference of zero: distinguishable only when the interval excludes 0."""
    est = fve_difference_bootstrap(
        base_rows["sse"], base_rows["sst"], post_rows["sse"], post_rows["sst"], n_boot=n_boot, seed=seed
    )
    null = Null(0.0, 0.0, 0.0, 0, float("nan"), "no difference (the same rows read by both models)")
    return {**Evidence(name, est, null, verdict(est, 0.0)).to_dict(), "how": FVE_INTERVAL_HOW}


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
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """:func:`featurescope.saes.reconstruction_metrics` on the kept activations and
    :func:`featurescope.saes.ce_loss_recovered` on the first ``ce_rows`` rows (averaged over batches as
    :func:`featurescope.saes.evaluate_sae` does). CE batches are small: sae-lens holds three full-vocabulary logit
    tensors at once (3 x 16 x 128 x 262k fp32 = 6 GB for Gemma at batch 16).

    Also ``per_row`` (:func:`per_row_reconstruction`: sse, sst, n_tokens per text row) and ``fve_interval``
    (:func:`fve_bootstrap` over rows, ``n_boot`` resamples, ``seed``)."""

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
    per_row = per_row_reconstruction(sae, acts, keep, len(rows.tokens), outlier_quantile=outlier_quantile)
    est = fve_bootstrap(per_row["sse"], per_row["sst"], n_boot=n_boot, seed=seed)
    # centred on the number reported (reconstruction_metrics' pooled sums); the bounds are the row bootstrap's
    out["fve_interval"] = Estimate(float(out["fraction_variance_explained"]), est.lo, est.hi, est.n).to_dict()
    out["per_row"] = per_row
    return out


def random_lora_null_fve(
    base_sae: Any,
    make_model: Callable[[int], Model],
    seeds: Sequence[int],
    rows: Mapping[str, TokenRows],
    hook: str,
    observed: Mapping[str, float],
    *,
    observed_intervals: Mapping[str, Estimate] | None = None,
    batch_size: int = 8,
    outlier_quantile: float = 0.01,
    progress: bool = False,
) -> dict[str, Any]:
    """The transfer null over many random LoRAs: for each seed, ``make_model(seed)`` (the base model with a random
    LoRA of the adapter's per-module weight change, loaded one at a time and dropped after use) read by the base
    SAE on the same rows; FVE only (CE needs the full-vocabulary logits and is what makes one seed slow).

    ``observed``: the base SAE's FVE on the post-trained model per text set. Per set: the draws, their central 95%,
    the rank p-value of an FVE as low as the observed one (``(1 + #draws <= observed) / (1 + n)``) and the verdict -
    distinguishable only when the observed FVE lies outside the draws' central 95% interval. ``observed_intervals``
    (per text set, e.g. :func:`fve_bootstrap` over rows): the observed FVE's interval, so the verdict asks whether
    that interval clears the draws' central 95%; without one (or for a set it lacks) the observed value stands as a
    point (``Estimate(obs, obs, obs, 1)``)."""
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
        est = (observed_intervals or {}).get(set_k) or Estimate(obs, obs, obs, 1)
        out["evidence"][set_k] = {
            **Evidence(f"base SAE FVE on the post-trained model ({set_k})", est, null, verdict(est, null)).to_dict(),
            "p_lower": (1 + int((d <= obs).sum())) / (1 + len(d)),
        }
    return out
