"""Assistant axis: steering, capping, drift, base-model prefills."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from ..capture import capture
from ..errors import FeaturescopeError
from ..evidence.massive import massive_dims_of, share_on_dims
from ..evidence.nulls import control_evidence, random_directions
from ..formatting import FormattedPrompt, Message
from ..generate import generate, generate_batch, stop_token_ids
from ..measures import DEFAULT_AI_TERMS, identifies_as_ai
from ..models import Model
from ..persona.steering import steer, steering_hook
from ..stats import bootstrap
from .pca import cap_activations, default_cap_layers, outlier_positions, project
from .roles import RoleLibrary, load_role_library
from .text import classify_completion, distinct_bigram_ratio
from .vector import AssistantAxis


@contextlib.contextmanager
def steer_axis(
    model: Model,
    axis: AssistantAxis,
    alpha: float,
    layer: int | str | None = None,
    positions: Literal["all", "response"] = "all",
) -> Iterator[None]:
    """``h <- h + alpha * axis_L`` at ``blocks.L.hook_resid_post`` (alpha > 0 toward the Assistant)."""

    with steer(model, axis.at(layer), alpha, hook=axis.hook(layer), positions=positions):
        yield


@dataclasses.dataclass
class CapStats:
    """Running counts of a :func:`cap` context: tokens seen and tokens lifted per hook."""

    seen: dict[str, int] = dataclasses.field(default_factory=dict)
    capped: dict[str, int] = dataclasses.field(default_factory=dict)
    skipped: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def fraction(self) -> float:
        s = sum(self.seen.values())
        return sum(self.capped.values()) / s if s else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"seen": self.seen, "capped": self.capped, "skipped": self.skipped, "fraction_capped": self.fraction}


def capping_hook(
    v_hat: Float[Tensor, " d"],
    tau: float,
    stats: CapStats | None = None,
    name: str = "",
    skip_outliers: float | None = 10.0,
) -> Callable[[Tensor, Any], Tensor]:
    """A TransformerLens hook flooring ``<h, v_hat>`` at ``tau`` (see :func:`cap_activations`)."""

    def fn(act: Tensor, hook: Any = None) -> Tensor:
        v = v_hat.to(act.device)
        skip = outlier_positions(act, skip_outliers) if act.shape[-2] > 1 else None
        if stats is not None:
            proj = act.float() @ v.float()
            low = proj < tau
            if skip is not None:
                low = low & ~skip
                stats.skipped[name] = stats.skipped.get(name, 0) + int(skip.sum())
            stats.seen[name] = stats.seen.get(name, 0) + int(proj.numel())
            stats.capped[name] = stats.capped.get(name, 0) + int(low.sum())
        return cap_activations(act, v, tau, skip)

    return fn


@contextlib.contextmanager
def cap(
    model: Model,
    axis: AssistantAxis,
    layers: Sequence[int | str] | None = None,
    *,
    percentile: float = 25.0,
    tau: float | Sequence[float] | None = None,
    basis: Literal["auto", "tokens", "responses"] = "auto",
    skip_outliers: float | None = 10.0,
) -> Iterator[CapStats]:
    """Activation capping: inside the context every forward pass floors the projection on the unit axis at
    ``tau_L`` at each capped layer (``h <- h + v_hat * max(tau - <h, v_hat>, 0)``), so the model cannot drift
    below the default Assistant's ``percentile``-th projection. Default layers: :func:`default_cap_layers`.
    Yields a :class:`CapStats`; hooks are removed on exit and on error."""
    if layers is None:
        layers = [L for L in default_cap_layers(model.n_layers) if f"blocks.{L}.hook_resid_post" in axis.hooks]
    if axis.vectors.shape[-1] != model.d_model:
        raise FeaturescopeError(f"axis width {axis.vectors.shape[-1]} != {model.name}'s d_model {model.d_model}")
    if tau is not None and not isinstance(tau, (int, float)) and len(tau) != len(layers):
        raise ValueError("give one tau per capped layer (or one for all)")
    if basis == "auto":
        basis = "tokens" if axis.token_quantiles is not None else "responses"
    stats = CapStats()
    fwd = []
    for k, L in enumerate(layers):
        h = axis.hook(L)
        t_ = (
            (float(tau) if isinstance(tau, (int, float)) else float(tau[k]))
            if tau is not None
            else axis.tau(L, percentile, basis)
        )
        fwd.append((model.check_hook(h), capping_hook(axis.unit(L), t_, stats, h, skip_outliers)))
    with model.tl.hooks(fwd_hooks=fwd):
        yield stats


def ai_fraction(texts: Sequence[str], terms: Sequence[str] = DEFAULT_AI_TERMS) -> float:
    return sum(identifies_as_ai(t, terms) for t in texts) / max(len(texts), 1)


def axis_steering_sweep(
    model: Model,
    axis: AssistantAxis,
    *,
    layer: int | str | None = None,
    alphas: Sequence[float] = (-4.0, -2.0, 0.0, 2.0, 4.0),
    questions: Sequence[str] | None = None,
    system_prompts: Sequence[str | None] = (None,),
    max_new_tokens: int = 40,
    batch_size: int = 16,
    seed: int = 0,
    seeds: Sequence[int] = (),
    temperature: float = 1.0,
    ai_terms: Sequence[str] = DEFAULT_AI_TERMS,
    direction: Float[Tensor, " d"] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Steer along the axis at one layer for each alpha (and each system prompt: ``None`` = none) and measure
    whether the model still identifies as an AI, the coherence (distinct-bigram ratio) and the projection of its
    answers on the axis read back *without* steering.

    Greedy by default. With ``seeds`` every question is answered once per seed by sampling at ``temperature``;
    each question's AI-identity score is its fraction over seeds, and each row gets a bootstrap interval over
    questions (``ai_ci``) and the per-seed fractions (``per_seed``). ``direction`` replaces the axis' vector at this
    layer (same alpha units: the random-vector control passes vectors of the axis' norm)."""

    qs = list(questions or load_role_library(min_roles=0, min_questions=0).identity_questions)
    h = axis.hook(layer)
    v = axis.at(h) if direction is None else direction
    runs: list[int | None] = list(seeds) if seeds else [None]
    rows = []
    for sp in system_prompts:
        convs = [([Message("system", sp)] if sp else []) + [Message("user", q)] for q in qs]
        for a in alphas:
            per_seed: list[list[float]] = []
            texts_all: list[list[str]] = []
            projs: list[float] = []
            for sd in runs:
                with steer(model, v, a, hook=h):
                    gens = generate(
                        model,
                        convs,
                        max_new_tokens=max_new_tokens,
                        batch_size=batch_size,
                        seed=seed if sd is None else sd,
                        progress=False,
                        **({"do_sample": True, "temperature": temperature} if sd is not None else {}),
                    )
                texts = [g.response for g in gens]
                texts_all.append(texts)
                per_seed.append([float(identifies_as_ai(t, ai_terms)) for t in texts])
                fm = [g.formatted for g in gens if g.formatted is not None]
                if fm:
                    acts = capture(model, fm, [h], batch_size=batch_size, progress=False)[h]
                    projs.append(float(project(acts, axis.at(h)).mean()))
            by_q = np.asarray(per_seed, dtype=np.float64).mean(0)
            proj = float(np.mean(projs)) if projs else float("nan")
            flat = [t for ts in texts_all for t in ts]
            row: dict[str, Any] = {
                "system_prompt": sp or "",
                "alpha": a,
                "ai_fraction": float(by_q.mean()) if len(by_q) else float("nan"),
                "ai_scores": by_q.tolist(),  # per question (fraction over seeds): the control's paired interval
                "coherence": sum(distinct_bigram_ratio(t) for t in flat) / max(len(flat), 1),
                "readback_projection": proj,
                "responses": [
                    {"question": q, "response": t, **({"seed": sd} if sd is not None else {})}
                    for sd, ts in zip(runs, texts_all)
                    for q, t in zip(qs, ts)
                ],
            }
            if seeds:
                row["ai_ci"] = bootstrap(np.mean, by_q, seed=seed).to_dict()
                row["per_seed"] = [float(np.mean(x)) for x in per_seed]
            rows.append(row)
            if progress:
                ci = f" [{row['ai_ci']['lo']:.2f}, {row['ai_ci']['hi']:.2f}]" if seeds else ""
                print(
                    f"  [{(sp or 'no system prompt')[:30]}] alpha {a:+.1f}: identifies as AI {row['ai_fraction']:.2f}"
                    f"{ci}  coherence {row['coherence']:.2f}  readback projection {proj:.2f}",
                    flush=True,
                )
    return {
        "hook": h,
        "alphas": list(alphas),
        "questions": qs,
        "rows": rows,
        "seeds": list(seeds),
        "temperature": temperature if seeds else None,
        "alpha_units": "multiples of the unnormalised axis at this layer (alpha=1 = the default-minus-roles gap)",
        "axis_norm": float(axis.at(h).norm()),
    }


def axis_steering_control(
    model: Model,
    axis: AssistantAxis,
    sweep: dict[str, Any],
    *,
    n_random: int = 2,
    seed: int = 0,
    max_new_tokens: int = 40,
    batch_size: int = 16,
    ai_terms: Sequence[str] = DEFAULT_AI_TERMS,
    progress: bool = True,
) -> dict[str, Any]:
    """The null of an axis steering sweep: ``n_random`` random vectors of the axis' norm (and its share on the
    layer's massive dimensions) swept at the same alphas, questions and seeds, with no system prompt.

    Effect = AI-identity score at the most negative alpha (away from the Assistant) minus at alpha 0, per question.
    Estimate: the axis' mean effect with a bootstrap interval over questions; null: the random vectors' mean
    effect, same bootstrap; the verdict compares the two intervals."""
    h = sweep["hook"]
    alphas = list(sweep["alphas"])
    if 0.0 not in alphas or min(alphas) >= 0:
        raise FeaturescopeError("the axis steering control needs alpha 0 and a negative alpha in the sweep")
    v = axis.at(h)
    dims = massive_dims_of(axis.default_mean[axis.index(h)])
    share = share_on_dims(v, dims)
    rand = random_directions(n_random, v.shape[-1], norm=float(v.norm()), dims=dims, share=share, seed=seed)
    first = sweep["rows"][0]["system_prompt"]
    controls = []
    for j, r in enumerate(rand):
        sw = axis_steering_sweep(
            model,
            axis,
            layer=h,
            alphas=alphas,
            questions=sweep["questions"],
            system_prompts=(first or None,),
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            seeds=sweep.get("seeds") or (),
            temperature=sweep.get("temperature") or 1.0,
            ai_terms=ai_terms,
            direction=r,
            progress=False,
        )
        controls.append(
            {
                "seed": seed + j,
                "rows": [{k: x[k] for k in ("alpha", "ai_fraction", "coherence", "ai_scores")} for x in sw["rows"]],
            }
        )
        if progress:
            print(
                f"  random vector {j}: "
                + ", ".join(f"{x['alpha']:+.0f}: AI {x['ai_fraction']:.2f}" for x in sw["rows"]),
                flush=True,
            )
    lo_a = min(alphas)

    def effect(rows: list[dict[str, Any]]) -> np.ndarray:
        by = {x["alpha"]: np.asarray(x["ai_scores"], dtype=np.float64) for x in rows}
        return by[lo_a] - by[0.0]

    real = effect([x for x in sweep["rows"] if x["system_prompt"] == first])
    null_items = np.mean([effect(c["rows"]) for c in controls], axis=0)
    ev = control_evidence(
        f"axis steering effect (AI-identity at alpha {lo_a:+g} minus alpha 0)",
        real,
        null_items,
        len(controls),
        f"{len(controls)} random vectors of equal norm",
        seed=seed,
    )
    return {
        "alpha": lo_a,
        "system_prompt": first,
        "share_on_massive": share,
        "massive_dims": dims,
        "controls": controls,
        "evidence": ev.to_dict(),
    }


def complete_prefills(
    model: Model,
    texts: Sequence[str],
    *,
    max_new_tokens: int = 12,
    batch_size: int = 16,
    do_sample: bool = False,
    temperature: float = 1.0,
    seed: int = 0,
    fwd_hooks: Sequence[tuple[str, Callable]] = (),
) -> list[str]:
    """Raw continuations of plain text (no chat or transcript framing), up to the first newline."""

    tok = model.tokenizer
    stops = set(stop_token_ids(model))
    for s in ("\n", "\n\n"):
        ids = tok.encode(s, add_special_tokens=False)
        if len(ids) == 1:
            stops.add(int(ids[0]))
    prompts = []
    for t in texts:
        ids = torch.tensor(tok(t, add_special_tokens=True)["input_ids"], dtype=torch.long)
        prompts.append(
            FormattedPrompt(
                text=t,
                tokens=ids,
                role_ids=torch.zeros(len(ids), dtype=torch.long),
                last_prompt_index=len(ids) - 1,
                kind="transcript",
                messages=[],
                has_response=False,
            )
        )
    out: list[str] = [""] * len(prompts)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    for b0 in range(0, len(order), batch_size):
        idx = order[b0 : b0 + batch_size]
        new = generate_batch(
            model,
            [prompts[i] for i in idx],
            max_new_tokens=max_new_tokens,
            do_sample=do_sample,
            temperature=temperature,
            top_p=None,
            seed=seed + b0,
            stops=sorted(stops),
            fwd_hooks=fwd_hooks,
        )
        for i, toks in zip(idx, new):
            cut = next((k for k, x in enumerate(toks) if x in stops), len(toks))
            out[i] = tok.decode(toks[:cut], skip_special_tokens=True).split("\n")[0].strip()
    return out


def prefill_test(
    model: Model,
    vector: Float[Tensor, " d"] | AssistantAxis,
    *,
    layer: int | str | None = None,
    alphas: Sequence[float] = (-4.0, 0.0, 4.0),
    library: RoleLibrary | None = None,
    n_samples: int = 1,
    max_new_tokens: int = 12,
    batch_size: int = 16,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """The paper's base-model test: steer (usually a base checkpoint) along an axis and classify how it completes
    "I am a ..." prefills: fraction of completions naming a helpful human archetype vs a fantastical one
    (:func:`classify_completion` with the shipped word lists). ``vector`` is an axis (its unnormalised vector at
    ``layer`` is used, so alpha has the axis' own units) or a raw vector (then ``layer`` must be an int).
    ``n_samples`` > 1 samples (temperature 1) that many completions per prefill with different seeds."""
    lib = library or load_role_library(min_roles=0, min_questions=0)
    if isinstance(vector, AssistantAxis):
        if vector.vectors.shape[-1] != model.d_model:
            raise FeaturescopeError(
                f"the axis of {vector.model} has width {vector.vectors.shape[-1]} but {model.name} "
                f"has d_model {model.d_model}: the test needs two stages of the same model"
            )
        h, v = vector.hook(layer), vector.at(layer)
    else:
        if layer is None or isinstance(layer, str) and not layer.startswith("blocks."):
            raise ValueError("give the layer (int or hook name) to steer a raw vector at")
        h, v = (model.resid_hook(layer) if isinstance(layer, int) else layer), vector
    rows = []
    for a in alphas:
        comps: list[dict[str, str]] = []
        for s in range(n_samples):
            texts = complete_prefills(
                model,
                lib.prefills,
                max_new_tokens=max_new_tokens,
                batch_size=batch_size,
                do_sample=n_samples > 1,
                seed=seed + 1000 * s,
                fwd_hooks=[(h, steering_hook(v, a))],
            )
            comps += [
                {
                    "prefill": p,
                    "completion": c,
                    "label": classify_completion(c, lib.helpful_archetypes, lib.fantastical_archetypes),
                }
                for p, c in zip(lib.prefills, texts)
            ]
        n = len(comps)
        frac = {k: sum(c["label"] == k for c in comps) / n for k in ("helpful", "fantastical", "both", "other")}
        # per prefill (mean over samples), so the interval resamples prefills
        per_p = np.zeros(len(lib.prefills))
        for j, c in enumerate(comps):
            per_p[j % len(lib.prefills)] += (c["label"] == "helpful") - (c["label"] == "fantastical")
        per_p /= n_samples
        rows.append(
            {
                "alpha": a,
                **{f"{k}_fraction": v_ for k, v_ in frac.items()},
                "helpful_minus_fantastical": frac["helpful"] - frac["fantastical"],
                "helpful_minus_fantastical_ci": bootstrap(np.mean, per_p, seed=seed).to_dict(),
                "per_prefill": per_p.tolist(),
                "completions": comps,
            }
        )
        if progress:
            print(
                f"  alpha {a:+.1f}: helpful {frac['helpful']:.2f}  fantastical {frac['fantastical']:.2f}  "
                f"other {frac['other']:.2f}",
                flush=True,
            )
    return {
        "hook": h,
        "alphas": list(alphas),
        "n_prefills": len(lib.prefills),
        "n_samples": n_samples,
        "rows": rows,
        "measure": "whole-word matches of prefills.yaml's helpful_archetypes / fantastical_archetypes in the first "
        "12 words of each completion",
    }
