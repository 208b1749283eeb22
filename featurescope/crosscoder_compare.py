"""Seed control for a crosscoder (issue 18): do two training runs of one recipe (other seeds) learn the same latents?

A crosscoder's "new features" fraction (its post-only, and of those the Latent-Scaling-kept truly chat-only
latents; PSM: < 1% of features are new after post-training) is evidence only if the dictionary is a property of the
two models rather than of one training run. :func:`compare_crosscoders` matches every latent of run A to its best
decoder-cosine latent of run B (over the concatenated decoder row ``[d_base; d_post]`` and over the post half alone),
gives per relative-norm class of A the fraction matched at ``cos >= threshold`` next to a null (B's decoder under a
random rotation: the same geometry, aligned with nothing), whether the runs put matched latents in the same class
(a 3 x 3 table), and each run's class fractions side by side. The convergence criterion: at least half of the
latents of each run have a match in the other at cos >= 0.7; below it, the class fractions are a property of the
training run and not evidence about post-training. :func:`compare_runs` reads two ``crosscoder train`` run folders
and writes ``summary.json`` (``featurescope crosscoder compare``).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from . import paper
from .crosscoder import RUN_FILE, saved_scales
from .errors import FeaturescopeError
from .runs import write_summary
from .stages.crosscoder import CrosscoderWeights, classify_latents, load_crosscoder, relative_decoder_norm
from .stages.matching import cosine_histogram, match_dictionaries, rotated_dictionary

__all__ = [
    "CLASSES",
    "CONVERGED_AT",
    "CrosscoderRun",
    "check_same_setup",
    "compare_crosscoders",
    "compare_runs",
    "format_comparison",
    "latent_classes",
    "read_crosscoder_run",
    "recipe_notes",
]

#: relative-norm classes, in the order of the class codes of :func:`latent_classes` and the agreement table
CLASSES: tuple[str, ...] = ("base_only", "shared", "post_only")
#: the convergence criterion: this fraction of each run's latents matched in the other at cos >= threshold
CONVERGED_AT = 0.5
_NAMES = {"base_only": "base-only", "shared": "shared", "post_only": "post-only", "truly_chat_only": "truly chat-only"}


def latent_classes(
    cc: CrosscoderWeights,
    scales: Float[Tensor, " 2"] | None = None,
    *,
    base_only_max: float = 0.1,
    post_only_min: float = 0.9,
) -> tuple[Int[Tensor, " n"], Float[Tensor, " n"]]:
    """Each latent's class code (0 base-only, 1 shared, 2 post-only: :data:`CLASSES`) and relative decoder norm r,
    read in the training space (decoder rows x the per-model ``scales``, as :func:`featurescope.crosscoder.
    analyse_crosscoder` reads them; None: raw units)."""
    W = cc.W_dec.float() if scales is None else cc.W_dec.float() * scales.float()[:, None, None]
    r = relative_decoder_norm(W[0], W[1])
    cls = classify_latents(r, base_only_max, post_only_min)
    code = torch.ones(cc.n_latents, dtype=torch.long)
    code[cls["base_only"]] = 0
    code[cls["post_only"]] = 2
    return code, r


def _concat(cc: CrosscoderWeights, scales: Tensor | None) -> Float[Tensor, "n two_d"]:
    """Decoder rows ``[d_base; d_post]`` (each half x its scale when given)."""
    W = cc.W_dec.float() if scales is None else cc.W_dec.float() * scales.float()[:, None, None]
    return W.transpose(0, 1).flatten(1)


def _frac(mask: Tensor) -> float | None:
    return float(mask.float().mean()) if len(mask) else None


def _width_check(a: CrosscoderWeights, b: CrosscoderWeights) -> None:
    wa = {"n_latents": a.n_latents, "d_model": int(a.W_dec.shape[-1])}
    wb = {"n_latents": b.n_latents, "d_model": int(b.W_dec.shape[-1])}
    if wa != wb:
        diff = "; ".join(f"{k}: A {wa[k]}, B {wb[k]}" for k in wa if wa[k] != wb[k])
        raise FeaturescopeError(
            f"cannot compare crosscoders of different widths ({diff}; A = {a.source or 'A'}, B = {b.source or 'B'}): "
            "a seed control compares two runs of one recipe"
        )


def compare_crosscoders(
    a: CrosscoderWeights,
    b: CrosscoderWeights,
    *,
    threshold: float = 0.7,
    seed: int = 0,
    scales_a: Tensor | None = None,
    scales_b: Tensor | None = None,
    thresholds_a: dict[str, float] | None = None,
    thresholds_b: dict[str, float] | None = None,
    truly_a: Sequence[int] | None = None,
    truly_b: Sequence[int] | None = None,
    converged_at: float = CONVERGED_AT,
    device: str | None = None,
    bins: int = 40,
) -> dict[str, Any]:
    """Match crosscoder A's latents against B's (module docstring). Best cosine per latent of A among B's latents
    (and of B among A's) over the concatenated decoder rows, read in A's training space (both decoders x
    ``scales_a``, so each model's half weighs as in training; None: raw units), and over the post halves alone (no
    scale matters there); tiled matrix products (:func:`featurescope.stages.matching.match_dictionaries`).

    ``scales_*``: each run's per-model training scales (:func:`featurescope.crosscoder.saved_scales`), which the
    relative norms and so the classes are read with; ``thresholds_*``: each run's class cut-offs (its report's
    ``thresholds``: ``base_only_r_below``, ``post_only_r_above``; default 0.1 / 0.9); ``truly_*``: the post-only
    latents Latent Scaling keeps (the report's ``true_post_only_latents``), a fourth class of A when given. The null:
    the same matching against B's decoder under a random rotation (``seed``), per class.
    Returns a JSON-able record (fractions, the agreement table, histograms, the convergence verdict)."""
    _width_check(a, b)
    ta, tb = thresholds_a or {}, thresholds_b or {}
    code_a, r_a = latent_classes(
        a, scales_a, base_only_max=ta.get("base_only_r_below", 0.1), post_only_min=ta.get("post_only_r_above", 0.9)
    )
    code_b, r_b = latent_classes(
        b, scales_b, base_only_max=tb.get("base_only_r_below", 0.1), post_only_min=tb.get("post_only_r_above", 0.9)
    )
    Da, Db = _concat(a, scales_a), _concat(b, scales_a)
    kw: dict[str, Any] = {"device": device}
    m = match_dictionaries(Da, Db, both=True, **kw)
    post = match_dictionaries(a.W_dec[1], b.W_dec[1], both=False, **kw).a_to_b_cos
    null = match_dictionaries(Da, rotated_dictionary(Db, seed), both=False, **kw).a_to_b_cos
    null_post = match_dictionaries(a.W_dec[1], rotated_dictionary(b.W_dec[1], seed + 1), both=False, **kw).a_to_b_cos
    assert m.b_to_a_cos is not None
    hit, hit_post, hit_null, hit_null_post = (c >= threshold for c in (m.a_to_b_cos, post, null, null_post))

    masks = {c: code_a == i for i, c in enumerate(CLASSES)}
    n = a.n_latents
    if truly_a is not None:
        ids = torch.tensor([int(j) for j in truly_a], dtype=torch.long)
        if len(ids) and not (0 <= int(ids.min()) and int(ids.max()) < n):
            raise FeaturescopeError(f"truly chat-only latents of A out of range [0, {n})")
        masks["truly_chat_only"] = torch.zeros(n, dtype=torch.bool).index_fill_(0, ids, True)
    by_class = {
        c: {
            "n": int(mk.sum()),
            "matched": _frac(hit[mk]),
            "matched_post_half": _frac(hit_post[mk]),
            "chance": _frac(hit_null[mk]),
            "chance_post_half": _frac(hit_null_post[mk]),
            "median_best_cos": float(m.a_to_b_cos[mk].median()) if bool(mk.any()) else None,
        }
        for c, mk in masks.items()
    }

    # do the runs agree on the class of a matched pair? rows: A's class, columns: the class of its match in B
    pair_a, pair_b = code_a[hit], code_b[m.a_to_b_idx[hit]]
    table = torch.bincount(pair_a * 3 + pair_b, minlength=9).view(3, 3)
    n_pairs = int(table.sum())
    agree = float(table.trace()) / n_pairs if n_pairs else None
    chance_agree = float((table.sum(1).double() * table.sum(0).double()).sum()) / n_pairs**2 if n_pairs else None
    agreement: dict[str, Any] = {
        "classes": list(CLASSES),
        "table": table.tolist(),
        "table_layout": "rows: the class of A's latent; columns: the class of its best match in B",
        "n_matched_pairs": n_pairs,
        "agreement": agree,
        "agreement_by_chance": chance_agree,
        "agreement_by_class_of_a": {
            c: (float(table[i, i]) / int(table[i].sum()) if int(table[i].sum()) else None)
            for i, c in enumerate(CLASSES)
        },
    }
    if truly_a is not None and truly_b is not None:
        kept_b = torch.zeros(n, dtype=torch.bool)
        kept_b[torch.tensor([int(j) for j in truly_b], dtype=torch.long)] = True
        mk = masks["truly_chat_only"] & hit
        agreement["truly_chat_only_match_also_truly_chat_only_in_b"] = _frac(kept_b[m.a_to_b_idx[mk]])

    reuse_ab, reuse_ba = _frac(hit), _frac(m.b_to_a_cos >= threshold)
    assert reuse_ab is not None and reuse_ba is not None
    converged = min(reuse_ab, reuse_ba) >= converged_at
    counts = {
        s: {c: int((code == i).sum()) for i, c in enumerate(CLASSES)} for s, code in (("a", code_a), ("b", code_b))
    }
    fractions = {s: {c: v / n for c, v in cnt.items()} for s, cnt in counts.items()}
    return {
        "threshold": threshold,
        "converged_at": converged_at,
        "n_latents": n,
        "d_model": int(a.W_dec.shape[-1]),
        "a_source": a.source,
        "b_source": b.source,
        "space": "decoder rows x A's activation scales (A's training space)"
        if scales_a is not None
        else "raw decoder rows",
        "null": f"B's decoder under a random rotation (seed {seed}; the post halves: seed {seed + 1}): the same "
        "geometry among B's latents, aligned with nothing",
        "reuse": {
            "a_to_b": reuse_ab,
            "b_to_a": reuse_ba,
            "a_to_b_post_half": _frac(hit_post),
            "chance": _frac(hit_null),
            "chance_post_half": _frac(hit_null_post),
            "median_best_cos_a_to_b": float(m.a_to_b_cos.median()),
            "median_best_cos_b_to_a": float(m.b_to_a_cos.median()),
            "median_best_cos_chance": float(null.median()),
        },
        "by_class_of_a": by_class,
        "class_agreement": agreement,
        "class_counts_from_decoders": counts,
        "class_fractions_from_decoders": fractions,
        "relative_norm_correlation_of_matched_pairs": _corr(r_a[hit], r_b[m.a_to_b_idx[hit]]),
        "converged": converged,
        "histograms": {
            "a_to_b": cosine_histogram(m.a_to_b_cos, bins),
            "b_to_a": cosine_histogram(m.b_to_a_cos, bins),
            "a_to_b_chance": cosine_histogram(null, bins),
        },
        "seconds": m.seconds,
    }


def _corr(x: Tensor, y: Tensor) -> float | None:
    if len(x) < 3:
        return None
    c = torch.corrcoef(torch.stack([x.double(), y.double()]))[0, 1]
    return None if bool(c.isnan()) else float(c)


@dataclasses.dataclass
class CrosscoderRun:
    """What :func:`compare_runs` reads from a run folder: the crosscoder, its training settings, and its report."""

    given: Path  # the path passed in
    crosscoder: Path  # the sae-lens crosscoder folder
    weights: CrosscoderWeights
    setup: dict[str, Any]  # base_model, post_model, hook, d_model, n_latents (what two runs must share), seed, recipe
    report: dict[str, Any] | None  # crosscoder_train / eval's results.report (None: no summary found)
    report_from: str | None


def _read_json(p: Path) -> dict[str, Any] | None:
    return json.loads(p.read_text()) if p.is_file() else None


def _is_crosscoder_dir(p: Path) -> bool:
    return (p / "cfg.json").is_file() and (p / "sae_weights.safetensors").is_file()


def read_crosscoder_run(path: str | Path) -> CrosscoderRun:
    """A ``crosscoder train`` run folder (``summary.json`` + ``crosscoder/``), its ``crosscoder/`` folder (the
    report from the run's ``summary.json`` beside it, else the folder's ``eval.json``), or a ``crosscoder eval``
    folder (its ``summary.json`` names the crosscoder)."""
    p = Path(path)
    if not p.exists():
        raise FeaturescopeError(f"no crosscoder run at {p}")
    summary = _read_json(p / "summary.json")
    if _is_crosscoder_dir(p):
        cc_dir, cands = p, [(p.parent / "summary.json", True), (p / "eval.json", False)]
    elif _is_crosscoder_dir(p / "crosscoder"):
        cc_dir, cands = p / "crosscoder", [(p / "summary.json", True), (p / "crosscoder" / "eval.json", False)]
    elif summary is not None and summary.get("command") == "crosscoder eval":
        cc_dir, cands = Path(summary["inputs"]["crosscoder"]), [(p / "summary.json", True)]
        if not _is_crosscoder_dir(cc_dir):
            raise FeaturescopeError(f"{p}/summary.json names the crosscoder {cc_dir}, which is not there")
    else:
        raise FeaturescopeError(
            f"{p} is not a crosscoder run: expected a `crosscoder train` run folder (summary.json and crosscoder/ "
            "with cfg.json and sae_weights.safetensors), its crosscoder/ folder, or a `crosscoder eval` folder"
        )
    report, report_from = None, None
    for cand, is_summary in cands:
        doc = _read_json(cand)
        if doc is None:
            continue
        if is_summary and not str(doc.get("command", "")).startswith("crosscoder"):
            continue
        rep = (doc.get("results") or {}).get("report") if is_summary else doc.get("report")
        if rep:
            report, report_from = rep, str(cand)
            break
    weights = load_crosscoder(cc_dir)
    meta = (_read_json(cc_dir / "cfg.json") or {}).get("metadata") or {}
    run = _read_json(cc_dir / RUN_FILE) or {}
    setup = {
        "base_model": run.get("base_model", meta.get("base_model")),
        "post_model": run.get("post_model", meta.get("post_model")),
        "hook": run.get("hook", meta.get("hook_name")),
        "d_model": int(weights.W_dec.shape[-1]),
        "n_latents": weights.n_latents,
        "seed": run.get("seed"),
        "recipe": {k: run[k] for k in RECIPE if k in run},
    }
    return CrosscoderRun(p, cc_dir, weights, setup, report, report_from)


#: training settings (of featurescope_run.json) that two runs of a seed control share; a difference is a note
RECIPE = (
    "k",
    "training_tokens",
    "lr",
    "batch_size_tokens",
    "sources",
    "outlier_k",
    "lr_warm_up_steps",
    "decoder_init_norm",
    "dead_feature_window",
)


def recipe_notes(a: CrosscoderRun, b: CrosscoderRun) -> list[str]:
    """What makes the pair less than a pure seed control: other training settings, or the same seed."""
    ra, rb = a.setup.get("recipe") or {}, b.setup.get("recipe") or {}
    diff = [k for k in RECIPE if k in ra and k in rb and ra[k] != rb[k]]
    notes = []
    if diff:
        sides = "; ".join(f"{k}: A {ra[k]!r}, B {rb[k]!r}" for k in diff)
        notes.append(f"the runs differ in more than the seed ({sides}): not a pure seed control")
    if a.setup.get("seed") is not None and a.setup.get("seed") == b.setup.get("seed"):
        notes.append(f"both runs have seed {a.setup['seed']}: not a seed control")
    return notes


def check_same_setup(a: CrosscoderRun, b: CrosscoderRun) -> None:
    """Two runs of a seed control must share the models, the hook and the widths: otherwise an error naming both
    values of every difference."""
    keys = ("base_model", "post_model", "hook", "d_model", "n_latents")
    diff = [k for k in keys if a.setup[k] is not None and b.setup[k] is not None and a.setup[k] != b.setup[k]]
    if diff:
        sides = "; ".join(f"{k}: A {a.setup[k]!r}, B {b.setup[k]!r}" for k in diff)
        raise FeaturescopeError(
            f"cannot compare these crosscoders ({sides}; A = {a.given}, B = {b.given}): a seed control compares two "
            "training runs of one recipe - the same models, hook and widths, another seed"
        )


def _report_fractions(rep: dict[str, Any] | None) -> dict[str, float | None] | None:
    """Class fractions from a run's report: base-only / shared / post-only and the truly chat-only ones."""
    if not rep or "counts" not in rep or not rep.get("n_latents"):
        return None
    n = rep["n_latents"]
    out: dict[str, float | None] = {c: rep["counts"].get(c, 0) / n for c in CLASSES}
    kept = rep.get("post_only_passing_latent_scaling")
    out["truly_chat_only"] = None if kept is None else kept / n
    return out


def _truly(rep: dict[str, Any] | None) -> tuple[list[int] | None, str | None]:
    """The report's truly chat-only latents, and a note when its list is cut short (the report lists 200)."""
    if not rep or "true_post_only_latents" not in rep:
        return None, None
    ids = [int(j) for j in rep["true_post_only_latents"]]
    total = rep.get("post_only_passing_latent_scaling")
    note = None
    if total is not None and total > len(ids):
        note = f"the report lists {len(ids)} of its {total} truly chat-only latents; the class is those {len(ids)}"
    return ids, note


def compare_runs(
    a: str | Path,
    b: str | Path,
    out: str | Path | None = None,
    *,
    threshold: float = 0.7,
    seed: int = 0,
    converged_at: float = CONVERGED_AT,
    device: str | None = None,
) -> dict[str, Any]:
    """``crosscoder compare``: :func:`compare_crosscoders` of two ``crosscoder train`` runs (:func:`read_crosscoder_
    run`; the same models, hook and widths, or an error), with each run's class fractions from its report side by
    side, the truly chat-only class of A (from A's report) and the verdict in words (``text``). With ``out``,
    writes ``out/summary.json``."""
    t0 = time.time()
    ra, rb = read_crosscoder_run(a), read_crosscoder_run(b)
    check_same_setup(ra, rb)
    truly_a, note_a = _truly(ra.report)
    truly_b, note_b = _truly(rb.report)
    res = compare_crosscoders(
        ra.weights,
        rb.weights,
        threshold=threshold,
        seed=seed,
        scales_a=saved_scales(ra.crosscoder),
        scales_b=saved_scales(rb.crosscoder),
        thresholds_a=(ra.report or {}).get("thresholds"),
        thresholds_b=(rb.report or {}).get("thresholds"),
        truly_a=truly_a,
        truly_b=truly_b,
        converged_at=converged_at,
        device=device,
    )
    res["runs"] = {
        side: {
            "folder": str(r.given),
            "crosscoder": str(r.crosscoder),
            "setup": r.setup,
            "report_from": r.report_from,
            "class_fractions": _report_fractions(r.report),
        }
        for side, r in (("a", ra), ("b", rb))
    }
    res["notes"] = [n for n in (note_a and f"A: {note_a}", note_b and f"B: {note_b}") if n] + recipe_notes(ra, rb)
    for side, r in (("a", ra), ("b", rb)):
        got, rep = res["class_counts_from_decoders"][side], (r.report or {}).get("counts")
        if rep is not None and any(got[c] != rep.get(c) for c in CLASSES):
            res["notes"].append(
                f"{side.upper()}: the classes read from the decoder differ from its report's counts (another "
                "crosscoder in the folder since the report?); the report's fractions are shown, the matching uses "
                "the decoder's"
            )
    res["psm"] = {"claim": paper.cite("new_features"), "value": paper.NUMBERS["new_features"].value}
    res["verdict"] = _verdict(res)
    res["text"] = format_comparison(res)
    if out is not None:
        write_summary(
            out,
            "crosscoder compare",
            inputs={"a": str(a), "b": str(b), "threshold": threshold, "seed": seed, "converged_at": converged_at},
            results=res,
            timings={"total": time.time() - t0},
        )
    return res


def _pct(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None else f"{100 * x:.{digits}f}%"


def _chat_only_key(res: dict[str, Any]) -> str:
    """A's chat-only class for the headline: the truly chat-only latents when A's report lists them, else post-only."""
    return "truly_chat_only" if "truly_chat_only" in res["by_class_of_a"] else "post_only"


def _verdict(res: dict[str, Any]) -> str:
    ru, thr, at = res["reuse"], res["threshold"], res["converged_at"]
    key = _chat_only_key(res)
    chat = res["by_class_of_a"][key]
    both = f"A->B {_pct(ru['a_to_b'])}, B->A {_pct(ru['b_to_a'])}; chance {_pct(ru['chance'])}"
    if not res["converged"]:
        return (
            f"NOT CONVERGED ACROSS SEEDS: fewer than {_pct(at, 0)} of the latents have a match at decoder cosine >= "
            f"{thr} in the other run ({both}). The two runs learned different dictionaries, so the class fractions "
            "(base-only / shared / post-only, and the 'new features' fraction) describe one training run, not the "
            "models: they are not evidence about post-training until the crosscoder is trained to convergence "
            "(more tokens, or a width the data supports) and the seeds agree"
        )
    text = (
        f"converged across seeds by the criterion (>= {_pct(at, 0)} of each run's latents matched at cos >= {thr}: "
        f"{both})"
    )
    if chat["n"] and chat["matched"] is not None and chat["matched"] < at:
        text += (
            f"; but only {_pct(chat['matched'])} of A's {_NAMES[key]} latents have a match in B: the chat-only set "
            "itself is not reproduced by the second seed, so which latents are new is not stable even where the "
            "dictionary is"
        )
    return text


def format_comparison(res: dict[str, Any]) -> str:
    """The one-screen printout of :func:`compare_runs` (or of :func:`compare_crosscoders`' record)."""
    runs = res.get("runs") or {}
    lines = []
    seeds = {s: (runs.get(s) or {}).get("setup", {}).get("seed") for s in ("a", "b")}
    names = {s: (runs.get(s) or {}).get("folder") or res[f"{s}_source"] for s in ("a", "b")}
    lines.append(
        f"crosscoder seed control: A = {names['a']} (seed {seeds['a']}), B = {names['b']} (seed {seeds['b']}); "
        f"{res['n_latents']} latents, d_model {res['d_model']}, match at decoder cosine >= {res['threshold']}"
    )
    lines.append(f"  {'class fractions':<18}{'base-only':>11}{'shared':>9}{'post-only':>11}{'truly chat-only':>17}")
    frac: dict[str, dict[str, float | None] | None] = {}
    for s in ("a", "b"):
        f = (runs.get(s) or {}).get("class_fractions") or res["class_fractions_from_decoders"][s]
        frac[s] = f
        lines.append(
            f"  {s.upper():<18}{_pct(f.get('base_only')):>11}{_pct(f.get('shared')):>9}{_pct(f.get('post_only')):>11}"
            f"{_pct(f.get('truly_chat_only')):>17}"
        )
    new = {s: (frac[s] or {}).get("truly_chat_only") for s in ("a", "b")}
    key = _chat_only_key(res)
    chat = res["by_class_of_a"][key]
    lines.append(
        f"new (truly chat-only) latents: A {_pct(new['a'])}, B {_pct(new['b'])} "
        f"(PSM: {(res.get('psm') or {}).get('claim', paper.cite('new_features'))}); "
        f"of A's {_NAMES[key]} latents ({chat['n']}) {_pct(chat['matched'], 0)} have a match in B "
        f"(chance {_pct(chat['chance'], 0)})"
    )
    ru = res["reuse"]
    lines.append(
        f"reuse over [d_base; d_post]: A->B {_pct(ru['a_to_b'])}, B->A {_pct(ru['b_to_a'])} (chance "
        f"{_pct(ru['chance'])}); post half alone: A->B {_pct(ru['a_to_b_post_half'])} (chance "
        f"{_pct(ru['chance_post_half'])})"
    )
    lines.append(f"  {'by class of A':<18}{'n':>7}{'matched':>10}{'post half':>11}{'chance':>9}{'median cos':>12}")
    for c, v in res["by_class_of_a"].items():
        med = "n/a" if v["median_best_cos"] is None else f"{v['median_best_cos']:.3f}"
        lines.append(
            f"  {_NAMES[c]:<18}{v['n']:>7}{_pct(v['matched']):>10}{_pct(v['matched_post_half']):>11}"
            f"{_pct(v['chance']):>9}{med:>12}"
        )
    ag = res["class_agreement"]
    lines.append(
        f"class agreement of the {ag['n_matched_pairs']} matched pairs: {_pct(ag['agreement'])} (chance "
        f"{_pct(ag['agreement_by_chance'])}); rows A, columns B (base-only, shared, post-only): {ag['table']}"
    )
    if "truly_chat_only_match_also_truly_chat_only_in_b" in ag:
        lines.append(
            "  A's truly chat-only latents whose match B also keeps as truly chat-only: "
            f"{_pct(ag['truly_chat_only_match_also_truly_chat_only_in_b'])}"
        )
    lines += [f"note: {n}" for n in res.get("notes") or []]
    lines.append(f"verdict: {res.get('verdict') or _verdict(res)}")
    return "\n".join(lines)
