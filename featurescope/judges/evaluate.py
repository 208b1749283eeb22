"""How far to trust a judge: agreement with the adjudicated labels, every number with a bootstrap interval over
items, next to its null (the majority-class rate for accuracy, 0.5 for AUROC and balanced accuracy, 0 for Spearman).

A judge's decision threshold is either fixed (50 on the 0-100 scale) or chosen on the *dev* split and then applied
unchanged to the test split.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import stats
from ..stats import Estimate
from ..traits import load_trait
from .evalset import TraitItem


def score_items(judge: Any, items: Sequence[TraitItem]) -> tuple[np.ndarray, np.ndarray]:
    """(trait score, coherence score) per item, 0-100, in ``items`` order (one ``score_many`` call per trait)."""
    t = np.zeros(len(items))
    c = np.zeros(len(items))
    by: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        by.setdefault(it.trait, []).append(i)
    for name, idx in by.items():
        scores = judge.score_many(load_trait(name), [items[i].question for i in idx], [items[i].answer for i in idx])
        for i, s in zip(idx, scores):
            t[i], c[i] = s.trait, s.coherence
    return t, c


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The cut (midpoint between neighbouring scores) with the highest accuracy on these rows; ties -> closest to 50."""
    cand = np.unique(np.concatenate([[0.0, 50.0, 100.0001], scores]))
    mids = np.concatenate([cand, (cand[1:] + cand[:-1]) / 2])
    acc = np.array([((scores >= m) == labels).mean() for m in mids])
    best = acc.max()
    ok = mids[acc >= best - 1e-12]
    return float(ok[np.argmin(np.abs(ok - 50))])


@dataclasses.dataclass(frozen=True)
class TraitAgreement:
    n: int
    n_expresses: int
    accuracy: Estimate
    chance: float  # majority-class rate: the accuracy of always answering the commoner label
    balanced_accuracy: Estimate
    auroc: Estimate
    spearman: Estimate

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "n_expresses": self.n_expresses,
            "accuracy": self.accuracy.to_dict(),
            "chance": self.chance,
            "balanced_accuracy": self.balanced_accuracy.to_dict(),
            "auroc": self.auroc.to_dict(),
            "spearman": self.spearman.to_dict(),
        }


@dataclasses.dataclass(frozen=True)
class JudgeEval:
    judge: str
    split: str
    threshold: float
    threshold_from: str
    overall: TraitAgreement
    per_trait: dict[str, TraitAgreement]
    coherence_auroc: Estimate | None  # broken (coherence <= 1) vs fluent (>= 3)
    n_broken: int
    n_fluent: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "judge": self.judge,
            "split": self.split,
            "threshold": self.threshold,
            "threshold_from": self.threshold_from,
            "overall": self.overall.to_dict(),
            "per_trait": {k: v.to_dict() for k, v in self.per_trait.items()},
            "coherence_auroc": None if self.coherence_auroc is None else self.coherence_auroc.to_dict(),
            "n_broken": self.n_broken,
            "n_fluent": self.n_fluent,
        }


def agreement_stats(scores: np.ndarray, items: Sequence[TraitItem], threshold: float, seed: int = 0) -> TraitAgreement:
    y = np.array([it.expresses for it in items], dtype=bool)
    h = np.array([it.trait_score for it in items], dtype=float)
    pred = scores >= threshold
    n_pos = int(y.sum())
    return TraitAgreement(
        n=len(items),
        n_expresses=n_pos,
        accuracy=stats.bootstrap(stats.accuracy, pred, y, seed=seed),
        chance=max(n_pos, len(y) - n_pos) / len(y) if len(y) else float("nan"),
        balanced_accuracy=stats.bootstrap(stats.balanced_accuracy, pred, y, seed=seed),
        auroc=stats.bootstrap(stats.auroc, scores, y, seed=seed),
        spearman=stats.bootstrap(stats.spearman, scores, h, seed=seed),
    )


def evaluate_scores(
    name: str,
    trait_scores: np.ndarray,
    coherence_scores: np.ndarray,
    items: Sequence[TraitItem],
    threshold: float = 50.0,
    threshold_from: str = "fixed",
    split: str = "test",
    seed: int = 0,
) -> JudgeEval:
    per: dict[str, TraitAgreement] = {}
    for t in sorted({it.trait for it in items}):
        idx = [i for i, it in enumerate(items) if it.trait == t]
        per[t] = agreement_stats(trait_scores[idx], [items[i] for i in idx], threshold, seed)
    br = [i for i, it in enumerate(items) if it.coherence is not None and it.coherence <= 1]
    fl = [i for i, it in enumerate(items) if it.coherence is not None and it.coherence >= 3]
    coh = None
    if br and fl:
        idx = br + fl
        lab = np.array([0] * len(br) + [1] * len(fl), dtype=bool)  # positive = fluent
        coh = stats.bootstrap(stats.auroc, coherence_scores[idx], lab, seed=seed)
    return JudgeEval(
        judge=name,
        split=split,
        threshold=threshold,
        threshold_from=threshold_from,
        overall=agreement_stats(trait_scores, items, threshold, seed),
        per_trait=per,
        coherence_auroc=coh,
        n_broken=len(br),
        n_fluent=len(fl),
    )


def format_eval(e: JudgeEval, targets: dict[str, float] | None = None) -> str:
    """The agreement table as text (every number with its 95% interval; the null beside it)."""
    o = e.overall
    lines = [
        f"judge {e.judge} on {e.split} (n={o.n}, {o.n_expresses} express the trait); threshold {e.threshold:.1f} "
        f"({e.threshold_from})",
        f"{'trait':14s} {'n':>4s}  {'accuracy [95% CI]':22s} {'chance':>6s}  {'bal. acc.':20s}  {'AUROC':20s}  "
        f"{'Spearman':20s}",
    ]

    def row(name: str, a: TraitAgreement) -> str:
        note = "" if a.accuracy.lo > a.chance else "  (accuracy not distinguishable from chance)"
        return (
            f"{name:14s} {a.n:4d}  {a.accuracy:.2f}{'':4s} {a.chance:6.2f}  {a.balanced_accuracy:.2f}  {a.auroc:.2f}  "
            f"{a.spearman:.2f}{note}"
        )

    for t, a in e.per_trait.items():
        lines.append(row(t, a))
    lines.append(row("overall", o))
    if e.coherence_auroc is not None:
        lines.append(
            f"coherence: AUROC broken (n={e.n_broken}) vs fluent (n={e.n_fluent}) = {e.coherence_auroc:.2f} "
            f"(null 0.5{'; ' + stats.NOT_DISTINGUISHABLE if e.coherence_auroc.contains(0.5) else ''})"
        )
    if targets:
        lines.append(target_line(e, targets))
    return "\n".join(lines)


def target_line(e: JudgeEval, targets: dict[str, float]) -> str:
    """Which targets are met. An accuracy target counts as met only when the accuracy's interval also lies above
    the majority-class rate: on a set where most answers do not express a trait, answering "no" every time clears
    0.85 and says nothing."""

    def acc_ok(a: TraitAgreement, bar: float) -> str:
        if a.accuracy.value < bar:
            return "NOT met"
        return "met" if a.accuracy.lo > a.chance else "met in value, but not distinguishable from chance"

    per = [f"{t} {acc_ok(a, targets['per_trait_accuracy'])}" for t, a in e.per_trait.items()]
    coh = e.coherence_auroc
    return (
        f"targets: accuracy >= {targets['accuracy']:.2f} overall: {acc_ok(e.overall, targets['accuracy'])}; "
        f">= {targets['per_trait_accuracy']:.2f} per trait: {', '.join(per)}; Spearman >= {targets['spearman']:.2f}: "
        f"{'met' if e.overall.spearman.value >= targets['spearman'] else 'NOT met'}; coherence AUROC >= "
        f"{targets['coherence_auroc']:.2f}: {'met' if coh is not None and coh.value >= targets['coherence_auroc'] else 'NOT met'}"
    )


TARGETS = {"accuracy": 0.85, "per_trait_accuracy": 0.75, "spearman": 0.6, "coherence_auroc": 0.9}
