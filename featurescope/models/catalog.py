"""Models: listing."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from . import hub
from .constants import OFFLINE_PREFIX, Stage
from .registry import FLAGSHIP_BASE, FLAGSHIP_POST_TRAINED, OFFLINE_MODELS, POST_TRAINED_PAT, OfflineSpec, adapter_path


def cache_dir() -> Path:
    """Where dequantised checkpoints and other reusable work live (``$FEATURESCOPE_CACHE`` overrides)."""
    env = os.environ.get("FEATURESCOPE_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "featurescope"


def _package_installed(spec: OfflineSpec) -> bool:
    return importlib.util.find_spec(spec.module) is not None


def converted_dir(spec: OfflineSpec) -> Path:
    return cache_dir() / "models" / spec.key


def is_converted(spec: OfflineSpec) -> bool:
    d = converted_dir(spec)
    return (d / "featurescope.json").exists() and (d / "model.safetensors").exists()


def hooked_transformer_names() -> list[str]:
    """Official model names (and aliases) TransformerLens' HookedTransformer can load from the hub."""
    from transformer_lens import loading_from_pretrained as lfp  # heavy: transformer-lens (~4-6 s)

    names = list(lfp.OFFICIAL_MODEL_NAMES)  # pyright: ignore[reportPrivateImportUsage]
    aliases = getattr(lfp, "MODEL_ALIASES", {})
    for v in aliases.values():
        names.extend(v)
    return names


def list_models() -> list[dict[str, Any]]:
    """What can be loaded here: offline checkpoints (and whether they are installed / converted) and hub names."""
    rows: list[dict[str, Any]] = []
    for key, spec in OFFLINE_MODELS.items():
        rows.append(
            {
                "name": OFFLINE_PREFIX + key,
                "source": "offline-package",
                "stage": spec.stage,
                "package": spec.package,
                "installed": _package_installed(spec) and (spec.adapter is None or adapter_path(spec).exists()),
                "converted": is_converted(OFFLINE_MODELS[spec.base] if spec.base else spec),
                "description": spec.description,
            }
        )
    online = hub.hub_reachable()
    for name in (FLAGSHIP_BASE, FLAGSHIP_POST_TRAINED, "gemma-2-2b", "gemma-2-2b-it", "Qwen/Qwen2.5-0.5B-Instruct"):
        rows.append(
            {
                "name": name,
                "source": "hub",
                "stage": infer_stage(name),
                "installed": online or hub.hf_cached(name),
                "converted": None,
                "description": "Hugging Face hub (needs network or a warm HF cache)",
            }
        )
    return rows


def infer_stage(name: str) -> Stage:
    return "post-trained" if POST_TRAINED_PAT.search(name) else "base"
