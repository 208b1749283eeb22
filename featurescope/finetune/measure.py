"""Pure measurements of the fine-tuning experiment (Chen et al. 2025, section 5; Betley et al. 2025).

- *projection shift*: mean over evaluation questions of the last-prompt-token activation's projection on the unit
  persona vector, after fine-tuning minus before (paired by question);
- *projection difference* of a dataset (measured before training): mean over its examples of the projection of the
  training response minus that of the model's own response to the same question (response-token means);
- the correlation of shift (or projection difference) with trait expression across fine-tunes, with a bootstrap
  interval over fine-tunes and a permutation null (shuffled pairing);
- per-question paired effects (a set vs the neutral control), bootstrap over questions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from jaxtyping import Float
from torch import Tensor

from ..evidence.nulls import Evidence, evidence
from ..stats import ArrayLike, Estimate, bootstrap, pearson


def unit(v: Float[Tensor, " d"]) -> Float[Tensor, " d"]:
    v = v.float()
    return v / v.norm().clamp(min=1e-12)


def projections(acts: Float[Tensor, "n d"], v: Float[Tensor, " d"]) -> Float[Tensor, " n"]:
    """Scalar projection of each row of ``acts`` on the unit vector along ``v``."""
    return acts.float() @ unit(v)


def projection_shift(
    before: Float[Tensor, "n d"], after: Float[Tensor, "n d"], v: Float[Tensor, " d"], *, seed: int = 0
) -> Estimate:
    """Mean (after - before) projection on unit ``v``, paired by question; bootstrap interval over questions."""
    if before.shape != after.shape:
        raise ValueError(f"before {tuple(before.shape)} and after {tuple(after.shape)} must pair question by question")
    d = (projections(after, v) - projections(before, v)).double().numpy()
    return bootstrap(np.mean, d, seed=seed)


def projection_difference(
    data_acts: Float[Tensor, "n d"], own_acts: Float[Tensor, "n d"], v: Float[Tensor, " d"], *, seed: int = 0
) -> Estimate:
    """Chen et al.'s projection difference of a dataset: mean over examples of proj(training response) -
    proj(the model's own response to the same question); bootstrap over examples."""
    if data_acts.shape != own_acts.shape:
        raise ValueError(f"{tuple(data_acts.shape)} vs {tuple(own_acts.shape)}: one own response per example")
    d = (projections(data_acts, v) - projections(own_acts, v)).double().numpy()
    return bootstrap(np.mean, d, seed=seed)


def correlation_with_null(x: ArrayLike, y: ArrayLike, *, n_perm: int = 2000, seed: int = 0, what: str = "") -> Evidence:
    """Pearson r of ``x`` and ``y`` across fine-tunes: bootstrap interval over fine-tunes, and the null of the
    same r with the pairing shuffled (``n_perm`` permutations)."""
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    est = bootstrap(pearson, xa, ya, seed=seed)
    rng = np.random.default_rng(seed + 1)
    draws = [pearson(xa, rng.permutation(ya)) for _ in range(n_perm)] if len(xa) >= 3 else [float("nan")]
    return evidence("pearson r", est, [d for d in draws if d == d] or [float("nan")], what or "shuffled pairing")


def paired_effect(treated: ArrayLike, control: ArrayLike, *, seed: int = 0, level: float = 0.95) -> Estimate:
    """Mean (treated - control) over items paired by position (e.g. per evaluation question); bootstrap interval at
    ``level`` (raise it for a family of comparisons, e.g. Bonferroni: ``1 - 0.05 / m``)."""
    t, c = np.asarray(treated, dtype=float), np.asarray(control, dtype=float)
    if t.shape != c.shape:
        raise ValueError(f"{t.shape} vs {c.shape}: the two arms must be measured on the same questions")
    return bootstrap(np.mean, t - c, seed=seed, level=level)


def per_question_means(scores: Sequence[float], questions: Sequence[str]) -> dict[str, float]:
    """Mean score per question (several samples per question average into one item)."""
    acc: dict[str, list[float]] = {}
    for q, s in zip(questions, scores):
        acc.setdefault(q, []).append(float(s))
    return {q: float(np.mean(v)) for q, v in acc.items()}
