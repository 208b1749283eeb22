"""Typed results, the shared part: read-only dict access for results that used to be dicts, figures that are
returned (never written), pandas on demand, and the HTML row of one :class:`~featurescope.evidence.nulls.Evidence`.
Every subpackage's ``results`` module builds on these."""

from __future__ import annotations

import html
from collections.abc import ItemsView, Iterator, KeysView, ValuesView
from typing import Any

from .evidence.nulls import Evidence, Null
from .stats import Estimate


class DictAccess:
    """Read-only dict access over ``to_dict()``: results that used to be dicts keep their callers working."""

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        raise TypeError(
            f"{type(self).__name__} is frozen: build a new one with dataclasses.replace(result, {key}=...)"
            + (" or sweep.with_control(control)" if key == "control" else "")
        )

    def get(self, key: str, default: Any = None) -> Any:
        return self.to_dict().get(key, default)

    def keys(self) -> KeysView[str]:
        return self.to_dict().keys()

    def values(self) -> ValuesView[Any]:
        return self.to_dict().values()

    def items(self) -> ItemsView[str, Any]:
        return self.to_dict().items()

    def __contains__(self, key: object) -> bool:
        return key in self.to_dict()

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())


def pandas_module() -> Any:
    try:
        import pandas as pd  # optional: pandas (the [notebook] extra), ~1 s
    except ImportError as e:  # an optional dependency (the notebook and dev extras)
        raise ImportError("to_frame() needs pandas: pip install pandas (or featurescope[notebook])") from e
    return pd


def new_axes(ax: Any, size: tuple[float, float]) -> tuple[Any, Any]:
    """``(figure, axes)``: the given axes' figure, or a new Agg figure (no pyplot state, nothing written)."""
    if ax is not None:
        return ax.figure, ax
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # heavy: matplotlib (~0.5 s)
    from matplotlib.figure import Figure  # heavy: matplotlib (~0.5 s)

    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def num(x: Any) -> float:
    """A float read back from JSON (where ``jsonable`` wrote nan / inf as null)."""
    return float("nan") if x is None else float(x)


def evidence_from_dict(d: Any) -> Evidence:
    """An :class:`~featurescope.evidence.nulls.Evidence` from its ``to_dict()`` record (or that record read back from
    ``summary.json``, where nan is null): the inverse of ``Evidence.to_dict``."""
    e, n = d["estimate"], d["null"]
    est = Estimate(num(e["value"]), num(e["lo"]), num(e["hi"]), int(e["n"]), num(e.get("level", 0.95)))
    null = Null(
        num(n["mean"]), num(n["lo"]), num(n["hi"]), int(n["n"]), num(n["p_value"]), str(n.get("what", "")),
        num(n.get("level", 0.95)),
    )  # fmt: skip
    return Evidence(str(d.get("name", "")), est, null, str(d["verdict"]))


def ci_text(e: Estimate | Null, fmt: str = ".1f") -> str:
    return f"[{e.lo:{fmt}}, {e.hi:{fmt}}]"


def evidence_row_html(ev: Evidence, fmt: str) -> str:
    e, n = ev.estimate, ev.null
    return (
        f"<tr><td>{html.escape(ev.name)}</td><td>{e.value:{fmt}} {ci_text(e, fmt)}</td><td>{e.n}</td>"
        f"<td>{n.mean:{fmt}} {ci_text(n, fmt)}<br><small>{html.escape(n.what)}</small></td>"
        f"<td>{html.escape(ev.verdict)}</td></tr>"
    )


EVIDENCE_HEAD_HTML = "<tr><th>estimate</th><th>value [95% CI]</th><th>n</th><th>null [95%]</th><th>verdict</th></tr>"
