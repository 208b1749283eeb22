"""Judge evaluation plumbing: label files fail clearly, thresholds come from dev, the cache pays once, the probe's
logistic regression finds a planted rule and not noise."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from featurescope.errors import FeaturescopeError
from featurescope.judges import Score
from featurescope.judges.cache import CachedJudge
from featurescope.judges.choose import get_judge
from featurescope.judges.evalset import TraitItem, load_trait_items
from featurescope.judges.evaluate import best_threshold, evaluate_scores, format_eval
from featurescope.judges.logistic import fit, fit_cv

GOOD = {"id": "a", "trait": "evil", "question": "q", "answer": "x", "expresses": True, "trait_score": 3, "coherence": 4}


def _write(tmp_path, rows):
    p = tmp_path / "labels.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


@pytest.mark.parametrize(
    "rows,msg",
    [
        ([{k: v for k, v in GOOD.items() if k != "expresses"}], "missing field"),
        ([GOOD, GOOD], "duplicate id 'a'"),
        ([{**GOOD, "trait": "grumpiness"}], "unknown trait 'grumpiness'"),
        ([{**GOOD, "trait_score": 7}], r"trait_score must be a number in \[0, 4\]"),
        ([{**GOOD, "expresses": "yes"}], "expresses must be true or false"),
        ([{k: v for k, v in GOOD.items() if k != "trait_score"}], "trait_score"),
    ],
)
def test_bad_label_files_name_the_problem(tmp_path, rows, msg):
    with pytest.raises(FeaturescopeError, match=msg):
        load_trait_items(_write(tmp_path, rows))


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(FeaturescopeError, match="does not exist"):
        load_trait_items(tmp_path / "nope.jsonl")
    (tmp_path / "x.jsonl").write_text("{not json\n")
    with pytest.raises(FeaturescopeError, match=r"x.jsonl:1: not valid JSON"):
        load_trait_items(tmp_path / "x.jsonl")


def test_unknown_judge_is_named():
    with pytest.raises(FeaturescopeError, match="unknown judge 'oracle'"):
        get_judge("oracle")


def test_written_format_and_splits(tmp_path):
    rows = [
        {**GOOD, "id": "a", "split": "dev"},
        {
            "id": "b",
            "trait": "humor",
            "question": "q",
            "response": "r",
            "score": 80,
            "expresses": True,
            "split": "test",
        },
    ]
    items = load_trait_items(_write(tmp_path, rows))
    assert items[1].answer == "r" and items[1].trait_score == pytest.approx(3.2) and items[1].coherence is None
    assert [x.id for x in load_trait_items(_write(tmp_path, rows), split="test")] == ["b"]


def test_threshold_is_chosen_on_the_given_rows_only():
    s = np.array([10, 20, 30, 70, 80, 90.0])
    y = np.array([0, 0, 0, 1, 1, 1], dtype=bool)
    t = best_threshold(s, y)
    assert 30 < t <= 70
    assert ((s >= t) == y).all()


def _items(n, rng, broken_every=5):
    out = []
    for i in range(n):
        out.append(
            TraitItem(
                id=str(i),
                trait="evil" if i % 2 else "humor",
                question="q",
                answer="a",
                expresses=bool(rng.random() < 0.4),
                trait_score=float(rng.integers(0, 5)),
                coherence=0.0 if i % broken_every == 0 else 4.0,
            )
        )
    return out


def test_evaluation_both_ways():
    rng = np.random.default_rng(0)
    items = _items(200, rng)
    y = np.array([x.expresses for x in items])
    fluent = np.array([x.coherence is not None and x.coherence > 1 for x in items])
    noise = evaluate_scores("noise", rng.random(200) * 100, rng.random(200) * 100, items)
    assert noise.overall.auroc.contains(0.5)
    assert noise.coherence_auroc is not None and noise.coherence_auroc.contains(0.5)
    planted = evaluate_scores("planted", 100.0 * y + rng.random(200), 100.0 * fluent, items)
    assert planted.overall.accuracy.value == 1.0 and planted.overall.auroc.lo > 0.9
    assert planted.coherence_auroc is not None and planted.coherence_auroc.value == 1.0
    text = format_eval(noise)
    assert "overall" in text and "[" in text


def test_logistic_finds_a_planted_rule_and_not_noise():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 5, generator=g)
    y = x[:, 2] + 0.3 * torch.randn(300, generator=g) > 0
    m = fit_cv(x[:200], y[:200])
    acc = ((m.prob(x[200:]) > 0.5) == y[200:]).float().mean()
    assert acc > 0.85
    y_noise = torch.rand(300, generator=g) > 0.5
    m2 = fit(x[:200], y_noise[:200], l2=100.0)
    acc2 = ((m2.prob(x[200:]) > 0.5) == y_noise[200:]).float().mean()
    assert acc2 < 0.65


class _Counting:
    name = "counting"

    def __init__(self):
        self.calls = 0

    def score_many(self, trait, questions, answers):
        self.calls += len(answers)
        return [Score(trait=float(len(a)), coherence=50.0) for a in answers]


def test_cache_pays_once(tmp_path):
    from featurescope.traits import load_trait

    inner = _Counting()
    j = CachedJudge(inner, tmp_path / "c.sqlite")
    tr = load_trait("evil")
    a = j.score_many(tr, ["q", "q"], ["one", "three"])
    b = CachedJudge(_Counting(), tmp_path / "c.sqlite").score_many(tr, ["q", "q"], ["one", "three"])
    assert [s.trait for s in a] == [s.trait for s in b] == [3.0, 5.0]
    j.score_many(tr, ["q", "q"], ["one", "new"])
    assert inner.calls == 3 and j.hits == 1
    # Another trait (rubric) or judge name is another key.
    j.score_many(load_trait("humor"), ["q"], ["one"])
    assert inner.calls == 4
