"""Statistics every headline number goes through: correlations, AUROC, Cohen's kappa, and percentile-bootstrap
intervals over items (:func:`bootstrap`), returned as an :class:`Estimate` that knows whether it can be told apart
from a null value.

Pure functions on sequences / numpy arrays; no I/O, no models.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

Array = NDArray[np.float64]

#: What featurescope prints when an interval contains the null value.
NOT_DISTINGUISHABLE = "not distinguishable from the null"


def _arr(x: ArrayLike) -> Array:
    return np.asarray(x, dtype=np.float64)


def rankdata(x: ArrayLike) -> Array:
    """Ranks 0..n-1 with ties given their average rank."""
    a = _arr(x)
    order = np.argsort(a, kind="mergesort")
    ranks = np.empty(len(a), dtype=np.float64)
    ranks[order] = np.arange(len(a), dtype=np.float64)
    _, inv, counts = np.unique(a, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, weights=ranks)
    return sums[inv] / counts[inv]


def pearson(x: ArrayLike, y: ArrayLike) -> float:
    """Pearson's r; nan when either side is constant or there are fewer than 2 items."""
    a, b = _arr(x), _arr(y)
    if len(a) < 2 or len(a) != len(b):
        return float("nan")
    a, b = a - a.mean(), b - b.mean()
    den = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return float((a * b).sum()) / den if den > 0 else float("nan")


def spearman(x: ArrayLike, y: ArrayLike) -> float:
    """Spearman's rho (Pearson on average ranks)."""
    return pearson(rankdata(x), rankdata(y))


def auroc(scores: ArrayLike, labels: ArrayLike) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties count half. nan without both
    classes."""
    s, y = _arr(scores), np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    r = rankdata(s)
    return float((r[y].sum() - n_pos * (n_pos - 1) / 2) / (n_pos * n_neg))


def accuracy(pred: ArrayLike, labels: ArrayLike) -> float:
    p, y = np.asarray(pred, dtype=bool), np.asarray(labels, dtype=bool)
    return float((p == y).mean()) if len(p) else float("nan")


def balanced_accuracy(pred: ArrayLike, labels: ArrayLike) -> float:
    """Mean of the true-positive and true-negative rates (0.5 = chance whatever the class balance)."""
    p, y = np.asarray(pred, dtype=bool), np.asarray(labels, dtype=bool)
    rates = [float((p[m] == y[m]).mean()) for m in (y, ~y) if m.any()]
    return sum(rates) / len(rates) if rates else float("nan")


def cohen_kappa(a: ArrayLike, b: ArrayLike, weights: str | None = None) -> float:
    """Cohen's kappa between two annotators' labels (categories = the union of both). ``weights="quadratic"`` for
    ordinal scales (the labels must then be numbers)."""
    x, y = np.asarray(a), np.asarray(b)
    if len(x) != len(y) or len(x) == 0:
        return float("nan")
    cats = np.unique(np.concatenate([x, y]))
    k = len(cats)
    if k < 2:
        return 1.0
    idx = {c: i for i, c in enumerate(cats.tolist())}
    m = np.zeros((k, k))
    for u, v in zip(x.tolist(), y.tolist()):
        m[idx[u], idx[v]] += 1
    m /= m.sum()
    expected = np.outer(m.sum(1), m.sum(0))
    if weights is None:
        w = 1.0 - np.eye(k)
    elif weights == "quadratic":
        c = cats.astype(np.float64)
        w = (c[:, None] - c[None, :]) ** 2
    else:
        raise ValueError("weights must be None or 'quadratic'")
    den = float((w * expected).sum())
    return 1.0 - float((w * m).sum()) / den if den > 0 else 1.0


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A number with its percentile-bootstrap interval over items (``level``, e.g. 0.95) and ``n`` items."""

    value: float
    lo: float
    hi: float
    n: int
    level: float = 0.95

    def contains(self, x: float) -> bool:
        return self.lo <= x <= self.hi

    def versus(self, null: float) -> str:
        """'' when the interval excludes ``null``, else :data:`NOT_DISTINGUISHABLE`."""
        return NOT_DISTINGUISHABLE if self.contains(null) else ""

    def __format__(self, spec: str) -> str:
        f = spec or ".2f"
        return f"{self.value:{f}} [{self.lo:{f}}, {self.hi:{f}}]"

    def __str__(self) -> str:
        return format(self)

    def to_dict(self) -> dict[str, float | int]:
        return {"value": self.value, "lo": self.lo, "hi": self.hi, "n": self.n, "level": self.level}


def bootstrap(
    fn: Callable[..., float],
    *columns: ArrayLike,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> Estimate:
    """``fn(*columns)`` with a percentile bootstrap over items (rows resampled together across ``columns``).
    Resamples where ``fn`` is nan (e.g. one class missing) are dropped."""
    cols = [np.asarray(c) for c in columns]
    n = len(cols[0])
    if any(len(c) != n for c in cols):
        raise ValueError("bootstrap: all columns need the same length")
    value = float(fn(*cols))
    if n == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0, level)
    rng = np.random.default_rng(seed)
    stats: list[float] = []
    for _ in range(n_boot):
        i = rng.integers(0, n, n)
        v = float(fn(*(c[i] for c in cols)))
        if not math.isnan(v):
            stats.append(v)
    if not stats:
        return Estimate(value, float("nan"), float("nan"), n, level)
    q = (1 - level) / 2
    lo, hi = np.quantile(np.asarray(stats), [q, 1 - q]).tolist()
    return Estimate(value, float(lo), float(hi), n, level)


def mean(x: Sequence[float] | ArrayLike) -> float:
    a = _arr(x)
    return float(a.mean()) if len(a) else float("nan")
