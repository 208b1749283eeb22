"""Report charts drawn by matplotlib and inlined as SVG (text kept as text, no external resources, no JavaScript).

Same signatures as the hand-drawn charts they replace: ``None`` / NaN points are gaps, ``mark`` is a dashed
vertical line, ``hline`` a dashed horizontal one.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

PALETTE = ["#c0392b", "#2980b9", "#27ae60", "#8e44ad", "#d35400", "#16a085", "#7f8c8d", "#2c3e50"]
_HEAD = re.compile(r"^.*?(?=<svg)", re.S)


def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _svg(fig: Any, title: str) -> str:
    import matplotlib.pyplot as plt  # heavy: matplotlib (~0.5 s)

    buf = io.StringIO()
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "featurescope"}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    svg = _unique_ids(_HEAD.sub("", buf.getvalue(), count=1))  # no XML prolog / DOCTYPE: the SVG is inlined in HTML
    label = title.replace('"', "'").replace("<", "").replace(">", "")
    return svg.replace("<svg ", f'<svg class="chart" role="img" aria-label="{label}" ', 1)


_ID = re.compile(r'\sid="([^"]+)"')
_REF = re.compile(r'(href="#|url\(#)([^")]+)')
_COUNTER = itertools.count(1)


def _unique_ids(svg: str) -> str:
    """Several charts share one HTML page, so ids must be unique page-wide: ids nothing refers to are dropped, the
    referenced ones (marker and clip-path definitions) get a per-chart prefix."""
    refs = {m.group(2) for m in _REF.finditer(svg)}
    pre = f"c{next(_COUNTER)}{hashlib.sha1(svg.encode()).hexdigest()[:6]}-"
    svg = _ID.sub(lambda m: f' id="{pre}{m.group(1)}"' if m.group(1) in refs else "", svg)
    return _REF.sub(lambda m: f"{m.group(1)}{pre}{m.group(2)}" if m.group(2) in refs else m.group(0), svg)


def _figure(width: int, height: int) -> tuple[Any, Any]:
    import matplotlib  # heavy: matplotlib (~0.5 s)

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt  # heavy: matplotlib (~0.5 s)

    fig, ax = plt.subplots(figsize=(width / 96, height / 96), dpi=96)
    ax.tick_params(labelsize=7)
    for s in ("top", "right"):
        ax.spines[s].set_visible(False)
    ax.grid(True, color="#eeeeee", linewidth=0.6)
    return fig, ax


def svg_lines(
    series: Mapping[str, Sequence[Any]],
    *,
    title: str = "",
    xlabel: str = "layer",
    ylabel: str = "",
    xs: Sequence[Any] | None = None,
    mark: float | None = None,
    hline: float | None = None,
    width: int = 560,
    height: int = 220,
) -> str:
    """A line chart per series (empty string when there is nothing to draw)."""
    clean = {k: [_num(v) for v in vals] for k, vals in series.items() if vals}
    if not any(v is not None for vals in clean.values() for v in vals):
        return ""
    n = max(len(v) for v in clean.values())
    xv = [float(x) for x in xs] if xs is not None and len(xs) == n else [float(i) for i in range(n)]
    fig, ax = _figure(width, height)
    for j, (name, vals) in enumerate(clean.items()):
        ys = [float("nan") if v is None else v for v in vals]
        ax.plot(
            xv[: len(ys)],
            ys,
            marker="o",
            markersize=2.5,
            linewidth=1.4,
            color=PALETTE[j % len(PALETTE)],
            label=name[:24],
        )
    if hline is not None:
        ax.axhline(hline, color="#999999", linestyle="--", linewidth=0.9)
    if mark is not None:
        ax.axvline(mark, color="#555555", linestyle=":", linewidth=1.0)
    ax.set_xlabel(xlabel, fontsize=8)
    if ylabel:
        ax.set_ylabel(ylabel[:40], fontsize=8)
    if title:
        ax.set_title(title[:110], fontsize=8, loc="left")
    if len(clean) > 1:
        ax.legend(fontsize=7, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return _svg(fig, title or ylabel)


def svg_bars(
    labels: Sequence[Any],
    values: Sequence[Any],
    *,
    title: str = "",
    ylabel: str = "",
    width: int = 560,
    height: int = 200,
    mark: float | None = None,
) -> str:
    """A bar chart (positive bars red, negative blue); ``mark``: a dashed vertical line at that bar index."""
    vals = [_num(v) or 0.0 for v in values]
    if not vals:
        return ""
    fig, ax = _figure(width, height)
    x = list(range(len(vals)))
    ax.bar(x, vals, color=["#c0392b" if v >= 0 else "#2980b9" for v in vals], width=0.8)
    every = max(1, len(vals) // 12)
    ax.set_xticks(x[::every], [str(lab)[:14] for lab in list(labels)[::every]], rotation=30, ha="right", fontsize=6)
    if mark is not None:
        ax.axvline(mark - 0.5, color="#333333", linestyle="--", linewidth=0.9)
    if ylabel:
        ax.set_ylabel(ylabel[:40], fontsize=8)
    if title:
        ax.set_title(title[:110], fontsize=8, loc="left")
    return _svg(fig, title or ylabel)
