"""One call per ``featurescope axis`` action: each takes the model (already loaded) or the axis files and the run
folder, computes, writes the action's files and ``summary.json`` (:func:`featurescope.runs.write_summary`, one
layout per action) and returns the summary's ``results``. ``axis run`` is :func:`featurescope.axis.run.run_axis`.

``load_s`` (where there is a model) is the time the caller spent loading it: recorded as ``timings.load_model`` and
counted in ``timings.total``, as the command line reports them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import corpus
from ..cards import cards_html, make_cards
from ..models import Model
from ..runs import write_summary
from ..saes import check_sae, load_sae
from ..store import write_json
from .collect import collect_axis
from .compare import axis_features_across_stages, compare_axes, decompose_axis
from .constants import N_INSTRUCTIONS, PAPER
from .drift import drift
from .figures import (
    plot_compare,
    plot_drift,
    plot_explained_variance,
    plot_layers,
    plot_pc_scatter,
    plot_prefill,
    plot_ranked_roles,
    plot_steering,
)
from .judges import AxisConfig
from .results import DriftResult
from .roles import RoleLibrary, load_role_library, spread
from .sections import drift_section, prefill_section, steering_section
from .steer import axis_steering_control, axis_steering_sweep, prefill_test
from .vector import AssistantAxis

ALPHAS = (-4.0, -2.0, 0.0, 2.0, 4.0)
COUNT_KEYS = ("n_jobs", "n_default", "n_role_responses", "n_kept", "score_counts", "dropped_roles")


def _folder(out: str | Path) -> Path:
    p = Path(out)
    p.mkdir(parents=True, exist_ok=True)
    return p


def _tag(axis: AssistantAxis) -> str:
    q = len(axis.extra.get("questions", [])) or "?"
    return f"{axis.model} ({axis.stage}); {len(axis.role_names)} roles x {q} questions, {axis.extra.get('judge', '?')}"


def _model_tag(model: Model, axis: AssistantAxis) -> str:
    return f"{model.name} ({model.stage}); axis of {axis.model}"


def analysis_figures(axis: AssistantAxis, out: Path, hook: str) -> list[str]:
    """The placement figures of an axis at ``hook``: explained variance, PC1/PC2, per layer, ranked roles."""
    tag = _tag(axis)
    return [
        plot_explained_variance(out / "explained_variance.png", axis, tag, hook),
        plot_pc_scatter(out / "pc1_pc2.png", axis, tag, hook),
        plot_layers(out / "axis_layers.png", axis, tag),
        plot_ranked_roles(out / "roles_ranked.png", axis, tag, hook),
    ]


def axis_roles(
    library: RoleLibrary | None = None,
    out: str | Path | None = None,
    *,
    extra_roles: Sequence[str | Path] | None = None,
) -> dict[str, Any]:
    """``axis roles``: counts of the role library (the shipped one merged with ``extra_roles``); with ``out``,
    ``summary.json`` there."""
    t0 = time.time()
    lib = library or load_role_library(extra_roles or ())
    info = {
        "n_roles": len(lib.roles),
        "n_instructions_each": N_INSTRUCTIONS,
        "categories": lib.category_counts(),
        "n_default_prompts": len(lib.default_prompts),
        "n_questions": len(lib.questions),
        "n_identity_questions": len(lib.identity_questions),
        "n_prefills": len(lib.prefills),
        "scripts": [s.name for s in lib.scripts],
        "sources": list(lib.sources),
    }
    if out is not None:
        write_summary(
            _folder(out),
            "axis roles",
            inputs={"extra_roles": extra_roles},
            results=info,
            timings={"total": time.time() - t0},
        )
    return info


def axis_compare(
    base: str | Path, post: str | Path, out: str | Path, *, sae: str | None = None, sae_id: str | None = None
) -> dict[str, Any]:
    """``axis compare``: a base and a post-trained axis (files) compared layer by layer (:func:`compare_axes`,
    ``compare.png``); with ``sae``, both axes in its features (``compare.features``: how many top features the
    stages share)."""
    t0 = time.time()
    out = _folder(out)
    b, p = AssistantAxis.load(base), AssistantAxis.load(post)
    cmp = compare_axes(b, p)
    fig = plot_compare(out / "compare.png", cmp, f"{len(cmp['hooks'])} layers, {cmp['n_common_roles']} common roles")
    if sae:
        cmp["features"] = {"sae": sae, **axis_features_across_stages(b, p, load_sae(sae, sae_id))}
    results = {"compare": cmp}
    write_summary(
        out,
        "axis compare",
        inputs={"base": base, "post": post, "sae": sae},
        results=results,
        timings={"total": time.time() - t0},
        figures=[fig],
    )
    return results


def axis_analyze(axis: str | Path, out: str | Path, *, layer: int | None = None) -> dict[str, Any]:
    """``axis analyze``: PCA and placement of a saved axis at ``layer`` (default: the middle one), with figures."""
    t0 = time.time()
    out = _folder(out)
    ax = AssistantAxis.load(axis)
    hook = ax.hook(layer)
    results = {
        "analysis": ax.analysis(hook),
        "per_layer": ax.per_layer(),
        "ranked_roles": ax.ranked_roles(hook),
        "paper": PAPER,
    }
    write_summary(
        out,
        "axis analyze",
        inputs={"axis": axis, "model": ax.model, "stage": ax.stage, "layer": hook},
        results=results,
        timings={"total": time.time() - t0},
        figures=analysis_figures(ax, out, hook),
    )
    return results


def axis_collect(
    model: Model,
    out: str | Path,
    *,
    library: RoleLibrary | None = None,
    config: AxisConfig = AxisConfig(),
    judge: Any = "auto",
    responses_from: str | Path | None = None,
    pool: Any = None,
    ray: str | None = None,
    workers: int = 1,
    layer: int | None = None,
    load_s: float = 0.0,
) -> dict[str, Any]:
    """``axis collect``: role vectors and the axis (:func:`collect_axis`, ``axis.safetensors``), analysed at
    ``layer`` with the placement figures. ``responses_from``: another collect run's ``responses.jsonl`` (same roles
    and questions), read on this model instead of generating. ``pool``: Ray workers for generation and capture
    (``ray``, its address, and ``workers`` are recorded). The returned results also hold the axis (``"axis"``)."""
    t0 = time.time()
    out = _folder(out)
    lib = library or load_role_library()
    responses = None
    if responses_from:
        rows = [json.loads(x) for x in Path(responses_from).read_text().splitlines() if x.strip()]
        responses = [r["response"] for r in rows]
    ax, _ = collect_axis(model, lib, config, judge=judge, out_dir=out, responses=responses, pool=pool)
    path = ax.save(out / "axis.safetensors")
    hook = ax.hook(layer)
    results: dict[str, Any] = {
        "axis_file": str(path),
        "analysis": ax.analysis(hook),
        "per_layer": ax.per_layer(),
        "counts": {k: ax.extra[k] for k in COUNT_KEYS},
        "ranked_roles": ax.ranked_roles(hook),
        "paper": PAPER,
    }
    figs = analysis_figures(ax, out, hook)
    write_summary(
        out,
        "axis collect",
        inputs={
            "model": model.info,
            "config": config.to_dict(),
            "judge": ax.extra["judge"],
            "responses_from": responses_from,
            "ray": ray,
            "workers": workers if ray else 1,
            "library": list(lib.sources),
        },
        results=results,
        timings={"load_model": load_s, **ax.extra["timings"], "total": load_s + time.time() - t0},
        figures=figs,
    )
    return {**results, "axis": ax}


def axis_steer(
    model: Model,
    axis: str | Path,
    out: str | Path,
    *,
    library: RoleLibrary | None = None,
    layer: int | None = None,
    alphas: Sequence[float] = ALPHAS,
    n_questions: int | None = 8,
    system_prompts: Sequence[str] = (),
    max_new_tokens: int = AxisConfig.max_new_tokens,
    batch_size: int = AxisConfig.batch_size,
    seed: int = 0,
    seeds: Sequence[int] = (0, 1, 2),
    n_controls: int = 2,
    load_s: float = 0.0,
) -> dict[str, Any]:
    """``axis steer``: the alpha sweep on ``n_questions`` identity questions, with no system prompt and under each
    of ``system_prompts`` (:func:`axis_steering_sweep`), against ``n_controls`` random vectors of the axis' norm
    (the null; 0 = none). Every answer goes to ``steering.jsonl``, three per row to the summary."""
    t0 = time.time()
    out = _folder(out)
    lib = library or load_role_library()
    ax = AssistantAxis.load(axis)
    hook = ax.hook(layer)
    sps: list[str | None] = [None, *system_prompts]
    sw = axis_steering_sweep(
        model,
        ax,
        layer=hook,
        alphas=alphas,
        questions=spread(lib.identity_questions, n_questions),
        system_prompts=sps,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        seed=seed,
        seeds=seeds,
        ai_terms=lib.ai_terms,
    )
    control = None
    if n_controls > 0:
        control = axis_steering_control(
            model,
            ax,
            sw,
            n_random=n_controls,
            seed=seed,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            ai_terms=lib.ai_terms,
        )
    section = steering_section(sw, control)
    fig = plot_steering(out / "steering.png", section, _model_tag(model, ax))
    with open(out / "steering.jsonl", "w") as f:
        for r in sw["rows"]:
            for x in r["responses"]:
                f.write(json.dumps({"system_prompt": r["system_prompt"], "alpha": r["alpha"], **x}) + "\n")
    results = {"steering": section}
    write_summary(
        out,
        "axis steer",
        inputs={"model": model.info, "axis": axis, "layer": hook, "alphas": sw["alphas"], "system_prompts": sps},
        results=results,
        timings={"load_model": load_s, "total": load_s + time.time() - t0},
        figures=[fig],
    )
    return results


def _drift_command(
    action: str,
    model: Model,
    axis: str | Path,
    out: str | Path,
    *,
    uncapped: bool,
    capped: bool,
    library: RoleLibrary | None,
    layer: int | None,
    n_turns: int | None,
    n_conversations: int,
    scripts: Sequence[str] | None,
    cap_layers: Sequence[int] | None,
    percentile: float,
    max_new_tokens: int,
    batch_size: int,
    seed: int,
    load_s: float,
) -> DriftResult:
    t0 = time.time()
    out = _folder(out)
    lib = library or load_role_library()
    ax = AssistantAxis.load(axis)
    hook = ax.hook(layer)
    played = [lib.script(s) for s in scripts] if scripts else list(lib.scripts)
    kw: dict[str, Any] = dict(
        layers=[hook],
        n_turns=n_turns,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        seed=seed,
        n_conversations=n_conversations,
    )
    cap_list = list(cap_layers) if cap_layers is not None else None
    runs: dict[str, Any] = {}
    if uncapped:
        runs["uncapped"] = drift(model, ax, played, **kw)
    if capped:
        runs["capped"] = drift(model, ax, played, capped=True, cap_layers=cap_list, percentile=percentile, **kw)
    tau = ax.tau(hook, percentile, "tokens" if ax.token_quantiles is not None else "responses")
    fig = plot_drift(
        out / ("drift.png" if action == "drift" else "drift_capped.png"), runs, _model_tag(model, ax), tau=tau
    )
    write_json(out / "drift.json", runs, indent=1)
    results = {"drift": {**drift_section(ax, hook, runs, percentile), "tau_at_layer": tau}}
    write_summary(
        out,
        f"axis {action}",
        inputs={
            "model": model.info,
            "axis": axis,
            "layer": hook,
            "turns": n_turns,
            "scripts": [s.name for s in played],
            "cap_layers": cap_list,
            "percentile": percentile,
        },
        results=results,
        timings={"load_model": load_s, "total": load_s + time.time() - t0},
        figures=[fig],
    )
    return DriftResult.from_section(results["drift"])


def axis_drift(
    model: Model,
    axis: str | Path,
    out: str | Path,
    *,
    capped: bool = False,
    library: RoleLibrary | None = None,
    layer: int | None = None,
    n_turns: int | None = None,
    n_conversations: int = 5,
    scripts: Sequence[str] | None = None,
    cap_layers: Sequence[int] | None = None,
    percentile: float = 25.0,
    max_new_tokens: int = AxisConfig.max_new_tokens,
    batch_size: int = AxisConfig.batch_size,
    seed: int = 0,
    load_s: float = 0.0,
) -> DriftResult:
    """``axis drift``: the per-turn projection over the multi-turn ``scripts`` (default: all shipped), generated
    uncapped, or under activation capping at ``cap_layers`` with ``capped`` (tau = the ``percentile`` of the
    default's projections). Writes ``drift.json`` and ``drift.png``."""
    return _drift_command(
        "drift",
        model,
        axis,
        out,
        uncapped=not capped,
        capped=capped,
        library=library,
        layer=layer,
        n_turns=n_turns,
        n_conversations=n_conversations,
        scripts=scripts,
        cap_layers=cap_layers,
        percentile=percentile,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        seed=seed,
        load_s=load_s,
    )


def axis_cap(
    model: Model,
    axis: str | Path,
    out: str | Path,
    *,
    library: RoleLibrary | None = None,
    layer: int | None = None,
    n_turns: int | None = None,
    n_conversations: int = 5,
    scripts: Sequence[str] | None = None,
    cap_layers: Sequence[int] | None = None,
    percentile: float = 25.0,
    max_new_tokens: int = AxisConfig.max_new_tokens,
    batch_size: int = AxisConfig.batch_size,
    seed: int = 0,
    load_s: float = 0.0,
) -> DriftResult:
    """``axis cap``: :func:`axis_drift` with and without activation capping, side by side (``drift_capped.png``)."""
    return _drift_command(
        "cap",
        model,
        axis,
        out,
        uncapped=True,
        capped=True,
        library=library,
        layer=layer,
        n_turns=n_turns,
        n_conversations=n_conversations,
        scripts=scripts,
        cap_layers=cap_layers,
        percentile=percentile,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        seed=seed,
        load_s=load_s,
    )


def axis_prefill(
    model: Model,
    axis: str | Path,
    out: str | Path,
    *,
    library: RoleLibrary | None = None,
    layer: int | None = None,
    alphas: Sequence[float] = ALPHAS,
    n_samples: int = 1,
    batch_size: int = AxisConfig.batch_size,
    seed: int = 0,
    load_s: float = 0.0,
) -> dict[str, Any]:
    """``axis prefill``: the base-model "I am a ..." test (:func:`prefill_test`) steered along the axis, ``n_samples``
    completions per prefill (1 = greedy). Every completion goes to ``prefill.jsonl``, four per row to the summary."""
    t0 = time.time()
    out = _folder(out)
    lib = library or load_role_library()
    ax = AssistantAxis.load(axis)
    hook = ax.hook(layer)
    pf = prefill_test(
        model, ax, layer=hook, alphas=alphas, library=lib, n_samples=n_samples, batch_size=batch_size, seed=seed
    )
    fig = plot_prefill(out / "prefill.png", pf, _model_tag(model, ax))
    with open(out / "prefill.jsonl", "w") as f:
        for r in pf["rows"]:
            for c in r["completions"]:
                f.write(json.dumps({"alpha": r["alpha"], **c}) + "\n")
    results = {"prefill": prefill_section(pf)}
    write_summary(
        out,
        "axis prefill",
        inputs={"model": model.info, "axis": axis, "layer": hook, "alphas": pf["alphas"], "samples": n_samples},
        results=results,
        timings={"load_model": load_s, "total": load_s + time.time() - t0},
        figures=[fig],
    )
    return results


def axis_decompose(
    model: Model,
    axis: str | Path,
    sae: str,
    out: str | Path,
    *,
    sae_id: str | None = None,
    allow_other_model: bool = False,
    k: int = 100,
    n_cards: int = 10,
    card_sequences: int = 256,
    load_s: float = 0.0,
) -> dict[str, Any]:
    """``axis decompose``: the axis at the SAE's layer in its features (:func:`decompose_axis`, top ``k`` per view)
    with cards for the top ``n_cards`` cosine features, read on ``card_sequences`` held-out corpus rows
    (``cards.html``)."""
    t0 = time.time()
    out = _folder(out)
    ax = AssistantAxis.load(axis)
    s = load_sae(sae, sae_id)
    h = check_sae(s, model, allow_other_model=allow_other_model)
    dec = decompose_axis(ax, s, layer=h, k=k)
    corpus.ensure_installed()
    toks = corpus.token_sequences(model.tokenizer, corpus.documents("heldout"), max_sequences=card_sequences, seed=2)
    top = dec["cosine"]
    cards = make_cards(
        model,
        s,
        toks,
        top.indices[:n_cards].tolist(),
        scores=top.scores[:n_cards].tolist(),
        sae_name=str(sae),
        hook=h,
    )
    title = f"Assistant axis of {ax.model} ({ax.stage}) at {h} in features of SAE {sae}, read on {model.name}"
    (out / "cards.html").write_text("<html><meta charset='utf-8'><body>" + cards_html(cards, title) + "</body></html>")
    results = {"decompositions": {m: d.to_dict(k) for m, d in dec.items()}, "cards": [c.to_dict() for c in cards]}
    write_summary(
        out,
        "axis decompose",
        inputs={"model": model.info, "axis": axis, "sae": sae, "hook": h},
        results=results,
        timings={"load_model": load_s, "total": load_s + time.time() - t0},
        figures=["cards.html"],
    )
    return results
