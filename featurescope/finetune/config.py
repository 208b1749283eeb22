"""The one home of the fine-tuning experiment's defaults."""

from __future__ import annotations

import dataclasses

from ..configs import Config
from .data import TRAITS, set_names


@dataclasses.dataclass(frozen=True)
class FinetuneShiftConfig(Config):
    model: str = "offline:smollm2-135m-instruct"
    # "trait=PATH@LAYER": a persona vector (.safetensors, `persona extract`) and the block whose output it is read at
    vectors: tuple[str, ...] = ()
    traits: tuple[str, ...] = TRAITS
    sets: tuple[str, ...] = tuple(set_names())
    data: str | None = None  # folder of the dataset files (default: the shipped featurescope/data/finetune)
    seeds: tuple[int, ...] = (0, 1)  # LoRA seeds per set
    n_train: int | None = None  # examples per set after holding out (None: all)
    n_heldout: int = 20  # examples per set kept out of training for the held-out loss
    epochs: int = 1
    lr: float = 1e-3
    batch_size: int = 8
    lora_r: int = 8
    max_len: int = 256
    warmup_steps: int = 5
    n_eval_questions: int | None = None  # per trait, from the trait's eval_questions (None: all)
    samples: int = 2  # sampled answers per evaluation question (sampling seeds 0..samples-1)
    temperature: float = 0.7  # at 1.0 the 135M model rambled in a smoke run
    max_new_tokens: int = 48
    checkpoint_every: int = 5  # steps between checkpoints whose projections are tracked (0: none)
    n_projection_examples: int = 40  # examples per set for the data's projection difference
    axis: str | None = None  # "PATH@LAYER": an Assistant axis (.safetensors) whose position is tracked too
    preventative_set: str | None = "evil-strong"  # the set trained again under preventative steering
    preventative_alpha: float = 0.25  # steering norm, as a fraction of the mean residual norm at the vector's layer
    judge: str = "auto"
    batch_size_eval: int = 16
