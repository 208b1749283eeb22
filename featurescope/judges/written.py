"""Agreement of a judge with the 120 hand-written labels (the original calibration set)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import stats
from ..traits import load_trait
from .base import LABELS_PATH


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    return stats.spearman(list(x), list(y))


def agreement(judge: Any, labels_path: str | Path = LABELS_PATH, threshold: float = 50.0) -> dict[str, Any]:
    """Accuracy (score >= threshold vs the hand label ``expresses``) and Spearman with the hand scores, overall and
    per trait, next to chance (the majority-class rate)."""
    rows = [json.loads(line) for line in Path(labels_path).read_text().splitlines() if line.strip()]
    by_trait: dict[str, list[dict]] = {}
    for r in rows:
        by_trait.setdefault(r["trait"], []).append(r)
    res: dict[str, Any] = {"per_trait": {}, "n": len(rows), "judge": getattr(judge, "name", type(judge).__name__)}
    all_pred, all_true, all_s, all_h = [], [], [], []
    for t, rs in by_trait.items():
        tr = load_trait(t)
        scores = judge.score_many(tr, [r["question"] for r in rs], [r["response"] for r in rs])
        pred = [s.trait >= threshold for s in scores]
        true = [bool(r["expresses"]) for r in rs]
        acc = sum(p == y for p, y in zip(pred, true)) / len(rs)
        chance = max(sum(true), len(true) - sum(true)) / len(true)
        res["per_trait"][t] = {
            "n": len(rs),
            "accuracy": acc,
            "chance": chance,
            "spearman": spearman([s.trait for s in scores], [r["score"] for r in rs]),
        }
        all_pred += pred
        all_true += true
        all_s += [s.trait for s in scores]
        all_h += [r["score"] for r in rs]
    res["accuracy"] = sum(p == y for p, y in zip(all_pred, all_true)) / len(all_true)
    res["chance"] = max(sum(all_true), len(all_true) - sum(all_true)) / len(all_true)
    res["spearman"] = spearman(all_s, all_h)
    return res
