"""Assistant axis: orchestrator."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from ..evidence.nulls import evidence_text
from ..measures import DEFAULT_AI_TERMS
from ..models import Model
from ..runs import write_summary
from ..saes import sae_hook
from ..store import write_json
from .collect import collect_axis
from .compare import axis_features_across_stages, compare_axes, decompose_axis
from .constants import GROUPS, PAPER
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
from .results import AxisRunResult
from .roles import RoleLibrary, load_role_library, spread
from .sections import drift_section, prefill_section, steering_section
from .steer import axis_steering_control, axis_steering_sweep, prefill_test
from .vector import AssistantAxis


def run_axis(
    model: Model,
    out_dir: str | Path,
    *,
    n_roles: int | None = AxisConfig.n_roles,
    n_questions: int | None = AxisConfig.n_questions,
    max_new_tokens: int = AxisConfig.max_new_tokens,
    batch_size: int = AxisConfig.batch_size,
    judge: Any = "auto",
    library: RoleLibrary | None = None,
    extra_roles: str | Path | Sequence[str | Path] = (),
    instructions: Literal["cycle", "all"] = "cycle",
    layer: int | None = None,
    alphas: Sequence[float] = (-4.0, -2.0, 0.0, 2.0, 4.0),
    steer_system_prompts: Sequence[str | None] | None = None,
    n_identity_questions: int | None = 8,
    steer_seeds: Sequence[int] = (0, 1, 2),
    n_random_controls: int = 2,
    prefill_samples: int = 3,
    drift_turns: int | None = 6,
    drift_conversations: int = 5,
    drift_scripts: Sequence[str] | None = None,
    cap_layers: Sequence[int] | None = None,
    cap_percentile: float = 25.0,
    prefill_axis: AssistantAxis | None = None,
    prefill_alphas: Sequence[float] | None = None,
    compare_with: AssistantAxis | None = None,
    sae: Any = None,
    responses: Sequence[str] | None = None,
    seed: int = AxisConfig.seed,
    generation_dtype: str = AxisConfig.generation_dtype,
    capture_dtype: str = AxisConfig.capture_dtype,
    progress: bool = True,
) -> AxisRunResult:
    """The whole Assistant-axis experiment on one model, at a chosen scale; writes ``out_dir`` (axis, responses,
    figures, ``summary.json``) and returns the results.

    Steps: collect role vectors and the axis -> PCA and placement (figures) -> steering sweep on identity questions
    (with no system prompt, and with a fantastical role's prompt) -> drift over the scripts, uncapped and capped ->
    for a base checkpoint, the prefill test (with ``prefill_axis``, e.g. the post-trained axis, else its own) ->
    with ``compare_with`` (an axis of the other stage), the cross-stage numbers -> with ``sae``, the decomposition.
    Steering samples each answer once per ``steer_seeds`` seed (``()`` = greedy) and sweeps ``n_random_controls``
    random vectors of the axis' norm the same way (the null); the prefill test samples ``prefill_samples``
    completions per prefill (1 = greedy).
    Small knobs (``n_roles``, ``n_questions``, ``max_new_tokens``, ``drift_turns``) make a demo run take minutes."""

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    lib = library or load_role_library(extra_roles)
    cfg = AxisConfig(
        n_roles=n_roles,
        n_questions=n_questions,
        instructions=instructions,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        seed=seed,
        generation_dtype=generation_dtype,
        capture_dtype=capture_dtype,
    )
    timings: dict[str, float] = {}
    if progress:
        print(
            f"[axis] collecting role vectors on {model.name} ({model.stage}): {cfg.n_roles or len(lib.roles)} roles x "
            f"{cfg.n_questions or len(lib.questions)} questions + default Assistant ...",
            flush=True,
        )
    axis, rows = collect_axis(model, lib, cfg, judge=judge, out_dir=out, responses=responses, progress=progress)
    timings["collect"] = time.time() - t0
    axis_path = axis.save(out / "axis.safetensors")
    L = axis.index(layer)
    hook = axis.hooks[L]
    tag = (
        f"{model.name} ({model.stage}); {len(axis.role_names)} roles x {len(axis.extra['questions'])} questions, "
        f"{axis.extra['judge']}"
    )
    an = axis.analysis(hook)
    per_layer = axis.per_layer()
    figures = [
        plot_explained_variance(out / "explained_variance.png", axis, tag, hook),
        plot_pc_scatter(out / "pc1_pc2.png", axis, tag, hook),
        plot_layers(out / "axis_layers.png", axis, tag),
        plot_ranked_roles(out / "roles_ranked.png", axis, tag, hook),
    ]
    results: dict[str, Any] = {
        "axis_file": str(axis_path),
        "hook": hook,
        "analysis": an,
        "per_layer": per_layer,
        "counts": {
            k: axis.extra[k]
            for k in ("n_jobs", "n_default", "n_role_responses", "n_kept", "score_counts", "dropped_roles")
        },
        "ranked_roles": axis.ranked_roles(hook),
        "paper": PAPER,
    }
    if progress:
        print(
            f"[axis] {hook}: cos(axis, PC1) {an['axis_pc1_cosine']:+.2f}; {an['pcs_for_70pct']} PCs for 70%; "
            f"default at PC1 percentile {an['default_pc1_percentile']:.2f}; top roles {an['top_roles'][:4]}; "
            f"bottom {an['bottom_roles'][:4]}",
            flush=True,
        )
    # steering
    t = time.time()
    if steer_system_prompts is None:
        fant = next((r for r in lib.roles if r.name in axis.role_names and r.category in GROUPS["fantastical"]), None)
        steer_system_prompts = (None, fant.instructions[1] if fant else None)
        steer_system_prompts = tuple(dict.fromkeys(steer_system_prompts))
    qs = spread(lib.identity_questions, n_identity_questions)
    sw = axis_steering_sweep(
        model,
        axis,
        layer=hook,
        alphas=alphas,
        questions=qs,
        system_prompts=steer_system_prompts,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        seed=seed,
        seeds=steer_seeds,
        ai_terms=lib.ai_terms or DEFAULT_AI_TERMS,
        progress=progress,
    )
    control = None
    if n_random_controls > 0 and 0.0 in sw["alphas"] and min(sw["alphas"]) < 0:
        if progress:
            print(f"[axis] steering control: {n_random_controls} random vectors of the axis' norm ...", flush=True)
        control = axis_steering_control(
            model,
            axis,
            sw,
            n_random=n_random_controls,
            seed=seed,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            ai_terms=lib.ai_terms or DEFAULT_AI_TERMS,
            progress=progress,
        )
        if progress:
            print("  " + evidence_text(control["evidence"]), flush=True)
    timings["steer"] = time.time() - t
    results["steering"] = steering_section(sw, control)
    figures.append(plot_steering(out / "steering.png", results["steering"], tag))
    with open(out / "steering.jsonl", "w") as f:
        for r in sw["rows"]:
            for x in r["responses"]:
                f.write(json.dumps({"system_prompt": r["system_prompt"], "alpha": r["alpha"], **x}) + "\n")
    # drift, uncapped and capped
    if drift_turns != 0 and lib.scripts:
        t = time.time()
        scripts = [lib.script(s) for s in drift_scripts] if drift_scripts else list(lib.scripts)
        kw: dict[str, Any] = dict(
            layers=[hook],
            n_turns=drift_turns,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            seed=seed,
            n_conversations=drift_conversations,
            progress=progress,
        )
        d0 = drift(model, axis, scripts, **kw)
        d1 = drift(model, axis, scripts, capped=True, cap_layers=cap_layers, percentile=cap_percentile, **kw)
        timings["drift"] = time.time() - t
        tau = axis.tau(hook, cap_percentile) if L in [axis.index(x) for x in d1["cap_layers"]] else None
        figures.append(plot_drift(out / "drift.png", {"uncapped": d0}, tag, tau=axis.tau(hook, cap_percentile)))
        figures.append(
            plot_drift(
                out / "drift_capped.png",
                {"uncapped": d0, f"capped L{d1['cap_layers'][0]}-{d1['cap_layers'][-1]}": d1},
                tag,
                tau=tau,
            )
        )
        write_json(out / "drift.json", {"uncapped": d0, "capped": d1}, indent=1)

        results["drift"] = drift_section(axis, hook, {"uncapped": d0, "capped": d1}, cap_percentile)
    # base-model prefill test
    if model.stage == "base" and lib.prefills:
        t = time.time()
        pa = prefill_axis if prefill_axis is not None else axis
        src = (
            "post-trained axis " + pa.model if prefill_axis is not None else "its own axis (no post-trained axis given)"
        )
        if pa.vectors.shape[-1] == model.d_model:
            pf = prefill_test(
                model,
                pa,
                layer=hook if hook in pa.hooks else None,
                alphas=prefill_alphas or alphas,
                library=lib,
                n_samples=prefill_samples,
                seed=seed,
                progress=progress,
            )
            pf["axis"] = src
            figures.append(plot_prefill(out / "prefill.png", pf, f"{tag}; steered with {src}"))
            results["prefill"] = prefill_section(pf)
            with open(out / "prefill.jsonl", "w") as f:
                for r in pf["rows"]:
                    for c in r["completions"]:
                        f.write(json.dumps({"alpha": r["alpha"], **c}) + "\n")
        timings["prefill"] = time.time() - t
    if compare_with is not None:
        b, p = (axis, compare_with) if model.stage == "base" else (compare_with, axis)
        cmp = compare_axes(b, p)
        results["compare"] = cmp
        figures.append(plot_compare(out / "compare.png", cmp, tag))
    if sae is not None:
        dec = decompose_axis(axis, sae, layer=sae_hook(sae))
        results["decompositions"] = {m: d.to_dict(20) for m, d in dec.items()}
        if compare_with is not None and sae_hook(sae) in compare_with.hooks:
            b, p = (axis, compare_with) if model.stage == "base" else (compare_with, axis)
            results["features_across_stages"] = axis_features_across_stages(b, p, sae)
    timings["total"] = time.time() - t0
    write_summary(
        out,
        "axis run",
        inputs={
            "model": model.info,
            "config": cfg.to_dict(),
            "judge": axis.extra["judge"],
            "layer": hook,
            "alphas": list(alphas),
            "steer_seeds": list(steer_seeds),
            "n_random_controls": n_random_controls,
            "prefill_samples": prefill_samples,
            "drift_turns": drift_turns,
            "drift_conversations": drift_conversations,
            "cap_layers": cap_layers,
            "cap_percentile": cap_percentile,
            "library": list(lib.sources),
            "prefill_axis": getattr(prefill_axis, "model", None),
            "compare_with": getattr(compare_with, "model", None),
        },
        results=results,
        timings={**timings, **{f"collect_{k}": v for k, v in axis.extra["timings"].items()}},
        figures=figures,
    )
    return AxisRunResult(axis, results)
