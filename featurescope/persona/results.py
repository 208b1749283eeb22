"""Persona: typed results of the steering sweep, its random-vector control and the monitoring experiment.

Each result is a frozen dataclass whose fields carry the names of the dict the function used to return;
``to_dict()`` gives that dict back exactly (what ``summary.json`` holds), and read access by key
(``sw["rows"]``, ``mon.get("r_samples")``, ``"control" in sw``) delegates to it, so code written against the
dicts keeps working. In Jupyter a result renders as a table of estimates with their intervals, nulls and verdicts;
``plot()`` returns a matplotlib Figure (never written to a file), ``to_frame()`` a pandas DataFrame."""

from __future__ import annotations

import copy
import dataclasses
import html
from typing import Any, Literal

import numpy as np

from ..evidence.nulls import Evidence
from ..results import (
    EVIDENCE_HEAD_HTML,
    DictAccess,
    ci_text,
    evidence_from_dict,
    evidence_row_html,
    new_axes,
    pandas_module,
)
from ..stats import Estimate, bootstrap


@dataclasses.dataclass(frozen=True)
class SteeringRow(DictAccess):
    """One alpha of a steering sweep: mean trait score and coherence over questions, each question's score (its
    mean over seeds), the unsteered model's log-prob per token of the steered answers, a few example answers;
    sampled sweeps add the per-seed means and a bootstrap interval over questions (``trait_ci``)."""

    alpha: float
    trait_score: float
    coherence: float
    scores: tuple[float, ...]
    logprob_per_token: float
    examples: tuple[str, ...]
    per_seed: tuple[float, ...] | None = None
    trait_ci: Estimate | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "alpha": self.alpha,
            "trait_score": self.trait_score,
            "coherence": self.coherence,
            "scores": list(self.scores),
            "logprob_per_token": self.logprob_per_token,
            "examples": list(self.examples),
        }
        if self.per_seed is not None:
            d["per_seed"] = list(self.per_seed)
        if self.trait_ci is not None:
            d["trait_ci"] = self.trait_ci.to_dict()
        return d

    def interval(self) -> Estimate:
        """The trait score with its 95% bootstrap interval over questions: ``trait_ci`` when the sweep sampled
        seeds, else the same bootstrap over the greedy per-question scores."""
        if self.trait_ci is not None:
            return self.trait_ci
        return bootstrap(np.mean, np.asarray(self.scores, dtype=np.float64))


@dataclasses.dataclass(frozen=True)
class SteeringControl(DictAccess):
    """The null of a steering sweep (:func:`~featurescope.persona.steering_control`): random vectors of equal norm
    swept at the same alphas and questions. ``evidence``: the persona vector's effect (trait score at ``alpha``
    minus at 0, per question) with its interval, against the random vectors' effect, and the verdict.
    ``controls``: per random vector, its seed and rows (alpha, trait_score, coherence, scores)."""

    alpha: float
    share_on_massive: float
    massive_dims: tuple[int, ...]
    controls: tuple[dict[str, Any], ...]
    evidence: Evidence

    def to_dict(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "share_on_massive": self.share_on_massive,
            "massive_dims": list(self.massive_dims),
            "controls": copy.deepcopy(list(self.controls)),
            "evidence": self.evidence.to_dict(),
        }

    def to_frame(self) -> Any:
        """One row per random vector and alpha: seed, alpha, trait score, coherence."""
        return pandas_module().DataFrame(
            [
                {"seed": c["seed"], "alpha": r["alpha"], "trait_score": r["trait_score"], "coherence": r["coherence"]}
                for c in self.controls
                for r in c["rows"]
            ]
        )

    def plot(self, ax: Any = None) -> Any:
        """The persona vector's steering effect and the random vectors' (means with 95% intervals); returns the
        matplotlib Figure."""
        fig, ax = new_axes(ax, (6.5, 2.6))
        e, n = self.evidence.estimate, self.evidence.null
        for y, (v, lo, hi) in enumerate([(n.mean, n.lo, n.hi), (e.value, e.lo, e.hi)]):
            ax.errorbar([v], [y], xerr=[[_nonneg(v - lo)], [_nonneg(hi - v)]], fmt="o", capsize=4)
        ax.set_yticks([0, 1], ["random vectors", "persona vector"])
        ax.set_ylim(-0.7, 1.7)
        ax.axvline(0.0, color="grey", lw=0.8, ls=":")
        ax.set_xlabel(f"trait score at alpha {self.alpha:+g} minus alpha 0 (95% CI over questions)", fontsize=8)
        ax.set_title(f"steering effect vs {n.what}:\n{self.evidence.verdict}", fontsize=8)
        fig.tight_layout()
        return fig

    def _repr_html_(self) -> str:
        return (
            f"<div><b>steering control</b> at alpha {self.alpha:+g}: {len(self.controls)} random vector(s) of equal "
            f"norm (share on the massive dims {self.share_on_massive:.3f}, dims {list(self.massive_dims)})"
            f"<table>{EVIDENCE_HEAD_HTML}{evidence_row_html(self.evidence, '+.1f')}</table></div>"
        )


def _nonneg(x: float) -> float:
    return x if x > 0 else 0.0  # a nan error bar is drawn as none


@dataclasses.dataclass(frozen=True)
class SteeringSweep(DictAccess):
    """A steering sweep (:func:`~featurescope.persona.steering_sweep`): one :class:`SteeringRow` per alpha at
    ``hook`` over ``questions`` (answered once per seed in ``seeds``; greedy when empty), and the random-vector
    ``control`` when one was attached (:meth:`with_control`)."""

    hook: str
    questions: tuple[str, ...]
    seeds: tuple[int, ...]
    rows: tuple[SteeringRow, ...]
    control: SteeringControl | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "hook": self.hook,
            "questions": list(self.questions),
            "seeds": list(self.seeds),
            "rows": [r.to_dict() for r in self.rows],
        }
        if self.control is not None:
            d["control"] = self.control.to_dict()
        return d

    @property
    def alphas(self) -> list[float]:
        return [r.alpha for r in self.rows]

    def row(self, alpha: float) -> SteeringRow:
        """The row at ``alpha``."""
        for r in self.rows:
            if r.alpha == alpha:
                return r
        raise KeyError(f"no row at alpha {alpha}; the sweep has {self.alphas}")

    def with_control(self, control: SteeringControl | None) -> SteeringSweep:
        """This sweep with ``control`` attached (``to_dict()`` then carries it under ``"control"``)."""
        return dataclasses.replace(self, control=control)

    def to_frame(self) -> Any:
        """One row per alpha: trait score with its 95% interval over questions, coherence, log-prob per token."""
        out = []
        for r in self.rows:
            ci = r.interval()
            out.append(
                {
                    "alpha": r.alpha,
                    "trait_score": r.trait_score,
                    "trait_lo": ci.lo,
                    "trait_hi": ci.hi,
                    "coherence": r.coherence,
                    "logprob_per_token": r.logprob_per_token,
                    "n_questions": len(r.scores),
                }
            )
        return pandas_module().DataFrame(out)

    def plot(self, ax: Any = None) -> Any:
        """Trait score per alpha with 95% intervals over questions, coherence, and the random vectors' trait
        scores when a control is attached; returns the matplotlib Figure."""
        fig, ax = new_axes(ax, (6.0, 3.4))
        cis = [r.interval() for r in self.rows]
        ys = [r.trait_score for r in self.rows]
        err = [[_nonneg(y - c.lo) for y, c in zip(ys, cis)], [_nonneg(c.hi - y) for y, c in zip(ys, cis)]]
        ax.errorbar(self.alphas, ys, yerr=err, marker="o", capsize=3, label="trait score (95% CI over questions)")
        ax.plot(self.alphas, [r.coherence for r in self.rows], marker="s", ls="--", label="coherence")
        for j, c in enumerate(self.control.controls if self.control is not None else ()):
            ax.plot(
                [x["alpha"] for x in c["rows"]],
                [x["trait_score"] for x in c["rows"]],
                color="grey",
                lw=1,
                alpha=0.7,
                label="random vector of equal norm" if j == 0 else None,
            )
        ax.set_xlabel("steering coefficient alpha (h <- h + alpha v)")
        ax.set_ylabel("score 0-100")
        ax.set_ylim(-2, 102)
        how = f"{len(self.seeds)} seeds" if self.seeds else "greedy"
        ax.set_title(f"steering at {self.hook}: {len(self.questions)} questions, {how}", fontsize=8)
        ax.legend(fontsize=7)
        fig.tight_layout()
        return fig

    def _repr_html_(self) -> str:
        body = []
        for r in self.rows:
            ci = r.interval()
            ex = html.escape(r.examples[0][:80]) if r.examples else ""
            body.append(
                f"<tr><td>{r.alpha:+g}</td><td>{r.trait_score:.1f}</td><td>{ci_text(ci)}</td>"
                f"<td>{r.coherence:.1f}</td><td>{r.logprob_per_token:.2f}</td><td><small>{ex}</small></td></tr>"
            )
        how = f"{len(self.seeds)} seeds {list(self.seeds)}" if self.seeds else "greedy"
        ctl = ""
        if self.control is not None:
            ctl = f"<table>{EVIDENCE_HEAD_HTML}{evidence_row_html(self.control.evidence, '+.1f')}</table>"
        return (
            f"<div><b>steering sweep</b> at <code>{html.escape(self.hook)}</code>: {len(self.questions)} questions, "
            f"{how}<table><tr><th>alpha</th><th>trait score</th><th>95% CI (questions)</th><th>coherence</th>"
            f"<th>log-prob/token</th><th>example</th></tr>{''.join(body)}</table>{ctl}</div>"
        )


@dataclasses.dataclass(frozen=True)
class MonitorCorrelation(DictAccess):
    """The monitoring experiment (:func:`~featurescope.persona.monitor_correlation`): last-prompt-token projection
    vs judged trait score over graded system prompts. ``r_samples`` (per response) with its evidence (bootstrap
    interval, permutation null, verdict); ``r_projection_vs_level_evidence``: does the projection follow the
    graded prompts at all; ``r_levels``: r over the ``per_level`` means; ``per_item``: one record per response
    (``to_dict()`` key ``"items"``: the field has another name because ``items()`` is the dict-style method)."""

    hook: str
    r_samples: float
    r_samples_evidence: Evidence
    r_projection_vs_level_evidence: Evidence
    per_item: tuple[dict[str, Any], ...]
    r_levels: float
    per_level: tuple[dict[str, Any], ...]
    n: int
    seeds: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "hook": self.hook,
            "r_samples": self.r_samples,
            "r_samples_evidence": self.r_samples_evidence.to_dict(),
            "r_projection_vs_level_evidence": self.r_projection_vs_level_evidence.to_dict(),
            "items": copy.deepcopy(list(self.per_item)),
            "r_levels": self.r_levels,
            "per_level": copy.deepcopy(list(self.per_level)),
            "n": self.n,
            "seeds": list(self.seeds),
        }

    def to_frame(self, by: Literal["item", "level"] = "item") -> Any:
        """One row per response (level, question, projection, trait score, response), or per level (``by="level"``:
        mean projection and trait score)."""
        pd = pandas_module()
        if by == "level":
            return pd.DataFrame([dict(p) for p in self.per_level])
        return pd.DataFrame([{k: v for k, v in it.items() if k != "trait_score_per_seed"} for it in self.per_item])

    def plot(self, ax: Any = None) -> Any:
        """Projection vs trait score per response (colour: prompt level) and the level means; returns the
        matplotlib Figure."""
        fig, ax = new_axes(ax, (5.5, 3.8))
        sc = ax.scatter(
            [it["projection"] for it in self.per_item],
            [it["trait_score"] for it in self.per_item],
            c=[it["level"] for it in self.per_item],
            cmap="coolwarm",
            s=18,
            alpha=0.7,
        )
        ax.scatter(
            [p["projection"] for p in self.per_level],
            [p["trait_score"] for p in self.per_level],
            c=[p["level"] for p in self.per_level],
            cmap="coolwarm",
            s=70,
            marker="D",
            edgecolors="black",
            label="level means",
        )
        fig.colorbar(sc, ax=ax, label="system prompt level (suppress -> elicit)")
        e = self.r_samples_evidence.estimate
        ax.set_xlabel(f"last-prompt-token projection on the vector\n({self.hook})", fontsize=8)
        ax.set_ylabel("trait score of the response")
        ax.set_title(
            f"r = {e.value:.2f} {ci_text(e, '.2f')} over {self.n} responses ({self.r_samples_evidence.verdict}); "
            f"r = {self.r_levels:.2f} over level means",
            fontsize=7,
        )
        ax.legend(fontsize=7)
        fig.tight_layout()
        return fig

    def _repr_html_(self) -> str:
        levels = "".join(
            f"<tr><td>{p['level']}</td><td>{p['projection']:.3f}</td><td>{p['trait_score']:.1f}</td></tr>"
            for p in self.per_level
        )
        how = f"{len(self.seeds)} seeds" if self.seeds else "greedy"
        return (
            f"<div><b>monitoring</b> at <code>{html.escape(self.hook)}</code>: {self.n} responses over "
            f"{len(self.per_level)} graded system prompts, {how}"
            f"<table>{EVIDENCE_HEAD_HTML}{evidence_row_html(self.r_samples_evidence, '.2f')}"
            f"{evidence_row_html(self.r_projection_vs_level_evidence, '.2f')}</table>"
            f"<p>r over the level means: {self.r_levels:.2f} ({len(self.per_level)} levels, no interval)</p>"
            f"<table><tr><th>level</th><th>mean projection</th><th>mean trait score</th></tr>{levels}</table></div>"
        )


__all__ = [
    "DictAccess",
    "MonitorCorrelation",
    "SteeringControl",
    "SteeringRow",
    "SteeringSweep",
    "evidence_from_dict",
]
