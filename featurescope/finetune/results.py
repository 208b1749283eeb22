"""Fine-tuning shift: the typed result of :func:`~featurescope.finetune.run_finetune_shift` (and of
:func:`~featurescope.finetune.summarise`).

:class:`FinetuneShiftResult` follows :mod:`featurescope.persona.results`: a frozen dataclass whose fields carry the
keys of the dict the functions used to return; ``to_dict()`` gives that dict back exactly (what ``summary.json``
holds under ``results``), read access by key delegates to it (``res["correlation"]["evil"]["verdict"]``), Jupyter
renders shift-vs-expression r per trait with its interval, the shuffled-pairing null and the verdict, and the
emergent-misalignment table; ``plot()`` returns the shift-vs-expression scatter as a matplotlib Figure (never
written to a file); ``to_frame()`` one row per fine-tune."""

from __future__ import annotations

import copy
import dataclasses
import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from ..evidence.nulls import Evidence
from ..results import (
    EVIDENCE_HEAD_HTML,
    DictAccess,
    ci_text,
    evidence_from_dict,
    evidence_row_html,
    new_axes,
    num,
    pandas_module,
)
from ..runs import read_summary
from ..stats import Estimate


def _estimate_from_dict(d: Mapping[str, Any]) -> Estimate:
    return Estimate(num(d["value"]), num(d["lo"]), num(d["hi"]), int(d["n"]), num(d.get("level", 0.95)))


@dataclasses.dataclass(frozen=True)
class ShiftCorrelation(DictAccess):
    """For one trait: Pearson r between each fine-tune's projection shift along the trait's persona vector and its
    trait expression afterwards (``evidence``: bootstrap interval over fine-tunes, null with the pairing shuffled,
    verdict), over ``n_finetunes``; and the datasets' projection difference (measured before training) against the
    shift they caused (``data_vs_shift``, over ``n_sets``; ``to_dict()`` key ``projection_difference_vs_shift``).
    ``paper``: the published number. ``line`` / ``data_vs_shift_line``: the one-line summaries the run printed."""

    trait: str
    evidence: Evidence
    line: str
    n_finetunes: int
    paper: str
    data_vs_shift: Evidence
    data_vs_shift_line: str
    n_sets: int

    @classmethod
    def from_dict(cls, trait: str, d: Mapping[str, Any]) -> ShiftCorrelation:
        p = d["projection_difference_vs_shift"]
        return cls(
            trait=trait,
            evidence=evidence_from_dict(d),
            line=str(d.get("line", "")),
            n_finetunes=int(d["n_finetunes"]),
            paper=str(d.get("paper", "")),
            data_vs_shift=evidence_from_dict(p),
            data_vs_shift_line=str(p.get("line", "")),
            n_sets=int(p["n_sets"]),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.evidence.to_dict(),
            "line": self.line,
            "n_finetunes": self.n_finetunes,
            "paper": self.paper,
            "projection_difference_vs_shift": {
                **self.data_vs_shift.to_dict(),
                "line": self.data_vs_shift_line,
                "n_sets": self.n_sets,
            },
        }


@dataclasses.dataclass(frozen=True)
class EmergentMisalignmentRow(DictAccess):
    """One (set, trait) of the emergent-misalignment table: the trait's expression after fine-tuning on ``set``
    minus after the neutral control, per evaluation question (mean over seeds), with a Bonferroni-corrected
    bootstrap interval over questions (``effect_vs_neutral``) and its verdict ("increase", "decrease" or not
    distinguishable from the null); ``expression`` and ``neutral``: the two means."""

    set: str
    trait: str
    effect_vs_neutral: Estimate
    verdict: str
    expression: float
    neutral: float

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EmergentMisalignmentRow:
        return cls(
            set=str(d["set"]),
            trait=str(d["trait"]),
            effect_vs_neutral=_estimate_from_dict(d["effect_vs_neutral"]),
            verdict=str(d["verdict"]),
            expression=num(d["expression"]),
            neutral=num(d["neutral"]),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "set": self.set,
            "trait": self.trait,
            "effect_vs_neutral": self.effect_vs_neutral.to_dict(),
            "verdict": self.verdict,
            "expression": self.expression,
            "neutral": self.neutral,
        }


@dataclasses.dataclass(frozen=True)
class FinetuneShiftResult(DictAccess):
    """The fine-tuning-shift experiment summarised over its fine-tunes.

    ``base_expression``: per trait, the model's trait expression before fine-tuning; ``finetunes``: one row per
    fine-tune (set, seed, held-out loss, ``shift_TRAIT``: mean projection shift along the trait's vector,
    ``expression_TRAIT``: mean judged expression, ``shift_axis`` with an Assistant axis); ``correlation``: per trait,
    :class:`ShiftCorrelation` (shift vs expression, with interval, shuffled-pairing null and verdict);
    ``emergent_misalignment``: :class:`EmergentMisalignmentRow` per (set, trait) against the neutral control (empty
    without it); ``preventative``: the preventative-steering arms (``{}`` when none ran); ``paper``: the published
    numbers; ``finetunes_done``: how many of the planned fine-tunes the summary covers (set by
    :func:`~featurescope.finetune.run_finetune_shift`; None from :func:`~featurescope.finetune.summarise` alone)."""

    base_expression: Mapping[str, float]
    finetunes: tuple[dict[str, Any], ...]
    correlation: Mapping[str, ShiftCorrelation]
    emergent_misalignment: tuple[EmergentMisalignmentRow, ...]
    preventative: Mapping[str, Any]
    paper: Mapping[str, str]
    finetunes_done: Mapping[str, int] | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FinetuneShiftResult:
        """From the dict :func:`summarise` / ``run_finetune_shift`` used to return, or ``summary.json``'s
        ``results`` (nan reads back as None there)."""
        done = d.get("finetunes_done")
        return cls(
            base_expression=dict(d["base_expression"]),
            finetunes=tuple(copy.deepcopy(list(d["finetunes"]))),
            correlation={t: ShiftCorrelation.from_dict(t, c) for t, c in d["correlation"].items()},
            emergent_misalignment=tuple(EmergentMisalignmentRow.from_dict(r) for r in d["emergent_misalignment"]),
            preventative=copy.deepcopy(dict(d["preventative"])),
            paper=dict(d["paper"]),
            finetunes_done=None if done is None else dict(done),
        )

    @classmethod
    def from_summary(cls, path: str | Path) -> FinetuneShiftResult:
        """From a run folder's ``summary.json`` (or its path)."""
        return cls.from_dict(read_summary(path)["results"])

    def with_done(self, done: int, planned: int, preventative_done: int) -> FinetuneShiftResult:
        """This result with ``finetunes_done`` set (``to_dict()`` then carries it last, as the run writes it)."""
        return dataclasses.replace(
            self, finetunes_done={"done": done, "planned": planned, "preventative_done": preventative_done}
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "base_expression": dict(self.base_expression),
            "finetunes": copy.deepcopy(list(self.finetunes)),
            "correlation": {t: c.to_dict() for t, c in self.correlation.items()},
            "emergent_misalignment": [r.to_dict() for r in self.emergent_misalignment],
            "preventative": copy.deepcopy(dict(self.preventative)),
            "paper": dict(self.paper),
        }
        if self.finetunes_done is not None:
            d["finetunes_done"] = dict(self.finetunes_done)
        return d

    # -- views ---------------------------------------------------------------------------------------------------
    @property
    def traits(self) -> list[str]:
        return list(self.correlation)

    def to_frame(self, what: Literal["finetunes", "emergent_misalignment"] = "finetunes") -> Any:
        """One row per fine-tune (set, seed, held-out loss, shift and expression per trait), or the
        emergent-misalignment table (``what="emergent_misalignment"``: set, trait, effect vs neutral with its
        interval, verdict, the two expressions)."""
        pd = pandas_module()
        if what == "emergent_misalignment":
            return pd.DataFrame(
                [
                    {
                        "set": r.set,
                        "trait": r.trait,
                        "effect_vs_neutral": r.effect_vs_neutral.value,
                        "lo": r.effect_vs_neutral.lo,
                        "hi": r.effect_vs_neutral.hi,
                        "level": r.effect_vs_neutral.level,
                        "verdict": r.verdict,
                        "expression": r.expression,
                        "neutral": r.neutral,
                    }
                    for r in self.emergent_misalignment
                ],
                columns=["set", "trait", "effect_vs_neutral", "lo", "hi", "level", "verdict", "expression", "neutral"],
            )
        if what != "finetunes":
            raise ValueError(f"to_frame: what {what!r}; one of finetunes, emergent_misalignment")
        return pd.DataFrame([dict(r) for r in self.finetunes])

    def plot(self, ax: Any = None, trait: str | None = None) -> Any:
        """Projection shift vs trait expression, one point per fine-tune (colour: its set), the model before
        fine-tuning as a dashed line, r with its interval and verdict in the title; one panel per trait (with ``ax``
        or ``trait``: that trait only). Returns the matplotlib Figure (nothing is written)."""
        traits = [trait] if trait is not None else self.traits
        if not traits:
            raise ValueError("nothing to plot: no traits")
        if ax is not None:
            fig, axes = ax.figure, [ax]
            traits = traits[:1]
        elif len(traits) == 1:
            fig, a = new_axes(None, (4.6, 3.8))
            axes = [a]
        else:
            from matplotlib.backends.backend_agg import FigureCanvasAgg  # heavy: matplotlib (~0.5 s)
            from matplotlib.figure import Figure  # heavy: matplotlib (~0.5 s)

            fig = Figure(figsize=(4.4 * len(traits), 3.8))
            FigureCanvasAgg(fig)
            axes = [fig.add_subplot(1, len(traits), i + 1) for i in range(len(traits))]
        sets = sorted({r["set"] for r in self.finetunes})
        for a, t in zip(axes, traits):
            for name in sets:
                rows = [r for r in self.finetunes if r["set"] == name]
                xs = [num(r.get(f"shift_{t}")) for r in rows]
                a.scatter(xs, [num(r.get(f"expression_{t}")) for r in rows], label=name, s=22)
            if t in self.base_expression:
                a.axhline(num(self.base_expression[t]), color="grey", lw=0.8, ls="--", label="before fine-tuning")
            c = self.correlation.get(t)
            if c is not None:
                e = c.evidence.estimate
                a.set_title(
                    f"{t}: r = {e.value:.2f} {ci_text(e, '.2f')} over {c.n_finetunes} fine-tunes\n({c.evidence.verdict}; "
                    f"paper {c.paper})",
                    fontsize=7,
                )
            a.set_xlabel(f"projection shift on the {t} vector")
            a.set_ylabel(f"{t} expression (judge, 0-100)")
            a.legend(fontsize=6)
        fig.tight_layout()
        return fig

    def _repr_html_(self) -> str:
        corr = "".join(
            evidence_row_html(dataclasses.replace(c.evidence, name=f"{t}: shift vs expression r"), ".2f")
            + evidence_row_html(
                dataclasses.replace(c.data_vs_shift, name=f"{t}: data projection difference vs shift r"), ".2f"
            )
            for t, c in self.correlation.items()
        )
        counts = ", ".join(f"{t} {c.n_finetunes} fine-tunes / {c.n_sets} sets" for t, c in self.correlation.items())
        paper = "; ".join(f"{t}: {html.escape(c.paper)}" for t, c in self.correlation.items())
        em = "".join(
            f"<tr><td>{html.escape(r.set)}</td><td>{html.escape(r.trait)}</td><td>{r.expression:.1f}</td>"
            f"<td>{r.neutral:.1f}</td><td>{r.effect_vs_neutral.value:+.1f} {ci_text(r.effect_vs_neutral, '+.1f')}</td>"
            f"<td>{r.effect_vs_neutral.level:.4g}</td><td>{html.escape(r.verdict)}</td></tr>"
            for r in self.emergent_misalignment
        )
        em_html = (
            "<h4>emergent misalignment: trait expression vs the neutral control</h4><table><tr><th>set</th>"
            "<th>trait</th><th>expression</th><th>neutral control</th><th>difference [CI over questions]</th>"
            f"<th>CI level (Bonferroni)</th><th>verdict</th></tr>{em}</table>"
            if self.emergent_misalignment
            else "<p>emergent misalignment: no neutral-control fine-tune summarised yet, so no table.</p>"
        )
        prev = ""
        arms = self.preventative.get("arms") if self.preventative else None
        if isinstance(arms, Mapping) and arms:
            rows = []
            for a, v in arms.items():
                e = v.get("effect_vs_plain")
                eff = (
                    f"{num(e['value']):+.1f} [{num(e['lo']):+.1f}, {num(e['hi']):+.1f}]"
                    if isinstance(e, Mapping)
                    else ""
                )
                rows.append(
                    f"<tr><td>{html.escape(a)}</td><td>{num(v.get('expression')):.1f}</td>"
                    f"<td>{num(v.get('shift')):+.3f}</td><td>{num(v.get('heldout_loss')):.3f}</td><td>{eff}</td>"
                    f"<td>{html.escape(str(v.get('verdict', '')))}</td><td>{v.get('n_seeds')}</td></tr>"
                )
            prev = (
                f"<h4>preventative steering on {html.escape(str(self.preventative.get('set')))} "
                f"({html.escape(str(self.preventative.get('trait')))})</h4><table><tr><th>arm</th><th>expression</th>"
                "<th>shift</th><th>held-out loss</th><th>expression vs plain [95% CI]</th><th>verdict</th>"
                f"<th>seeds</th></tr>{''.join(rows)}</table>"
            )
        done = ""
        if self.finetunes_done is not None:
            fd = self.finetunes_done
            done = (
                f"; {fd.get('done')} of {fd.get('planned')} planned fine-tunes summarised "
                f"(+ {fd.get('preventative_done')} preventative)"
            )
        base = ", ".join(f"{t} {num(v):.1f}" for t, v in self.base_expression.items())
        return (
            f"<div><b>fine-tuning shift</b>: {len(self.finetunes)} fine-tunes{done}; expression before "
            f"fine-tuning: {html.escape(base)}<h4>does the shift along the persona vector predict expression?</h4>"
            f"<table>{EVIDENCE_HEAD_HTML}{corr}</table><p><small>intervals: bootstrap over fine-tunes (sets for the data "
            f"projection difference); null: the pairing shuffled. {html.escape(counts)}. Paper: {paper}</small></p>"
            f"{em_html}{prev}</div>"
        )


__all__ = ["EmergentMisalignmentRow", "FinetuneShiftResult", "ShiftCorrelation"]
