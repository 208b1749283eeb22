"""Persona: the whole experiment (I/O edge): extract -> choose layer -> steer -> monitor -> flag, with figures and summary."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import plots
from ..models import Model
from ..runs import write_summary
from ..traits import Trait, load_trait
from .extraction import ExtractionConfig, extract
from .monitoring import flag_summary, projection_difference
from .run_result import PersonaRunResult
from .sweeps import choose_layer, monitor_correlation, steering_control, steering_sweep

FLAG_DEMO = Path(__file__).parent.parent / "data" / "flagging" / "demo.jsonl"


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
    n_random_controls: int = 2,
    seeds: Sequence[int] = (0, 1, 2),
    progress: bool = True,
) -> PersonaRunResult:
    """Run Chen et al.'s full loop for one trait on one model and write vectors, figures and ``summary.json``.
    ``n_random_controls`` random vectors of equal norm are swept like the persona vector (the steering null; 0 =
    none). ``seeds`` (e.g. ``(0, 1, 2)``): the steering sweep, its controls and the monitoring answers are sampled
    once per seed (intervals over questions of the per-question mean); ``()`` = greedy. The returned ``"steering"``
    (with its ``control``) and ``"monitor"`` are :class:`.SteeringSweep` and :class:`.MonitorCorrelation` (dict access
    as before; ``summary.json`` holds their ``to_dict()``), inside a :class:`.PersonaRunResult` that renders the whole
    loop in Jupyter with its intervals, nulls and verdicts."""

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
    sweep_qs = set(tr.eval_questions[:n_eval_questions])
    lc["questions_disjoint_from_sweep"] = not (set(lc["questions"]) & sweep_qs)
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
        seeds=seeds,
        progress=progress,
    )
    if n_random_controls > 0:
        if progress:
            print(f"[persona] steering control: {n_random_controls} random vectors of equal norm ...", flush=True)
        ctl = steering_control(
            model,
            v,
            tr,
            judge,
            hook=best,
            sweep=sw,
            n_random=n_random_controls,
            seed=extraction.seed,
            n_questions=n_eval_questions,
            max_new_tokens=extraction.max_new_tokens,
            progress=progress,
        )
        sw = sw.with_control(ctl)
    timings["steer"] = time.time() - t
    figures.append(
        plots.steering_curve(
            out / "steering.png",
            sw.alphas,
            [r.trait_score for r in sw.rows],
            [r.coherence for r in sw.rows],
            f"steering at blocks.{best}.hook_resid_post - {tag}",
        )
    )
    t = time.time()
    mon = monitor_correlation(
        model,
        v,
        tr,
        judge,
        hook=best,
        n_questions=n_monitor_questions,
        max_new_tokens=extraction.max_new_tokens,
        seeds=seeds,
    )
    timings["monitor"] = time.time() - t
    figures.append(
        plots.monitor_scatter(
            out / "monitor.png",
            mon.per_level,
            f"monitoring at layer {best}: r = {mon.r_levels:.2f} (level means) - {tag}",
        )
    )
    flag: dict[str, Any] = {}
    if flag_dataset is not None:
        t = time.time()
        rows = [json.loads(x) for x in Path(flag_dataset).read_text().splitlines() if x.strip()]
        hook = model.resid_hook(best)
        fr = projection_difference(model, rows, v.at(hook), hook, max_new_tokens=extraction.max_new_tokens)
        flag = {
            "dataset": str(flag_dataset),
            **flag_summary(rows, fr["projection_difference"].tolist(), tr.name, seed=extraction.seed),
        }
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
            "config": extraction.to_dict(),
            "alpha": alpha,
            "alphas": list(alphas),
            "layers": layers,
            "seeds": list(seeds),
            "n_random_controls": n_random_controls,
        },
        results=results,
        timings={**timings, "extract_generate": ex["timings"]["generate"]},
        figures=figures,
    )
    return PersonaRunResult(results)
