"""Models: layer-index conversion (Hugging Face hidden_states <-> TransformerLens hooks)."""

from __future__ import annotations

import re

from ..errors import (
    HookNameError,
    LayerError,
)


def hook_for_hf_hidden_state(index: int, n_layers: int) -> str:
    """Hugging Face ``output_hidden_states`` index -> TransformerLens hook.

    ``hidden_states[0]`` is the (scaled) embedding = ``blocks.0.hook_resid_pre``; ``hidden_states[i]`` for
    ``1 <= i < n_layers`` is ``blocks.{i-1}.hook_resid_post``. The last entry ``hidden_states[n_layers]`` is, in
    Hugging Face's Llama/Gemma/Qwen code, taken *after* the final norm, so it equals ``ln_final.hook_normalized``
    (times the norm weight), not ``blocks.{n_layers-1}.hook_resid_post``. persona_vectors' "layer 20" is
    ``hidden_states[20]`` = ``blocks.19.hook_resid_post``.
    """
    if not 0 <= index <= n_layers:
        raise LayerError(f"hidden_states index {index} out of range 0..{n_layers}")
    if index == 0:
        return "blocks.0.hook_resid_pre"
    return f"blocks.{index - 1}.hook_resid_post"


def hf_hidden_state_for_hook(hook: str, n_layers: int) -> int:
    """TransformerLens residual hook -> Hugging Face ``hidden_states`` index (inverse of the above)."""
    m = re.fullmatch(r"blocks\.(\d+)\.hook_resid_(pre|post)", hook)
    if not m:
        raise HookNameError(f"{hook!r} is not a residual-stream hook (blocks.L.hook_resid_pre|post)")
    L, where = int(m.group(1)), m.group(2)
    if L >= n_layers:
        raise LayerError(f"layer {L} out of range (n_layers={n_layers})")
    return L if where == "pre" else L + 1
