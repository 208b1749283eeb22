"""The library side of ``featurescope persona extract | rebuild | steer | monitor | flag``: one function per action
computes, writes its files and ``summary.json`` (one layout per command) and returns the results; the CLI parses
arguments, makes one call and prints. (``persona run`` is :func:`featurescope.persona.run.run_persona`.)"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import plots
from ..models import Model
from ..runs import write_summary
from ..traits import load_trait
from .extraction import ExtractionConfig, extract, extract_written, load_written, rebuild
from .monitoring import flag_summary, projection_difference
from .results import MonitorCorrelation, SteeringSweep
from .sweeps import monitor_correlation, steering_control, steering_sweep
from .vector import PersonaVector


def best_layer(cohens_d: Sequence[float]) -> int | None:
    """The layer with the largest finite Cohen's d (None when every layer's d is undefined)."""
    finite = [i for i, d in enumerate(cohens_d) if d == d]
    return max(finite, key=lambda i: cohens_d[i]) if finite else None


def persona_extract(
    model: Model,
    trait: str,
    judge: Any,
    out: str | Path,
    cfg: ExtractionConfig,
    *,
    written: str | None = None,
    pool: Any = None,
    ray: str | None = None,
    workers: int = 1,
) -> dict[str, Any]:
    """``persona extract``: vectors from judge-filtered generated answers (or ``written`` paired answers), the
    per-layer separation figure, ``responses.jsonl`` and ``summary.json``. Returns the summary's results."""
    out = Path(out)
    tr = load_trait(trait)
    if written:
        res = extract_written(
            model, tr.name, load_written(written), source=written, handling=cfg.handling, outlier_k=cfg.outlier_k
        )
    else:
        res = extract(model, tr, judge, config=cfg, answers_path=out / "answers.jsonl", pool=pool)
    out.mkdir(parents=True, exist_ok=True)
    files = {k: str(v.save(out / f"{tr.name}.{k}.safetensors")) for k, v in res["vectors"].items()}
    (out / "responses.jsonl").write_text(
        "\n".join(json.dumps({k: v for k, v in r.items() if k != "messages"}) for r in res["responses"])
    )
    sep = res["separation"]
    fig = plots.layer_profile(
        out / "layers.png",
        {"Cohen's d (pos vs neg projection)": sep["cohens_d"]},
        f"{tr.name} persona vector on {model.name} ({model.stage}); "
        + (f"written answers {Path(written).name}" if written else f"judge {judge.name}"),
        "Cohen's d",
    )
    results = {
        "counts": res["counts"],
        "separation": sep,
        "best_separation_layer": best_layer(sep["cohens_d"]),
        "vector_norms": res["vectors"]["response_mean"].norms,
        "files": files,
    }
    write_summary(
        out,
        "persona extract",
        inputs={
            "model": model.info,
            "trait": tr.name,
            "config": cfg.to_dict(),
            "judge": None if written else judge.name,
            "written": written,
            "ray": ray,
            "workers": workers if ray else 1,
        },
        results=results,
        timings=res["timings"],
        figures=[fig],
    )
    return results


def persona_rebuild(
    model: Model, trait: str, rows: list[dict[str, Any]], out: str | Path, cfg: ExtractionConfig, *, responses: str
) -> dict[str, Any]:
    """``persona rebuild``: vectors rebuilt from a run's kept responses (``responses``: its responses.jsonl), with and
    without the eliciting system prompt re-read; figure and ``summary.json``. Returns the summary's results."""
    out = Path(out)
    tr = load_trait(trait)
    res = rebuild(model, tr.name, rows, config=cfg, source=responses)
    out.mkdir(parents=True, exist_ok=True)
    files = {k: str(v.save(out / f"{tr.name}.{k}.safetensors")) for k, v in res["vectors"].items()}
    files["reread.response_mean"] = str(
        res["reread_vectors"]["response_mean"].save(out / f"{tr.name}.reread.response_mean.safetensors")
    )
    (out / "responses.jsonl").write_text(Path(responses).read_text())
    sep, rr = res["separation"], res["reread"]
    best = best_layer(sep["cohens_d"])
    series = {"Cohen's d in sample": sep["cohens_d"]}
    for tag, sp in (("held-out d", sep), ("held-out d, re-read without the system prompt", rr["separation"])):
        if sp.get("held_out"):
            series[tag] = [e["estimate"]["value"] for e in sp["held_out"]]
            series[tag + ": null 97.5%"] = [e["null"]["hi"] for e in sp["held_out"]]
    fig = plots.layer_profile(
        out / "layers.png",
        series,
        f"{tr.name} vector rebuilt on {model.name} ({cfg.handling}, outlier k {cfg.outlier_k})",
        "Cohen's d",
        mark=best,
    )
    results = {
        "counts": res["counts"],
        "separation": sep,
        "best_separation_layer": best,
        "reread": rr,
        "vector_norms": res["vectors"]["response_mean"].norms,
        "massive": {
            k: res["vectors"]["response_mean"].extra[k]
            for k in ("handling", "massive_dims", "share_on_mean_raw", "share_on_massive_raw")
        },
        "files": files,
    }
    write_summary(
        out,
        "persona rebuild",
        inputs={"model": model.info, "trait": tr.name, "config": cfg.to_dict(), "responses": responses},
        results=results,
        timings=res["timings"],
        figures=[fig],
    )
    return results


def persona_steer(
    model: Model,
    v: PersonaVector,
    judge: Any,
    out: str | Path,
    *,
    layer: int,
    alphas: Sequence[float],
    n_questions: int,
    seeds: Sequence[int],
    controls: int,
    seed: int,
    vector_path: str,
    started: float,
    **gen: Any,
) -> SteeringSweep:
    """``persona steer``: the sweep (and ``controls`` random vectors of equal norm), figure and ``summary.json``.
    ``started``: when the command began (its total time includes loading the model); ``gen``: generation knobs."""
    out = Path(out)
    res = steering_sweep(
        model, v, v.trait, judge, hook=layer, alphas=list(alphas), n_questions=n_questions, seeds=list(seeds), **gen
    )
    if controls > 0:
        ctl = steering_control(
            model, v, v.trait, judge, hook=layer, sweep=res, n_random=controls, seed=seed, n_questions=n_questions,
            **gen,
        )  # fmt: skip
        res = res.with_control(ctl)
    out.mkdir(parents=True, exist_ok=True)
    fig = plots.steering_curve(
        out / "steering.png",
        list(alphas),
        [r.trait_score for r in res.rows],
        [r.coherence for r in res.rows],
        f"steering {v.trait} at layer {layer} of {model.name} ({model.stage})",
    )
    write_summary(
        out,
        "persona steer",
        inputs={
            "model": model.info,
            "vector": vector_path,
            "layer": layer,
            "alphas": list(alphas),
            "judge": judge.name,
        },
        results=res,
        timings={"total": time.time() - started},
        figures=[fig],
    )
    return res


def persona_monitor(
    model: Model,
    v: PersonaVector,
    judge: Any,
    out: str | Path,
    *,
    layer: int,
    n_questions: int,
    seeds: Sequence[int],
    vector_path: str,
    started: float,
    **gen: Any,
) -> MonitorCorrelation:
    """``persona monitor``: last-prompt projection vs judged trait score, and ``summary.json``."""
    res = monitor_correlation(model, v, v.trait, judge, hook=layer, n_questions=n_questions, seeds=list(seeds), **gen)
    write_summary(
        out,
        "persona monitor",
        inputs={"model": model.info, "vector": vector_path, "layer": layer, "judge": judge.name, "seeds": list(seeds)},
        results=res,
        timings={"total": time.time() - started},
    )
    return res


def persona_flag(
    model: Model,
    v: PersonaVector,
    rows: list[dict[str, Any]],
    out: str | Path,
    *,
    layer: int,
    dataset: str,
    seed: int,
    vector_path: str,
    started: float,
    **gen: Any,
) -> dict[str, Any]:
    """``persona flag``: each training row's projection difference, per-dataset means and AUROC with its null, and
    ``summary.json``. Returns the summary's results."""
    hook = model.resid_hook(layer)
    res = projection_difference(model, rows, v.at(hook), hook, **gen)
    summary = flag_summary(rows, res["projection_difference"].tolist(), v.trait, seed=seed)
    write_summary(
        out,
        "persona flag",
        inputs={"model": model.info, "vector": vector_path, "layer": layer, "dataset": dataset},
        results=summary,
        timings={"total": time.time() - started},
    )
    return summary
