"""Massive activations (Sun et al. 2024): find the residual dimensions and tokens whose magnitude dwarfs the rest,
measure how much of a vector sits on them, and the ways to keep them from dominating a mean difference.

Two kinds matter here:

- **massive dimensions** - a few coordinates whose typical magnitude (median over tokens of ``|a_tj|``) is many
  times that of a typical coordinate. In Gemma 3 270M they are present on almost every token, so they are most of
  the mean activation (dimension 400 at layer 2) and a mean difference picks up their small relative fluctuations;
- **outlier-norm tokens** - tokens whose residual norm is many times the median norm (the BOS token / attention
  sinks, some delimiters). One such token moves a per-response mean a long way.

Handlings, side by side (:data:`TOKEN_HANDLINGS` act while averaging a response's tokens, :data:`VECTOR_HANDLINGS`
act on the finished vector): ``none``; ``exclude_outliers`` (drop tokens above ``k`` x the median token norm);
``trimmed`` (per coordinate, the mean of the middle 80% of tokens); ``rms`` (each token scaled to the median norm
before averaging); ``project_mean`` (remove the component along the mean activation); ``drop_massive`` (zero the
massive dimensions). Pure tensor functions: no model, no disk.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal

import torch
from jaxtyping import Bool, Float
from torch import Tensor

TokenHandling = Literal["none", "exclude_outliers", "trimmed", "rms"]
VectorHandling = Literal["none", "project_mean", "drop_massive"]
TOKEN_HANDLINGS: tuple[str, ...] = ("none", "exclude_outliers", "trimmed", "rms")
VECTOR_HANDLINGS: tuple[str, ...] = ("none", "project_mean", "drop_massive")
#: Every handling compared by ``featurescope inspect handling`` (token- and vector-level).
HANDLINGS: tuple[str, ...] = ("none", "exclude_outliers", "trimmed", "rms", "project_mean", "drop_massive")

#: A dimension is "massive" when its median |activation| over tokens is at least this many times the median of
#: that statistic over all dimensions (a relative rule: residual norms differ 100x between our two models). 50
#: keeps Gemma 3 270M's dimensions 400 (layers 0-6) and 163 (layers 1-17) and leaves out the tail of 20-50x
#: dimensions that appear at layer 3 (measured: docs/evidence/massive-gemma-3-270m).
DIM_RATIO = 50.0
#: A token is an outlier when its residual norm exceeds this many times the median token norm.
OUTLIER_K = 4.0


def token_norms(acts: Float[Tensor, "n d"]) -> Float[Tensor, " n"]:
    return acts.float().norm(dim=-1)


def outlier_tokens(acts: Float[Tensor, "n d"], k: float = OUTLIER_K) -> Bool[Tensor, " n"]:
    """Tokens whose norm exceeds ``k`` x the median token norm of ``acts``."""
    n = token_norms(acts)
    return n > k * n.median()


def dim_ratios(acts: Float[Tensor, "n d"]) -> Float[Tensor, " d"]:
    """Per dimension: median over tokens of |a|, divided by the median of that over dimensions."""
    med = acts.float().abs().median(dim=0).values
    return med / med.median().clamp(min=1e-12)


def spike_ratios(acts: Float[Tensor, "n d"]) -> Float[Tensor, " d"]:
    """Per dimension: max over tokens of |a|, divided by the median |a| over all tokens and dimensions (Sun et al.'s
    "about 1,000x the median" criterion, for activations that appear on a few tokens only)."""
    a = acts.float().abs()
    return a.max(dim=0).values / a.median().clamp(min=1e-12)


def massive_dims(acts: Float[Tensor, "n d"], ratio: float = DIM_RATIO) -> list[int]:
    """Dimensions whose typical magnitude is at least ``ratio`` x a typical dimension's, largest first."""
    r = dim_ratios(acts)
    idx = (r >= ratio).nonzero().flatten()
    return [int(i) for i in idx[r[idx].argsort(descending=True)]]


def massive_dims_of(mean: Float[Tensor, " d"], ratio: float = DIM_RATIO) -> list[int]:
    """Massive dimensions read off a mean activation (or an SAE's decoder bias) when no token activations are at
    hand: coordinates at least ``ratio`` x the median |coordinate|, largest first."""
    a = mean.float().abs()
    r = a / a.median().clamp(min=1e-12)
    idx = (r >= ratio).nonzero().flatten()
    return [int(i) for i in idx[r[idx].argsort(descending=True)]]


def share_on_dims(vector: Float[Tensor, " d"], dims: Sequence[int]) -> float:
    """Fraction of ``||v||^2`` on the given coordinates."""
    v = vector.double()
    vv = float(v @ v)
    if vv == 0 or not dims:
        return 0.0
    return float((v[list(dims)] ** 2).sum()) / vv


def share_on_direction(vector: Float[Tensor, " d"], direction: Float[Tensor, " d"]) -> float:
    """Fraction of ``||v||^2`` along ``direction`` (cosine squared)."""
    v, u = vector.double(), direction.double()
    den = float(v @ v) * float(u @ u)
    return float((v @ u) ** 2) / den if den > 0 else 0.0


def robust_mean(tokens: Float[Tensor, "n d"], handling: str = "none", *, k: float = OUTLIER_K) -> Float[Tensor, " d"]:
    """Mean of one response's (or one set's) token activations under a token-level handling."""
    x = tokens.float()
    if x.shape[0] == 0:
        raise ValueError("robust_mean of no tokens")
    if handling == "none":
        return x.mean(0)
    if handling == "exclude_outliers":
        keep = ~outlier_tokens(x, k)
        return x[keep].mean(0) if bool(keep.any()) else x.mean(0)
    if handling == "trimmed":
        n = x.shape[0]
        cut = int(n * 0.1)
        if n - 2 * cut < 1:
            return x.mean(0)
        s = x.sort(dim=0).values
        return s[cut : n - cut].mean(0)
    if handling == "rms":
        nrm = token_norms(x)
        return (x / nrm.clamp(min=1e-12)[:, None] * nrm.median()).mean(0)
    raise ValueError(f"unknown token handling {handling!r}; one of {', '.join(TOKEN_HANDLINGS)}")


def handle_vector(
    vector: Float[Tensor, " d"],
    handling: str = "none",
    *,
    mean: Float[Tensor, " d"] | None = None,
    dims: Sequence[int] = (),
) -> Float[Tensor, " d"]:
    """A vector-level handling: remove the component along ``mean`` (``project_mean``) or zero ``dims``
    (``drop_massive``)."""
    v = vector.float().clone()
    if handling == "none":
        return v
    if handling == "project_mean":
        if mean is None:
            raise ValueError("project_mean needs the mean activation")
        u = torch.nn.functional.normalize(mean.float(), dim=-1)
        return v - (v @ u) * u
    if handling == "drop_massive":
        if len(dims):
            v[list(dims)] = 0.0
        return v
    raise ValueError(f"unknown vector handling {handling!r}; one of {', '.join(VECTOR_HANDLINGS)}")


@dataclasses.dataclass(frozen=True)
class LayerMassive:
    """Massive-activation profile of one layer (over non-BOS tokens unless stated)."""

    hook: str
    n_tokens: int
    median_norm: float
    bos_norm_ratio: float | None  # BOS norm / median norm of the other tokens; None without a BOS
    outlier_fraction: float  # tokens (BOS excluded) above OUTLIER_K x the median norm
    massive_dims: list[int]
    top_dims: list[tuple[int, float]]  # (dim, median-|a| ratio), the 5 largest
    top_spikes: list[tuple[int, float]]  # (dim, max-|a| / median |a|), the 3 largest
    mean_share_of_energy: float  # ||mean||^2 / mean ||x||^2: how much of a typical activation is the mean
    mean_share_on_massive: float  # fraction of ||mean||^2 on the massive dimensions

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def layer_profile(
    hook: str,
    acts: Float[Tensor, "n d"],
    bos: Float[Tensor, "m d"] | None = None,
    *,
    ratio: float = DIM_RATIO,
    k: float = OUTLIER_K,
) -> LayerMassive:
    """Profile one layer from its non-BOS token activations (``acts``) and, when there is one, the BOS tokens'."""
    x = acts.float()
    norms = token_norms(x)
    med = float(norms.median())
    dims = massive_dims(x, ratio)
    r = dim_ratios(x)
    top = r.argsort(descending=True)[:5]
    sp = spike_ratios(x)
    tops = sp.argsort(descending=True)[:3]
    mu = x.mean(0)
    energy = float((norms**2).mean())
    return LayerMassive(
        hook=hook,
        n_tokens=int(x.shape[0]),
        median_norm=med,
        bos_norm_ratio=float(token_norms(bos).median()) / med if bos is not None and len(bos) else None,
        outlier_fraction=float((norms > k * med).float().mean()),
        massive_dims=dims,
        top_dims=[(int(i), round(float(r[i]), 2)) for i in top],
        top_spikes=[(int(i), round(float(sp[i]), 1)) for i in tops],
        mean_share_of_energy=float(mu @ mu) / energy if energy > 0 else 0.0,
        mean_share_on_massive=share_on_dims(mu, dims),
    )


def vector_shares(
    vector: Float[Tensor, " d"], mean: Float[Tensor, " d"] | None, dims: Sequence[int]
) -> dict[str, float | list[int]]:
    """What a vector's metadata records: its share on the mean direction and on the massive dimensions."""
    return {
        "share_on_mean": share_on_direction(vector, mean) if mean is not None else float("nan"),
        "share_on_massive": share_on_dims(vector, dims),
        "massive_dims": [int(d) for d in dims],
    }
