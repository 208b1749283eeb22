"""Statistics: known answers, and both ways for intervals (noise is not an effect; a planted effect is found)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from featurescope import stats


def test_known_values():
    assert stats.pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert math.isnan(stats.pearson([1, 1, 1], [1, 2, 3]))
    assert stats.spearman([1, 2, 3, 4], [10, 20, 30, 1000]) == pytest.approx(1.0)
    assert stats.rankdata([3, 1, 1]).tolist() == [2.0, 0.5, 0.5]
    assert stats.auroc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert stats.auroc([0.5, 0.5], [0, 1]) == 0.5
    assert math.isnan(stats.auroc([0.1, 0.2], [1, 1]))
    assert stats.balanced_accuracy([1, 1, 1, 1], [1, 1, 1, 0]) == 0.5
    assert stats.cohen_kappa([0, 1, 0, 1], [0, 1, 0, 1]) == 1.0
    # Agreement at chance level: observed = expected -> kappa 0.
    assert stats.cohen_kappa([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(0.0)
    # Quadratic weights punish a 0-vs-4 disagreement more than 3-vs-4.
    near = stats.cohen_kappa([0, 1, 2, 3, 4, 4], [0, 1, 2, 3, 4, 3], "quadratic")
    far = stats.cohen_kappa([0, 1, 2, 3, 4, 4], [0, 1, 2, 3, 4, 0], "quadratic")
    assert near > far


def test_noise_is_not_an_effect():
    """A 95% interval on pure noise excludes the null about 1 time in 20: over 40 noise sets, at most 6 may."""
    called = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        y = rng.random(120) < 0.5
        est = stats.bootstrap(stats.auroc, rng.random(120), y, n_boot=300, seed=seed)
        if not est.contains(0.5):
            called += 1
        else:
            assert est.versus(0.5) == stats.NOT_DISTINGUISHABLE
    assert called <= 6


@pytest.mark.parametrize("seed", range(5))
def test_planted_effect_is_found(seed):
    rng = np.random.default_rng(seed)
    y = rng.random(120) < 0.5
    s = rng.random(120) + 0.6 * y
    est = stats.bootstrap(stats.auroc, s, y, n_boot=500, seed=seed)
    assert est.lo > 0.5 and est.versus(0.5) == ""
    assert est.lo <= est.value <= est.hi


def test_bootstrap_checks_lengths_and_formats():
    with pytest.raises(ValueError, match="same length"):
        stats.bootstrap(stats.accuracy, [1, 0], [1])
    e = stats.bootstrap(stats.accuracy, [1, 1, 0, 1], [1, 1, 0, 0], n_boot=200)
    assert f"{e:.2f}".startswith("0.75 [")
    assert set(e.to_dict()) == {"value", "lo", "hi", "n", "level"}
