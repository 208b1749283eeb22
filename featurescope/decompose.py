"""Decompose a direction (persona vector, Assistant axis, difference of means) into SAE features.

Views, each returning features ranked by score:

* ``cosine``: cosine of the direction with every decoder row;
* ``encode``: the SAE's encoding of the mean activation on trait responses minus its encoding of the mean on
  baseline responses (``encode(mean_pos) - encode(mean_neg)``; encoding the bare difference vector would feed the
  encoder bias a vector that is not an activation);
* ``attribution``: the change in each feature's mean activation between the two sets times its decoder row
  projected on the (unit) direction - how much of the direction each feature carries.
* ``selectivity`` (opt-in, token-level activations only): the change in each feature's firing rate between the two
  sets of response tokens, whatever its magnitude - which features fire *more often* on trait text. Magnitude-weighted
  views are dominated by dense high-norm latents on Gemma 3; this one is not, but it says nothing about how much of
  the vector a feature carries.

:func:`fraction_explained` says how much of the direction the top-k decoder rows reconstruct (least squares on
their span), for every k: a direction that needs 3 features reads differently from one that needs 300.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

Method = Literal["cosine", "encode", "attribution", "selectivity"]


@dataclasses.dataclass
class Decomposition:
    method: str
    indices: Int[Tensor, " k"]
    scores: Float[Tensor, " k"]
    fraction_explained: Float[Tensor, " k"]  # by the top-1..k features, in this ranking

    def top(self, k: int = 10) -> list[tuple[int, float]]:
        return [(int(i), float(s)) for i, s in zip(self.indices[:k], self.scores[:k])]

    def k_for(self, fraction: float) -> int | None:
        """Smallest k whose top-k features explain at least ``fraction`` of the direction (None if none do)."""
        hit = (self.fraction_explained >= fraction).nonzero()
        return int(hit[0]) + 1 if len(hit) else None

    def to_dict(self, k: int = 20) -> dict[str, Any]:
        return {
            "method": self.method,
            "top": self.top(k),
            "fraction_explained": [round(float(x), 4) for x in self.fraction_explained[:k]],
            "k_for_50pct": self.k_for(0.5),
            "k_for_90pct": self.k_for(0.9),
        }


def decoder_cosines(
    direction: Float[Tensor, "*layer d"], W_dec: Float[Tensor, "*layer n d"]
) -> Float[Tensor, "*layer n"]:
    """Cosine of the direction(s) with every decoder row; batched over a leading layer axis when given."""
    v = torch.nn.functional.normalize(direction.float(), dim=-1)
    W = torch.nn.functional.normalize(W_dec.float(), dim=-1)
    return torch.einsum("...nd,...d->...n", W, v)


def fraction_explained(
    direction: Float[Tensor, " d"], W_dec: Float[Tensor, "n d"], order: Int[Tensor, " k"], max_k: int = 100
) -> Float[Tensor, " k"]:
    """Fraction of ||v||^2 captured by the least-squares fit of v on the span of the first 1..k decoder rows in
    ``order`` (incremental Gram-Schmidt, so all k cost one pass)."""
    v = direction.double()
    vv = float(v @ v)
    basis: list[Tensor] = []
    out = []
    captured = 0.0
    for idx in order[:max_k].tolist():
        w = W_dec[idx].double().clone()
        for b in basis:
            w -= (w @ b) * b
            w -= (w @ b) * b  # re-orthogonalise once for stability
        n = w.norm()
        if n > 1e-9:
            b = w / n
            basis.append(b)
            captured += float(v @ b) ** 2
        out.append(captured / vv if vv > 0 else 0.0)
    return torch.tensor(out)


def _decomp(method: str, scores: Tensor, direction: Tensor, W_dec: Tensor, k: int, by_abs: bool) -> Decomposition:
    key = scores.abs() if by_abs else scores
    order = key.argsort(descending=True)[: max(k, 1)]
    return Decomposition(
        method=method,
        indices=order,
        scores=scores[order],
        fraction_explained=fraction_explained(direction, W_dec, order, max_k=k),
    )


def by_cosine(direction: Float[Tensor, " d"], W_dec: Float[Tensor, "n d"], k: int = 100) -> Decomposition:
    return _decomp("cosine", decoder_cosines(direction, W_dec), direction, W_dec, k, by_abs=False)


def by_encoding(sae: Any, mean_pos: Float[Tensor, " d"], mean_neg: Float[Tensor, " d"], k: int = 100) -> Decomposition:
    with torch.no_grad():
        dt = sae.W_dec.dtype
        f = sae.encode(mean_pos[None].to(dt)) - sae.encode(mean_neg[None].to(dt))
    return _decomp("encode", f[0].float(), (mean_pos - mean_neg).float(), sae.W_dec.detach().float(), k, by_abs=False)


def by_attribution(
    feature_acts_pos: Float[Tensor, "n_pos n"],
    feature_acts_neg: Float[Tensor, "n_neg n"],
    W_dec: Float[Tensor, "n d"],
    direction: Float[Tensor, " d"],
    k: int = 100,
) -> Decomposition:
    """Delta mean feature activation x (decoder row . unit direction)."""
    scores = attribution_scores(feature_acts_pos, feature_acts_neg, W_dec, direction)
    return _decomp("attribution", scores, direction.float(), W_dec.float(), k, by_abs=False)


def attribution_scores(
    feature_acts_pos: Float[Tensor, "n_pos n"],
    feature_acts_neg: Float[Tensor, "n_neg n"],
    W_dec: Float[Tensor, "n d"],
    direction: Float[Tensor, " d"],
) -> Float[Tensor, " n"]:
    delta = feature_acts_pos.float().mean(0) - feature_acts_neg.float().mean(0)
    return delta * (W_dec.float() @ torch.nn.functional.normalize(direction.float(), dim=0))


def by_selectivity(
    feature_acts_pos: Float[Tensor, "n_pos n"],
    feature_acts_neg: Float[Tensor, "n_neg n"],
    W_dec: Float[Tensor, "n d"],
    direction: Float[Tensor, " d"],
    k: int = 100,
) -> Decomposition:
    """Firing rate on trait tokens minus firing rate on baseline tokens (per feature)."""
    scores = feature_acts_pos.gt(0).float().mean(0) - feature_acts_neg.gt(0).float().mean(0)
    return _decomp("selectivity", scores, direction.float(), W_dec.float(), k, by_abs=False)


def decompose(
    direction: Float[Tensor, " d"],
    sae: Any,
    *,
    pos_acts: Float[Tensor, "n_pos d"] | None = None,
    neg_acts: Float[Tensor, "n_neg d"] | None = None,
    k: int = 100,
    methods: Sequence[Method] = ("cosine", "encode", "attribution"),
    max_density: float | None = None,
) -> dict[str, Decomposition]:
    """The decompositions of ``direction`` named in ``methods`` (all but ``cosine`` need the activations of the two
    response sets; ``selectivity`` needs them per token).

    With ``max_density`` (and the two response sets), a fourth view ``attribution_sparse`` ranks only the features
    that fire on at most that fraction of the response tokens. Dense latents (firing on a third of all tokens, often
    on the few tokens with huge residual norms - apostrophes and newlines in Gemma 3) can carry much of a
    mean-difference vector through a token-frequency difference between the two sets, and their top contexts say
    nothing about the trait; the sparse view shows what is left. Both are reported, never silently swapped."""
    W_dec = sae.W_dec.detach().float()
    if direction.shape[-1] != W_dec.shape[-1]:
        raise ValueError(f"direction has width {direction.shape[-1]} but the SAE's d_in is {W_dec.shape[-1]}")
    out: dict[str, Decomposition] = {}
    if "cosine" in methods:
        out["cosine"] = by_cosine(direction, W_dec, k)
    if pos_acts is not None and neg_acts is not None:
        if "encode" in methods:
            out["encode"] = by_encoding(sae, pos_acts.float().mean(0), neg_acts.float().mean(0), k)
        if "attribution" in methods or "selectivity" in methods:
            with torch.no_grad():
                fp = sae.encode(pos_acts.to(sae.W_dec.dtype)).float()
                fn = sae.encode(neg_acts.to(sae.W_dec.dtype)).float()
        if "selectivity" in methods:
            out["selectivity"] = by_selectivity(fp, fn, W_dec, direction, k)
        if "attribution" in methods:
            scores = attribution_scores(fp, fn, W_dec, direction)  # once, for both attribution views
            out["attribution"] = _decomp("attribution", scores, direction.float(), W_dec, k, by_abs=False)
            if max_density is not None:
                # the same scores, dense features masked out of the ranking
                masked = scores.masked_fill(response_density(fp, fn) > max_density, float("-inf"))
                n_keep = int(torch.isfinite(masked).sum())
                order = masked.argsort(descending=True)[: min(max(k, 1), n_keep)]
                out["attribution_sparse"] = Decomposition(
                    method=f"attribution (features firing on <= {max_density:.0%} of response tokens)",
                    indices=order,
                    scores=scores[order],
                    fraction_explained=fraction_explained(direction.float(), W_dec, order, max_k=k),
                )
    return out


def response_density(
    feature_acts_pos: Float[Tensor, "n_pos n"], feature_acts_neg: Float[Tensor, "n_neg n"]
) -> Float[Tensor, " n"]:
    """Fraction of the response tokens (both sets) on which each feature fires."""
    return torch.cat([feature_acts_pos, feature_acts_neg]).gt(0).float().mean(0)
