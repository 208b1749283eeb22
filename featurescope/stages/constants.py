"""Stages: constants."""

from __future__ import annotations

from ..errors import FeaturescopeError

PARTS: tuple[str, ...] = ("transfer", "matching", "shift", "persona", "crosscoder")

#: Why no crosscoder is trained here (checked against the project's pins; see the module docstring).
CROSSCODER_STATUS = (
    "no crosscoder library fits: PyPI 'dictionary-learning' (0.1.0, the only release) has no CrossCoder class (the "
    "crosscoder code lives only in a GitHub fork that is not on PyPI), and installing it would replace torch "
    "2.13.0+cpu with torch 2.14.1 plus ~3 GB of CUDA wheels (via its pin nnsight>=0.3,<0.4, which requires "
    "torchvision and diffusers); sae-lens 6.54, transformer-lens 3.9 and eai-sparsify 1.3 have no crosscoder. "
    "featurescope therefore analyses a crosscoder trained elsewhere (load_crosscoder: dictionary_learning CrossCoder "
    "or Kissane/Nanda-style state dicts) and does not train one."
)


class StagesError(FeaturescopeError):
    """Bad input to the cross-stage analysis."""


class DictionaryMismatchError(StagesError):
    """Two dictionaries (or a dictionary and activations) do not share a width."""


class StageMismatchError(StagesError):
    """The base and post-trained checkpoints cannot be compared token for token."""
