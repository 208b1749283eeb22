"""Assistant axis: typed results for Jupyter. :class:`DriftResult` (``axis drift`` / ``axis cap``): each script's
per-turn projection on the axis, its change with an interval over conversations and the random-direction null.

As in :mod:`featurescope.persona.results`, ``to_dict()`` gives back exactly what the command writes under
``results`` in ``summary.json`` (read access by key keeps dict-style callers working); the result renders as a table
with intervals, nulls and verdicts; ``plot()`` returns a matplotlib Figure, ``to_frame()`` a DataFrame."""

from __future__ import annotations

import copy
import dataclasses
import html
from collections.abc import Mapping
from typing import Any

from ..evidence.nulls import Evidence
from ..results import DictAccess, evidence_from_dict, new_axes, pandas_module

RUNS = ("uncapped", "capped")


@dataclasses.dataclass(frozen=True)
class ScriptDrift:
    """One script in one run (``uncapped`` / ``capped``): the per-turn mean projection over conversations, and its
    change (last minus first turn) against random directions read on the same conversations (``None`` for runs made
    without the null)."""

    run: str
    script: str
    projection: tuple[float, ...]
    change: Evidence | None

    @property
    def verdict(self) -> str | None:
        return self.change.verdict if self.change is not None else None


@dataclasses.dataclass(frozen=True)
class DriftResult(DictAccess):
    """What ``axis drift`` / ``axis cap`` found at ``hook``: one :class:`ScriptDrift` per script and run, and the
    raw ``drift`` section of ``summary.json`` (``to_dict()["drift"]``)."""

    hook: str
    n_turns: int
    scripts: tuple[ScriptDrift, ...]
    section: Mapping[str, Any]

    @classmethod
    def from_section(cls, section: Mapping[str, Any]) -> DriftResult:
        """From the ``drift`` section a command wrote (or read back from ``summary.json``)."""
        rows = []
        for run in RUNS:
            d = section.get(run)
            if not isinstance(d, Mapping):
                continue
            nulls = d.get("change_null") or {}
            for name, proj in (d.get("per_script") or {}).items():
                ev = nulls.get(name)
                rows.append(
                    ScriptDrift(run, name, tuple(float(x) for x in proj), evidence_from_dict(ev) if ev else None)
                )
        return cls(str(section.get("hook", "")), int(section.get("n_turns") or 0), tuple(rows), section)

    def to_dict(self) -> dict[str, Any]:
        return {"drift": copy.deepcopy(dict(self.section))}

    def by_run(self, run: str) -> list[ScriptDrift]:
        return [s for s in self.scripts if s.run == run]

    def to_frame(self) -> Any:
        """One row per run, script and turn: the mean projection; the change, its interval, null and verdict repeat
        on every turn of their script."""
        recs = []
        for s in self.scripts:
            e = s.change
            for t, p in enumerate(s.projection):
                recs.append(
                    {
                        "run": s.run,
                        "script": s.script,
                        "turn": t,
                        "projection": p,
                        "change": e.estimate.value if e else None,
                        "change_lo": e.estimate.lo if e else None,
                        "change_hi": e.estimate.hi if e else None,
                        "null_lo": e.null.lo if e else None,
                        "null_hi": e.null.hi if e else None,
                        "verdict": s.verdict,
                    }
                )
        return pandas_module().DataFrame.from_records(recs)

    def plot(self, ax: Any = None) -> Any:
        """Per-turn projection per script: uncapped solid, capped dashed (same colour per script)."""
        fig, ax = new_axes(ax, (7.0, 4.0))
        names = sorted({s.script for s in self.scripts})
        colours = {n: f"C{i % 10}" for i, n in enumerate(names)}
        for s in self.scripts:
            ax.plot(
                range(1, len(s.projection) + 1),
                s.projection,
                ls="-" if s.run == "uncapped" else "--",
                color=colours[s.script],
                marker="o",
                ms=3,
                label=f"{s.script} ({s.run})",
            )
        ax.set_xlabel("user turn")
        ax.set_ylabel("projection on the Assistant axis")
        ax.set_title(f"drift at {self.hook}")
        ax.legend(fontsize=7, ncol=2)
        return fig

    def _repr_html_(self) -> str:
        body = []
        for s in self.scripts:
            first, last = (s.projection[0], s.projection[-1]) if s.projection else (float("nan"),) * 2
            if s.change is not None:
                e, n = s.change.estimate, s.change.null
                ch = f"{e.value:+.2f} [{e.lo:+.2f}, {e.hi:+.2f}]"
                nl = f"{n.mean:+.2f} [{n.lo:+.2f}, {n.hi:+.2f}]"
            else:
                ch, nl = f"{last - first:+.2f}", "n/a (run without the null)"
            body.append(
                f"<tr><td>{html.escape(s.script)}</td><td>{s.run}</td><td>{first:.2f}</td><td>{last:.2f}</td>"
                f"<td>{ch}</td><td>{nl}</td><td>{html.escape(s.verdict or '')}</td></tr>"
            )
        n_conv = max((int((self.section.get(r) or {}).get("n_conversations", 1)) for r in RUNS if r in self.section),
                     default=1)  # fmt: skip
        return (
            f"<div><b>drift</b> at <code>{html.escape(self.hook)}</code>: {self.n_turns} turns, {n_conv} "
            "conversation(s) per script<table><tr><th>script</th><th>run</th><th>first turn</th><th>last turn</th>"
            "<th>change [95% CI, conversations]</th><th>random directions [central 95%]</th><th>verdict</th></tr>"
            f"{''.join(body)}</table></div>"
        )


def _ev_row(label: str, ev: Evidence, fmt: str = ".2f") -> str:
    e, n = ev.estimate, ev.null
    return (
        f"<tr><td>{html.escape(label)}</td><td>{e.value:{fmt}} [{e.lo:{fmt}}, {e.hi:{fmt}}]</td>"
        f"<td>{n.mean:{fmt}} [{n.lo:{fmt}}, {n.hi:{fmt}}]<br><small>{html.escape(n.what)}</small></td>"
        f"<td>{html.escape(ev.verdict)}</td></tr>"
    )


@dataclasses.dataclass(frozen=True)
class AxisRunResult(DictAccess):
    """What ``axis run`` (:func:`~featurescope.axis.run_axis`) found: the axis, and the ``results`` of its
    ``summary.json`` (``analysis``, ``steering``, ``drift``, ``prefill``, ... : ``to_dict()`` adds ``axis``). The
    headline numbers come with their evidence: cos(axis, PC1) against "any role as the default", the steering effect
    against random vectors of the axis' norm, each drift script against random directions."""

    axis: Any  # AssistantAxis (kept Any here: results must not import the collection code)
    results: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {**self.results, "axis": self.axis}

    @property
    def hook(self) -> str:
        return str(self.results.get("hook", ""))

    def evidence(self) -> dict[str, Evidence]:
        """The run's headline estimates with their nulls and verdicts, by name."""
        out: dict[str, Evidence] = {}
        ev = (self.results.get("analysis") or {}).get("evidence") or {}
        for k, label in (
            ("axis_pc1", "cos(axis, PC1)"),
            ("axis_pc1_without_massive", "cos(axis, PC1), no massive dims"),
        ):
            if isinstance(ev.get(k), Mapping) and "estimate" in ev[k]:
                out[label] = evidence_from_dict(ev[k])
        ctl = (self.results.get("steering") or {}).get("control")
        if isinstance(ctl, Mapping) and isinstance(ctl.get("evidence"), Mapping):
            out["steering effect (AI identity, most negative alpha minus 0)"] = evidence_from_dict(ctl["evidence"])
        return out

    @property
    def drift(self) -> DriftResult | None:
        d = self.results.get("drift")
        return DriftResult.from_section(d) if isinstance(d, Mapping) else None

    def to_frame(self) -> Any:
        """The steering sweep: one row per system prompt and alpha (AI-identity fraction with its interval,
        coherence, read-back projection)."""
        rows = (self.results.get("steering") or {}).get("rows") or []
        recs = []
        for r in rows:
            ci = r.get("ai_ci") or {}
            recs.append(
                {
                    "system_prompt": r.get("system_prompt") or "",
                    "alpha": r.get("alpha"),
                    "ai_fraction": r.get("ai_fraction"),
                    "ai_lo": ci.get("lo"),
                    "ai_hi": ci.get("hi"),
                    "coherence": r.get("coherence"),
                    "readback_projection": r.get("readback_projection"),
                }
            )
        return pandas_module().DataFrame.from_records(recs)

    def plot(self, ax: Any = None) -> Any:
        """The steering curve: fraction of answers that identify as an AI vs alpha, per system prompt, with the
        interval over questions (the drift has its own ``result.drift.plot()``)."""
        fig, ax = new_axes(ax, (6.0, 4.0))
        rows = (self.results.get("steering") or {}).get("rows") or []
        for i, sp in enumerate(dict.fromkeys(r.get("system_prompt") or "" for r in rows)):
            rr = sorted((r for r in rows if (r.get("system_prompt") or "") == sp), key=lambda r: r["alpha"])
            x = [r["alpha"] for r in rr]
            y = [r["ai_fraction"] for r in rr]
            lo = [max(0.0, yy - (r.get("ai_ci") or {}).get("lo", yy)) for yy, r in zip(y, rr)]
            hi = [max(0.0, (r.get("ai_ci") or {}).get("hi", yy) - yy) for yy, r in zip(y, rr)]
            ax.errorbar(
                x, y, yerr=[lo, hi], marker="o", capsize=3, color=f"C{i}", label=(sp[:30] or "no system prompt")
            )
        ax.set_xlabel("alpha (units of the axis)")
        ax.set_ylabel("answers identifying as an AI")
        ax.set_title(f"steering along the Assistant axis at {self.hook}")
        ax.legend(fontsize=7)
        return fig

    def _repr_html_(self) -> str:
        a = self.results.get("analysis") or {}
        rows = "".join(_ev_row(k, e) for k, e in self.evidence().items())
        top = ", ".join(html.escape(str(r)) for r in (a.get("top_roles") or [])[:6])
        bottom = ", ".join(html.escape(str(r)) for r in (a.get("bottom_roles") or [])[:6])
        dr = self.drift
        return (
            f"<div><b>Assistant axis</b> at <code>{html.escape(self.hook)}</code>"
            "<table><tr><th>estimate</th><th>value [95% CI]</th><th>null [95%]</th><th>verdict</th></tr>"
            f"{rows}</table><p>most Assistant-like roles: {top}<br>least: {bottom}</p>"
            f"{dr._repr_html_() if dr is not None else ''}</div>"
        )
