"""Persona: steering."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, Literal

from jaxtyping import Float
from torch import Tensor

from ..errors import FeaturescopeError
from ..models import Model
from .vector import PersonaVector


def steering_hook(
    vector: Float[Tensor, " d"], alpha: float, positions: Literal["all", "response"] = "all"
) -> Callable[[Tensor, Any], Tensor]:
    """A TransformerLens hook adding ``alpha * vector`` to the activation.

    ``positions="all"`` steers every position; ``"response"`` steers only the last position of each forward pass:
    during KV-cached generation that is each newly generated token (and, in the prompt pass, the last prompt token,
    whose output is the first response token), as in Chen et al.'s response-only steering. Generation pads on the
    left, so this is right there; a batched *capture* pads on the right, so use ``"all"`` (or batch_size=1) there.
    """
    if positions not in ("all", "response"):
        raise ValueError("positions must be 'all' or 'response'")

    def fn(act: Tensor, hook: Any = None) -> Tensor:
        add = (alpha * vector).to(act.dtype).to(act.device)
        if positions == "all":
            return act + add
        act = act.clone()
        act[:, -1] += add
        return act

    return fn


@contextlib.contextmanager
def steer(
    model: Model,
    vector: Float[Tensor, " d"] | PersonaVector,
    alpha: float,
    *,
    hook: str | int | None = None,
    positions: Literal["all", "response"] = "all",
) -> Iterator[None]:
    """Context manager: every forward pass (capture, generate, ``model.tl(...)``) inside it is steered by
    ``alpha * vector`` at ``hook`` (a hook name or a layer index for its ``hook_resid_post``). The hook is removed on
    exit and on error."""
    if isinstance(vector, PersonaVector):
        if hook is None:
            raise ValueError("say which hook (or layer) of the persona vector to steer with")
        v = vector.at(hook)
    else:
        v = vector
    if hook is None:
        raise ValueError("hook (name or layer index) is required")
    name = model.resid_hook(hook) if isinstance(hook, int) else model.check_hook(hook)
    if v.shape[-1] != model.d_model:
        raise FeaturescopeError(f"vector has width {v.shape[-1]} but {model.name} has d_model {model.d_model}")
    with model.tl.hooks(fwd_hooks=[(name, steering_hook(v, alpha, positions))]):
        yield
