"""Persona vectors (Chen et al. 2025): extract, steer, monitor, flag data.

A persona vector for a trait is, per layer, mean activation on trait-expressing responses minus mean activation on
non-expressing ones (``response_mean``; the paper's default), or the same over prompt tokens (``prompt_mean``) or at
the last prompt token (``last_prompt``). Vectors are not normalised. Steering adds ``alpha * v`` to the residual
stream at one layer; monitoring projects the last prompt token onto the unit vector; data flagging compares a
dataset response's projection with the model's own response to the same prompt ("projection difference").

The functions over tensors (:func:`mean_difference`, :func:`project`, :func:`separation`) are pure; the rest
drive a model through :mod:`featurescope.capture` and :mod:`featurescope.generate`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from jaxtyping import Float
from safetensors.torch import load_file
from torch import Tensor

from .capture import capture, default_hooks
from .errors import DataError, FeaturescopeError
from .formatting import Message
from .generate import generate
from .measures import cohens_d
from .models import Model
from .store import atomic_save_tensors, atomic_write_text

VectorKind = Literal["response_mean", "prompt_mean", "last_prompt"]


# ----------------------------------------------------------------------------------------------------------------
# Pure functions over tensors
# ----------------------------------------------------------------------------------------------------------------
def mean_difference(
    pos: Float[Tensor, "n_pos layer d"], neg: Float[Tensor, "n_neg layer d"]
) -> Float[Tensor, "layer d"]:
    """mean(pos) - mean(neg), per layer. Needs at least one example on each side."""
    if pos.shape[0] == 0 or neg.shape[0] == 0:
        raise FeaturescopeError(
            f"cannot take a mean difference with {pos.shape[0]} positive and {neg.shape[0]} "
            "negative examples; loosen the judge thresholds or add questions"
        )
    return pos.float().mean(0) - neg.float().mean(0)


def project(acts: Float[Tensor, "n d"], vector: Float[Tensor, " d"]) -> Float[Tensor, " n"]:
    """Scalar projection of each activation onto the unit vector along ``vector``."""
    v = vector.float()
    return acts.float() @ (v / v.norm().clamp(min=1e-12))


def separation(
    pos: Float[Tensor, "n_pos layer d"], neg: Float[Tensor, "n_neg layer d"], vectors: Float[Tensor, "layer d"]
) -> dict[str, list[float]]:
    """Per layer: mean projection of each side onto that layer's vector, their gap, and Cohen's d."""
    out: dict[str, list[float]] = {"pos_mean": [], "neg_mean": [], "gap": [], "cohens_d": []}
    for L in range(vectors.shape[0]):
        a, b = project(pos[:, L], vectors[L]), project(neg[:, L], vectors[L])
        out["pos_mean"].append(float(a.mean()))
        out["neg_mean"].append(float(b.mean()))
        out["gap"].append(float(a.mean() - b.mean()))
        out["cohens_d"].append(cohens_d(a, b))  # nan when undefined (< 2 per side, no spread)
    return out


def pearson(x: Sequence[float] | Tensor, y: Sequence[float] | Tensor) -> float:
    x = torch.as_tensor(x, dtype=torch.float64)
    y = torch.as_tensor(y, dtype=torch.float64)
    if len(x) < 3:
        return float("nan")
    x, y = x - x.mean(), y - y.mean()
    d = x.norm() * y.norm()
    return float((x @ y) / d) if d > 0 else float("nan")


# ----------------------------------------------------------------------------------------------------------------
# The vector object
# ----------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class PersonaVector:
    """Per-layer persona vectors for one trait on one model. ``vectors[i]`` belongs to ``hooks[i]``."""

    trait: str
    vectors: Float[Tensor, "layer d"]
    hooks: list[str]
    kind: str
    model: str
    stage: str
    n_pos: int
    n_neg: int
    thresholds: dict[str, float] = dataclasses.field(default_factory=dict)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def at(self, hook_or_layer: str | int) -> Float[Tensor, " d"]:
        if isinstance(hook_or_layer, int):
            hook = (
                f"blocks.{hook_or_layer % len(self.hooks)}.hook_resid_post"
                if hook_or_layer < 0
                else f"blocks.{hook_or_layer}.hook_resid_post"
            )
        else:
            hook = hook_or_layer
        if hook not in self.hooks:
            raise KeyError(f"no {self.trait} vector at {hook!r}; have {self.hooks[0]} .. {self.hooks[-1]}")
        return self.vectors[self.hooks.index(hook)]

    @property
    def norms(self) -> list[float]:
        return [float(x) for x in self.vectors.norm(dim=-1)]

    @property
    def d_model(self) -> int:
        return int(self.vectors.shape[-1])

    def check_fits(self, model: Model, hook: str | None = None, *, allow_other_model: bool = False) -> None:
        """Raise :class:`FeaturescopeError` unless this vector can be used on ``model`` (at ``hook``).

        The widths must agree. A vector extracted on another checkpoint (e.g. the base model's vector read on the
        post-trained model) is refused unless ``allow_other_model``, so that a mix-up is never silent."""
        if self.d_model != model.d_model:
            raise FeaturescopeError(
                f"the {self.trait} vector was extracted on {self.model} (width {self.d_model}), but {model.name} has "
                f"d_model {model.d_model}: extract a vector on this model"
            )
        if hook is not None and hook not in self.hooks:
            raise FeaturescopeError(
                f"the {self.trait} vector has no direction at {hook!r} (it has {self.hooks[0]} .. {self.hooks[-1]})"
            )
        if not allow_other_model and self.model != model.name:
            raise FeaturescopeError(
                f"the {self.trait} vector was extracted on {self.model}, not {model.name}; pass allow_other_model "
                "(--allow-other-model) to use it on another checkpoint of the same width on purpose"
            )

    def metadata(self) -> dict[str, Any]:
        return {
            "trait": self.trait,
            "hooks": self.hooks,
            "kind": self.kind,
            "model": self.model,
            "stage": self.stage,
            "n_pos": self.n_pos,
            "n_neg": self.n_neg,
            "thresholds": self.thresholds,
            "extra": self.extra,
        }

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        atomic_save_tensors(
            path, {"vectors": self.vectors.float()}, metadata={"featurescope": json.dumps(self.metadata())}
        )
        return path

    @classmethod
    def load(cls, path: str | Path) -> PersonaVector:
        from safetensors import safe_open

        path = Path(path)
        if not path.exists():
            raise FeaturescopeError(f"no persona vector file at {path}")
        try:
            with safe_open(str(path), "pt") as f:
                meta = json.loads((f.metadata() or {}).get("featurescope", "{}"))
            vectors = load_file(str(path))["vectors"]
        except Exception as e:  # noqa: BLE001 - safetensors raises its own error types for a garbage file
            raise FeaturescopeError(f"{path}: not a readable persona vector file ({type(e).__name__})") from e
        if not meta:
            raise FeaturescopeError(f"{path} has no featurescope metadata: not a persona vector file")
        fields = {f.name for f in dataclasses.fields(cls)} - {"vectors"}
        unknown = set(meta) - fields
        if unknown:
            raise FeaturescopeError(f"{path}: unknown persona-vector metadata {sorted(unknown)}")
        if vectors.ndim != 2 or len(meta.get("hooks", [])) != vectors.shape[0]:
            raise FeaturescopeError(
                f"{path}: {vectors.shape[0] if vectors.ndim else 0} vectors for {len(meta.get('hooks', []))} hooks"
            )
        return cls(vectors=vectors, **meta)

    def __repr__(self) -> str:
        return (
            f"PersonaVector({self.trait!r}, kind={self.kind}, model={self.model!r}, layers={len(self.hooks)}, "
            f"d={self.vectors.shape[-1]}, n_pos={self.n_pos}, n_neg={self.n_neg})"
        )

    def _repr_html_(self) -> str:
        norms = self.norms
        mx = max(norms) or 1.0
        bars = "".join(
            f"<tr><td>{h}</td><td><div style='background:#c0392b;height:10px;width:{200 * n / mx:.0f}px'></div></td>"
            f"<td>{n:.2f}</td></tr>"
            for h, n in zip(self.hooks, norms)
        )
        return (
            f"<div><b>persona vector: {self.trait}</b> ({self.kind}) on <code>{self.model}</code> ({self.stage}); "
            f"kept {self.n_pos} positive / {self.n_neg} negative responses"
            f"<table><tr><th>hook</th><th colspan=2>norm</th></tr>{bars}</table></div>"
        )


# ----------------------------------------------------------------------------------------------------------------
# Steering
# ----------------------------------------------------------------------------------------------------------------
def steering_hook(
    vector: Float[Tensor, " d"], alpha: float, positions: Literal["all", "response"] = "all"
) -> Callable[[Tensor, Any], Tensor]:
    """A TransformerLens hook adding ``alpha * vector`` to the activation.

    ``positions="all"`` steers every position; ``"response"`` steers only the last position of each forward pass:
    during KV-cached generation that is each newly generated token (and, in the prompt pass, the last prompt token,
    whose output is the first response token), as in Chen et al.'s response-only steering. Generation pads on the
    left, so this is right there; a batched *capture* pads on the right, so use ``"all"`` (or batch_size=1) there.
    """
    if positions not in ("all", "response"):
        raise ValueError("positions must be 'all' or 'response'")

    def fn(act: Tensor, hook: Any = None) -> Tensor:
        add = (alpha * vector).to(act.dtype).to(act.device)
        if positions == "all":
            return act + add
        act = act.clone()
        act[:, -1] += add
        return act

    return fn


@contextlib.contextmanager
def steer(
    model: Model,
    vector: Float[Tensor, " d"] | PersonaVector,
    alpha: float,
    *,
    hook: str | int | None = None,
    positions: Literal["all", "response"] = "all",
) -> Iterator[None]:
    """Context manager: every forward pass (capture, generate, ``model.tl(...)``) inside it is steered by
    ``alpha * vector`` at ``hook`` (a hook name or a layer index for its ``hook_resid_post``). The hook is removed on
    exit and on error."""
    if isinstance(vector, PersonaVector):
        if hook is None:
            raise ValueError("say which hook (or layer) of the persona vector to steer with")
        v = vector.at(hook)
    else:
        v = vector
    if hook is None:
        raise ValueError("hook (name or layer index) is required")
    name = model.resid_hook(hook) if isinstance(hook, int) else model.check_hook(hook)
    if v.shape[-1] != model.d_model:
        raise FeaturescopeError(f"vector has width {v.shape[-1]} but {model.name} has d_model {model.d_model}")
    with model.tl.hooks(fwd_hooks=[(name, steering_hook(v, alpha, positions))]):
        yield


# ----------------------------------------------------------------------------------------------------------------
# Monitoring and data flagging
# ----------------------------------------------------------------------------------------------------------------
def monitor(
    model: Model,
    conversations: Sequence[Any],
    vector: Float[Tensor, " d"],
    hook: str,
    batch_size: int = 16,
    progress: bool = False,
) -> Float[Tensor, " n"]:
    """Projection of the last prompt token (before the model answers) onto the persona vector."""
    acts = capture(model, conversations, [hook], reduction="last_prompt", batch_size=batch_size, progress=progress)
    return project(acts[hook], vector)


def check_flag_rows(rows: Sequence[Any], source: str = "dataset") -> list[dict[str, Any]]:
    """Check a flagging dataset before any generation: every row an object with non-empty string ``prompt`` and
    ``response`` (and an optional string ``dataset``). Raises :class:`DataError` naming the first bad row."""
    if not rows:
        raise DataError(f"{source}: no rows")
    for i, r in enumerate(rows, 1):
        if not isinstance(r, dict):
            raise DataError(f"{source}: row {i} is a {type(r).__name__}, expected an object with prompt and response")
        for key in ("prompt", "response"):
            if not isinstance(r.get(key), str) or not r[key].strip():
                raise DataError(f"{source}: row {i} has no {key!r} (a non-empty string); keys: {sorted(r)}")
        if "dataset" in r and not isinstance(r["dataset"], str):
            raise DataError(f"{source}: row {i}: 'dataset' must be a string")
    return list(rows)


def projection_difference(
    model: Model,
    rows: Sequence[dict[str, Any]],
    vector: Float[Tensor, " d"],
    hook: str,
    *,
    own_responses: Sequence[str] | None = None,
    max_new_tokens: int = 64,
    batch_size: int = 8,
    progress: bool = False,
) -> dict[str, Any]:
    """Chen et al.'s data-flagging score. For each ``{"prompt", "response"}`` row: mean projection of the dataset
    response's tokens minus that of the model's own (greedy) response to the same prompt. Positive = the data would
    push the model toward the trait."""
    rows = check_flag_rows(rows)
    if vector.shape[-1] != model.d_model:
        raise FeaturescopeError(f"the vector has width {vector.shape[-1]} but {model.name} has d_model {model.d_model}")
    prompts = [[Message("user", r["prompt"])] for r in rows]
    if own_responses is None:
        gens = generate(model, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress)
        own_responses = [g.response or "..." for g in gens]
    data_convs = [p + [Message("assistant", r["response"])] for p, r in zip(prompts, rows)]
    own_convs = [p + [Message("assistant", o)] for p, o in zip(prompts, own_responses)]
    d = capture(model, data_convs, [hook], reduction="response_mean", batch_size=batch_size, progress=progress)
    o = capture(model, own_convs, [hook], reduction="response_mean", batch_size=batch_size, progress=progress)
    pd_ = project(d[hook], vector) - project(o[hook], vector)
    return {
        "projection_difference": pd_,
        "data_projection": project(d[hook], vector),
        "own_projection": project(o[hook], vector),
        "own_responses": list(own_responses),
    }


# ----------------------------------------------------------------------------------------------------------------
# Extraction
# ----------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ExtractionConfig:
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
    from .traits import Trait, load_trait

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


# ----------------------------------------------------------------------------------------------------------------
# Sweeps and experiments built on the pieces above
# ----------------------------------------------------------------------------------------------------------------
def steering_sweep(
    model: Model,
    vector: PersonaVector,
    trait: Any,
    judge: Any,
    *,
    hook: str | int,
    alphas: Sequence[float] = (-8.0, -4.0, 0.0, 4.0, 8.0),
    n_questions: int | None = 10,
    max_new_tokens: int = 48,
    positions: Literal["all", "response"] = "all",
    batch_size: int = 8,
    progress: bool = True,
) -> dict[str, Any]:
    """Generate answers to the trait's held-out questions under ``alpha * v`` for each alpha; judge trait score and
    coherence, and the log-prob per token of the steered text under the unsteered model."""
    from .traits import Trait, load_trait

    tr: Trait = trait if isinstance(trait, Trait) else load_trait(trait)
    qs = list(tr.eval_questions[:n_questions] if n_questions else tr.eval_questions)
    rows = []
    for a in alphas:
        with steer(model, vector, a, hook=hook, positions=positions):
            gens = generate(
                model,
                [[Message("user", q)] for q in qs],
                max_new_tokens=max_new_tokens,
                batch_size=batch_size,
                progress=False,
            )
        scores = judge.score_many(tr, qs, [g.response for g in gens])
        lp = unsteered_logprob(model, [g for g in gens if g.formatted is not None])
        rows.append(
            {
                "alpha": a,
                "trait_score": sum(s.trait for s in scores) / len(scores),
                "coherence": sum(s.coherence for s in scores) / len(scores),
                "logprob_per_token": lp,
                "examples": [g.response for g in gens[:3]],
            }
        )
        if progress:
            print(
                f"  alpha {a:+.1f}: trait {rows[-1]['trait_score']:.1f}  coherence {rows[-1]['coherence']:.1f}  "
                f"logprob/token {lp:.2f}"
            )
    return {"hook": hook if isinstance(hook, str) else model.resid_hook(hook), "questions": qs, "rows": rows}


def unsteered_logprob(model: Model, gens: Sequence[Any]) -> float:
    """Mean log-prob per response token of generated texts under the (unsteered) model."""
    if not gens:
        return float("nan")
    total, n = 0.0, 0
    with torch.inference_mode():
        for g in gens:
            p = g.formatted
            logits = model.tl(p.tokens[None].to(model.device)).float()[0]
            lps = torch.log_softmax(logits[:-1], -1).gather(-1, p.tokens[1:, None].to(logits.device))[:, 0]
            m = p.response_mask[1:].to(logits.device)
            total += float(lps[m].sum())
            n += int(m.sum())
    return total / max(n, 1)


def monitor_correlation(
    model: Model,
    vector: PersonaVector,
    trait: Any,
    judge: Any,
    *,
    hook: str | int,
    n_questions: int | None = 5,
    max_new_tokens: int = 48,
    batch_size: int = 8,
) -> dict[str, Any]:
    """Chen et al.'s monitoring experiment: system prompts graded from trait-suppressing to trait-eliciting; the
    last-prompt-token projection onto the vector vs the judged trait score of the response (Pearson r)."""
    from .traits import Trait, load_trait

    tr: Trait = trait if isinstance(trait, Trait) else load_trait(trait)
    if len(tr.monitor_prompts) < 2:
        raise FeaturescopeError(f"trait {tr.name} has no graded monitor_prompts")
    h = hook if isinstance(hook, str) else model.resid_hook(hook)
    v = vector.at(h)
    qs = list(tr.eval_questions[:n_questions] if n_questions else tr.eval_questions)
    convs = [[Message("system", sp), Message("user", q)] for sp in tr.monitor_prompts for q in qs]
    levels = [i for i in range(len(tr.monitor_prompts)) for _ in qs]
    proj = monitor(model, convs, v, h, batch_size=batch_size)
    gens = generate(model, convs, max_new_tokens=max_new_tokens, batch_size=batch_size, progress=False)
    scores = [s.trait for s in judge.score_many(tr, [c[-1].content for c in convs], [g.response for g in gens])]
    per_level = [
        {
            "level": lv,
            "projection": float(proj[[i for i, x in enumerate(levels) if x == lv]].mean()),
            "trait_score": sum(s for s, x in zip(scores, levels) if x == lv) / len(qs),
        }
        for lv in range(len(tr.monitor_prompts))
    ]
    return {
        "hook": h,
        "r_samples": pearson(proj, scores),
        "r_levels": pearson([p["projection"] for p in per_level], [p["trait_score"] for p in per_level]),
        "per_level": per_level,
        "n": len(convs),
    }


def choose_layer(
    model: Model,
    vector: PersonaVector,
    trait: Any,
    judge: Any,
    *,
    layers: Sequence[int] | None = None,
    alpha: float = 8.0,
    n_questions: int = 5,
    max_new_tokens: int = 40,
    min_coherence: float = 50.0,
    batch_size: int = 8,
    progress: bool = True,
) -> dict[str, Any]:
    """Pick the steering layer as Chen et al. do: steer the held-out questions with ``+alpha * v_L`` at each
    candidate layer and keep the layer whose steered answers gain the most trait score over the unsteered ones
    (among layers whose answers stay coherent). Default candidates: every other layer."""
    from .traits import Trait, load_trait

    tr: Trait = trait if isinstance(trait, Trait) else load_trait(trait)
    cands = list(layers) if layers is not None else list(range(0, model.n_layers, 2))
    qs = list(tr.eval_questions[:n_questions])
    convs = [[Message("user", q)] for q in qs]

    def judged(gens: list[Any]) -> tuple[float, float]:
        s = judge.score_many(tr, qs, [g.response for g in gens])
        return sum(x.trait for x in s) / len(s), sum(x.coherence for x in s) / len(s)

    base_t, base_c = judged(
        generate(model, convs, max_new_tokens=max_new_tokens, batch_size=batch_size, progress=False)
    )
    rows = []
    for L in cands:
        with steer(model, vector, alpha, hook=model.resid_hook(L)):
            t, c = judged(generate(model, convs, max_new_tokens=max_new_tokens, batch_size=batch_size, progress=False))
        rows.append({"layer": L, "trait_score": t, "coherence": c, "effect": t - base_t})
        if progress:
            print(f"  layer {L:2d}: trait {t:5.1f} (effect {t - base_t:+5.1f})  coherence {c:5.1f}")
    ok = [r for r in rows if r["coherence"] >= min_coherence] or rows
    best = max(ok, key=lambda r: r["effect"])
    return {
        "best_layer": best["layer"],
        "alpha": alpha,
        "baseline": {"trait_score": base_t, "coherence": base_c},
        "rows": rows,
        "min_coherence": min_coherence,
        "questions": qs,
    }


# ----------------------------------------------------------------------------------------------------------------
# The whole experiment (I/O edge): extract -> choose layer -> steer -> monitor -> flag, with figures and summary
# ----------------------------------------------------------------------------------------------------------------
FLAG_DEMO = Path(__file__).parent / "data" / "flagging" / "demo.jsonl"


def _write_layer_table(path: Path, sep: dict[str, list[float]], lc: dict[str, Any], tag: str) -> None:
    eff = {r["layer"]: r for r in lc["rows"]}
    lines = [
        f"# Layer profile: {tag}",
        "",
        f"Chosen layer (largest steering effect with coherence >= "
        f"{lc['min_coherence']:.0f}, alpha {lc['alpha']}): **{lc['best_layer']}**",
        "",
        "| layer | hook | pos mean proj | neg mean proj | gap | Cohen's d | steering effect | steered coherence |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for L in range(len(sep["cohens_d"])):
        e = eff.get(L)
        lines.append(
            f"| {L} | blocks.{L}.hook_resid_post | {sep['pos_mean'][L]:.2f} | {sep['neg_mean'][L]:.2f} | "
            f"{sep['gap'][L]:.2f} | {sep['cohens_d'][L]:.2f} | "
            f"{'' if e is None else format(e['effect'], '+.1f')} | {'' if e is None else format(e['coherence'], '.1f')} |"
        )
    path.write_text("\n".join(lines) + "\n")


def run_persona(
    model: Model,
    trait: Any,
    judge: Any,
    out: str | Path,
    *,
    extraction: ExtractionConfig = ExtractionConfig(),
    layers: Sequence[int] | None = None,
    alpha: float = 8.0,
    alphas: Sequence[float] = (-12.0, -8.0, -4.0, 0.0, 4.0, 8.0, 12.0),
    n_eval_questions: int = 8,
    n_monitor_questions: int = 3,
    flag_dataset: str | Path | None = FLAG_DEMO,
    progress: bool = True,
) -> dict[str, Any]:
    """Run Chen et al.'s full loop for one trait on one model and write vectors, figures and ``summary.json``."""
    from . import plots
    from .runs import write_summary
    from .traits import Trait, load_trait

    tr: Trait = trait if isinstance(trait, Trait) else load_trait(trait)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tag = f"{model.name} ({model.stage}), trait {tr.name}, judge {getattr(judge, 'name', '?')}"
    t0 = time.time()
    timings: dict[str, float] = {}
    if progress:
        print(f"[persona] extracting {tr.name} on {model.name} ...", flush=True)
    ex = extract(model, tr, judge, config=extraction, progress=progress, answers_path=out / "answers.jsonl")
    timings["extract"] = time.time() - t0
    files = {k: str(v.save(out / f"{tr.name}.{k}.safetensors")) for k, v in ex["vectors"].items()}
    with open(out / "responses.jsonl", "w") as f:
        for r in ex["responses"]:
            f.write(json.dumps({k: v for k, v in r.items() if k != "messages"}) + "\n")
    v = ex["vectors"]["response_mean"]
    figures = [
        plots.layer_profile(
            out / "separation.png",
            {"Cohen's d, pos vs neg response projection": ex["separation"]["cohens_d"]},
            f"projection separation per layer - {tag}",
            "Cohen's d",
        )
    ]
    t = time.time()
    if progress:
        print(f"[persona] choosing the layer by steering effect (alpha {alpha}) ...", flush=True)
    lc = choose_layer(
        model,
        v,
        tr,
        judge,
        layers=layers,
        alpha=alpha,
        n_questions=min(5, n_eval_questions),
        max_new_tokens=extraction.max_new_tokens,
        progress=progress,
    )
    timings["choose_layer"] = time.time() - t
    best = lc["best_layer"]
    eff = [float("nan")] * model.n_layers
    for r in lc["rows"]:
        eff[r["layer"]] = r["effect"]
    figures.append(
        plots.layer_profile(
            out / "layer_choice.png",
            {f"trait-score gain when steering with +{alpha} v": eff},
            f"steering effect per layer - {tag}",
            "trait score gain",
            mark=best,
        )
    )
    t = time.time()
    if progress:
        print(f"[persona] steering sweep at layer {best} ...", flush=True)
    sw = steering_sweep(
        model,
        v,
        tr,
        judge,
        hook=best,
        alphas=alphas,
        n_questions=n_eval_questions,
        max_new_tokens=extraction.max_new_tokens,
        progress=progress,
    )
    timings["steer"] = time.time() - t
    figures.append(
        plots.steering_curve(
            out / "steering.png",
            [r["alpha"] for r in sw["rows"]],
            [r["trait_score"] for r in sw["rows"]],
            [r["coherence"] for r in sw["rows"]],
            f"steering at blocks.{best}.hook_resid_post - {tag}",
        )
    )
    t = time.time()
    mon = monitor_correlation(
        model, v, tr, judge, hook=best, n_questions=n_monitor_questions, max_new_tokens=extraction.max_new_tokens
    )
    timings["monitor"] = time.time() - t
    figures.append(
        plots.monitor_scatter(
            out / "monitor.png",
            mon["per_level"],
            f"monitoring at layer {best}: r = {mon['r_levels']:.2f} (level means) - {tag}",
        )
    )
    flag: dict[str, Any] = {}
    if flag_dataset is not None:
        t = time.time()
        rows = [json.loads(x) for x in Path(flag_dataset).read_text().splitlines() if x.strip()]
        hook = model.resid_hook(best)
        fr = projection_difference(model, rows, v.at(hook), hook, max_new_tokens=extraction.max_new_tokens)
        per: dict[str, list[float]] = {}
        for r, d in zip(rows, fr["projection_difference"].tolist()):
            per.setdefault(str(r.get("dataset", "all")), []).append(d)
        flag = {
            "dataset": str(flag_dataset),
            "per_dataset": {k: sum(x) / len(x) for k, x in per.items()},
            "per_sample": [
                {"id": r.get("id"), "dataset": r.get("dataset"), "projection_difference": d}
                for r, d in zip(rows, fr["projection_difference"].tolist())
            ],
        }
        laden = [d for r, d in zip(rows, fr["projection_difference"].tolist()) if r.get("trait") == tr.name]
        neutral = [d for r, d in zip(rows, fr["projection_difference"].tolist()) if not r.get("trait_laden")]
        if laden and neutral:  # AUROC of "this trait's laden rows" vs neutral rows
            flag["auroc_trait_vs_neutral"] = sum((a > b) + 0.5 * (a == b) for a in laden for b in neutral) / (
                len(laden) * len(neutral)
            )
        ranked = sorted(flag["per_dataset"].items(), key=lambda kv: -kv[1])
        figures.append(
            plots.bars(
                out / "flagging.png",
                [k for k, _ in ranked],
                [x for _, x in ranked],
                f"data flagging at layer {best} - {tag}",
                "mean projection difference",
            )
        )
        timings["flag"] = time.time() - t
    timings["total"] = time.time() - t0
    if flag:
        flag["ranking"] = sorted(flag["per_sample"], key=lambda r: -r["projection_difference"])
    _write_layer_table(out / "layers.md", ex["separation"], lc, tag)
    results = {
        "counts": ex["counts"],
        "separation": ex["separation"],
        "vector_norms": v.norms,
        "files": files,
        "layer_choice": lc,
        "chosen_layer": best,
        "steering": sw,
        "monitor": mon,
        "flagging": flag,
    }
    write_summary(
        out,
        "persona run",
        inputs={
            "model": model.info,
            "trait": tr.name,
            "judge": getattr(judge, "name", "?"),
            "extraction": dataclasses.asdict(extraction),
            "alpha": alpha,
            "alphas": list(alphas),
            "layers": layers,
        },
        results=results,
        timings={**timings, "extract_generate": ex["timings"]["generate"]},
        figures=figures,
    )
    return results
