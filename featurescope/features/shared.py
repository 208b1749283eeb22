"""Latents shared by the Assistant and story characters (pure tensor functions).

For a theme T and a latent j, on each side s (Assistant replies, character passages) separately, and against each
other theme U: ``d = mean activation on T's contexts - mean on U's contexts`` of that side. Null: the same difference
with the T / U labels permuted within the side (``n_perm`` draws) - "unpaired contexts" of the same speaker and
framing. ``z_s = min over U of (d - null mean) / null sd``: T must beat *every* other theme, so a latent that is
merely suppressed in one theme does not look selective for all the others. A latent is *shared* for T when both sides clear the
Bonferroni threshold over (latents x themes) - it fires on the theme both when the Assistant is in the state and
when a character is. The whole procedure run again with the theme labels shuffled *across pairs* (the pairing kept)
gives the number of "shared" latents expected from chance.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor


@dataclasses.dataclass(frozen=True)
class SharedLatents:
    theme: str
    latents: list[int]  # shared latents, best first (by min(z_assistant, z_character))
    z_assistant: list[float]
    z_character: list[float]
    threshold: float
    n_pairs: int


def z_crit(n_tests: int, alpha: float = 0.05) -> float:
    """One-sided normal threshold for a Bonferroni family of ``n_tests``."""
    return NormalDist().inv_cdf(1 - alpha / max(1, n_tests))


def theme_z(
    acts: Float[Tensor, "n latents"], in_theme: Sequence[bool], *, n_perm: int = 500, seed: int = 0
) -> Float[Tensor, " latents"]:
    """Per latent: z of (mean on the theme's contexts - mean on the rest) against its label-permutation null."""
    a = acts.double()
    m = torch.as_tensor(list(in_theme), dtype=torch.bool)
    k = int(m.sum())
    if k == 0 or k == len(m):
        raise ValueError("a theme needs contexts inside and outside it")

    def diff(mask: Tensor) -> Tensor:
        return a[mask].mean(0) - a[~mask].mean(0)

    obs = diff(m)
    g = torch.Generator().manual_seed(seed)
    null = torch.stack([diff(m[torch.randperm(len(m), generator=g)]) for _ in range(n_perm)])
    sd = null.std(0).clamp(min=1e-9)
    return ((obs - null.mean(0)) / sd).float()


def shared_latents(
    assistant: Float[Tensor, "pairs latents"],
    character: Float[Tensor, "pairs latents"],
    themes: Sequence[str],
    *,
    n_perm: int = 500,
    alpha: float = 0.05,
    seed: int = 0,
    top: int = 10,
) -> dict[str, SharedLatents]:
    """Shared latents per theme (see the module docstring); ``top`` of them kept per theme."""
    if assistant.shape != character.shape or assistant.shape[0] != len(themes):
        raise ValueError(f"{tuple(assistant.shape)} vs {tuple(character.shape)} for {len(themes)} pairs")
    names = sorted(set(themes))
    thr = z_crit(assistant.shape[1] * len(names), alpha)
    out = {}
    for i, t in enumerate(names):
        mask = [x == t for x in themes]
        za, zc = (
            torch.stack(
                [
                    theme_z(side[rows], [themes[r] == t for r in rows], n_perm=n_perm, seed=seed + 100 * k + 10 * i + j)
                    for j, u in enumerate(x for x in names if x != t)
                    for rows in [[r for r, x in enumerate(themes) if x in (t, u)]]
                ]
            ).min(0)[0]
            if len(names) > 1
            else theme_z(side, mask, n_perm=n_perm, seed=seed + i)
            for k, side in enumerate((assistant, character))
        )
        both = torch.minimum(za, zc)
        ok = (both > thr).nonzero().flatten()
        order = ok[both[ok].argsort(descending=True)][:top].tolist()
        out[t] = SharedLatents(t, order, za[order].tolist(), zc[order].tolist(), thr, sum(mask))
    return out


def chance_count(
    assistant: Float[Tensor, "pairs latents"],
    character: Float[Tensor, "pairs latents"],
    themes: Sequence[str],
    *,
    n_shuffles: int = 5,
    n_perm: int = 200,
    alpha: float = 0.05,
    seed: int = 0,
) -> list[int]:
    """Shared latents found (all themes together) when the theme labels are shuffled across pairs (each pair
    keeps its two members): the count expected from chance, once per shuffle."""
    rng = np.random.default_rng(seed)
    counts = []
    for s in range(n_shuffles):
        perm = [themes[int(i)] for i in rng.permutation(len(themes))]
        res = shared_latents(assistant, character, perm, n_perm=n_perm, alpha=alpha, seed=seed + 1000 * (s + 1),
                             top=10**9)  # fmt: skip
        counts.append(sum(len(r.latents) for r in res.values()))
    return counts
