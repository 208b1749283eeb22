"""Nulls for SAE decompositions: how much of a *random* direction the top-k features by decoder cosine explain
(isotropic, and with the same share on the massive dimensions as the real vector), and which latents track the
mean activation (the decoder bias) - dense latents whose cards say nothing about a trait."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from ..decompose import by_cosine, decoder_cosines
from ..stats import NOT_DISTINGUISHABLE
from .massive import massive_dims, massive_dims_of, share_on_dims
from .nulls import EFFECT, random_directions, summarise_null

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
