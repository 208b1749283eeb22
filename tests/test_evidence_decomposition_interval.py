"""The fraction-explained interval over questions (issue 17): a vector rebuilt from resampled questions; planted both
ways - a trait direction the SAE has a latent for is found above the random-direction null, pure noise is not."""

from __future__ import annotations

import torch

from featurescope.evidence.decomposition import (
    fraction_explained_interval,
    fraction_explained_null,
    interval_verdicts,
)
from featurescope.evidence.massive import handle_vector
from featurescope.stats import NOT_DISTINGUISHABLE


def _items(signal: float, seed: int, n_q: int = 12, per_q: int = 3, d: int = 128, n_lat: int = 256):
    # (offset: random_directions(seed=s) draws from manual_seed(s) too; a decoder of the same draws would match)
    g = torch.Generator().manual_seed(10_000 + seed)
    W = torch.nn.functional.normalize(torch.randn(n_lat, d, generator=g), dim=-1)
    trait = W[7]
    groups = [q for q in range(n_q) for _ in range(per_q)]
    pos = torch.randn(len(groups), d, generator=g) + signal * trait
    neg = torch.randn(len(groups), d, generator=g)
    return pos, neg, groups, W


def test_planted_direction_beats_the_null_with_an_interval():
    pos, neg, groups, W = _items(signal=5.0, seed=0)
    iv = fraction_explained_interval(pos, neg, groups, groups, W, ks=(5, 20), n_boot=100)
    v = iv.pop("vector")
    assert iv["n_questions"] == 12 and iv["n_boot"] == 100
    for k in ("5", "20"):
        e = iv["per_k"][k]
        assert e["lo"] <= e["hi"] and e["n"] == 12  # percentile interval: it need not contain the value
    null = fraction_explained_null(v, W, ks=(5, 20), n=30)
    assert set(interval_verdicts(iv, null).values()) == {"distinguishable from the null"}


def test_noise_is_not_called_an_effect():
    calls = 0
    for seed in range(8):
        pos, neg, groups, W = _items(signal=0.0, seed=seed)
        iv = fraction_explained_interval(pos, neg, groups, groups, W, ks=(5,), n_boot=60, seed=seed)
        null = fraction_explained_null(iv.pop("vector"), W, ks=(5,), n=30, seed=seed)
        calls += interval_verdicts(iv, null)["5"] != NOT_DISTINGUISHABLE
    assert calls <= 1


def test_handling_is_applied_to_every_resample():
    pos, neg, groups, W = _items(signal=3.0, seed=1)
    pos[:, 3] += 50.0  # a massive dimension on one side only would dominate the raw vector

    def post(v: torch.Tensor) -> torch.Tensor:
        return handle_vector(v, "drop_massive", dims=[3])

    raw = fraction_explained_interval(pos, neg, groups, groups, W, ks=(5,), n_boot=40)
    handled = fraction_explained_interval(pos, neg, groups, groups, W, ks=(5,), n_boot=40, post=post)
    assert float(handled["vector"][3]) == 0.0
    assert handled["per_k"]["5"]["lo"] > raw["per_k"]["5"]["hi"]
