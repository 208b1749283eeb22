"""Assistant axis: text measures."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..judge import distinct_bigram_ratio as dbr
from ..measures import term_regex

# The AI-identity detector lives in featurescope.measures (one definition, shared with post-training evaluation).


def classify_completion(text: str, helpful: Sequence[str], fantastical: Sequence[str], n_words: int = 12) -> str:
    """Label a self-description completion: "helpful", "fantastical", "both" or "other" by whole-word matches of the
    archetype lists in its first ``n_words`` words (that is where "I am a ..." names the speaker)."""
    head = " ".join(re.findall(r"[\w'.-]+", text.lower())[:n_words])
    h = bool(helpful) and bool(term_regex(helpful).search(head))
    f = bool(fantastical) and bool(term_regex(fantastical).search(head))
    return "both" if h and f else "helpful" if h else "fantastical" if f else "other"


def distinct_bigram_ratio(text: str) -> float:
    return dbr(text)
