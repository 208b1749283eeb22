"""Persona: sweeps and experiments built on the pieces above."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from ..errors import FeaturescopeError
from ..evidence.massive import share_on_dims
from ..evidence.nulls import control_evidence, correlation_evidence, random_directions
from ..formatting import Message
from ..generate import generate
from ..models import Model
from ..stats import bootstrap
from ..traits import Trait, load_trait
from .monitoring import monitor
from .results import MonitorCorrelation, SteeringControl, SteeringRow, SteeringSweep
from .steering import steer
from .vector import PersonaVector, pearson


def steering_sweep(
    model: Model,
    vector: PersonaVector | Tensor,
    trait: Any,
    judge: Any,
    *,
    hook: str | int,
    alphas: Sequence[float] = (-8.0, -4.0, 0.0, 4.0, 8.0),
    n_questions: int | None = 10,
    max_new_tokens: int = 48,
    positions: Literal["all", "response"] = "all",
    batch_size: int = 8,
    seeds: Sequence[int] = (),
    temperature: float = 1.0,
    progress: bool = True,
) -> SteeringSweep:
    """Generate answers to the trait's held-out questions under ``alpha * v`` for each alpha; judge trait score and
    coherence, and the log-prob per token of the steered text under the unsteered model.

    Greedy by default (one answer per question). With ``seeds`` (e.g. ``(0, 1, 2)``) every question is answered once
    per seed by sampling at ``temperature``; each question's score is its mean over seeds and each row gets a
    bootstrap interval over questions (``trait_ci``) and the per-seed means (``per_seed``).

    Returns a :class:`SteeringSweep` (one :class:`SteeringRow` per alpha; ``sw["rows"]`` etc. still read the dict
    ``to_dict()`` gives, which is what ``summary.json`` holds); it renders in Jupyter, ``plot()``, ``to_frame()``."""

    tr: Trait = trait if isinstance(trait, Trait) else load_trait(trait)
    qs = list(tr.eval_questions[:n_questions] if n_questions else tr.eval_questions)
    runs: list[int | None] = list(seeds) if seeds else [None]
    rows: list[SteeringRow] = []
    for a in alphas:
        per_seed: list[list[float]] = []
        cohs: list[float] = []
        lps: list[float] = []
        examples: list[str] = []
        for sd in runs:
            with steer(model, vector, a, hook=hook, positions=positions):
                gens = generate(
                    model,
                    [[Message("user", q)] for q in qs],
                    max_new_tokens=max_new_tokens,
                    batch_size=batch_size,
                    progress=False,
                    **({"do_sample": True, "temperature": temperature, "seed": sd} if sd is not None else {}),
                )
            scores = judge.score_many(tr, qs, [g.response for g in gens])
            per_seed.append([float(x.trait) for x in scores])
            cohs.extend(float(x.coherence) for x in scores)
            lps.append(unsteered_logprob(model, [g for g in gens if g.formatted is not None]))
            examples.extend(g.response for g in gens[: 3 if not examples else 0])
        by_q = np.asarray(per_seed, dtype=np.float64).mean(0)  # per question, mean over seeds
        lp = float(np.nanmean(lps)) if lps else float("nan")
        row = SteeringRow(
            alpha=a,
            trait_score=float(by_q.mean()),
            coherence=sum(cohs) / len(cohs),
            scores=tuple(by_q.tolist()),  # per question (mean over seeds): the controls' paired intervals use them
            logprob_per_token=lp,
            examples=tuple(examples),
            per_seed=tuple(float(np.mean(x)) for x in per_seed) if seeds else None,
            trait_ci=bootstrap(np.mean, by_q) if seeds else None,
        )
        rows.append(row)
        if progress:
            print(
                f"  alpha {a:+.1f}: trait {row.trait_score:.1f}  coherence {row.coherence:.1f}  logprob/token {lp:.2f}"
            )
    return SteeringSweep(
        hook=hook if isinstance(hook, str) else model.resid_hook(hook),
        questions=tuple(qs),
        seeds=tuple(seeds),
        rows=tuple(rows),
    )


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
    seeds: Sequence[int] = (),
    temperature: float = 1.0,
) -> MonitorCorrelation:
    """Chen et al.'s monitoring experiment: system prompts graded from trait-suppressing to trait-eliciting; the
    last-prompt-token projection onto the vector vs the judged trait score of the response (Pearson r).

    Greedy by default; with ``seeds`` each prompt is answered once per seed by sampling at ``temperature`` and its
    trait score is the mean over seeds (the projection is read before the answer, so it does not depend on it).

    Returns a :class:`MonitorCorrelation` (``mon["r_samples"]`` etc. still read the dict ``to_dict()`` gives); it
    renders in Jupyter with r's interval, null and verdict, ``plot()`` (scatter), ``to_frame()``."""

    tr: Trait = trait if isinstance(trait, Trait) else load_trait(trait)
    if len(tr.monitor_prompts) < 2:
        raise FeaturescopeError(f"trait {tr.name} has no graded monitor_prompts")
    h = hook if isinstance(hook, str) else model.resid_hook(hook)
    v = vector.at(h)
    qs = list(tr.eval_questions[:n_questions] if n_questions else tr.eval_questions)
    convs = [[Message("system", sp), Message("user", q)] for sp in tr.monitor_prompts for q in qs]
    levels = [i for i in range(len(tr.monitor_prompts)) for _ in qs]
    proj = monitor(model, convs, v, h, batch_size=batch_size)
    runs: list[int | None] = list(seeds) if seeds else [None]
    per_seed: list[list[float]] = []
    gens: list[Any] = []
    for sd in runs:
        g_sd = generate(
            model,
            convs,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            progress=False,
            **({"do_sample": True, "temperature": temperature, "seed": sd} if sd is not None else {}),
        )
        gens = gens or g_sd
        per_seed.append(
            [float(s.trait) for s in judge.score_many(tr, [c[-1].content for c in convs], [g.response for g in g_sd])]
        )
    scores = np.asarray(per_seed, dtype=np.float64).mean(0).tolist()
    per_level = [
        {
            "level": lv,
            "projection": float(proj[[i for i, x in enumerate(levels) if x == lv]].mean()),
            "trait_score": sum(s for s, x in zip(scores, levels) if x == lv) / len(qs),
        }
        for lv in range(len(tr.monitor_prompts))
    ]
    items = [
        {
            "level": lv,
            "question": c[-1].content,
            "projection": float(p),
            "trait_score": float(sc),
            "response": g.response,
            **({"trait_score_per_seed": [x[i] for x in per_seed]} if seeds else {}),
        }
        for i, (lv, c, p, sc, g) in enumerate(zip(levels, convs, proj.tolist(), scores, gens))
    ]
    return MonitorCorrelation(
        hook=h,
        r_samples=pearson(proj, scores),
        r_samples_evidence=correlation_evidence(proj.tolist(), scores, name="monitoring r (per response)"),
        # does the projection follow the graded system prompts at all (whatever the judge sees)?
        r_projection_vs_level_evidence=correlation_evidence(
            proj.tolist(), levels, name="projection vs graded prompt level"
        ),
        per_item=tuple(items),
        r_levels=pearson([p["projection"] for p in per_level], [p["trait_score"] for p in per_level]),
        per_level=tuple(per_level),
        n=len(convs),
        seeds=tuple(seeds),
    )


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
    (among layers whose answers stay coherent). Default candidates: every other layer.

    The layer is selected on the **last** ``n_questions`` evaluation questions; the steering sweep measures on the
    first ones, so selection and measurement use disjoint questions whenever the two counts fit in the trait's
    evaluation set (25 questions for the shipped traits)."""

    tr: Trait = trait if isinstance(trait, Trait) else load_trait(trait)
    cands = list(layers) if layers is not None else list(range(0, model.n_layers, 2))
    qs = list(tr.eval_questions[-n_questions:]) if n_questions > 0 else []
    if not qs:
        raise FeaturescopeError("choose_layer needs at least one evaluation question")
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


def steering_control(
    model: Model,
    vector: PersonaVector,
    trait: Any,
    judge: Any,
    *,
    hook: str | int,
    sweep: SteeringSweep | Mapping[str, Any],
    n_random: int = 2,
    seed: int = 0,
    n_questions: int | None = 10,
    max_new_tokens: int = 48,
    batch_size: int = 8,
    progress: bool = True,
) -> SteeringControl:
    """The null of a steering sweep: ``n_random`` random vectors of the same norm (and the same share on the
    massive dimensions recorded in the vector's metadata) swept at the same alphas and questions.

    Effect = trait score at the largest alpha minus at alpha 0, per question. Estimate: the persona vector's mean
    effect with a bootstrap interval over questions; null: the random vectors' mean effect, same bootstrap. The
    verdict compares the two intervals.

    ``sweep``: the persona vector's :class:`SteeringSweep` (or its dict, e.g. from a ``summary.json``). Returns a
    :class:`SteeringControl` (dict access as before); attach it with ``sweep.with_control(control)``."""
    h = hook if isinstance(hook, str) else model.resid_hook(hook)
    v = vector.at(h)
    i = vector.hooks.index(h)
    dims_all = vector.extra.get("massive_dims") or []
    dims = list(dims_all[i]) if i < len(dims_all) else []
    share = share_on_dims(v, dims)
    sweep_rows: list[dict[str, Any]] = sweep["rows"]  # dicts, from a SteeringSweep or a mapping alike
    alphas = [r["alpha"] for r in sweep_rows]
    if 0.0 not in alphas or max(alphas) <= 0:
        raise FeaturescopeError("the steering control needs alpha 0 and a positive alpha in the sweep")
    rand = random_directions(n_random, v.shape[-1], norm=float(v.norm()), dims=dims, share=share, seed=seed)
    controls: list[dict[str, Any]] = []
    for j, r in enumerate(rand):
        sw = steering_sweep(
            model,
            r,
            trait,
            judge,
            hook=h,
            alphas=alphas,
            n_questions=n_questions,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            seeds=sweep.get("seeds") or (),
            progress=False,
        )
        controls.append(
            {
                "seed": seed + j,
                "rows": [
                    {"alpha": x.alpha, "trait_score": x.trait_score, "coherence": x.coherence, "scores": list(x.scores)}
                    for x in sw.rows
                ],
            }
        )
        if progress:
            print(f"  random vector {j}: " + ", ".join(f"{x.alpha:+.0f}: {x.trait_score:.1f}" for x in sw.rows))

    def effect(rows: list[dict[str, Any]]) -> np.ndarray:
        by = {x["alpha"]: np.asarray(x["scores"], dtype=np.float64) for x in rows}
        return by[max(alphas)] - by[0.0]

    real = effect(sweep_rows)
    null_items = np.mean([effect(c["rows"]) for c in controls], axis=0)
    ev = control_evidence(
        f"steering effect (trait score at alpha {max(alphas):+g} minus alpha 0)",
        real,
        null_items,
        len(controls),
        f"{len(controls)} random vectors of equal norm",
        seed=seed,
    )
    return SteeringControl(
        alpha=max(alphas),
        share_on_massive=share,
        massive_dims=tuple(dims),
        controls=tuple(controls),
        evidence=ev,
    )
