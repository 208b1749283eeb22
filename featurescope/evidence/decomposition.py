"""Nulls for SAE decompositions: how much of a *random* direction the top-k features by decoder cosine explain
(isotropic, and with the same share on the massive dimensions as the real vector), and which latents track the
mean activation (the decoder bias) - dense latents whose cards say nothing about a trait."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from ..decompose import by_cosine, decoder_cosines
from ..stats import NOT_DISTINGUISHABLE, Estimate
from .massive import massive_dims, massive_dims_of, share_on_dims
from .nulls import EFFECT, Null, random_directions, summarise_null, verdict

#: A latent "tracks the mean" when its decoder row has |cosine| at least this with the SAE's decoder bias.
MEAN_TRACKING_COSINE = 0.3


def fraction_explained_null(
    direction: Float[Tensor, " d"],
    W_dec: Float[Tensor, "n d"],
    *,
    ks: Sequence[int] = (20, 100),
    n: int = 20,
    dims: Sequence[int] = (),
    seed: int = 0,
) -> dict[str, Any]:
    """Fraction of ``||v||^2`` explained by the top-k features by decoder cosine, for ``direction`` and for ``n``
    random directions: isotropic, and (when ``dims`` is given) with the direction's own share on ``dims``.

    Verdict per k: the real value must lie above the null's 95% interval (one vector, no interval of its own)."""
    ks = sorted({min(int(k), W_dec.shape[0]) for k in ks})  # an SAE narrower than k: every latent
    kmax = max(ks)
    real = by_cosine(direction, W_dec, kmax).fraction_explained
    share = share_on_dims(direction, dims) if dims else 0.0
    nulls: dict[str, Any] = {}
    kinds = [("isotropic", ())] + ([("massive-matched", tuple(dims))] if dims and share > 0 else [])
    for name, dd in kinds:
        r = random_directions(n, direction.shape[-1], dims=dd, share=share, seed=seed)
        fe = torch.stack([by_cosine(x, W_dec, kmax).fraction_explained for x in r])  # [n, kmax]
        nulls[name] = {str(k): fe[:, k - 1].tolist() for k in ks}
    out: dict[str, Any] = {"share_on_massive": share, "massive_dims": list(dims), "per_k": {}}
    for k in ks:
        v = float(real[k - 1])
        row: dict[str, Any] = {"value": v}
        verdicts = []
        for name in nulls:
            s = summarise_null(np.asarray(nulls[name][str(k)]), v, f"random directions, {name}")
            row[name] = s.to_dict()
            verdicts.append(v > s.hi)
        row["verdict"] = EFFECT if verdicts and all(verdicts) else NOT_DISTINGUISHABLE
        out["per_k"][str(k)] = row
    return out


def mean_tracking_latents(
    W_dec: Float[Tensor, "n d"], b_dec: Float[Tensor, " d"], threshold: float = MEAN_TRACKING_COSINE
) -> Tensor:
    """Indices of latents whose decoder row has |cos| >= ``threshold`` with the decoder bias (≈ the mean)."""
    c = decoder_cosines(b_dec, W_dec).abs()
    return (c >= threshold).nonzero().flatten()


def bias_decomposition(sae: Any, k: int = 20) -> dict[str, Any]:
    """The decoder bias itself decomposed by decoder cosine: if a few latents explain much of it, they are mean
    trackers and appear in every mean-difference decomposition that leans on the mean direction."""
    W, b = sae.W_dec.detach().float(), sae.b_dec.detach().float()
    d = by_cosine(b, W, k)
    return {
        "top": d.top(10),
        "fraction_explained_top_k": float(d.fraction_explained[-1]),
        "k": k,
        "mean_tracking_latents": mean_tracking_latents(W, b).tolist(),
        "threshold": MEAN_TRACKING_COSINE,
    }


def decomposition_evidence(
    direction: Float[Tensor, " d"], sae: Any, *, token_acts: Tensor | None = None, n: int = 20, seed: int = 0
) -> dict[str, Any]:
    """Everything :mod:`featurescope.cli.decompose` reports next to a decomposition: the random-direction nulls of
    fraction explained (massive dimensions from ``token_acts`` when given, else from the decoder bias), the decoder
    bias decomposed, and the mean-tracking latents."""
    W = sae.W_dec.detach().float()
    dims = (
        massive_dims(token_acts)
        if token_acts is not None and len(token_acts) > 1
        else massive_dims_of(sae.b_dec.detach())
    )
    return {
        "fraction_explained_null": fraction_explained_null(direction, W, dims=dims, n=n, seed=seed),
        "decoder_bias": bias_decomposition(sae),
        "share_on_decoder_bias": float(
            torch.nn.functional.cosine_similarity(direction.float(), sae.b_dec.detach().float(), dim=0) ** 2
        ),
    }


def fraction_explained_interval(
    pos: Float[Tensor, "n_pos d"],
    neg: Float[Tensor, "n_neg d"],
    pos_groups: Sequence[int],
    neg_groups: Sequence[int],
    W_dec: Float[Tensor, "n d"],
    *,
    post: Callable[[Tensor], Tensor] | None = None,
    ks: Sequence[int] = (20, 100),
    n_boot: int = 200,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """The fraction of the vector explained by its top-k features by decoder cosine, with an interval over items:
    the vector is rebuilt (mean of ``pos`` minus mean of ``neg`` per-response activations, then ``post``, e.g. the
    vector's massive-activation handling) from the questions (``*_groups``) resampled with replacement, ``n_boot``
    times. Returns ``{"per_k": {k: Estimate as a dict}, "n_questions", "n_boot", "vector"}`` (the full-sample
    vector, to check it against the saved one). A resample repeats some questions and drops others, which adds
    noise to the vector and so lowers its fraction explained: the percentile interval sits at or below the
    full-sample value, which makes the verdict (interval above the random-direction null) conservative."""
    post = post or (lambda v: v)
    ks = sorted({min(int(k), W_dec.shape[0]) for k in ks})
    kmax = max(ks)
    groups = sorted(set(pos_groups) | set(neg_groups))
    pg, ng = torch.as_tensor(list(pos_groups)), torch.as_tensor(list(neg_groups))

    def fe(pos_idx: Tensor, neg_idx: Tensor) -> tuple[Tensor, Tensor]:
        v = post(pos[pos_idx].float().mean(0) - neg[neg_idx].float().mean(0))
        return v, by_cosine(v, W_dec, kmax).fraction_explained

    full, real = fe(torch.arange(len(pos)), torch.arange(len(neg)))
    rng = np.random.default_rng(seed)
    draws: list[Tensor] = []
    for _ in range(n_boot):
        pick = torch.as_tensor(rng.choice(groups, size=len(groups), replace=True))
        pi = torch.cat([(pg == g).nonzero().flatten() for g in pick.tolist()])
        ni = torch.cat([(ng == g).nonzero().flatten() for g in pick.tolist()])
        if len(pi) == 0 or len(ni) == 0:  # a resample without one side: no vector
            continue
        draws.append(fe(pi, ni)[1])
    q = (1 - level) / 2
    d = torch.stack(draws) if draws else torch.full((1, kmax), float("nan"))
    per_k = {}
    for k in ks:
        lo, hi = np.nanquantile(d[:, k - 1].numpy(), [q, 1 - q]).tolist()
        per_k[str(k)] = Estimate(float(real[k - 1]), float(lo), float(hi), len(groups), level).to_dict()
    return {"per_k": per_k, "n_questions": len(groups), "n_boot": len(draws), "vector": full}


def interval_verdicts(interval: dict[str, Any], null: dict[str, Any]) -> dict[str, str]:
    """Per k: the interval of :func:`fraction_explained_interval` against every random-direction null of
    :func:`fraction_explained_null` (distinguishable only when it lies above all of them)."""
    out = {}
    for k, e in interval["per_k"].items():
        est = Estimate(e["value"], e["lo"], e["hi"], e["n"], e["level"])
        row = null["per_k"].get(k, {})
        nulls = [Null(**row[n]) for n in ("isotropic", "massive-matched") if n in row]
        ok = bool(nulls) and all(verdict(est, x) == EFFECT and est.lo > x.hi for x in nulls)
        out[k] = EFFECT if ok else NOT_DISTINGUISHABLE
    return out
