"""Self-describing folders for persona vectors and Assistant axes: ``config.json`` + ``vectors.safetensors``.

The folder loads without featurescope: ``json.load(open("config.json"))`` names every tensor and, for each row,
the layer in TransformerLens (``blocks.L.hook_resid_post``), Hugging Face (``hidden_states[L + 1]``, the output of
``model.layers[L]``) and llama.cpp (``direction.L``) conventions; ``safetensors.torch.load_file`` reads the
tensors. :func:`load_pretrained` gives back the featurescope object.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from safetensors.torch import load_file
from torch import Tensor

from ..axis.vector import AssistantAxis
from ..errors import FeaturescopeError
from ..persona.vector import PersonaVector
from ..runs import jsonable
from ..store import write_json
from ..versions import environment
from .target import MARK, atomic_folder, check_folder_target

PERSONA_FORMAT = "featurescope.persona_vector/1"
AXIS_FORMAT = "featurescope.assistant_axis/1"
PRETRAINED_FORMATS = (PERSONA_FORMAT, AXIS_FORMAT)
TENSORS = "vectors.safetensors"
_HOOK = re.compile(r"^blocks\.(\d+)\.hook_resid_post$")


def layer_conventions(hook: str) -> dict[str, Any]:
    """One residual-stream hook in the three conventions other tools use."""
    m = _HOOK.match(hook)
    if not m:
        raise FeaturescopeError(f"{hook!r} is not a residual-stream hook blocks.L.hook_resid_post: cannot export it")
    L = int(m.group(1))
    return {
        "transformer_lens_hook": hook,
        "layer": L,
        "hf_hidden_states_index": L + 1,
        "hf_module": f"model.layers.{L}",
        "llama_cpp_tensor": f"direction.{L}" if L >= 1 else None,
    }


def _config(obj: PersonaVector | AssistantAxis) -> dict[str, Any]:
    common = {
        MARK: 1,
        "model": obj.model,
        "stage": obj.stage,
        "kind": obj.kind,
        "d_model": int(obj.vectors.shape[-1]),
        "layers": [layer_conventions(h) for h in obj.hooks],
        "layer_note": "row i of every per-layer tensor belongs to layers[i]: the residual stream after block L "
        "(TransformerLens blocks.L.hook_resid_post = Hugging Face hidden_states[L + 1]); steering adds alpha * "
        "vectors[i] there",
        "featurescope": environment().get("featurescope"),
    }
    if isinstance(obj, PersonaVector):
        return {
            "format": PERSONA_FORMAT,
            **common,
            "trait": obj.trait,
            "n_pos": obj.n_pos,
            "n_neg": obj.n_neg,
            "thresholds": obj.thresholds,
            "extraction": obj.extra,
            "tensors": {
                "vectors": "[n_layers, d_model] float32: mean(trait responses) - mean(baseline responses), after "
                "the massive-activation handling in extraction.handling",
                **(
                    {"raw": "[n_layers, d_model] float32: the plain mean difference before that handling"}
                    if obj.raw is not None
                    else {}
                ),
            },
        }
    return {
        "format": AXIS_FORMAT,
        **common,
        "role_names": obj.role_names,
        "role_categories": obj.role_categories,
        "collection": obj.extra,
        "tensors": {
            "vectors": "[n_layers, d_model] float32: default Assistant mean - mean of the role vectors (Lu et al.)",
            "role_vectors": "[n_roles, n_layers, d_model] float32, rows in role_names order",
            "role_counts": "[n_roles] int64: responses averaged per role",
            "default_mean": "[n_layers, d_model] float32: mean activation of the default Assistant's answers",
            "default_projections": "[n_default, n_layers] float32: their projections on the unit axis",
            **(
                {"token_quantiles": "[n_layers, q] float32: per-token projection quantiles (capping thresholds)"}
                if obj.token_quantiles is not None
                else {}
            ),
        },
    }


def save_pretrained(obj: PersonaVector | AssistantAxis, folder: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``folder/config.json`` and ``folder/vectors.safetensors`` atomically. An existing folder is replaced
    only when it is an earlier featurescope export and ``overwrite`` is set."""
    if not isinstance(obj, PersonaVector | AssistantAxis):
        raise TypeError(f"save_pretrained takes a PersonaVector or an AssistantAxis, not {type(obj).__name__}")
    folder = Path(folder)
    check_folder_target(folder, overwrite)
    cfg = jsonable(_config(obj))
    with atomic_folder(folder) as tmp:
        obj.save(tmp / TENSORS)  # the tensors, with featurescope's own metadata in the safetensors header
        for extra in tmp.glob("*.json"):  # AssistantAxis.save writes a readable .json beside; config.json has it
            extra.unlink()
        write_json(tmp / "config.json", cfg, indent=2)
    return folder


def read_pretrained(folder: str | Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """``(config, tensors)`` of an exported folder - what a reader without featurescope does in two lines."""
    folder = Path(folder)
    cfg_path, t_path = folder / "config.json", folder / TENSORS
    if not cfg_path.exists() or not t_path.exists():
        raise FeaturescopeError(f"{folder} is not an exported vector folder (needs config.json and {TENSORS})")
    try:
        cfg = json.loads(cfg_path.read_text())
    except ValueError as e:
        raise FeaturescopeError(f"{cfg_path}: not valid JSON ({e})") from e
    if cfg.get("format") not in PRETRAINED_FORMATS:
        raise FeaturescopeError(
            f"{cfg_path}: unknown format {cfg.get('format')!r}; expected one of {PRETRAINED_FORMATS}"
        )
    tensors = load_file(str(t_path))
    n = len(cfg.get("layers", []))
    if tensors["vectors"].shape != (n, cfg.get("d_model")):
        raise FeaturescopeError(
            f"{folder}: vectors have shape {tuple(tensors['vectors'].shape)} but config.json describes {n} layers "
            f"of width {cfg.get('d_model')}"
        )
    return cfg, tensors


def load_pretrained(folder: str | Path) -> PersonaVector | AssistantAxis:
    """The featurescope object of a folder written by :func:`save_pretrained`."""
    cfg, _ = read_pretrained(folder)
    path = Path(folder) / TENSORS
    return PersonaVector.load(path) if cfg["format"] == PERSONA_FORMAT else AssistantAxis.load(path)
