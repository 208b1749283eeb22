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
from ..persona.results import DictAccess, _axes, _pandas, evidence_from_dict

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
        return _pandas().DataFrame.from_records(recs)

    def plot(self, ax: Any = None) -> Any:
        """Per-turn projection per script: uncapped solid, capped dashed (same colour per script)."""
        fig, ax = _axes(ax, (7.0, 4.0))
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
