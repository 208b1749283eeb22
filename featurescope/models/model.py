"""Models: metadata and the Model wrapper."""

from __future__ import annotations

import copy
import dataclasses
import re
from typing import Any, Literal

import torch

from ..configs import Config
from ..errors import (
    FeaturescopeError,
    HookNameError,
    LayerError,
    did_you_mean,
)
from .constants import Stage


@dataclasses.dataclass(frozen=True)
class ModelInfo(Config):
    name: str
    stage: Stage
    source: Literal["offline-package", "hub", "local", "adapter", "object"]
    dtype: str
    n_layers: int
    d_model: int
    n_ctx: int
    d_vocab: int
    has_chat_template: bool
    backend: Literal["HookedTransformer", "TransformerBridge"]
    architecture: str
    device: str
    adapter: str | None = None
    weights_sha256: str | None = None


_LAYER_RE = re.compile(r"^blocks\.(\d+)\.")


class Model:
    """A TransformerLens model (``.tl``), its tokenizer and metadata (``.info``).

    Hook names are TransformerLens' (``blocks.{L}.hook_resid_post``) for both backends.
    """

    def __init__(self, tl: Any, tokenizer: Any, info: ModelInfo):
        self.tl = tl
        self.tokenizer = tokenizer
        self.info = info
        tl.eval()
        for p in tl.parameters():
            p.requires_grad_(False)

    # -- conveniences -------------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.info.name

    @property
    def stage(self) -> Stage:
        return self.info.stage

    @property
    def n_layers(self) -> int:
        return self.info.n_layers

    @property
    def d_model(self) -> int:
        return self.info.d_model

    @property
    def device(self) -> torch.device:
        return torch.device(self.info.device)

    @property
    def is_bridge(self) -> bool:
        return self.info.backend == "TransformerBridge"

    @property
    def has_chat_template(self) -> bool:
        return self.info.has_chat_template

    def __repr__(self) -> str:
        i = self.info
        return (
            f"Model({i.name!r}, stage={i.stage}, {i.backend}, n_layers={i.n_layers}, d_model={i.d_model}, "
            f"chat_template={i.has_chat_template}, source={i.source})"
        )

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:left'>{k}</th><td>{v}</td></tr>" for k, v in self.info.to_dict().items()
        )
        return f"<table><caption><b>featurescope Model</b></caption>{rows}</table>"

    def cast(self, dtype: str | torch.dtype) -> Model:
        """A copy of this model with weights in ``dtype`` (kept and reused: one copy per dtype), sharing the tokenizer.

        For generation speed on CPU: on this project's 2-core AVX-512-BF16 machine, bfloat16 decoding of Gemma 3
        270M through TransformerLens is ~2.5x faster than float32 (the 262k-token unembedding dominates each step;
        `benchmarks/axis_collect.py`). Greedy text may differ from float32 text; capture activations for vectors
        with the float32 model. (Hugging Face's own bfloat16 ``generate`` was measured 3x slower than this on
        left-padded batches here, so it is not used.)"""
        dt = as_dtype(dtype)
        if str(dt).replace("torch.", "") == self.info.dtype:
            return self
        cache = self.__dict__.setdefault("_casts", {})
        if dt not in cache:
            tl = copy.deepcopy(self.tl).to(dt)
            if hasattr(tl, "cfg") and hasattr(tl.cfg, "dtype"):
                tl.cfg.dtype = dt
            cache[dt] = Model(tl, self.tokenizer, dataclasses.replace(self.info, dtype=str(dt).replace("torch.", "")))
        return cache[dt]

    # -- hooks and layers ---------------------------------------------------------------------------------------
    @property
    def hook_names(self) -> list[str]:
        return available_hook_names(self.tl)

    def resid_hook(self, layer: int, where: Literal["pre", "mid", "post"] = "post") -> str:
        """TransformerLens residual-stream hook name for ``layer`` (negative counts from the end)."""
        L = self.check_layer(layer)
        return f"blocks.{L}.hook_resid_{where}"

    def check_layer(self, layer: int) -> int:
        n = self.n_layers
        if not isinstance(layer, int) or isinstance(layer, bool):
            raise LayerError(f"layer must be an int, got {layer!r}")
        if not -n <= layer < n:
            raise LayerError(f"layer {layer} is out of range for {self.name}: it has {n} layers (0..{n - 1}).")
        return layer % n

    def check_hook(self, name: str) -> str:
        """Return ``name`` if this model has that hook, else raise with the closest names it does have."""
        return check_hook_name(self.tl, name, self.n_layers, model_name=self.name)


def hook_layer(name: str) -> int | None:
    """Block index a hook lives in (``blocks.5.attn.hook_z`` -> 5), or None for ``hook_embed``-style hooks."""
    m = _LAYER_RE.match(name)
    return int(m.group(1)) if m else None


def available_hook_names(tl: Any) -> list[str]:
    names = set(tl.hook_dict.keys())
    # TransformerBridge also answers to TransformerLens' legacy names (hook_resid_post, ...) through aliases.
    aliases = getattr(tl, "_hook_alias_registry", None) or getattr(tl, "hook_aliases", None)
    if isinstance(aliases, dict):
        names |= {k for k in aliases if isinstance(k, str)}
    n_layers = tl.cfg.n_layers
    if is_bridge_module(tl):
        for L in range(n_layers):
            for w in ("pre", "mid", "post"):
                names.add(f"blocks.{L}.hook_resid_{w}")
            names |= {f"blocks.{L}.hook_attn_out", f"blocks.{L}.hook_mlp_out"}
    return sorted(names)


def check_hook_name(tl: Any, name: str, n_layers: int, model_name: str = "model") -> str:
    if not isinstance(name, str) or not name:
        raise HookNameError(f"hook name must be a non-empty string, got {name!r}")
    L = hook_layer(name)
    if L is not None and L >= n_layers:
        raise LayerError(
            f"hook {name!r}: layer {L} is out of range for {model_name} ({n_layers} layers, 0..{n_layers - 1})."
        )
    names = available_hook_names(tl)
    if name in names:
        return name
    raise HookNameError(f"{model_name} has no hook {name!r}.{did_you_mean(name, names)}")


def is_bridge_module(tl: Any) -> bool:
    return type(tl).__name__ == "TransformerBridge"


def as_dtype(d: str | torch.dtype) -> torch.dtype:
    if isinstance(d, torch.dtype):
        return d
    try:
        return {
            "float32": torch.float32,
            "fp32": torch.float32,
            "bfloat16": torch.bfloat16,
            "bf16": torch.bfloat16,
            "float16": torch.float16,
            "fp16": torch.float16,
        }[d]
    except KeyError:
        raise FeaturescopeError(f"unknown dtype {d!r}; use float32, bfloat16 or float16") from None
