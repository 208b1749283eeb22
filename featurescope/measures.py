"""Measurements on text shared by every analysis (one definition each)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from torch import Tensor

_RUN = re.compile(r"(\S)\1{9,}")  # one non-space character 10+ times in a row ("The----------")


def looks_degenerate(text: str) -> bool:
    """True for text no working model would write as an answer: empty, one character repeated, or a few words looped.

    The checks are deliberately coarse (broken decoding, not bad style): an empty answer; a run of 10+ identical
    non-space characters; one character making up half of 8+ non-space characters; or 8+ words of which fewer than
    a fifth are distinct.
    """
    t = text.strip()
    if not t:
        return True
    if _RUN.search(t):
        return True
    chars = [c for c in t if not c.isspace()]
    if len(chars) >= 8 and Counter(chars).most_common(1)[0][1] / len(chars) >= 0.5:
        return True
    words = t.lower().split()
    return len(words) >= 8 and len(set(words)) / len(words) < 0.2


def degenerate_fraction(texts: list[str]) -> float:
    """Fraction of ``texts`` that :func:`looks_degenerate` (0.0 for no texts)."""
    return sum(looks_degenerate(t) for t in texts) / len(texts) if texts else 0.0


def cohens_d(a: Tensor, b: Tensor) -> float:
    """Cohen's d of two samples with the pooled (unbiased) standard deviation; ``nan`` when it is undefined.

    Undefined means fewer than 2 values on a side, or a pooled standard deviation that is zero or below float
    precision of the values (e.g. one answer per side printed d = 262,737,887,232 before this guard).
    """
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    a, b = a.double(), b.double()
    pooled = torch.sqrt(
        (a.var(unbiased=True) * (len(a) - 1) + b.var(unbiased=True) * (len(b) - 1)) / (len(a) + len(b) - 2)
    )
    scale = torch.cat([a, b]).abs().max()
    if not torch.isfinite(pooled) or pooled <= 1e-7 * max(float(scale), 1e-12):
        return float("nan")
    return float((a.mean() - b.mean()) / pooled)


# --- "calls itself an AI": one negation-aware detector for post-training evaluation and the Assistant axis ----------
DEFAULT_AI_TERMS: tuple[str, ...] = (
    "ai",
    "a.i.",
    "artificial intelligence",
    "assistant",
    "language model",
    "llm",
    "chatbot",
    "chat bot",
    "virtual assistant",
    "computer program",
    "neural network",
    "machine learning model",
)
_NEGATION = r"(?:\bnot|\bno|\bnever|n't|\bnor)\s+(?:\w+\s+){0,2}"


def term_regex(terms: Sequence[str]) -> re.Pattern[str]:
    """Whole-word, case-insensitive (on lower-cased text) alternation of ``terms``, longest first."""
    alts = "|".join(re.escape(t.lower()) for t in sorted(terms, key=len, reverse=True))
    return re.compile(rf"(?<![\w.])(?:{alts})(?![\w])")


def identifies_as_ai(text: str, terms: Sequence[str] = DEFAULT_AI_TERMS) -> bool:
    """True when the text calls its speaker an AI / assistant / language model (whole words, case-insensitive); a
    term preceded by a negation within three words ("I'm not an AI") does not count."""
    t = text.lower().replace("\u2019", "'")
    neg = re.compile(_NEGATION + r"$")
    for m in term_regex(terms).finditer(t):
        before = t[max(0, m.start() - 40) : m.start()]
        if not neg.search(before.rstrip() + " "):
            return True
    return False
