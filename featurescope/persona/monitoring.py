"""Persona: monitoring and data flagging."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jaxtyping import Float
from torch import Tensor

from ..capture import capture
from ..errors import DataError, FeaturescopeError
from ..evidence.nulls import auroc_evidence
from ..formatting import Message
from ..generate import generate
from ..models import Model
from .vector import project


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


def flag_summary(
    rows: Sequence[dict[str, Any]], pdiff: Sequence[float], trait: str, *, seed: int = 0
) -> dict[str, Any]:
    """What a flagging run reports: per-row projection differences (the per-item file behind every number), the
    mean per dataset, and the AUROC of this trait's laden rows against neutral rows with a bootstrap interval and a
    label-shuffle null (absent when the file has no such labels)."""
    per: dict[str, list[float]] = {}
    for r, d in zip(rows, pdiff):
        per.setdefault(str(r.get("dataset", "all")), []).append(float(d))
    out: dict[str, Any] = {
        "per_dataset": dict(sorted(((k, sum(x) / len(x)) for k, x in per.items()), key=lambda kv: -kv[1])),
        "per_sample": [
            {
                "id": r.get("id"),
                "dataset": r.get("dataset"),
                "trait": r.get("trait"),
                "trait_laden": r.get("trait_laden"),
                "projection_difference": float(d),
            }
            for r, d in zip(rows, pdiff)
        ],
    }
    laden = [float(d) for r, d in zip(rows, pdiff) if r.get("trait") == trait]
    neutral = [float(d) for r, d in zip(rows, pdiff) if r.get("trait_laden") is False]
    if laden and neutral:
        ev = auroc_evidence(laden, neutral, name=f"flagging AUROC ({trait}-laden vs neutral rows)", seed=seed)
        out["auroc_trait_vs_neutral"] = ev.estimate.value
        out["auroc_evidence"] = ev.to_dict()
    return out
