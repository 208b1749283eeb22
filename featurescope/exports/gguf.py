"""llama.cpp control vectors: a persona vector or an Assistant axis as a GGUF file that steers a GGUF model outside
Python (``llama-cli --control-vector-scaled FILE:SCALE``), the format repeng and llama.cpp's cvector-generator write.

Layout (llama.cpp ``llama_adapter_cvec``): ``general.architecture = "controlvector"``,
``controlvector.model_hint`` = the target model's GGUF architecture, ``controlvector.layer_count`` = n_layers - 1,
and one F32 tensor ``direction.L`` of width d_model per steered layer, added to the output of (zero-based) block L -
TransformerLens' ``blocks.L.hook_resid_post``. llama.cpp has no slot for block 0, so layer 0 cannot be exported.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import gguf
import numpy as np
import torch
from torch import Tensor

from ..axis.vector import AssistantAxis
from ..errors import FeaturescopeError
from ..models import Model
from ..persona.vector import PersonaVector
from .pretrained import layer_conventions
from .target import MARK

#: Hugging Face architecture -> GGUF ``general.architecture`` (llama.cpp's name, checked against model_hint).
GGUF_ARCHITECTURES: dict[str, str] = {
    "Gemma3ForCausalLM": "gemma3",
    "Gemma3ForConditionalGeneration": "gemma3",
    "Gemma2ForCausalLM": "gemma2",
    "GemmaForCausalLM": "gemma",
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "llama",
    "Qwen2ForCausalLM": "qwen2",
    "Qwen3ForCausalLM": "qwen3",
    "GPT2LMHeadModel": "gpt2",
}
_META = f"{MARK}.featurescope"
#: Model-name fragments -> GGUF architecture, for a vector exported without its model loaded.
_NAME_HINTS = (
    ("gemma-3", "gemma3"),
    ("gemma3", "gemma3"),
    ("gemma-2", "gemma2"),
    ("smollm", "llama"),
    ("llama", "llama"),
    ("qwen3", "qwen3"),
    ("qwen2", "qwen2"),
    ("gpt2", "gpt2"),
)


def hint_for(model_name: str) -> str | None:
    """The GGUF architecture of a model named like ``offline:gemma-3-270m`` or ``HuggingFaceTB/SmolLM2-135M``."""
    n = model_name.lower()
    return next((h for frag, h in _NAME_HINTS if frag in n), None)


@dataclasses.dataclass(frozen=True)
class ControlVectorFile:
    """A control-vector GGUF read back: its hint, layer count and ``{layer: direction}``."""

    path: Path
    model_hint: str
    layer_count: int
    directions: Mapping[int, np.ndarray]
    featurescope: Mapping[str, Any]

    def check_for(self, model: Model) -> None:
        """Raise unless this file fits ``model``: llama.cpp's layer count (n_layers - 1), width and architecture."""
        if self.layer_count != model.n_layers - 1:
            raise FeaturescopeError(
                f"{self.path}: control vector for {self.layer_count + 1} layers (layer_count {self.layer_count}) but "
                f"{model.name} has {model.n_layers} layers (llama.cpp expects layer_count {model.n_layers - 1})"
            )
        widths = {int(v.shape[0]) for v in self.directions.values()}
        if widths != {model.d_model}:
            raise FeaturescopeError(
                f"{self.path}: directions of width {sorted(widths)}; {model.name} has d_model {model.d_model}"
            )
        want = GGUF_ARCHITECTURES.get(model.info.architecture)
        if want and self.model_hint != want:
            raise FeaturescopeError(
                f"{self.path}: model_hint {self.model_hint!r}, but {model.name} is a {want!r} model"
            )


def _per_layer(obj: PersonaVector | AssistantAxis | Mapping[int, Tensor]) -> dict[int, Tensor]:
    if isinstance(obj, PersonaVector | AssistantAxis):
        return {int(layer_conventions(h)["layer"]): obj.vectors[i] for i, h in enumerate(obj.hooks)}
    return {int(k): torch.as_tensor(v) for k, v in obj.items()}


def export_control_vector(
    obj: PersonaVector | AssistantAxis | Mapping[int, Tensor],
    path: str | Path,
    *,
    layers: Sequence[int] | Literal["all"],
    scale: float = 1.0,
    model: Model | None = None,
    model_hint: str | None = None,
    n_layers: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``scale * vector[L]`` for each of ``layers`` (``"all"``: every layer >= 1 the object has) as a
    llama.cpp control vector. featurescope steers one layer at a time (``alpha * v_L`` at ``blocks.L``): export
    that one layer with ``scale = alpha`` to reproduce it; llama.cpp's ``--control-vector-scaled FILE:S``
    multiplies again by S.

    The target's architecture and layer count come from ``model`` or from ``model_hint`` and ``n_layers``."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FeaturescopeError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
    if path.exists() and _read_mark(path) is None:
        raise FeaturescopeError(f"{path} exists and is not a featurescope control vector; refusing to replace it")
    vecs = _per_layer(obj)
    chosen = sorted(L for L in vecs if L >= 1) if layers == "all" else [int(L) for L in layers]
    if not chosen:
        raise FeaturescopeError("no layer to export (llama.cpp cannot steer block 0)")
    for L in chosen:
        if L < 1:
            raise FeaturescopeError(f"layer {L}: llama.cpp control vectors have no slot for block 0 (direction.0)")
        if L not in vecs:
            raise FeaturescopeError(f"layer {L}: the vector has layers {sorted(vecs)}")
    if model is not None:
        hint = model_hint or GGUF_ARCHITECTURES.get(model.info.architecture)
        n = n_layers or model.n_layers
        d = {int(vecs[L].shape[-1]) for L in chosen}
        if d != {model.d_model}:
            raise FeaturescopeError(f"vector width {sorted(d)} != {model.name}'s d_model {model.d_model}")
    else:
        hint = model_hint or hint_for(str(getattr(obj, "model", "")))
        n = n_layers
        if n is None and sorted(vecs) == list(range(len(vecs))):
            n = len(vecs)  # the vector covers every layer of its model
    if not hint:
        raise FeaturescopeError(
            "name the target model's GGUF architecture (model_hint / --model-hint, e.g. 'gemma3', 'llama') or pass "
            f"a model whose architecture is one of {sorted(GGUF_ARCHITECTURES)}"
        )
    if n is None:
        raise FeaturescopeError("give the target model's layer count (n_layers) or the model")
    if max(chosen) >= n:
        raise FeaturescopeError(f"layer {max(chosen)} does not exist in a {n}-layer model")
    meta: dict[str, Any] = {
        "source_model": getattr(obj, "model", None),
        "kind": type(obj).__name__,
        "trait": getattr(obj, "trait", None),
        "scale": scale,
        "layers": chosen,
        "convention": "direction.L is added to the output of block L (TransformerLens blocks.L.hook_resid_post)",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        w = gguf.GGUFWriter(tmp, "controlvector")
        w.add_string("controlvector.model_hint", hint)
        w.add_int32("controlvector.layer_count", n - 1)
        w.add_string(_META, json.dumps(meta))
        for L in chosen:
            w.add_tensor(f"direction.{L}", (vecs[L].detach().float() * scale).numpy().astype(np.float32))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _field_value(reader: gguf.GGUFReader, key: str) -> Any:
    f = reader.fields.get(key)
    if f is None:
        return None
    part = f.parts[f.data[0]]
    if f.types and f.types[0] == gguf.GGUFValueType.STRING:
        return bytes(part).decode("utf-8")
    return part.tolist()[0]


def _read_mark(path: Path) -> str | None:
    try:
        return _field_value(gguf.GGUFReader(str(path)), _META)
    except Exception:  # noqa: BLE001 - not a GGUF at all
        return None


def read_control_vector(path: str | Path) -> ControlVectorFile:
    """Read a llama.cpp control-vector GGUF (ours or another tool's) with the ``gguf`` package."""
    path = Path(path)
    try:
        r = gguf.GGUFReader(str(path))
    except Exception as e:  # noqa: BLE001 - gguf raises ValueError / struct errors on garbage
        raise FeaturescopeError(f"{path}: not a readable GGUF file ({type(e).__name__}: {e})") from e
    arch = _field_value(r, "general.architecture")
    if arch != "controlvector":
        raise FeaturescopeError(f"{path}: general.architecture is {arch!r}, not 'controlvector'")
    dirs: dict[int, np.ndarray] = {}
    for t in r.tensors:
        if not t.name.startswith("direction."):
            continue
        dirs[int(t.name.split(".", 1)[1])] = np.asarray(t.data, dtype=np.float32).reshape(-1).copy()
    mark = _field_value(r, _META)
    return ControlVectorFile(
        path=path,
        model_hint=str(_field_value(r, "controlvector.model_hint") or ""),
        layer_count=int(_field_value(r, "controlvector.layer_count") or 0),
        directions=dirs,
        featurescope=json.loads(mark) if mark else {},
    )
