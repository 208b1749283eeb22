"""Features of an answer that the trained judges read: sentence embeddings, the trait-anchor margin, how much the
answer echoes the trait's eliciting instructions, and surface measures of broken text."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from ..measures import looks_degenerate
from ..traits import Trait
from .base import Embedder, distinct_bigram_ratio

TEXT_FEATURES = (
    "distinct_bigram_ratio",
    "degenerate",
    "letter_fraction",
    "log_words",
    "repeated_sentence_fraction",
    "long_word_fraction",
)

_SENT = re.compile(r"[^.!?\n]+")


def text_features(answer: str) -> list[float]:
    """Surface measures of broken text (see :data:`TEXT_FEATURES`)."""
    a = answer.strip()
    words = a.split()
    sents = [s.strip().lower() for s in _SENT.findall(a) if s.strip()]
    rep = 1 - len(set(sents)) / len(sents) if sents else 0.0
    letters = sum(c.isalpha() for c in a)
    return [
        distinct_bigram_ratio(a) if a else 0.0,
        1.0 if (not a or looks_degenerate(a)) else 0.0,
        letters / max(1, len(a.replace(" ", ""))),
        math.log1p(len(words)),
        rep,
        sum(len(w) > 15 for w in words) / max(1, len(words)),
    ]


def text_matrix(answers: Sequence[str]) -> Float[Tensor, "n f"]:
    return torch.tensor([text_features(a) for a in answers], dtype=torch.float32).reshape(len(answers), -1)


def trait_features(
    emb: Embedder, trait: Trait, questions: Sequence[str], answers: Sequence[str]
) -> Float[Tensor, "n f"]:
    """[answer embedding (384), anchor margin, echo of the instructions, text features] per answer."""
    e = emb.embed([a if a.strip() else "(no answer)" for a in answers])
    q = emb.embed([x if x.strip() else "?" for x in questions])
    perp = torch.nn.functional.normalize(e - (e * q).sum(-1, keepdim=True) * q, dim=-1)
    pos, neg = emb.anchors(trait)
    margin = perp @ pos - perp @ neg
    instr = emb.embed([p.pos for p in trait.instructions] + [p.neg for p in trait.instructions])
    echo = (e @ instr.T).max(-1).values
    return torch.cat([e, margin[:, None], echo[:, None], text_matrix(answers)], dim=1)
