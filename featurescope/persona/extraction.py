"""Persona: extraction."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from ..capture import capture, default_hooks
from ..configs import Config
from ..distributed.tasks import generate_in_chunks
from ..errors import FeaturescopeError
from ..evidence.massive import handle_vector, massive_dims, vector_shares
from ..evidence.nulls import held_out_separation
from ..formatting import Message
from ..models import Model
from ..store import write_jsonl
from ..traits import Trait, load_trait
from .extraction_results import PersonaExtraction
from .vector import PersonaVector, mean_difference, separation

#: The default massive-activation handling of persona vectors, chosen by held-out separation on the written evil
#: pairs (docs/evidence/handling-*): zeroing the massive dimensions (Gemma 3: held-out d 1.56 -> 4.04 at layer 6)
#: and leaving outlier-norm tokens out of each response mean (SmolLM2 layer 5: 2.77 -> 3.75); elsewhere neutral.
HANDLING = "drop_massive"
OUTLIER_K_TOKENS: float | None = 4.0
#: Answers generated per ``generate`` call in extraction (and per Ray task with a worker pool).
GENERATION_CHUNK = 256


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
    #: Massive-activation handling of the finished vectors (featurescope.evidence.massive.VECTOR_HANDLINGS),
    #: chosen by measurement: see docs/evidence/handling-* and RESULTS.
    handling: str = HANDLING
    #: Leave tokens above this many times the response's median norm out of its mean (None = plain mean).
    outlier_k: float | None = OUTLIER_K_TOKENS


def apply_handling(
    pos: Float[Tensor, "n_pos layer d"], neg: Float[Tensor, "n_neg layer d"], handling: str
) -> tuple[Float[Tensor, "layer d"], Float[Tensor, "layer d"], dict[str, Any]]:
    """(handled vectors, raw mean differences, metadata) per layer: the handling uses the mean of all responses
    (both sides) and the massive dimensions of their activations; the metadata records, per layer, the raw and the
    handled vector's share on the mean direction and on the massive dimensions."""
    raw = mean_difference(pos, neg)
    both = torch.cat([pos.float(), neg.float()])
    out, shares_raw, shares_h, dims_all = [], [], [], []
    for L in range(raw.shape[0]):
        mean = both[:, L].mean(0)
        dims = massive_dims(both[:, L]) if both.shape[0] > 1 else []
        v = handle_vector(raw[L], handling, mean=mean, dims=dims)
        out.append(v)
        shares_raw.append(vector_shares(raw[L], mean, dims))
        shares_h.append(vector_shares(v, mean, dims))
        dims_all.append(dims)
    meta = {
        "handling": handling,
        "massive_dims": dims_all,
        "share_on_mean_raw": [round(float(x["share_on_mean"]), 4) for x in shares_raw],
        "share_on_massive_raw": [round(float(x["share_on_massive"]), 4) for x in shares_raw],
        "share_on_mean": [round(float(x["share_on_mean"]), 4) for x in shares_h],
        "share_on_massive": [round(float(x["share_on_massive"]), 4) for x in shares_h],
    }
    return torch.stack(out), raw, meta


def held_out_by_layer(
    pos: Float[Tensor, "n_pos layer d"],
    neg: Float[Tensor, "n_neg layer d"],
    pos_groups: Sequence[int],
    neg_groups: Sequence[int],
    handling: str = HANDLING,
    *,
    seed: int = 0,
    n_boot: int = 100,
    n_perm: int = 100,
) -> list[dict[str, Any]]:
    """Per layer, separation the vector was not fitted to (vector on half of the questions, Cohen's d on the
    other half, the same handling), with its question-bootstrap interval and shuffled-label null."""
    out = []
    both = torch.cat([pos.float(), neg.float()])
    for L in range(pos.shape[1]):
        mean = both[:, L].mean(0)
        dims = massive_dims(both[:, L]) if both.shape[0] > 1 else []

        def post(v: Tensor, mean: Tensor = mean, dims: list[int] = dims) -> Tensor:
            return handle_vector(v, handling, mean=mean, dims=dims)

        ev = held_out_separation(
            pos[:, L], neg[:, L], pos_groups, neg_groups, post=post, seed=seed, n_boot=n_boot, n_perm=n_perm
        )
        out.append(ev.to_dict())
    return out


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
    handling: str = HANDLING,
    outlier_k: float | None = OUTLIER_K_TOKENS,
) -> tuple[dict[str, PersonaVector], dict[str, dict[str, Tensor]]]:
    """Persona vectors from already-chosen trait-expressing (``pos``) and non-expressing (``neg``) conversations,
    each ending with the assistant response. Returns the vectors per kind and the ``[n, layer, d]`` activations.
    ``handling``: see :func:`apply_handling` ("none" = the plain mean difference)."""
    vectors: dict[str, PersonaVector] = {}
    acts_by_kind: dict[str, dict[str, Tensor]] = {}
    for kind in kinds:
        side_acts = {}
        for side, convs in (("pos", pos), ("neg", neg)):
            a = capture(
                model,
                convs,
                hooks,
                reduction=kind,
                batch_size=batch_size,
                progress=False,
                outlier_k=(outlier_k or None) if kind != "last_prompt" else None,  # 0 = keep every token
            )
            side_acts[side] = a.stacked().transpose(0, 1)  # [n, layer, d]
        acts_by_kind[kind] = side_acts
        handled, raw, meta = apply_handling(side_acts["pos"], side_acts["neg"], handling)
        vectors[kind] = PersonaVector(
            trait=trait,
            vectors=handled,
            raw=raw if handling != "none" else None,
            hooks=list(hooks),
            kind=kind,
            model=model.name,
            stage=model.stage,
            n_pos=len(pos),
            n_neg=len(neg),
            thresholds=dict(thresholds or {}),
            extra={**dict(extra or {}), **meta, "outlier_k": outlier_k},
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
    pool: Any = None,
) -> PersonaExtraction:
    """Run Chen et al.'s extraction pipeline for ``trait`` on ``model``.

    For every instruction pair and extraction question, generate a response under the positive and the negative
    instruction (system prompt for a post-trained model; the transcript's narrator preface for a base model),
    score each with ``judge``, keep positive responses with trait score >= ``pos_threshold`` and negative ones
    below ``neg_threshold`` (both coherent), and take the mean difference of their activations per layer for the
    three vector kinds. Returns a :class:`PersonaExtraction`: the vectors per kind, every response, per-layer
    separation (in sample, and held out with its interval, null and verdict), counts and timings; read by key as
    the dict it used to be (``res["vectors"]["response_mean"]``, ``res["counts"]``; ``res.to_dict()``).
    ``answers_path``: the generated answers are written there (JSONL) before judging, so a judge failure does
    not lose them. ``pool`` (a :class:`featurescope.distributed.WorkerPool` of this model): generation runs on its
    Ray workers in chunks of :data:`GENERATION_CHUNK` (the same chunks as without it: greedy answers are identical);
    judging and capture stay in this process.
    """
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
    gens = generate_in_chunks(
        model,
        [j["messages"] for j in jobs],
        chunk=GENERATION_CHUNK,
        max_new_tokens=config.max_new_tokens,
        batch_size=config.batch_size,
        seed=config.seed,
        pool=pool,
        progress=progress,
    )
    t_gen = time.time() - t0
    if answers_path is not None:
        write_jsonl(
            Path(answers_path),
            (
                {
                    "pair": j["pair"],
                    "side": j["side"],
                    "question": j["question"],
                    "instruction": j["instruction"],
                    "response": g.response,
                }
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
        handling=config.handling,
        outlier_k=config.outlier_k,
    )
    sep = separation(
        acts_by_kind["response_mean"]["pos"], acts_by_kind["response_mean"]["neg"], vectors["response_mean"].vectors
    )
    qidx = {q: n for n, q in enumerate(questions)}
    groups = {side: [qidx[jobs[i]["question"]] for i in idx] for side, idx in kept.items()}
    if len(set(groups["pos"]) | set(groups["neg"])) >= 4:
        sep["held_out"] = held_out_by_layer(
            acts_by_kind["response_mean"]["pos"],
            acts_by_kind["response_mean"]["neg"],
            groups["pos"],
            groups["neg"],
            config.handling,
            seed=config.seed,
        )
    return PersonaExtraction.from_dict(
        {
            "vectors": vectors,
            "responses": jobs,
            "separation": sep,
            "counts": {
                "generated_per_side": len(jobs) // 2,
                "kept_pos": len(kept["pos"]),
                "kept_neg": len(kept["neg"]),
            },
            "timings": {"generate": t_gen, "judge": t_judge, "total": time.time() - t0},
        }
    )


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
    handling: str = HANDLING,
    outlier_k: float | None = OUTLIER_K_TOKENS,
) -> PersonaExtraction:
    """Persona vectors from *written* trait-expressing and non-expressing answers (teacher-forced extraction).

    Chen et al. generate the responses with the model itself; a small model often cannot express a trait (the
    Gemma 3 270M base's "evil" answers are barely evil), so its vector mostly carries style. Here the model reads
    paired answers to the same question (no system prompt, so prompts are identical and only the answer differs)
    and the vector is the mean difference of its activations, exactly as in :func:`extract`. The result is labelled
    ``extra["responses"] = "written"``; it answers "how does this model represent text expressing the trait", not
    "what does it do when asked to express it". Returns a :class:`PersonaExtraction` as :func:`extract` does (no
    judge; counts name the ``written_pairs``)."""
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
        handling=handling,
        outlier_k=outlier_k,
    )
    sep = separation(
        acts_by_kind["response_mean"]["pos"], acts_by_kind["response_mean"]["neg"], vectors["response_mean"].vectors
    )
    if len(rows) >= 4:
        q = list(range(len(rows)))
        sep["held_out"] = held_out_by_layer(
            acts_by_kind["response_mean"]["pos"], acts_by_kind["response_mean"]["neg"], q, q, handling
        )
    return PersonaExtraction.from_dict(
        {
            "vectors": vectors,
            "responses": jobs,
            "separation": sep,
            "counts": {"written_pairs": len(rows), "kept_pos": len(rows), "kept_neg": len(rows)},
            "timings": {"capture": time.time() - t0, "total": time.time() - t0},
        }
    )


def conversations_from_responses(rows: Sequence[dict[str, Any]], *, instruction: bool = True) -> dict[str, Any]:
    """Kept pos/neg conversations (and each one's question index) from a run's ``responses.jsonl`` rows;
    ``instruction=False`` drops the eliciting / suppressing system prompt (the re-read control)."""
    questions = list(dict.fromkeys(r["question"] for r in rows))
    qidx = {q: i for i, q in enumerate(questions)}
    out: dict[str, Any] = {"pos": [], "neg": [], "pos_groups": [], "neg_groups": []}
    for r in rows:
        if not r.get("kept") or r.get("side") not in ("pos", "neg"):
            continue
        msgs = ([Message("system", r["instruction"])] if instruction and r.get("instruction") else []) + [
            Message("user", r["question"]),
            Message("assistant", r["response"]),
        ]
        out[r["side"]].append(msgs)
        out[r["side"] + "_groups"].append(qidx[r["question"]])
    if not out["pos"] or not out["neg"]:
        raise FeaturescopeError(
            f"the responses file keeps {len(out['pos'])} positive and {len(out['neg'])} negative answers: need both"
        )
    return out


def rebuild(
    model: Model,
    trait: str,
    rows: Sequence[dict[str, Any]],
    *,
    config: ExtractionConfig = ExtractionConfig(),
    hooks: Sequence[str] | None = None,
    source: str = "",
) -> dict[str, Any]:
    """Persona vectors re-derived from a run's kept responses (no generation, no judge) with the current handling
    defaults, plus the **re-read control**: the same kept responses read without the system prompt that elicited
    them. If the vector comes from the instruction rather than the response, the two disagree (cosine per layer)
    and the re-read separation collapses."""
    hooks = list(hooks) if hooks is not None else default_hooks(model)
    t0 = time.time()
    res: dict[str, Any] = {}
    for tag, instr in (("with_instruction", True), ("reread", False)):
        c = conversations_from_responses(rows, instruction=instr)
        vectors, acts = vectors_from_conversations(
            model,
            c["pos"],
            c["neg"],
            hooks,
            trait=trait,
            batch_size=config.batch_size * 2,
            extra={"responses": "rebuilt" if instr else "rebuilt without the system prompt", "source": source},
            handling=config.handling,
            outlier_k=config.outlier_k,
        )
        rm = acts["response_mean"]
        sep = separation(rm["pos"], rm["neg"], vectors["response_mean"].vectors)
        if len(set(c["pos_groups"]) | set(c["neg_groups"])) >= 4:
            sep["held_out"] = held_out_by_layer(
                rm["pos"], rm["neg"], c["pos_groups"], c["neg_groups"], config.handling, seed=config.seed
            )
        res[tag] = {"vectors": vectors, "separation": sep, "n_pos": len(c["pos"]), "n_neg": len(c["neg"])}
    a, b = res["with_instruction"]["vectors"]["response_mean"], res["reread"]["vectors"]["response_mean"]
    cos = torch.nn.functional.cosine_similarity(a.vectors.float(), b.vectors.float(), dim=-1)
    return {
        "vectors": res["with_instruction"]["vectors"],
        "reread_vectors": res["reread"]["vectors"],
        "separation": res["with_instruction"]["separation"],
        "reread": {
            "separation": res["reread"]["separation"],
            "cosine_with_instruction_vector": [round(float(x), 4) for x in cos],
        },
        "counts": {"kept_pos": res["with_instruction"]["n_pos"], "kept_neg": res["with_instruction"]["n_neg"]},
        "timings": {"total": time.time() - t0},
    }
