"""Nulls for featurescope's estimators, and the verdict that compares an estimate with its null.

Every function takes plain tensors / arrays and a seed; the commands call them on the data they already hold, so
each headline number comes with its null from the same run:

- persona separation: the vector is built on one half of the questions and Cohen's d is measured on the other half
  (:func:`held_out_separation`); the null shuffles the pos/neg labels and repeats the whole procedure;
- random directions of a given norm, isotropic or with the same share on the massive dimensions
  (:func:`random_directions`), for steering and decomposition controls;
- the verdict (:func:`verdict`): an estimate is an effect only when its interval clears the null's interval.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from jaxtyping import Float, Int
from numpy.typing import ArrayLike
from torch import Tensor

from ..measures import cohens_d
from ..stats import NOT_DISTINGUISHABLE, Estimate, auroc, bootstrap, pearson

#: The verdict printed when an estimate clears its null.
EFFECT = "distinguishable from the null"


@dataclasses.dataclass(frozen=True)
class Null:
    """A null distribution summarised: its mean and central interval (``level``), ``n`` draws, and the one-sided
    p-value of the observed value against it (fraction of draws at least as extreme, with the +1 correction)."""

    mean: float
    lo: float
    hi: float
    n: int
    p_value: float
    what: str = ""
    level: float = 0.95

    def to_dict(self) -> dict[str, float | int | str]:
        return dataclasses.asdict(self)


def summarise_null(draws: Sequence[float] | np.ndarray, observed: float, what: str = "", level: float = 0.95) -> Null:
    d = np.asarray(draws, dtype=np.float64)
    d = d[~np.isnan(d)]
    if len(d) == 0:
        return Null(float("nan"), float("nan"), float("nan"), 0, float("nan"), what, level)
    q = (1 - level) / 2
    lo, hi = np.quantile(d, [q, 1 - q]).tolist()
    p = (1 + int((d >= observed).sum())) / (1 + len(d))
    return Null(float(d.mean()), float(lo), float(hi), len(d), float(p), what, level)


def verdict(estimate: Estimate, null: Null | float) -> str:
    """:data:`EFFECT` when the estimate's interval lies wholly above (or below) the null's interval (or value),
    else :data:`~featurescope.stats.NOT_DISTINGUISHABLE`. A nan anywhere is not an effect."""
    lo, hi = (null, null) if isinstance(null, float | int) else (null.lo, null.hi)
    vals = (estimate.lo, estimate.hi, lo, hi)
    if any(v != v for v in vals):
        return NOT_DISTINGUISHABLE
    if estimate.lo > hi or estimate.hi < lo:
        return EFFECT
    return NOT_DISTINGUISHABLE


@dataclasses.dataclass(frozen=True)
class Evidence:
    """One headline number: the estimate with its interval, its null, and the verdict."""

    name: str
    estimate: Estimate
    null: Null
    verdict: str

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "estimate": self.estimate.to_dict(),
            "null": self.null.to_dict(),
            "verdict": self.verdict,
        }

    def line(self, fmt: str = ".2f") -> str:
        n = self.null
        # a null compared by interval overlap only (control_evidence) has no p-value: none is printed
        p = "" if n.p_value != n.p_value else f", p = {n.p_value:.3g}"
        return (
            f"{self.name}: {self.estimate:{fmt}}; null ({n.what}) {n.mean:{fmt}} [{n.lo:{fmt}}, {n.hi:{fmt}}]"
            f"{p} -> {self.verdict}"
        )


def evidence(name: str, estimate: Estimate, draws: Sequence[float] | np.ndarray, what: str) -> Evidence:
    null = summarise_null(draws, estimate.value, what, estimate.level)
    return Evidence(name, estimate, null, verdict(estimate, null))


# -- persona separation, held out -------------------------------------------------------------------------------


def _halves(groups: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    u = np.unique(groups)
    rng.shuffle(u)
    a = set(u[: len(u) // 2].tolist())
    in_a = np.array([g in a for g in groups.tolist()])
    return in_a, ~in_a


def _split_d(x: Tensor, y: np.ndarray, groups: np.ndarray, rng: np.random.Generator, post: Callable | None) -> float:
    """Held-out Cohen's d, averaged over both directions of one random split of the groups."""
    a, b = _halves(groups, rng)
    ds = []
    for build, test in ((a, b), (b, a)):
        yb, yt = y[build], y[test]
        if yb.all() or (~yb).all() or yt.all() or (~yt).all():
            continue
        xb = x[torch.from_numpy(build)]
        v = xb[torch.from_numpy(yb)].mean(0) - xb[torch.from_numpy(~yb)].mean(0)
        if post is not None:
            v = post(v)
        u = torch.nn.functional.normalize(v.float(), dim=-1)
        p = x[torch.from_numpy(test)].float() @ u
        ds.append(cohens_d(p[torch.from_numpy(yt)], p[torch.from_numpy(~yt)]))
    return float(np.nanmean(ds)) if ds and not all(d != d for d in ds) else float("nan")


def held_out_separation(
    pos: Float[Tensor, "n_pos d"],
    neg: Float[Tensor, "n_neg d"],
    pos_groups: Sequence[int] | Int[Tensor, " n_pos"],
    neg_groups: Sequence[int] | Int[Tensor, " n_neg"],
    *,
    n_splits: int = 20,
    n_boot: int = 200,
    n_perm: int = 200,
    seed: int = 0,
    post: Callable[[Tensor], Tensor] | None = None,
    name: str = "held-out Cohen's d",
) -> Evidence:
    """Separation that the vector was not fitted to: build the mean difference on half of the questions
    (``groups``), measure Cohen's d of the projections on the other half; averaged over ``n_splits`` random splits.

    Interval: bootstrap over questions (resampled with replacement, each with a fresh split). Null: the same with the
    pos/neg labels shuffled (``n_perm`` draws). ``post`` is a vector-level handling applied to every built vector."""
    x = torch.cat([pos.float(), neg.float()])
    y = np.r_[np.ones(len(pos), dtype=bool), np.zeros(len(neg), dtype=bool)]
    g = np.r_[np.asarray(pos_groups, dtype=np.int64), np.asarray(neg_groups, dtype=np.int64)]
    rng = np.random.default_rng(seed)
    splits = np.asarray([_split_d(x, y, g, rng, post) for _ in range(n_splits)])
    value = float(splits[~np.isnan(splits)].mean()) if (~np.isnan(splits)).any() else float("nan")
    uniq = np.unique(g)
    boots = []
    for _ in range(n_boot):
        pick = rng.choice(uniq, len(uniq), replace=True)
        # a question drawn twice keeps its id, so both copies land in the same half (no build/test leak)
        idx = np.concatenate([np.nonzero(g == q)[0] for q in pick.tolist()])
        boots.append(_split_d(x[torch.from_numpy(idx)], y[idx], g[idx], rng, post))
    b = np.asarray(boots)
    b = b[~np.isnan(b)]
    lo, hi = (np.quantile(b, [0.025, 0.975]).tolist()) if len(b) else (float("nan"), float("nan"))
    est = Estimate(value, float(lo), float(hi), len(uniq))
    perms = [_split_d(x, rng.permutation(y), g, rng, post) for _ in range(n_perm)]
    return evidence(name, est, perms, "shuffled pos/neg labels")


# -- random directions ------------------------------------------------------------------------------------------


def random_directions(
    n: int,
    d: int,
    *,
    norm: float = 1.0,
    dims: Sequence[int] = (),
    share: float = 0.0,
    seed: int = 0,
) -> Float[Tensor, "n d"]:
    """``n`` random vectors of length ``norm``: isotropic, or (with ``dims`` and ``share``) with exactly ``share``
    of the squared norm on the coordinates ``dims`` (random signs and split) and the rest isotropic elsewhere - the
    control for a vector that leans on massive dimensions."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen)
    if dims and share > 0:
        on = torch.zeros(d, dtype=torch.bool)
        on[list(dims)] = True
        a = x * on.float()
        b = x * (~on).float()
        a = torch.nn.functional.normalize(a, dim=-1) * share**0.5
        b = torch.nn.functional.normalize(b, dim=-1) * (1 - share) ** 0.5
        x = a + b
    return torch.nn.functional.normalize(x, dim=-1) * norm


# -- correlations and AUROC over items ---------------------------------------------------------------------------


def paired_evidence(
    fn: Callable[[np.ndarray, np.ndarray], float],
    a: np.ndarray,
    b: np.ndarray,
    *,
    name: str,
    what: str,
    n_boot: int = 2000,
    n_perm: int = 1000,
    seed: int = 0,
) -> Evidence:
    """``fn(a, b)`` over paired items: a bootstrap interval (items resampled) and a permutation null (``b``
    shuffled against ``a``)."""
    est = bootstrap(fn, a, b, n_boot=n_boot, seed=seed)
    rng = np.random.default_rng(seed + 1)
    return evidence(name, est, [fn(a, rng.permutation(b)) for _ in range(n_perm)], what)


def correlation_evidence(
    x: ArrayLike, y: ArrayLike, *, name: str = "Pearson r", n_boot: int = 2000, n_perm: int = 1000, seed: int = 0
) -> Evidence:
    """Pearson r with a bootstrap interval over items and a permutation null (``y`` shuffled)."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return paired_evidence(
        pearson, a, b, name=name, what="scores shuffled across items", n_boot=n_boot, n_perm=n_perm, seed=seed
    )


def auroc_evidence(
    pos_scores: ArrayLike,
    neg_scores: ArrayLike,
    *,
    name: str = "AUROC",
    n_boot: int = 2000,
    n_perm: int = 1000,
    seed: int = 0,
) -> Evidence:
    """AUROC of positives over negatives, bootstrap interval over items, label-shuffle null (≈ 0.5)."""
    p, q = np.asarray(pos_scores, dtype=np.float64), np.asarray(neg_scores, dtype=np.float64)
    s = np.r_[p, q]
    y = np.r_[np.ones(len(p), dtype=bool), np.zeros(len(q), dtype=bool)]
    return paired_evidence(auroc, s, y, name=name, what="labels shuffled", n_boot=n_boot, n_perm=n_perm, seed=seed)


def evidence_text(ev: Mapping[str, Any], fmt: str = ".2f") -> str:
    """One line for an :meth:`Evidence.to_dict` record: ``name: value [lo, hi]; null (what) mean [lo, hi] ->
    verdict`` - what the commands print."""
    e, n = ev["estimate"], ev["null"]
    return (
        f"{ev.get('name', '')}: {e['value']:{fmt}} [{e['lo']:{fmt}}, {e['hi']:{fmt}}]; null ({n.get('what', '')}) "
        f"{n['mean']:{fmt}} [{n['lo']:{fmt}}, {n['hi']:{fmt}}] -> {ev['verdict']}"
    )


def control_evidence(
    name: str, real: np.ndarray, null_items: np.ndarray, n_controls: int, what: str, seed: int = 0
) -> Evidence:
    """A per-item effect against the same effect under ``n_controls`` controls (averaged per item): bootstrap
    intervals over items for both, and the overlap verdict - the steering nulls' shared final step."""
    est = bootstrap(np.mean, np.asarray(real, dtype=np.float64), seed=seed)
    nb = bootstrap(np.mean, np.asarray(null_items, dtype=np.float64), seed=seed + 1)
    null = Null(nb.value, nb.lo, nb.hi, n_controls, float("nan"), what)
    return Evidence(name, est, null, verdict(est, null))
