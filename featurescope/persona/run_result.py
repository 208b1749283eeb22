"""Persona: the typed result of the whole loop (:func:`~featurescope.persona.run_persona`): extraction counts,
the chosen layer, the steering sweep with its random-vector control, monitoring and data flagging, each with its
interval, null and verdict. ``to_dict()`` is the dict the function used to return (``summary.json``'s ``results``
holds it); read access by key keeps dict-style callers working."""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Mapping
from typing import Any

from ..results import EVIDENCE_HEAD_HTML, DictAccess, evidence_from_dict, evidence_row_html


@dataclasses.dataclass(frozen=True)
class PersonaRunResult(DictAccess):
    """``results``: the loop's results (``steering`` a :class:`.SteeringSweep`, ``monitor`` a
    :class:`.MonitorCorrelation`, or their dicts when read back from ``summary.json``)."""

    results: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.results)

    @property
    def steering(self) -> Any:
        return self.results.get("steering")

    @property
    def monitor(self) -> Any:
        return self.results.get("monitor")

    def _flag_row(self) -> str:
        fl = self.results.get("flagging")
        ev = fl.get("auroc_evidence") if isinstance(fl, Mapping) else None
        if not isinstance(ev, Mapping):
            return ""
        return f"<table>{EVIDENCE_HEAD_HTML}{evidence_row_html(evidence_from_dict(ev), '.2f')}</table>"

    def plot(self, ax: Any = None) -> Any:
        """The steering sweep (trait score vs alpha with intervals; the random-vector control when there is one)."""
        sw = self.steering
        if sw is None or not hasattr(sw, "plot"):
            raise ValueError("this result has no steering sweep object to plot (read back from JSON?)")
        return sw.plot(ax)

    def to_frame(self) -> Any:
        """The steering sweep's table (one row per alpha)."""
        sw = self.steering
        if sw is None or not hasattr(sw, "to_frame"):
            raise ValueError("this result has no steering sweep object (read back from JSON?)")
        return sw.to_frame()

    def _repr_html_(self) -> str:
        c = self.results.get("counts") or {}
        head = (
            f"<div><b>persona loop</b>: kept {c.get('kept_pos', '?')} trait / {c.get('kept_neg', '?')} baseline answers "
            f"of {c.get('generated_per_side', '?')} per side; chosen layer {self.results.get('chosen_layer')}</div>"
        )
        parts = [head]
        for obj in (self.steering, self.monitor):
            if obj is not None and hasattr(obj, "_repr_html_"):
                parts.append(obj._repr_html_())
        parts.append(self._flag_row())
        return "".join(parts) or html.escape(str(self.results))
