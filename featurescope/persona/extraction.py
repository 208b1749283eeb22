"""Persona: extraction."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

from ..capture import capture, default_hooks
from ..configs import Config
from ..errors import FeaturescopeError
from ..formatting import Message
from ..generate import generate
from ..models import Model
from ..store import atomic_write_text
from .vector import PersonaVector, mean_difference, separation


@dataclasses.dataclass(frozen=True)
class ExtractionConfig(Config):
    pos_threshold: float = 50.0  # keep positive responses scoring >= this
    neg_threshold: float = 50.0  # keep negative responses scoring < this
    coherence_threshold: float = 50.0
    max_new_tokens: int = 64
    n_questions: int | None = None  # None = all extraction questions
    n_pairs: int | None = None  # None = all 5 instruction pairs
    batch_size: int = 8
    seed: int = 0


def vectors_from_conversations(
    model: Model,
    pos: Sequence[Any],
    neg: Sequence[Any],
    hooks: Sequence[str],
    *,
    trait: str,
    kinds: Sequence[str] = ("response_mean", "prompt_mean", "last_prompt"),
    batch_size: int = 16,
    thresholds: dict[str, float] | None = None,
    extra: dict[str, Any] | None = None,
) -> tuple[dict[str, PersonaVector], dict[str, dict[str, Tensor]]]:
    """Persona vectors from already-chosen trait-expressing (``pos``) and non-expressing (``neg``) conversations,
    each ending with the assistant response. Returns the vectors per kind and the ``[n, layer, d]`` activations."""
    vectors: dict[str, PersonaVector] = {}
    acts_by_kind: dict[str, dict[str, Tensor]] = {}
    for kind in kinds:
        side_acts = {}
        for side, convs in (("pos", pos), ("neg", neg)):
            a = capture(model, convs, hooks, reduction=kind, batch_size=batch_size, progress=False)
            side_acts[side] = a.stacked().transpose(0, 1)  # [n, layer, d]
        acts_by_kind[kind] = side_acts
        vectors[kind] = PersonaVector(
            trait=trait,
            vectors=mean_difference(side_acts["pos"], side_acts["neg"]),
            hooks=list(hooks),
            kind=kind,
            model=model.name,
            stage=model.stage,
            n_pos=len(pos),
            n_neg=len(neg),
            thresholds=dict(thresholds or {}),
            extra=dict(extra or {}),
        )
    return vectors, acts_by_kind


def extract(
    model: Model,
    trait: Any,
    judge: Any,
    *,
    config: ExtractionConfig = ExtractionConfig(),
    hooks: Sequence[str] | None = None,
    progress: bool = True,
    answers_path: str | Path | None = None,
) -> dict[str, Any]:
    """Run Chen et al.'s extraction pipeline for ``trait`` on ``model``.

    For every instruction pair and extraction question, generate a response under the positive and the negative
    instruction (system prompt for a post-trained model; the transcript's narrator preface for a base model),
    score each with ``judge``, keep positive responses with trait score >= ``pos_threshold`` and negative ones
    below ``neg_threshold`` (both coherent), and take the mean difference of their activations per layer for the
    three vector kinds. Returns ``{"vectors": {kind: PersonaVector}, "responses": [...], "counts": {...}}``.
    ``answers_path``: the generated answers are written there (JSONL) before judging, so a judge failure does
    not lose them.
    """
    from ..traits import Trait, load_trait

    tr: Trait = trait if isinstance(trait, Trait) else load_trait(trait)
    hooks = list(hooks) if hooks is not None else default_hooks(model)
    pairs = tr.instructions[: config.n_pairs] if config.n_pairs else tr.instructions
    questions = tr.extraction_questions[: config.n_questions] if config.n_questions else tr.extraction_questions
    t0 = time.time()
    jobs = []
    for pi, pair in enumerate(pairs):
        for q in questions:
            for side, instr in (("pos", pair.pos), ("neg", pair.neg)):
                jobs.append(
                    {
                        "pair": pi,
                        "side": side,
                        "question": q,
                        "instruction": instr,
                        "messages": [Message("system", instr), Message("user", q)],
                    }
                )
    gens = generate(
        model,
        [j["messages"] for j in jobs],
        max_new_tokens=config.max_new_tokens,
        batch_size=config.batch_size,
        seed=config.seed,
        progress=progress,
    )
    t_gen = time.time() - t0
    if answers_path is not None:
        atomic_write_text(
            Path(answers_path),
            "".join(
                json.dumps(
                    {
                        "pair": j["pair"],
                        "side": j["side"],
                        "question": j["question"],
                        "instruction": j["instruction"],
                        "response": g.response,
                    }
                )
                + "\n"
                for j, g in zip(jobs, gens)
            ),
        )
    try:
        scores = judge.score_many(tr, [j["question"] for j in jobs], [g.response for g in gens])
    except FeaturescopeError as e:
        kept_note = f"; the {len(gens)} generated answers are kept in {answers_path}" if answers_path else ""
        raise FeaturescopeError(f"judging failed: {e}{kept_note}") from e
    kept: dict[str, list[int]] = {"pos": [], "neg": []}
    for i, (j, g, s) in enumerate(zip(jobs, gens, scores)):
        j.update(response=g.response, trait_score=s.trait, coherence=s.coherence)
        ok = g.formatted is not None and s.coherence >= config.coherence_threshold
        if j["side"] == "pos" and ok and s.trait >= config.pos_threshold:
            kept["pos"].append(i)
        elif j["side"] == "neg" and ok and s.trait < config.neg_threshold:
            kept["neg"].append(i)
        j["kept"] = i in kept[j["side"]]
    t_judge = time.time() - t0 - t_gen
    if not kept["pos"] or not kept["neg"]:
        raise FeaturescopeError(
            f"{tr.name}: kept {len(kept['pos'])} positive and {len(kept['neg'])} negative responses out of "
            f"{len(jobs) // 2} each; lower the thresholds (pos {config.pos_threshold}, neg {config.neg_threshold}, "
            f"coherence {config.coherence_threshold}) or use a stronger judge"
        )
    formatted = {side: [gens[i].formatted for i in idx] for side, idx in kept.items()}
    vectors, acts_by_kind = vectors_from_conversations(
        model,
        formatted["pos"],
        formatted["neg"],
        hooks,
        trait=tr.name,
        batch_size=config.batch_size * 2,
        thresholds={"pos": config.pos_threshold, "neg": config.neg_threshold, "coherence": config.coherence_threshold},
        extra={
            "judge": getattr(judge, "name", type(judge).__name__),
            "n_questions": len(questions),
            "n_pairs": len(pairs),
            "max_new_tokens": config.max_new_tokens,
            "seed": config.seed,
        },
    )
    sep = separation(
        acts_by_kind["response_mean"]["pos"], acts_by_kind["response_mean"]["neg"], vectors["response_mean"].vectors
    )
    return {
        "vectors": vectors,
        "responses": jobs,
        "separation": sep,
        "counts": {"generated_per_side": len(jobs) // 2, "kept_pos": len(kept["pos"]), "kept_neg": len(kept["neg"])},
        "timings": {"generate": t_gen, "judge": t_judge, "total": time.time() - t0},
    }


def load_written(path: str | Path) -> list[dict[str, str]]:
    """Read a written-responses file: JSONL rows ``{"id", "question", "pos", "neg"}`` (paired answers to the same
    question, one expressing the trait and one not; e.g. ``data/traits/evil.written.jsonl``)."""
    p = Path(path)
    if not p.exists():
        raise FeaturescopeError(f"written-responses file not found: {p}")
    rows = []
    for i, line in enumerate(p.read_text().splitlines(), 1):
        if not line.strip():
            continue
        r = json.loads(line)
        missing = [k for k in ("question", "pos", "neg") if not str(r.get(k, "")).strip()]
        if missing:
            raise FeaturescopeError(f"{p}:{i}: row lacks {', '.join(missing)} (need question, pos, neg)")
        rows.append(r)
    if not rows:
        raise FeaturescopeError(f"{p}: no rows")
    return rows


def extract_written(
    model: Model,
    trait: str,
    rows: Sequence[dict[str, str]],
    *,
    hooks: Sequence[str] | None = None,
    batch_size: int = 16,
    source: str = "",
) -> dict[str, Any]:
    """Persona vectors from *written* trait-expressing and non-expressing answers (teacher-forced extraction).

    Chen et al. generate the responses with the model itself; a small model often cannot express a trait (the
    Gemma 3 270M base's "evil" answers are barely evil), so its vector mostly carries style. Here the model reads
    paired answers to the same question (no system prompt, so prompts are identical and only the answer differs)
    and the vector is the mean difference of its activations, exactly as in :func:`extract`. The result is labelled
    ``extra["responses"] = "written"``; it answers "how does this model represent text expressing the trait", not
    "what does it do when asked to express it". Returns the same structure as :func:`extract` (no judge)."""
    hooks = list(hooks) if hooks is not None else default_hooks(model)
    t0 = time.time()
    jobs = [
        {
            "pair": r.get("id", str(i)),
            "side": side,
            "question": r["question"],
            "instruction": None,
            "response": r[side],
            "kept": True,
            "messages": [Message("user", r["question"]), Message("assistant", r[side])],
        }
        for i, r in enumerate(rows)
        for side in ("pos", "neg")
    ]
    convs = {side: [j["messages"] for j in jobs if j["side"] == side] for side in ("pos", "neg")}
    vectors, acts_by_kind = vectors_from_conversations(
        model,
        convs["pos"],
        convs["neg"],
        hooks,
        trait=trait,
        batch_size=batch_size,
        extra={"responses": "written", "source": str(source), "n_pairs": len(rows)},
    )
    sep = separation(
        acts_by_kind["response_mean"]["pos"], acts_by_kind["response_mean"]["neg"], vectors["response_mean"].vectors
    )
    return {
        "vectors": vectors,
        "responses": jobs,
        "separation": sep,
        "counts": {"written_pairs": len(rows), "kept_pos": len(rows), "kept_neg": len(rows)},
        "timings": {"capture": time.time() - t0, "total": time.time() - t0},
    }
