"""Fine-tuning shift: the summary over per-fine-tune results (pure) and its figures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import plots
from ..paper import NUMBERS
from ..stats import NOT_DISTINGUISHABLE, Estimate
from . import measure
from .config import FinetuneShiftConfig
from .results import FinetuneShiftResult

PAPER = {k: NUMBERS[k].text for k in ("finetune_shift_r", "emergent_misalignment", "preventative_steering")}


# --------------------------------------------------------------------------------------------------------------
# summary (pure over the per-fine-tune results)
# --------------------------------------------------------------------------------------------------------------
def _mean_over_seeds(runs: Sequence[dict[str, Any]], name: str, key: str, trait: str) -> list[float]:
    sel = [r[key][trait] for r in runs if r["set"] == name]
    return np.mean(np.asarray(sel, dtype=float), axis=0).tolist()


def summarise(
    cfg: FinetuneShiftConfig,
    traits: Sequence[str],
    base: dict[str, Any],
    runs: Sequence[dict[str, Any]],
    datap: dict[str, dict[str, Any]],
    prevent: Sequence[dict[str, Any]],
    has_axis: bool,
) -> FinetuneShiftResult:
    """Per fine-tune rows, the shift-expression correlations (interval over fine-tunes, shuffled-pairing null),
    the data's projection difference against the shift, the emergent-misalignment table against the neutral
    control, and the preventative-steering comparison, as a :class:`FinetuneShiftResult` (read by key as the dict
    it used to be; ``to_dict()`` gives that dict)."""
    table = []
    for r in runs:
        row: dict[str, Any] = {"set": r["set"], "seed": r["seed"], "heldout_loss": r["heldout_loss"]}
        for t in traits:
            before = np.asarray(base["projections"][t])
            after = np.asarray(r["projections"][t])
            row[f"shift_{t}"] = float(np.mean(after - before))
            row[f"expression_{t}"] = float(np.mean(r["expression"][t]))
        if has_axis:
            row["shift_axis"] = float(
                np.mean(np.asarray(r["projections"]["axis"]) - np.asarray(base["projections"]["axis"]))
            )
        table.append(row)
    base_expr = {t: float(np.mean(base["expression"][t])) for t in traits}

    corr: dict[str, Any] = {}
    for t in traits:
        x = [row[f"shift_{t}"] for row in table]
        y = [row[f"expression_{t}"] for row in table]
        ev = measure.correlation_with_null(x, y, what="shift vs expression, pairing shuffled")
        corr[t] = {
            **ev.to_dict(),
            "line": ev.line(),
            "n_finetunes": len(x),
            "paper": PAPER["finetune_shift_r"],
        }
        # the data's projection difference (before training) against the shift it caused, per set (mean over seeds)
        names = sorted({row["set"] for row in table} & set(datap))
        pdiff = [datap[n][t]["value"] for n in names]
        shift = [float(np.mean([row[f"shift_{t}"] for row in table if row["set"] == n])) for n in names]
        ev2 = measure.correlation_with_null(pdiff, shift, what="projection difference vs shift, pairing shuffled")
        corr[t]["projection_difference_vs_shift"] = {**ev2.to_dict(), "line": ev2.line(), "n_sets": len(names)}

    # emergent misalignment: each set's expression per question (mean over seeds) against the neutral control's
    # (sets x traits comparisons: Bonferroni-corrected intervals, so the table as a whole keeps a 5% false-alarm rate)
    em: list[dict[str, Any]] = []
    others = sorted({r["set"] for r in runs} - {"neutral"})
    em_level = 1 - 0.05 / max(1, len(others) * len(traits))
    if any(r["set"] == "neutral" for r in runs):
        for name in others:
            for t in traits:
                est = measure.paired_effect(
                    _mean_over_seeds(runs, name, "expression", t),
                    _mean_over_seeds(runs, "neutral", "expression", t),
                    level=em_level,
                )
                em.append(
                    {
                        "set": name,
                        "trait": t,
                        "effect_vs_neutral": est.to_dict(),
                        "verdict": _verdict(est),
                        "expression": float(np.mean(_mean_over_seeds(runs, name, "expression", t))),
                        "neutral": float(np.mean(_mean_over_seeds(runs, "neutral", "expression", t))),
                    }  # fmt: skip
                )
    prev: dict[str, Any] = {}
    if prevent:
        s = cfg.preventative_set
        t = next(x for x in traits if s and s.startswith(x + "-"))
        plain = [r for r in runs if r["set"] == s]
        arms = {"plain": plain, **{a: [r for r in prevent if r["arm"] == a] for a in ("steer", "random")}}
        q_means = {a: np.mean([r["expression"][t] for r in rs], axis=0).tolist() for a, rs in arms.items() if rs}
        prev = {
            "set": s,
            "trait": t,
            "alpha_fraction_of_norm": cfg.preventative_alpha,
            "arms": {
                a: {
                    "expression": float(np.mean(q_means[a])),
                    "heldout_loss": float(np.mean([r["heldout_loss"] for r in rs])),
                    "shift": float(
                        np.mean(
                            [np.mean(np.asarray(r["projections"][t]) - np.asarray(base["projections"][t])) for r in rs]
                        )
                    ),
                    "n_seeds": len(rs),
                }  # fmt: skip
                for a, rs in arms.items()
                if rs
            },
        }
        for a in ("steer", "random"):
            if a in q_means and "plain" in q_means:
                est = measure.paired_effect(q_means[a], q_means["plain"])
                prev["arms"][a]["effect_vs_plain"] = est.to_dict()
                prev["arms"][a]["verdict"] = _verdict(est)
    return FinetuneShiftResult.from_dict(
        {
            "base_expression": base_expr,
            "finetunes": table,
            "correlation": corr,
            "emergent_misalignment": em,
            "preventative": prev,
            "paper": PAPER,
        }
    )


def _verdict(est: Estimate) -> str:
    if est.lo != est.lo or (est.lo <= 0 <= est.hi):
        return NOT_DISTINGUISHABLE
    return "increase" if est.lo > 0 else "decrease"


def figures_for(
    out: Path,
    cfg: FinetuneShiftConfig,
    probes: Sequence[Any],
    base: dict[str, Any],
    runs: Sequence[dict[str, Any]],
    results: Mapping[str, Any] | FinetuneShiftResult,
    has_axis: bool,
) -> list[str]:
    if isinstance(results, FinetuneShiftResult):
        results = results.to_dict()
    plt = plots._plt()
    files = []
    traits = [p.trait.name for p in probes]
    fig, axes = plt.subplots(1, len(traits), figsize=(4.2 * len(traits), 3.8), squeeze=False)
    for ax, t in zip(axes[0], traits):
        for name in sorted({r["set"] for r in results["finetunes"]}):
            rows = [r for r in results["finetunes"] if r["set"] == name]
            ax.scatter([r[f"shift_{t}"] for r in rows], [r[f"expression_{t}"] for r in rows], label=name, s=22)
        c = results["correlation"][t]
        e = c["estimate"]
        ax.set_title(
            f"{t}: r = {e['value']:.2f} [{e['lo']:.2f}, {e['hi']:.2f}]\n(paper {PAPER['finetune_shift_r']}; {c['verdict']})",
            fontsize=8,
        )
        ax.axhline(results["base_expression"][t], color="grey", lw=0.8, ls="--")
        ax.set_xlabel(f"projection shift on the {t} vector")
        ax.set_ylabel(f"{t} expression (judge, 0-100)")
    axes[0][-1].legend(fontsize=6, loc="best")
    fig.tight_layout()
    files.append(plots._save(fig, out / "shift_vs_expression.png"))

    tracked = [r for r in runs if r.get("checkpoints")]
    if tracked:
        keys = traits + (["axis"] if has_axis else [])
        fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.6), squeeze=False)
        for ax, k in zip(axes[0], keys):
            b = float(np.mean(base["projections"][k]))
            for name in sorted({r["set"] for r in tracked}):
                rs = [r for r in tracked if r["set"] == name]
                steps = [c["step"] for c in rs[0]["checkpoints"]]
                ys = np.mean([[np.mean(c["projections"][k]) - b for c in r["checkpoints"]] for r in rs], axis=0)
                ax.plot(steps, ys, marker=".", label=name)
            ax.axhline(0, color="grey", lw=0.8)
            ax.set_title(
                f"{k}: projection shift during training" if k != "axis" else "Assistant-axis position", fontsize=8
            )
            ax.set_xlabel("LoRA step")
        axes[0][-1].legend(fontsize=6)
        fig.tight_layout()
        files.append(plots._save(fig, out / "emergence.png"))
    return files
