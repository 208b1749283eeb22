"""A supervised offline judge: per-trait logistic probes on sentence-embedding features (:mod:`.features`) and a
coherence probe on surface features, trained only on the hand-written labels and the *dev* split of the real-output
set (never the test split). The shipped weights (``data/judge/probe.safetensors``) are rebuilt by
``featurescope judge train``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ..errors import FeaturescopeError
from ..traits import Trait, load_trait
from .base import Embedder, Score
from .embedding import EmbeddingJudge
from .evalset import TraitItem
from .features import TEXT_FEATURES, text_matrix, trait_features
from .logistic import Logistic, fit_cv

PROBE_PATH = Path(__file__).resolve().parents[1] / "data" / "judge" / "probe.safetensors"


class ProbeJudge:
    """Trait score = 100 * P(expresses) from the trait's probe; coherence = 100 * P(not broken)."""

    def __init__(
        self,
        traits: dict[str, Logistic],
        coherence: Logistic,
        embedder: Embedder | None = None,
        info: dict[str, Any] | None = None,
    ):
        self.traits = traits
        self.coherence = coherence
        self.embedder = embedder or EmbeddingJudge()
        self.info = dict(info or {})
        self.name = "probe:all-MiniLM-L6-v2"

    def score_many(self, trait: Any, questions: Sequence[str], answers: Sequence[str]) -> list[Score]:
        tr: Trait = trait if isinstance(trait, Trait) else load_trait(trait)
        if tr.name not in self.traits:
            raise FeaturescopeError(
                f"the probe judge has no probe for trait {tr.name!r} (trained: {', '.join(sorted(self.traits))}); "
                "train one with `featurescope judge train` or use --judge embedding / an endpoint"
            )
        if not answers:
            return []
        x = trait_features(self.embedder, tr, questions, answers)
        p = self.traits[tr.name].prob(x)
        c = self.coherence.prob(text_matrix(answers))
        return [Score(trait=100 * float(pi), coherence=100 * float(ci)) for pi, ci in zip(p, c)]

    def save(self, path: str | Path = PROBE_PATH) -> Path:
        state: dict[str, torch.Tensor] = {}
        for name, m in self.traits.items():
            state.update(m.state(f"trait.{name}"))
        state.update(self.coherence.state("coherence"))
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        meta = {"traits": json.dumps(sorted(self.traits)), "info": json.dumps(self.info)}
        save_file({k: v.contiguous() for k, v in state.items()}, str(p), metadata=meta)
        return p

    @classmethod
    def load(cls, path: str | Path = PROBE_PATH, embedder: Embedder | None = None) -> ProbeJudge:
        p = Path(path)
        if not p.is_file():
            raise FeaturescopeError(f"probe judge weights {p} do not exist; train them with `featurescope judge train`")

        with safe_open(str(p), "pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(p))
        names = json.loads(meta.get("traits", "[]"))
        return cls(
            {n: Logistic.from_state(state, f"trait.{n}") for n in names},
            Logistic.from_state(state, "coherence"),
            embedder,
            json.loads(meta.get("info", "{}")),
        )


def train_probe(items: Sequence[TraitItem], embedder: Embedder | None = None, seed: int = 0) -> ProbeJudge:
    """Fit the per-trait probes on ``items`` (labels ``expresses``) and the coherence probe on those with a coherence
    label (broken = coherence <= 1; the written set counts as fluent). The caller passes training rows only."""
    emb = embedder or EmbeddingJudge()
    traits: dict[str, Logistic] = {}
    by_trait: dict[str, list[TraitItem]] = {}
    for it in items:
        by_trait.setdefault(it.trait, []).append(it)
    for name, rows in sorted(by_trait.items()):
        tr = load_trait(name)
        x = trait_features(emb, tr, [r.question for r in rows], [r.answer for r in rows])
        y = torch.tensor([r.expresses for r in rows])
        traits[name] = fit_cv(x, y, seed=seed)
    fluent = torch.tensor([it.coherence is None or it.coherence > 1 for it in items])
    coh = fit_cv(text_matrix([it.answer for it in items]), fluent, seed=seed)
    info = {
        "n_train": len(items),
        "n_by_split": {s: sum(it.split == s for it in items) for s in sorted({it.split for it in items})},
        "text_features": list(TEXT_FEATURES),
        "seed": seed,
    }
    return ProbeJudge(traits, coh, emb, info)
