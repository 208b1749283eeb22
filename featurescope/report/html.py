"""Report: small pure helpers: formatting, tables, charts."""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .constants import IMAGE_TYPES


def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def fmt(x: Any, digits: int = 3) -> str:
    """A number for a table: 3 significant-ish digits, '-' for missing / NaN."""
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}" if abs(x) >= 10000 else str(x)
    if isinstance(x, float):
        if math.isnan(x) or math.isinf(x):
            return "-"
        if x == 0:
            return "0"
        a = abs(x)
        if a >= 1000:
            return f"{x:,.0f}"
        if a >= 100:
            return f"{x:.1f}"
        if a >= 0.01:
            return f"{x:.{digits}f}".rstrip("0").rstrip(".") if digits > 2 else f"{x:.{digits}f}"
        if a >= 1e-4:
            return f"{x:.5f}".rstrip("0")
        return f"{x:.2e}"
    if isinstance(x, (list, tuple)) and len(x) <= 6 and all(isinstance(v, (int, float)) or v is None for v in x):
        return ", ".join(fmt(v, digits) for v in x)
    s = str(x)
    return s if len(s) <= 160 else s[:157] + "..."


def to_number(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return None if (isinstance(x, float) and (math.isnan(x) or math.isinf(x))) else float(x)


def get(d: Any, *path: Any, default: Any = None) -> Any:
    """``d[path[0]][path[1]]...`` or ``default`` if any step is missing."""
    for k in path:
        if isinstance(d, Mapping) and k in d:
            d = d[k]
        elif isinstance(d, (list, tuple)) and isinstance(k, int) and -len(d) <= k < len(d):
            d = d[k]
        else:
            return default
    return d


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str] | None = None, cls: str = "") -> str:
    """An HTML table; cells are escaped and numbers formatted (a cell that is a ``Raw`` is inserted as is)."""
    if not rows:
        return ""
    head = "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in headers) + "</tr>" if headers else ""

    def cell(v: Any) -> str:
        if isinstance(v, Raw):
            return f"<td>{v.html}</td>"
        num = " class='n'" if to_number(v) is not None else ""
        return f"<td{num}>{esc(fmt(v))}</td>"

    body = "".join("<tr>" + "".join(cell(v) for v in r) + "</tr>" for r in rows)
    return f"<table class='{cls}'>{head}{body}</table>" if cls else f"<table>{head}{body}</table>"


@dataclasses.dataclass
class Raw:
    html: str


def flatten(d: Any, prefix: str = "", max_items: int = 80, max_list: int = 8) -> list[tuple[str, Any]]:
    """Scalar leaves of a nested dict as (dotted key, value); short numeric lists are kept as one value."""
    out: list[tuple[str, Any]] = []

    def walk(x: Any, k: str) -> None:
        if len(out) >= max_items:
            return
        if isinstance(x, Mapping):
            for kk, vv in x.items():
                walk(vv, f"{k}.{kk}" if k else str(kk))
        elif isinstance(x, (list, tuple)):
            if x and len(x) <= max_list and all(isinstance(v, (int, float, str, bool)) or v is None for v in x):
                out.append((k, list(x)))
            elif x and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in x):
                vals = [float(v) for v in x if to_number(v) is not None]
                if vals:
                    out.append((k, f"{len(x)} values, min {fmt(min(vals))}, max {fmt(max(vals))}"))
        elif isinstance(x, (int, float, bool)) or x is None:
            out.append((k, x))
        elif isinstance(x, str) and len(x) <= 200:
            out.append((k, x))

    walk(d, prefix)
    return out


def truncate(x: Any, max_list: int = 12, max_str: int = 400, depth: int = 0) -> Any:
    """A copy of a JSON value with long lists and strings cut (for the collapsible raw view)."""
    if depth > 8:
        return "..."
    if isinstance(x, Mapping):
        return {k: truncate(v, max_list, max_str, depth + 1) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        head = [truncate(v, max_list, max_str, depth + 1) for v in list(x)[:max_list]]
        return head + ([f"... {len(x) - max_list} more"] if len(x) > max_list else [])
    if isinstance(x, str) and len(x) > max_str:
        return x[:max_str] + f"... ({len(x)} chars)"
    return x


def details(summary_text: str, body_html: str, open_: bool = False) -> str:
    return f"<details{' open' if open_ else ''}><summary>{esc(summary_text)}</summary>{body_html}</details>"


def json_details(obj: Any, label: str = "raw results (JSON, long lists cut)") -> str:
    txt = json.dumps(truncate(obj), indent=1, default=str)
    return details(label, f"<pre class='json'>{esc(txt)}</pre>")


_PALETTE = ["#c0392b", "#2980b9", "#27ae60", "#8e44ad", "#d35400", "#16a085", "#7f8c8d", "#2c3e50"]


def _tick(v: float, span: float) -> str:
    """An axis tick label with as many decimals as the axis span needs (``1,062`` / ``71`` / ``0.42``)."""
    if span <= 0 or not math.isfinite(span) or not math.isfinite(v):
        return fmt(v)
    dec = min(4, max(0, 2 - int(math.floor(math.log10(span)))))
    if abs(v) < span * 1e-9:
        v = 0.0
    return f"{v:,.{dec}f}" if abs(v) >= 1000 else f"{v:.{dec}f}"


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
    """A small inline SVG line chart (no JavaScript, no external resources); None / NaN points are gaps."""
    clean = {k: [to_number(v) for v in vals] for k, vals in series.items() if vals}
    pts = [v for vals in clean.values() for v in vals if v is not None]
    if not pts:
        return ""
    n = max(len(v) for v in clean.values())
    xv = [float(x) for x in xs] if xs is not None and len(xs) == n else [float(i) for i in range(n)]
    x0, x1 = min(xv), max(xv)
    y0, y1 = min(pts + ([hline] if hline is not None else [])), max(pts + ([hline] if hline is not None else []))
    if y1 - y0 < 1e-12:
        y0, y1 = y0 - 1, y1 + 1
    pad = (y1 - y0) * 0.06
    # non-negative data (norms, fractions) is not padded below zero
    y0, y1 = (max(0.0, y0 - pad) if y0 >= 0 else y0 - pad), y1 + pad
    L, R, T, B = 52, 12, 22 if title else 10, 34
    lw = 110 if len(clean) > 1 else 0
    pw, ph = width - L - R - lw, height - T - B

    def X(x: float) -> float:
        return L + (0 if x1 == x0 else (x - x0) / (x1 - x0) * pw)

    def Y(y: float) -> float:
        return T + (1 - (y - y0) / (y1 - y0)) * ph

    parts = [
        f"<svg class='chart' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' role='img' aria-label='{esc(title or ylabel)}'>",
        f"<rect x='{L}' y='{T}' width='{pw}' height='{ph}' fill='#fafafa' stroke='#ccc'/>",
    ]
    if title:
        parts.append(f"<text x='{L}' y='14' font-size='11' fill='#333'>{esc(title[:110])}</text>")
    for i in range(5):
        yv = y0 + (y1 - y0) * i / 4
        parts.append(
            f"<line x1='{L}' x2='{L + pw}' y1='{Y(yv):.1f}' y2='{Y(yv):.1f}' stroke='#eee'/>"
            f"<text x='{L - 4}' y='{Y(yv) + 3:.1f}' font-size='9' text-anchor='end' fill='#555'>"
            f"{esc(_tick(yv, y1 - y0))}</text>"
        )
    ticks = sorted(set(int(round(x0 + (x1 - x0) * i / 6)) for i in range(7))) if x1 - x0 >= 6 else sorted(set(xv))
    for t in ticks:
        parts.append(
            f"<text x='{X(t):.1f}' y='{T + ph + 12}' font-size='9' text-anchor='middle' fill='#555'>{esc(fmt(float(t)))}</text>"
        )
    parts.append(
        f"<text x='{L + pw / 2:.1f}' y='{height - 6}' font-size='10' text-anchor='middle' fill='#333'>{esc(xlabel)}</text>"
    )
    if ylabel:
        parts.append(
            f"<text x='12' y='{T + ph / 2:.1f}' font-size='10' text-anchor='middle' fill='#333' "
            f"transform='rotate(-90 12 {T + ph / 2:.1f})'>{esc(ylabel[:40])}</text>"
        )
    if hline is not None and y0 <= hline <= y1:
        parts.append(
            f"<line x1='{L}' x2='{L + pw}' y1='{Y(hline):.1f}' y2='{Y(hline):.1f}' stroke='#999' stroke-dasharray='4 3'/>"
        )
    if mark is not None and x0 <= mark <= x1:
        parts.append(
            f"<line x1='{X(mark):.1f}' x2='{X(mark):.1f}' y1='{T}' y2='{T + ph}' stroke='#555' stroke-dasharray='3 3'/>"
        )
    for j, (name, vals) in enumerate(clean.items()):
        col = _PALETTE[j % len(_PALETTE)]
        seg: list[str] = []
        for i, v in enumerate(vals):
            if v is None:
                if len(seg) > 1:
                    parts.append(f"<polyline fill='none' stroke='{col}' stroke-width='1.6' points='{' '.join(seg)}'/>")
                seg = []
                continue
            seg.append(f"{X(xv[i]):.1f},{Y(v):.1f}")
            parts.append(
                f"<circle cx='{X(xv[i]):.1f}' cy='{Y(v):.1f}' r='2.2' fill='{col}'><title>{esc(name)} "
                f"{esc(fmt(xv[i]))}: {esc(fmt(v))}</title></circle>"
            )
        if len(seg) > 1:
            parts.append(f"<polyline fill='none' stroke='{col}' stroke-width='1.6' points='{' '.join(seg)}'/>")
        if lw:
            ly = T + 10 + 14 * j
            parts.append(
                f"<line x1='{width - lw + 4}' x2='{width - lw + 18}' y1='{ly - 3}' y2='{ly - 3}' stroke='{col}' stroke-width='2'/>"
                f"<text x='{width - lw + 22}' y='{ly}' font-size='9' fill='#333'>{esc(name[:18])}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


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
    """A small inline SVG bar chart; ``mark`` draws a dashed vertical line at that position along the x axis
    (in units of bar index, e.g. a threshold bin)."""
    vals = [to_number(v) or 0.0 for v in values]
    if not vals:
        return ""
    lo, hi = min(0.0, min(vals)), max(0.0, max(vals))
    if hi - lo < 1e-12:
        hi = lo + 1
    L, R, T, B = 52, 10, 22 if title else 10, 40
    pw, ph = width - L - R, height - T - B
    bw = pw / len(vals)

    def Y(y: float) -> float:
        return T + (1 - (y - lo) / (hi - lo)) * ph

    parts = [
        f"<svg class='chart' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' role='img' aria-label='{esc(title or ylabel)}'>",
        f"<rect x='{L}' y='{T}' width='{pw}' height='{ph}' fill='#fafafa' stroke='#ccc'/>",
    ]
    if title:
        parts.append(f"<text x='{L}' y='14' font-size='11' fill='#333'>{esc(title[:110])}</text>")
    for i in range(5):
        yv = lo + (hi - lo) * i / 4
        parts.append(
            f"<text x='{L - 4}' y='{Y(yv) + 3:.1f}' font-size='9' text-anchor='end' fill='#555'>"
            f"{esc(_tick(yv, hi - lo))}</text>"
        )
    every = max(1, len(vals) // 12)
    for i, (lab, v) in enumerate(zip(labels, vals)):
        x = L + i * bw
        y, h = (Y(v), Y(0) - Y(v)) if v >= 0 else (Y(0), Y(v) - Y(0))
        col = "#c0392b" if v >= 0 else "#2980b9"
        parts.append(
            f"<rect x='{x + bw * 0.1:.1f}' y='{y:.1f}' width='{bw * 0.8:.1f}' height='{max(h, 0.5):.1f}' "
            f"fill='{col}'><title>{esc(lab)}: {esc(fmt(v))}</title></rect>"
        )
        if i % every == 0:
            parts.append(
                f"<text x='{x + bw / 2:.1f}' y='{T + ph + 12}' font-size='8' text-anchor='middle' "
                f"fill='#555'>{esc(str(lab)[:14])}</text>"
            )
    if mark is not None:
        xm = L + mark * bw
        parts.append(f"<line x1='{xm:.1f}' x2='{xm:.1f}' y1='{T}' y2='{T + ph}' stroke='#333' stroke-dasharray='3 3'/>")
    if ylabel:
        parts.append(
            f"<text x='12' y='{T + ph / 2:.1f}' font-size='10' text-anchor='middle' fill='#333' "
            f"transform='rotate(-90 12 {T + ph / 2:.1f})'>{esc(ylabel[:40])}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


_EXT_LINK = re.compile(r"<a\s+[^>]*?href\s*=\s*(['\"])(https?://[^'\"]*)\1[^>]*>(.*?)</a>", re.I | re.S)
# attributes that make a browser fetch (or navigate to) something, with an external / protocol-relative URL,
# quoted or not
_EXT_ATTR = re.compile(
    r"(?<![\w-])(src|href|srcset|poster|action|formaction|background|data|xlink:href)\s*=\s*"
    r"(['\"]?)\s*(https?:|//|ftp:)",
    re.I,
)
# a src that is neither a data: URI nor an in-page anchor would load a local file beside the report
_LOCAL_SRC = re.compile(r"(?<![\w-])(src|srcset|poster|background)\s*=(?!\s*['\"]?\s*(?:data:|#))", re.I)
_JS_URL = re.compile(r"(?<![\w-])(href|src|action|formaction|xlink:href)\s*=\s*(['\"]?)\s*(javascript|vbscript):", re.I)
_EVENT_ATTR = re.compile(r"\s+on[a-z]+\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s>]+)", re.I)
_CSS_EXT = re.compile(r"@import\b[^;]*;?|url\(\s*(['\"]?)\s*(?:https?:|//|javascript:)", re.I)
_SCRIPT = re.compile(r"<script\b.*?</script\s*>|<script\b[^>]*/?>|<noscript\b.*?</noscript\s*>", re.I | re.S)
_EMBED_TAGS = re.compile(
    r"</?(iframe|frame|frameset|object|embed|applet|link|base|portal|audio|video|source|track)\b[^>]*>", re.I
)
_BODY = re.compile(r"<body[^>]*>(.*)</body>", re.I | re.S)
_HEAD_BITS = re.compile(r"</?(html|head|body)[^>]*>|<meta[^>]*>|<title>.*?</title>|<!doctype[^>]*>", re.I | re.S)


def sanitize_fragment(fragment: str) -> str:
    """An HTML fragment made safe to inline offline and script-free: body only; no scripts, event-handler
    attributes, ``javascript:`` URLs or embedding tags; external links turned into text (the URL stays readable);
    any other external or local-file reference (``src``, ``href``, CSS ``url()`` / ``@import``) disabled.
    ``data:`` images are kept."""
    m = _BODY.search(fragment)
    s = m.group(1) if m else fragment
    s = _HEAD_BITS.sub("", _SCRIPT.sub("", s))
    s = _EMBED_TAGS.sub("", s)
    s = _EVENT_ATTR.sub("", s)
    s = _JS_URL.sub(lambda m: f"data-blocked-{m.group(1).lower().replace(':', '-')}={m.group(2)}script-url-removed:", s)
    s = _EXT_LINK.sub(
        lambda m: f"<span class='ext' title='{esc(m.group(2))}'>{m.group(3)} <code>{esc(m.group(2))}</code></span>", s
    )
    s = _EXT_ATTR.sub(lambda m: f"data-ext-{m.group(1).lower().replace(':', '-')}={m.group(2)}{m.group(3)}", s)
    s = _LOCAL_SRC.sub(lambda m: f"data-local-{m.group(1).lower()}=", s)
    return _CSS_EXT.sub(
        lambda m: (
            "/* external import removed */"
            if m.group(0).lower().startswith("@import")
            else f"x-blocked-url({m.group(1) or ''}"
        ),
        s,
    )


def data_uri(name: str, data: bytes) -> str | None:
    mime = IMAGE_TYPES.get(Path(name).suffix.lower())
    return f"data:{mime};base64,{base64.b64encode(data).decode()}" if mime else None
