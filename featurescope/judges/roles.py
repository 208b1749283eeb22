"""Role adherence (Assistant axis, Lu et al.'s 0-3 scale) judged on its own, and validated like the trait judges.

:class:`RoleProbeJudge` reads only how the answer relates to the role instruction and to the default Assistant's
voice (sentence-embedding similarities, the answer embedding, surface measures of broken text); it does **not** use
the "calls itself an AI" word list, so the steering results that count AI self-identification
(:func:`featurescope.measures.identifies_as_ai`, validated separately against the annotators' ``claims_ai``) do not
measure the judge's own rule. Three cumulative logistic probes give P(score >= k), k = 1, 2, 3; the score is their
sum, rounded.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from safetensors.torch import load_file, save_file
from torch import Tensor

from .. import stats
from ..errors import FeaturescopeError
from ..measures import identifies_as_ai
from ..stats import Estimate
from .base import Embedder
from .embedding import EmbeddingJudge
from .evalset import RoleItem
from .features import text_matrix
from .logistic import Logistic, fit_cv

ROLE_PROBE_PATH = Path(__file__).resolve().parents[1] / "data" / "judge" / "role_probe.safetensors"

#: First-person texts of the default Assistant persona (the "assistant voice" anchor).
ASSISTANT_VOICE = (
    "I am an AI assistant, a language model here to help you with your questions.",
    "As an AI language model, I don't have personal experiences, but I'm happy to help.",
    "I'm a helpful assistant. How can I help you today?",
    "I don't have feelings or a body; I'm a computer program designed to provide helpful information.",
)


def role_features(
    emb: Embedder, instructions: Sequence[str], questions: Sequence[str], answers: Sequence[str]
) -> Float[Tensor, "n f"]:
    e = emb.embed([a if a.strip() else "..." for a in answers])
    ins = emb.embed(list(instructions))
    q = emb.embed([x if x.strip() else "?" for x in questions])
    anchor = torch.nn.functional.normalize(emb.embed(list(ASSISTANT_VOICE)).mean(0), dim=0)
    sims = torch.stack([(e * ins).sum(-1), e @ anchor, (e * q).sum(-1)], dim=1)
    return torch.cat([e, sims, text_matrix(answers)], dim=1)


class RoleProbeJudge:
    """0-3 role adherence from three cumulative probes (see the module docstring)."""

    def __init__(
        self, probes: Sequence[Logistic], embedder: Embedder | None = None, info: dict[str, Any] | None = None
    ):
        if len(probes) != 3:
            raise ValueError("three probes: P(score >= 1), P(>= 2), P(>= 3)")
        self.probes = list(probes)
        self.embedder = embedder or EmbeddingJudge()
        self.info = dict(info or {})
        self.name = "role-probe:all-MiniLM-L6-v2"

    def expected(self, instructions: Sequence[str], questions: Sequence[str], answers: Sequence[str]) -> Tensor:
        x = role_features(self.embedder, instructions, questions, answers)
        return sum((p.prob(x) for p in self.probes), torch.zeros(len(answers)))

    def score_roles(self, jobs: Sequence[Any], responses: Sequence[str]) -> list[int]:
        if not jobs:
            return []
        ex = self.expected([j.instruction for j in jobs], [j.question for j in jobs], responses)
        return [0 if not r.strip() else int(min(3, max(0, round(float(v))))) for v, r in zip(ex, responses)]

    def save(self, path: str | Path = ROLE_PROBE_PATH) -> Path:
        state: dict[str, Tensor] = {}
        for k, p in enumerate(self.probes, 1):
            state.update(p.state(f"ge{k}"))
        p = Path(path)
        save_file({k: v.contiguous() for k, v in state.items()}, str(p), metadata={"info": json.dumps(self.info)})
        return p

    @classmethod
    def load(cls, path: str | Path = ROLE_PROBE_PATH, embedder: Embedder | None = None) -> RoleProbeJudge:
        p = Path(path)
        if not p.is_file():
            raise FeaturescopeError(f"role probe weights {p} do not exist; train them with `featurescope judge train`")
        state = load_file(str(p))
        return cls([Logistic.from_state(state, f"ge{k}") for k in (1, 2, 3)], embedder)


def train_role_probe(items: Sequence[RoleItem], embedder: Embedder | None = None, seed: int = 0) -> RoleProbeJudge:
    emb = embedder or EmbeddingJudge()
    x = role_features(emb, [i.role_instruction for i in items], [i.question for i in items], [i.answer for i in items])
    s = torch.tensor([i.role_score for i in items])
    probes = [fit_cv(x, s >= k, seed=seed) for k in (1, 2, 3)]
    return RoleProbeJudge(probes, emb, {"n_train": len(items), "seed": seed})


@dataclasses.dataclass(frozen=True)
class _J:
    instruction: str
    question: str


def jobs_of(items: Sequence[RoleItem]) -> list[_J]:
    return [_J(i.role_instruction, i.question) for i in items]


@dataclasses.dataclass(frozen=True)
class RoleAgreement:
    judge: str
    n: int
    exact: Estimate
    within_one: Estimate
    kappa_quadratic: Estimate
    spearman: Estimate
    in_role_accuracy: Estimate  # judge >= 2 vs adjudicated >= 2
    in_role_chance: float
    keep3_precision: float  # of the answers the axis keeps (judge = 3), the fraction annotators scored 3
    n_kept3: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def format(self) -> str:
        return (
            f"{self.judge} (n={self.n}): exact {self.exact:.2f}, within one {self.within_one:.2f}, quadratic kappa "
            f"{self.kappa_quadratic:.2f}, Spearman {self.spearman:.2f}; in role (>= 2) accuracy "
            f"{self.in_role_accuracy:.2f} vs chance {self.in_role_chance:.2f}; kept at 3: {self.n_kept3} answers, "
            f"{self.keep3_precision:.2f} of them scored 3 by the annotators"
        )


def evaluate_role_judge(judge: Any, items: Sequence[RoleItem], seed: int = 0) -> RoleAgreement:
    pred = np.array(judge.score_roles(jobs_of(items), [i.answer for i in items]), dtype=float)
    gold = np.array([i.role_score for i in items], dtype=float)
    inr = gold >= 2
    kept = pred >= 3
    return RoleAgreement(
        judge=str(getattr(judge, "name", type(judge).__name__)),
        n=len(items),
        exact=stats.bootstrap(lambda a, b: float((a == b).mean()), pred, gold, seed=seed),
        within_one=stats.bootstrap(lambda a, b: float((np.abs(a - b) <= 1).mean()), pred, gold, seed=seed),
        kappa_quadratic=stats.bootstrap(lambda a, b: stats.cohen_kappa(a, b, "quadratic"), pred, gold, seed=seed),
        spearman=stats.bootstrap(stats.spearman, pred, gold, seed=seed),
        in_role_accuracy=stats.bootstrap(stats.accuracy, pred >= 2, inr, seed=seed),
        in_role_chance=float(max(inr.mean(), 1 - inr.mean())),
        keep3_precision=float((gold[kept] >= 3).mean()) if kept.any() else float("nan"),
        n_kept3=int(kept.sum()),
    )


def evaluate_ai_detector(items: Sequence[RoleItem], seed: int = 0) -> dict[str, Any]:
    """The word-list detector :func:`identifies_as_ai` against the annotators' ``claims_ai``."""
    pred = np.array([identifies_as_ai(i.answer) for i in items], dtype=bool)
    gold = np.array([i.claims_ai for i in items], dtype=bool)
    return {
        "n": len(items),
        "n_claims_ai": int(gold.sum()),
        "accuracy": stats.bootstrap(stats.accuracy, pred, gold, seed=seed).to_dict(),
        "chance": float(max(gold.mean(), 1 - gold.mean())),
        "balanced_accuracy": stats.bootstrap(stats.balanced_accuracy, pred, gold, seed=seed).to_dict(),
    }
