"""Nulls and intervals for the Assistant axis (Lu et al.), from the role vectors and the default mean alone.

- cos(axis, PC1) with a role-resampling interval (roles drawn with replacement);
- the "any role as default" null: each role in turn plays the default Assistant against the others, and the same
  cosine is computed - if many roles reach the Assistant's value, the Assistant is not special on PC1;
- the split-half null for cross-stage PC cosines: |cos| between PC1 of two random halves of one model's roles.
"""

from __future__ import annotations

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from ..stats import Estimate
from .nulls import Evidence, evidence


def _pc1(rv: Tensor, orient: Tensor) -> Tensor:
    x = rv.double() - rv.double().mean(0)
    _, _, vt = torch.linalg.svd(x, full_matrices=False)
    v = vt[0]
    return v * torch.sign(v @ orient.double()) if float(v @ orient.double()) != 0 else v


def axis_pc1_cosine(role_vectors: Float[Tensor, "role d"], default: Float[Tensor, " d"]) -> float:
    """cos(default - mean(roles), PC1 of the roles), PC1 oriented along the axis."""
    ax = default.double() - role_vectors.double().mean(0)
    v = _pc1(role_vectors, ax)
    return float(torch.nn.functional.cosine_similarity(ax, v, dim=0))


def axis_pc1_evidence(
    role_vectors: Float[Tensor, "role d"], default: Float[Tensor, " d"], *, n_boot: int = 500, seed: int = 0
) -> Evidence:
    """cos(axis, PC1) with a role-resampling 95% interval, against the "any role as default" null."""
    R = role_vectors.shape[0]
    value = axis_pc1_cosine(role_vectors, default)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        i = torch.from_numpy(rng.integers(0, R, R))
        if len(set(i.tolist())) < 3:
            continue
        boots.append(axis_pc1_cosine(role_vectors[i], default))
    lo, hi = np.quantile(boots, [0.025, 0.975]).tolist() if boots else (float("nan"), float("nan"))
    est = Estimate(value, float(lo), float(hi), R)
    null = []
    for r in range(R):
        others = torch.cat([role_vectors[:r], role_vectors[r + 1 :]])
        null.append(axis_pc1_cosine(others, role_vectors[r]))
    return evidence("cos(axis, PC1)", est, null, "any role as the default")


def split_half_pc_cosines(
    role_vectors: Float[Tensor, "role d"], *, n: int = 200, n_pcs: int = 3, seed: int = 0
) -> Float[Tensor, "n k"]:
    """|cos| of the matched top ``n_pcs`` PCs of two random halves of the roles (one model): what cross-stage PC
    cosines must beat to say more than "two samples of roles agree this well"."""
    rng = np.random.default_rng(seed)
    R = role_vectors.shape[0]
    out = []
    for _ in range(n):
        p = torch.from_numpy(rng.permutation(R))
        a, b = role_vectors[p[: R // 2]].double(), role_vectors[p[R // 2 :]].double()
        va = torch.linalg.svd(a - a.mean(0), full_matrices=False)[2][:n_pcs]
        vb = torch.linalg.svd(b - b.mean(0), full_matrices=False)[2][:n_pcs]
        out.append((va * vb).sum(-1).abs())
    return torch.stack(out).float()
