"""Judges: score an answer 0-100 for a trait and for coherence, and measure how far to trust them.

* :mod:`.embedding` - the sentence-embedding judge (all-MiniLM-L6-v2, offline);
* :mod:`.openai` - any OpenAI-compatible endpoint (Chen et al.'s rubric and log-prob scoring);
* :mod:`.written` - agreement with the 120 hand-written labels;
* :mod:`.choose` - the default judge.
"""

from __future__ import annotations

from .base import COHERENCE_RUBRIC, LABELS_PATH, Judge, Score, distinct_bigram_ratio
from .choose import default_judge
from .embedding import EmbeddingJudge
from .openai import OpenAIJudge, aggregate_number_logprobs
from .written import agreement, spearman

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
