"""Post-training: the steering hook applied during training (Chen et al.'s *preventative steering*).

:func:`decoder_layers` finds the decoder layers of a Hugging Face causal LM (bare, or wrapped by peft);
:class:`AddToLayer` is the forward hook that adds ``alpha * v`` to one layer's output hidden states.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ..errors import FeaturescopeError


def decoder_layers(hf: Any) -> Any:
    """The decoder layers (a module list) of ``hf``: a Hugging Face causal LM, bare or wrapped by peft."""
    for path in ("model.layers", "base_model.model.model.layers", "model.model.layers", "model.language_model.layers"):
        obj = hf
        try:
            for part in path.split("."):
                obj = getattr(obj, part)
            return obj
        except AttributeError:
            continue
    raise FeaturescopeError("cannot find the decoder layers of this model for steering")


class AddToLayer:
    """Forward hook adding ``alpha * v`` to a decoder layer's output hidden states (= TL ``blocks.L.hook_resid_post``)."""

    def __init__(self, v: Tensor, alpha: float):
        self.delta = alpha * v

    def __call__(self, module: Any, inputs: Any, output: Any) -> Any:
        if isinstance(output, tuple):
            return (output[0] + self.delta.to(output[0].dtype), *output[1:])
        return output + self.delta.to(output.dtype)


# the old private names, kept as aliases for now
_decoder_layers = decoder_layers
_AddToLayer = AddToLayer
