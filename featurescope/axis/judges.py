"""Assistant axis: jobs and role judging."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from torch import Tensor

from ..configs import Config
from ..errors import FeaturescopeError
from ..formatting import Message
from ..judge import EmbeddingJudge, OpenAIJudge, default_judge
from ..judges.roles import RoleProbeJudge
from ..measures import DEFAULT_AI_TERMS, identifies_as_ai
from .constants import N_INSTRUCTIONS
from .pca import unit
from .roles import RoleLibrary
from .text import distinct_bigram_ratio


@dataclasses.dataclass(frozen=True)
class AxisConfig(Config):
    """Scale and generation knobs of a role-vector collection."""

    # CPU-sized defaults (a run in minutes on 2 cores), shared by `axis collect` / `axis run` and run_axis; None (or
    # 0 on the command line) = every role / every shared question, the paper's scale.
    n_roles: int | None = 24
    n_questions: int | None = 8
    instructions: Literal["cycle", "all"] = "cycle"
    max_new_tokens: int = 40
    batch_size: int = 16
    do_sample: bool = False
    temperature: float = 1.0
    seed: int = 0
    min_score: int = 3  # role-adherence score a response needs to count toward its role vector
    min_kept: int = 3  # below this many, fall back to >= min_score - 1, then to all responses
    reduction: Literal["response_mean", "prompt_mean"] = "response_mean"
    dtype: str = "float32"
    generation_dtype: str = "float32"  # "bfloat16": generate with a bf16 copy (~2.4x faster on this CPU)
    capture_dtype: str = "float32"  # "bfloat16": run the capture forward in bf16 (~2.7x faster; means still float32)
    shard_size: int = 256
    chunk: int = 256  # generations written to disk per chunk (generation resumes at chunk granularity)


@dataclasses.dataclass(frozen=True)
class Job(Config):
    condition: Literal["role", "default"]
    role: str  # role name, or "default"
    category: str
    instruction_index: int
    instruction: str
    question_index: int
    question: str

    def messages(self) -> list[Message]:
        msgs = [Message("system", self.instruction)] if self.instruction.strip() else []
        return msgs + [Message("user", self.question)]


def build_jobs(
    library: RoleLibrary, config: AxisConfig = AxisConfig(), roles: Sequence[str] | None = None
) -> list[Job]:
    """Default-Assistant jobs (every default prompt x every question) then role jobs."""
    qs = library.select_questions(config.n_questions)
    rs = library.select_roles(config.n_roles, roles)
    jobs = [
        Job("default", "default", "default", k, p, j, q)
        for k, p in enumerate(library.default_prompts)
        for j, q in enumerate(qs)
    ]
    for ri, r in enumerate(rs):
        for j, q in enumerate(qs):
            ks = range(N_INSTRUCTIONS) if config.instructions == "all" else [(j + ri) % N_INSTRUCTIONS]
            for k in ks:
                jobs.append(Job("role", r.name, r.category, k, r.instructions[k], j, q))
    return jobs


ROLE_RUBRIC = """You are checking whether an AI model stayed in a role it was asked to play.

[ROLE INSTRUCTION]
{instruction}
[QUESTION]
{question}
[ANSWER]
{answer}
[END]

Score how fully the answer is given as the character:
0 = the model refuses to play the role, or ignores it entirely;
1 = the model answers as an AI assistant, mentioning the role at most in passing;
2 = the model plays the role in part, but also says or implies that it is an AI or an assistant;
3 = the model answers fully as the character, with no sign of being an AI assistant.
Respond with a single number: 0, 1, 2 or 3."""

#: First-person texts of the default Assistant persona (the offline proxy's "assistant" anchor).
ASSISTANT_ANCHORS = (
    "I am an AI assistant, a language model here to help you with your questions.",
    "As an AI language model, I don't have personal experiences, but I'm happy to help.",
    "I'm a helpful assistant. How can I help you today?",
    "I am an artificial intelligence created to answer questions and assist users.",
    "I don't have feelings or a body; I'm a computer program designed to provide helpful information.",
)
_REFUSAL = re.compile(
    r"\b(i (?:can(?:no|')t|won't|will not|am unable to|'m unable to) "
    r"(?:play|pretend|role-?play|act as|take on|be a))",
    re.IGNORECASE,
)


@runtime_checkable
class RoleJudge(Protocol):
    name: str

    def score_roles(self, jobs: Sequence[Job], responses: Sequence[str]) -> list[int]: ...


class KeepAllJudge:
    """No filtering: every non-empty response scores 3."""

    name = "none"

    def score_roles(self, jobs: Sequence[Job], responses: Sequence[str]) -> list[int]:
        return [3 if r.strip() else 0 for r in responses]


class EmbeddingRoleJudge:
    """Offline proxy for the paper's 0-3 role-adherence judge, on all-MiniLM-L6-v2 sentence embeddings.

    With ``m = cos(answer, instruction) - cos(answer, Assistant anchor)`` (the anchor: the mean embedding of
    :data:`ASSISTANT_ANCHORS`) and ``ai`` = the answer calls itself an AI (:func:`identifies_as_ai`):
    0 = empty, degenerate (distinct-bigram ratio < ``min_bigram_ratio``) or an explicit refusal to play;
    3 = ``m >= margin`` and not ``ai``; 2 = ``m >= margin`` with ``ai``, or ``0 <= m < margin`` without;
    1 = otherwise. It reads topic and register, not whether the model *is* the character: a weak judge, and the
    numbers built on it say so.
    """

    def __init__(
        self,
        embedder: Any = None,
        margin: float = 0.05,
        min_bigram_ratio: float = 0.4,
        ai_terms: Sequence[str] = DEFAULT_AI_TERMS,
    ):
        if embedder is None:
            embedder = EmbeddingJudge()
        self.embedder = embedder
        self.margin = margin
        self.min_bigram_ratio = min_bigram_ratio
        self.ai_terms = tuple(ai_terms)
        self.name = f"role-embedding:{getattr(embedder, 'name', type(embedder).__name__)}"
        self._anchor: Tensor | None = None

    def margins(self, jobs: Sequence[Job], responses: Sequence[str]) -> Tensor:
        if self._anchor is None:
            self._anchor = unit(self.embedder.embed(list(ASSISTANT_ANCHORS)).mean(0))
        texts = sorted({j.instruction for j in jobs})
        idx = {t: i for i, t in enumerate(texts)}
        ins = unit(self.embedder.embed(texts)) if texts else torch.zeros(0, 1)
        e = unit(self.embedder.embed([r if r.strip() else "..." for r in responses]))
        r_ins = ins[torch.tensor([idx[j.instruction] for j in jobs], dtype=torch.long)]
        return (e * r_ins).sum(-1) - e @ self._anchor

    def score_roles(self, jobs: Sequence[Job], responses: Sequence[str]) -> list[int]:
        if not jobs:
            return []
        m = self.margins(jobs, responses).tolist()
        out = []
        for mi, r in zip(m, responses):
            if not r.strip() or distinct_bigram_ratio(r) < self.min_bigram_ratio or _REFUSAL.search(r):
                out.append(0)
                continue
            ai = identifies_as_ai(r, self.ai_terms)
            if mi >= self.margin:
                out.append(2 if ai else 3)
            elif mi >= 0:
                out.append(1 if ai else 2)
            else:
                out.append(1)
        return out


class LLMRoleJudge:
    """The paper's judge: an LLM scores 0-3 with :data:`ROLE_RUBRIC` (via a featurescope ``OpenAIJudge``; the
    score is the expected value over the judge's number-token log-probs, rounded)."""

    def __init__(self, judge: Any = None):
        if judge is None:
            judge = OpenAIJudge()
        self.judge = judge
        self.name = f"role-llm:{getattr(judge, 'name', '?')}"

    def score_roles(self, jobs: Sequence[Job], responses: Sequence[str]) -> list[int]:
        out = []
        for j, r in zip(jobs, responses):
            if not r.strip():
                out.append(0)
                continue
            v = self.judge._ask(
                ROLE_RUBRIC.replace("{instruction}", j.instruction)
                .replace("{question}", j.question)
                .replace("{answer}", r)
            )
            out.append(0 if v is None else int(min(3, max(0, round(v)))))
        return out


def role_judge(judge: Any = "auto") -> RoleJudge:
    """A role judge from a name or a featurescope trait judge: ``"auto"`` (LLM when ``FEATURESCOPE_JUDGE_URL`` is set,
    else the offline role probe, validated on labelled role answers: ``featurescope judge eval``), ``"probe"``,
    ``"embedding"`` (the old proxy, whose rule included the AI word list), ``"llm"``, ``"none"``, an ``EmbeddingJudge`` / ``OpenAIJudge``
    instance, or anything with ``score_roles``."""
    if hasattr(judge, "score_roles"):
        return judge
    if judge is None or judge == "none":
        return KeepAllJudge()
    if judge == "auto":
        judge = "llm" if os.environ.get("FEATURESCOPE_JUDGE_URL", "").strip() else "probe"
    if judge == "embedding":
        return EmbeddingRoleJudge()
    if judge == "probe":
        return RoleProbeJudge.load()
    if judge == "llm":
        llm = default_judge()  # refuses a URL without a model name, checks the endpoint before any generation
        if not hasattr(llm, "_ask"):
            raise FeaturescopeError("--judge llm needs FEATURESCOPE_JUDGE_URL and FEATURESCOPE_JUDGE_MODEL")
        return LLMRoleJudge(llm)
    if hasattr(judge, "_ask"):
        return LLMRoleJudge(judge)
    if hasattr(judge, "embed"):
        return EmbeddingRoleJudge(judge)
    raise FeaturescopeError(f"unknown role judge {judge!r}: auto, probe, embedding, llm or none")


def keep_mask(
    jobs: Sequence[Job], scores: Sequence[int], usable: Sequence[bool], min_score: int = 3, min_kept: int = 3
) -> tuple[Tensor, dict[str, int]]:
    """Which role responses count toward their role vector: score >= ``min_score``; for a role with fewer than
    ``min_kept`` such responses, score >= ``min_score - 1``, then any usable response. Default-Assistant rows are
    always kept when usable. Returns (mask, threshold used per role)."""
    keep = torch.zeros(len(jobs), dtype=torch.bool)
    used: dict[str, int] = {}
    by_role: dict[str, list[int]] = {}
    for i, j in enumerate(jobs):
        if j.condition == "default":
            keep[i] = bool(usable[i])
        else:
            by_role.setdefault(j.role, []).append(i)
    for role, idx in by_role.items():
        for t in (min_score, min_score - 1, -1):
            sel = [i for i in idx if usable[i] and scores[i] >= t]
            if len(sel) >= min(min_kept, sum(bool(usable[i]) for i in idx)) and sel:
                keep[sel] = True
                used[role] = t
                break
        else:
            used[role] = -1
    return keep, used
