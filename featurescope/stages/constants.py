"""Stages: constants."""

from __future__ import annotations

from ..errors import FeaturescopeError

PARTS: tuple[str, ...] = ("transfer", "matching", "shift", "persona", "crosscoder")

#: How a crosscoder is trained here (no crosscoder library fits the project's pins; checked, see below).
CROSSCODER_STATUS = (
    "train one with `featurescope crosscoder train` (featurescope.crosscoder: a BatchTopK crosscoder registered as a "
    "sae-lens architecture and trained by sae-lens' SAETrainer), then pass its folder to `stages --crosscoder`. No "
    "crosscoder library fits the pins: PyPI 'dictionary-learning' (0.1.0, the only release) has no CrossCoder class "
    "and would replace torch 2.13.0+cpu with torch 2.14.1 plus ~3 GB of CUDA wheels (via nnsight>=0.3,<0.4); "
    "sae-lens 6.54, transformer-lens 3.9 and eai-sparsify 1.3 have none. load_crosscoder also reads dictionary_learning "
    "CrossCoder and Kissane/Nanda-style state dicts trained elsewhere."
)


class StagesError(FeaturescopeError):
    """Bad input to the cross-stage analysis."""


class DictionaryMismatchError(StagesError):
    """Two dictionaries (or a dictionary and activations) do not share a width."""


class StageMismatchError(StagesError):
    """The base and post-trained checkpoints cannot be compared token for token."""
