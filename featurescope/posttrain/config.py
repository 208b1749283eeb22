"""Post-training: the run configuration (:class:`PosttrainConfig`, the ``featurescope posttrain`` options)."""

from __future__ import annotations

import dataclasses

from ..configs import Config
from .data import DIALOGUES


@dataclasses.dataclass(frozen=True)
class PosttrainConfig(Config):
    base: str = "offline:gemma-3-270m"
    data: str = str(DIALOGUES)  # folder of sft-*.jsonl shards, or one .jsonl file
    heldout: str = str(DIALOGUES / "heldout.jsonl")
    epochs: int = 3
    lr: float = 2e-4
    batch_size: int = 8
    max_len: int = 1024
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    warmup_steps: int = 20
    seed: int = 0
    steer_vector: str | None = None  # persona vector (.safetensors) for preventative steering
    steer_layer: int | None = None  # TransformerLens block index: added to blocks.L.hook_resid_post
    steer_alpha: float = 5.0
    eval_max_new_tokens: int = 96
    max_dialogues: int | None = None  # seeded random subset of the dataset (a shorter run, e.g. on a CPU)
    # Embedding rows trained with the adapter (peft trainable tokens; tied to the unembedding in Gemma): the chat
    # template's turn markers. A base model has rarely had to *emit* <end_of_turn>; with LoRA alone a short run
    # learns the answers but not to stop (measured: 0% of answers ended their turn after 60 steps).
    train_tokens: tuple[str, ...] = ("<start_of_turn>", "<end_of_turn>")
    # With steer_vector: an adapter already trained with this same recipe but without steering (e.g. the shipped
    # offline:gemma-3-270m-sft) serves as the "without" arm instead of training it again.
    baseline_adapter: str | None = None
    base_eval: bool = True  # evaluate the base model's Assistant format / identity (slow: the base never stops)
