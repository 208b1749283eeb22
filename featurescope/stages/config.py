"""Stages: configuration."""

from __future__ import annotations

import dataclasses
from typing import Literal

from ..configs import Config
from .constants import PARTS, StagesError


@dataclasses.dataclass(frozen=True)
class StagesConfig(Config):
    """Everything :func:`run_stages` can be told. Defaults fit a 270M model on a 2-core CPU in under 15 minutes."""

    parts: tuple[str, ...] = PARTS
    seed: int = 0
    # texts
    context: int = 128  # tokens per row (plain corpus rows and packed chat rows)
    plain_rows: int = 48  # held-out corpus rows
    chat_dialogues: int = 60  # held-out dialogues (featurescope/data/dialogues/heldout.jsonl)
    max_new_tokens: int = 48  # greedy responses of the post-trained model to the held-out prompts
    batch_size: int = 16
    # transfer
    ce_rows: int = 12  # rows per (SAE, model, text set) for CE-loss recovered (3 full forwards each)
    ce_batch: int = 4  # rows per CE forward (three full-vocabulary logit tensors are held at once)
    outlier_quantile: float = 0.01
    # matching
    reuse_threshold: float = 0.7
    baselines: tuple[str, ...] = ("random", "rotated")
    block_rows: int | None = None  # None: featurescope.stages.default_blocks (CPU 1024 x 16384, GPU 8192 x 65536)
    block_cols: int | None = None
    match_dtype: str = "float32"  # "bfloat16" on a GPU for 1M-latent dictionaries
    hist_bins: int = 50
    # activation shift and cards
    shift_rank_by: Literal["frequency", "mean_activation"] = "frequency"
    top_k_shift: int = 20
    n_cards: int = 6
    card_plain_rows: int = 16
    # persona vectors
    traits: tuple[str, ...] = ()  # () = every shipped trait
    persona_questions: int = 5
    persona_kind: Literal["prompt_mean", "last_prompt"] = "prompt_mean"
    persona_format: Literal["own", "post"] = "own"  # each model's own format, or the post model's token ids for both
    persona_top_k: int = 20
    # crosscoder
    base_only_max: float = 0.1
    post_only_min: float = 0.9
    nu_max: float = 0.2  # Latent Scaling: a post-only latent is kept when nu (base/post beta) is below this

    def __post_init__(self) -> None:
        bad = set(self.parts) - set(PARTS)
        if bad:
            raise StagesError(f"unknown part(s) {sorted(bad)}; choose from {', '.join(PARTS)}")
        if not 0 < self.reuse_threshold <= 1:
            raise StagesError(f"reuse_threshold must be in (0, 1], got {self.reuse_threshold}")
        if set(self.baselines) - {"random", "rotated"}:
            raise StagesError(f"unknown baseline(s) in {self.baselines}; use 'random' and/or 'rotated'")
        if not 0 <= self.base_only_max < self.post_only_min <= 1:
            raise StagesError("need 0 <= base_only_max < post_only_min <= 1")
