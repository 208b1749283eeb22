"""Choosing a judge: by name (:func:`get_judge`), and the default (an endpoint when configured, else the offline
judge chosen by ``featurescope judge eval``: :data:`DEFAULT_OFFLINE`)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

import torch

from ..errors import FeaturescopeError
from ..models import load_model
from .base import Score
from .cache import CachedJudge
from .embedding import EmbeddingJudge
from .evalset import TRAITS_PATH, TraitItem, load_trait_items, load_written_items
from .lm import LMJudge
from .openai import OpenAIJudge
from .probe import ProbeJudge

#: Judge names :func:`get_judge` knows ("lm:MODEL" takes any loadable model name).
JUDGE_NAMES = (
    "auto",
    "embedding",
    "probe",
    "lm:offline:gemma-3-270m",
    "lm:offline:smollm2-135m-instruct",
    "ensemble",
    "openai",
)

#: The ensemble's members (mean trait score; coherence from the first).
ENSEMBLE = ("probe", "lm:offline:gemma-3-270m")

#: The offline default, chosen on the real-output set (see data/judge/real/README.md and `featurescope judge eval`).
DEFAULT_OFFLINE = "probe"


def few_shot_examples(per_class: int = 3, seed: int = 0) -> dict[str, list[TraitItem]]:
    """Labelled examples for few-shot prompts: the real set's *dev* split (never test), else the written set;
    ``per_class`` expressing and as many non-expressing per trait, alternating, chosen by seed."""
    pool = load_trait_items(split="dev") if TRAITS_PATH.is_file() else load_written_items()
    g = torch.Generator().manual_seed(seed)
    out: dict[str, list[TraitItem]] = {}
    for t in sorted({x.trait for x in pool}):
        pos = [x for x in pool if x.trait == t and x.expresses and (x.coherence is None or x.coherence >= 2)]
        neg = [x for x in pool if x.trait == t and not x.expresses and (x.coherence is None or x.coherence >= 2)]
        pos = [pos[i] for i in torch.randperm(len(pos), generator=g).tolist()][:per_class]
        neg = [neg[i] for i in torch.randperm(len(neg), generator=g).tolist()][:per_class]
        shots: list[TraitItem] = []
        for a, b in zip(neg, pos):
            shots += [a, b]
        out[t] = shots
    return out


class EnsembleJudge:
    """Mean of its members' trait scores; coherence from the first member."""

    def __init__(self, members: Sequence[Any]):
        self.members = list(members)
        self.name = "ensemble(" + "+".join(str(getattr(m, "name", "?")) for m in self.members) + ")"

    def score_many(self, trait: Any, questions: Sequence[str], answers: Sequence[str]) -> list[Score]:
        per = [m.score_many(trait, questions, answers) for m in self.members]
        return [
            Score(trait=sum(s[i].trait for s in per) / len(per), coherence=per[0][i].coherence)
            for i in range(len(answers))
        ]


class ProbeOrEmbedding:
    """The probe judge for the traits it was trained on; the embedding judge (with a warning, once per trait) for
    any other trait, e.g. a user's own trait file."""

    def __init__(self, probe: Any, embedding: Any = None):
        self.probe = probe
        self._embedding = embedding
        self.name = str(probe.name)
        self._warned: set[str] = set()

    def score_many(self, trait: Any, questions: Sequence[str], answers: Sequence[str]) -> list[Score]:
        name = getattr(trait, "name", str(trait))
        if name in self.probe.traits:
            return self.probe.score_many(trait, questions, answers)
        if name not in self._warned:
            warnings.warn(
                f"the probe judge was not trained on trait {name!r}: scoring it with the embedding judge (weaker; "
                "label answers and run `featurescope judge train` to add a probe)",
                stacklevel=2,
            )
            self._warned.add(name)
        if self._embedding is None:
            self._embedding = getattr(self.probe, "embedder", None) or EmbeddingJudge()
            if not hasattr(self._embedding, "score_many"):
                self._embedding = EmbeddingJudge()
        return self._embedding.score_many(trait, questions, answers)


def get_judge(name: str = "auto", cache: bool = True) -> Any:
    """A judge by name (see :data:`JUDGE_NAMES`); ``cache``: wrapped in the on-disk judgement cache."""

    judge = _make(name)
    return CachedJudge(judge) if cache and not isinstance(judge, CachedJudge) else judge


def _make(name: str) -> Any:
    if name in ("auto", "default"):
        return default_judge()
    if name == "embedding":
        return EmbeddingJudge()
    if name == "probe":
        return ProbeOrEmbedding(ProbeJudge.load())
    if name.startswith("lm:"):
        return LMJudge(load_model(name[3:]), few_shot_examples())
    if name == "ensemble":
        return EnsembleJudge([_make(m) for m in ENSEMBLE])
    if name == "openai":
        j = OpenAIJudge()
        j.check()
        return j
    raise FeaturescopeError(f"unknown judge {name!r}; known: {', '.join(JUDGE_NAMES)} (or lm:MODEL)")


def default_judge() -> Any:
    """The OpenAI-compatible judge when ``FEATURESCOPE_JUDGE_URL`` is set (checked with one request, so a dead
    endpoint fails before anything is generated), else the offline default :data:`DEFAULT_OFFLINE`."""
    url = os.environ.get("FEATURESCOPE_JUDGE_URL", "").strip()
    if url:
        if not os.environ.get("FEATURESCOPE_JUDGE_MODEL", "").strip():
            raise FeaturescopeError(
                f"FEATURESCOPE_JUDGE_URL is set ({url}) but FEATURESCOPE_JUDGE_MODEL is not: name "
                "the judge model, or unset the URL to use the offline judge"
            )
        judge = OpenAIJudge()
        judge.check()
        return judge
    return _make(DEFAULT_OFFLINE)
