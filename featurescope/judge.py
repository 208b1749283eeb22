"""Compatibility module: the judges live in :mod:`featurescope.judges` (one module per judge). Every name that was
importable from here still is."""

from __future__ import annotations

from .judges import (
    COHERENCE_RUBRIC,
    LABELS_PATH,
    EmbeddingJudge,
    Judge,
    OpenAIJudge,
    Score,
    aggregate_number_logprobs,
    agreement,
    default_judge,
    distinct_bigram_ratio,
    spearman,
)

__all__ = [
    "COHERENCE_RUBRIC",
    "LABELS_PATH",
    "EmbeddingJudge",
    "Judge",
    "OpenAIJudge",
    "Score",
    "aggregate_number_logprobs",
    "agreement",
    "default_judge",
    "distinct_bigram_ratio",
    "spearman",
]
