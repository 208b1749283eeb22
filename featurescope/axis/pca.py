"""Assistant axis: pure functions over tensors."""

from __future__ import annotations

import dataclasses

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..errors import FeaturescopeError


def unit(v: Float[Tensor, "*b d"]) -> Float[Tensor, "*b d"]:
    return torch.nn.functional.normalize(v.float(), dim=-1)


def cosine(a: Float[Tensor, "*b d"], b: Float[Tensor, "*b d"]) -> Float[Tensor, "*b"]:
    return torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=-1)


def project(acts: Float[Tensor, "*n d"], vector: Float[Tensor, " d"]) -> Float[Tensor, "*n"]:
    """Scalar projection onto the unit vector along ``vector``."""
    return acts.float() @ unit(vector)


def group_means(
    acts: Float[Tensor, "n layer d"], groups: Int[Tensor, " n"], n_groups: int, keep: Tensor | None = None
) -> tuple[Float[Tensor, "g layer d"], Int[Tensor, " g"]]:
    """Mean of ``acts`` per group id (rows with ``keep`` False are ignored). Returns (means, counts); a group with
    no rows has a zero mean and count 0."""
    k = torch.ones(len(groups), dtype=torch.bool) if keep is None else keep.bool()
    onehot = torch.nn.functional.one_hot(groups.long(), n_groups).float() * k[:, None].float()  # [n, g]
    counts = onehot.sum(0)
    sums = einops.einsum(onehot, acts.float(), "n g, n l d -> g l d")
    return sums / counts.clamp(min=1)[:, None, None], counts.long()


def axis_from_means(
    default_mean: Float[Tensor, "layer d"], role_vectors: Float[Tensor, "role layer d"]
) -> Float[Tensor, "layer d"]:
    """The Assistant axis per layer: mean default-Assistant activation minus the mean of the role vectors."""
    if role_vectors.shape[0] == 0:
        raise FeaturescopeError("no role vectors: the axis needs at least one role")
    return default_mean.float() - role_vectors.float().mean(0)


@dataclasses.dataclass
class PCAResult:
    components: Float[Tensor, "k d"]  # unit rows, PC1 first
    explained: Float[Tensor, " k"]  # explained-variance ratio of each component
    mean: Float[Tensor, " d"]
    scores: Float[Tensor, "n k"]  # the data's coordinates on the components

    def n_for(self, fraction: float = 0.7) -> int:
        return n_components_for(self.explained, fraction)


def pca(x: Float[Tensor, "n d"], orient: Float[Tensor, " d"] | None = None) -> PCAResult:
    """PCA by SVD of the mean-centred rows. Signs are fixed: PC1 points along ``orient`` when given (so
    ``orient . PC1 >= 0``), every other PC (and PC1 without ``orient``) so that its largest-magnitude loading is
    positive."""
    x = x.double()
    mean = x.mean(0)
    xc = x - mean
    _, s, vt = torch.linalg.svd(xc, full_matrices=False)
    k = min(x.shape[0] - 1, x.shape[1]) if x.shape[0] > 1 else 1
    vt, s = vt[:k], s[:k]
    for i in range(k):
        ref = orient.double() if (i == 0 and orient is not None) else None
        sgn = torch.sign(vt[i] @ ref) if ref is not None else torch.sign(vt[i][vt[i].abs().argmax()])
        if sgn == 0:
            sgn = torch.tensor(1.0, dtype=vt.dtype)
        vt[i] = vt[i] * sgn
    var = s**2
    total = (xc**2).sum()
    explained = var / total if total > 0 else torch.zeros_like(var)
    return PCAResult(components=vt.float(), explained=explained.float(), mean=mean.float(), scores=(xc @ vt.T).float())


def n_components_for(explained: Float[Tensor, " k"], fraction: float = 0.7) -> int:
    """Smallest number of leading components whose explained-variance ratios sum to at least ``fraction``."""
    c = explained.double().cumsum(0)
    hit = (c >= fraction - 1e-9).nonzero()
    return int(hit[0]) + 1 if len(hit) else len(explained)


def percentile_rank(value: float | Tensor, population: Float[Tensor, " n"]) -> float:
    """Fraction of ``population`` strictly below ``value`` (ties count half): 1.0 = above every member."""
    p = population.double()
    v = float(value)
    return float(((p < v).sum() + 0.5 * (p == v).sum()) / max(len(p), 1))


def cap_activations(
    h: Float[Tensor, "... d"], v_hat: Float[Tensor, " d"], tau: float | Tensor, skip: Tensor | None = None
) -> Float[Tensor, "... d"]:
    """Floor the projection of ``h`` on the unit vector ``v_hat`` at ``tau``:
    ``h + v_hat * max(tau - <h, v_hat>, 0)``. Positions where ``skip`` is True are unchanged."""
    proj = h.float() @ v_hat.float()
    lift = (torch.as_tensor(tau, dtype=torch.float32, device=h.device) - proj).clamp(min=0)
    if skip is not None:
        lift = lift * (~skip).float()
    return h + (lift[..., None] * v_hat.float()).to(h.dtype)


def outlier_positions(h: Float[Tensor, "... d"], factor: float | None) -> Tensor | None:
    """Positions whose norm exceeds ``factor`` x the median norm of the batch (attention sinks); None = no guard."""
    if factor is None:
        return None
    n = h.float().norm(dim=-1)
    return n > factor * n.flatten().median()


def turn_spans(role_ids: Int[Tensor, " pos"], role: int = 3) -> list[tuple[int, int]]:
    """(start, end) of every maximal run of ``role`` tokens (assistant turns by default)."""
    r = (role_ids == role).int().tolist()
    spans, start = [], None
    for i, x in enumerate(r + [0]):
        if x and start is None:
            start = i
        elif not x and start is not None:
            spans.append((start, i))
            start = None
    return spans


def default_cap_layers(n_layers: int) -> list[int]:
    """The capping band: the middle to the three-quarter layer (``n//2 .. 3n//4`` inclusive), middle-to-late as in
    the paper (which caps a band of several layers there)."""
    lo, hi = n_layers // 2, max(n_layers // 2, (3 * n_layers) // 4)
    return list(range(lo, hi + 1))
