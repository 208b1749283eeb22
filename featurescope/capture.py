"""Batched activation capture through TransformerLens hooks.

The forward pass stops after the last block a requested hook lives in (``stop_at_layer``) and never computes the
unembedding. Each hook reduces its activations *inside* the hook (mean over response tokens, mean over prompt
tokens, last prompt token, or all tokens), so a capture never holds a full activation cache. Prompts are sorted by
length before batching (less padding); batches are right-padded, which leaves the real tokens' activations
unchanged under causal attention, so no attention mask is needed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import torch

from .configs import Config
from .errors import PromptError
from .formatting import FormattedPrompt, format_conversation
from .forward import (
    REDUCTIONS,
    Activations,
    Reduction,
    capture_prompts,
    check_request,
    reduce_batch,
    stop_layer,
)
from .models import Model
from .store import ActivationStore


@dataclasses.dataclass(frozen=True)
class CaptureConfig(Config):
    hooks: tuple[str, ...]
    reduction: Reduction = "response_mean"
    batch_size: int = 16
    dtype: str = "float32"  # dtype activations are kept in (float32 or bfloat16/float16 to halve disk and memory)


def default_hooks(model: Model) -> list[str]:
    """Residual stream after every block."""
    return [f"blocks.{L}.hook_resid_post" for L in range(model.n_layers)]


def as_prompts(model: Model, prompts: Sequence[Any], **fmt_kw: Any) -> list[FormattedPrompt]:
    """Format anything conversation-like; already formatted prompts pass through."""
    if isinstance(prompts, (str, FormattedPrompt)):
        prompts = [prompts]
    out = []
    for i, p in enumerate(prompts):
        if isinstance(p, FormattedPrompt):
            out.append(p)
        else:
            try:
                out.append(format_conversation(model, p, **fmt_kw))
            except PromptError as e:
                raise PromptError(f"prompt {i}: {e}") from e
    return out


def capture(
    model: Model,
    prompts: Sequence[Any],
    hooks: Sequence[str] | None = None,
    *,
    reduction: Reduction | str = "response_mean",  # any string: an unknown one is a clear PromptError
    batch_size: int = 16,
    dtype: str | torch.dtype = "float32",
    progress: bool = True,
    store: Any = None,
    fwd_hooks: Sequence[tuple[str, Callable]] = (),
    outlier_k: float | None = None,
    **fmt_kw: Any,
) -> Activations:
    """Capture activations of ``model`` at ``hooks`` (default: residual stream after every block).

    ``prompts`` are formatted prompts, conversations, or strings (formatted for the model's stage). ``store`` (an
    :class:`featurescope.store.ActivationStore` or a folder path) streams the result to disk shard by shard and
    resumes an interrupted capture. ``fwd_hooks`` are extra TransformerLens hooks to run (e.g. steering).
    ``outlier_k`` (mean reductions): leave tokens above ``outlier_k`` x the prompt's median norm out of its mean.
    """
    if outlier_k is not None and store is not None:
        raise ValueError("outlier_k is not supported with a store (stored means are plain means)")
    fprompts = as_prompts(model, prompts, **fmt_kw)
    hook_list = check_request(model, fprompts, list(hooks) if hooks is not None else default_hooks(model), reduction)
    out_dtype = dtype if isinstance(dtype, torch.dtype) else getattr(torch, str(dtype))
    if store is not None:
        st = store if isinstance(store, ActivationStore) else ActivationStore(store)
        return st.capture(
            model,
            fprompts,
            hook_list,
            reduction=reduction,
            batch_size=batch_size,
            dtype=out_dtype,
            progress=progress,
            fwd_hooks=fwd_hooks,
        )
    return capture_prompts(
        model,
        fprompts,
        hook_list,
        reduction=reduction,
        batch_size=batch_size,
        dtype=out_dtype,
        progress=progress,
        fwd_hooks=fwd_hooks,
        outlier_k=outlier_k,
    )


__all__ = [
    "REDUCTIONS",
    "Activations",
    "CaptureConfig",
    "Reduction",
    "as_prompts",
    "capture",
    "capture_prompts",
    "check_request",
    "default_hooks",
    "reduce_batch",
    "stop_layer",
]
