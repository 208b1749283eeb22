"""One self-contained HTML report (and a Markdown summary) from any number of run folders.

``featurescope report RUN_DIR [RUN_DIR ...] --out reports/x/report.html`` walks the folders for ``summary.json``
files (every featurescope command writes one, see :mod:`featurescope.runs`), groups the runs by ``command`` and
renders each with a dedicated section renderer when it knows the command (persona vectors, SAEs, decompositions,
training stages, the Assistant axis, post-training, the demo) and generically otherwise (inputs, results as
flattened tables and collapsible JSON, every listed figure). Figures are embedded as ``data:`` URIs and feature
cards (``cards.html``) inline, so the file opens anywhere with no network; the page has no JavaScript at all.
Every run carries a provenance line (model and stage, layer / hook, SAE, data, created time) and every figure's
caption repeats it.

Layers:

* I/O edge: :func:`find_runs` / :func:`load_runs` read summaries, figure bytes, card fragments and the headers (and,
  for persona vectors, the values) of the run's ``.safetensors`` files into :class:`Run` records;
* pure core: :func:`build_report` (runs -> HTML string) and :func:`build_markdown` (runs -> Markdown string);
* I/O edge: :func:`write_report` writes both files; :func:`browser_check` loads a report in headless Chromium
  (Chrome DevTools protocol) and returns console errors, the element ids present and, optionally, a screenshot.

Adding a renderer for a new command is one :func:`register` call (see the bottom of the renderer section).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import html
import json
import math
import os
import re
import shutil
import struct
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import FeaturescopeError
from .paper import NUMBERS

#: Paper numbers the report prints next to ours.
# (paper, number, what) per comparison, from featurescope.paper (the one home of published numbers).
PAPER = {
    k: (NUMBERS[k].paper.split(" (")[0], NUMBERS[k].text, NUMBERS[k].what)
    for k in ("monitor_r", "steering", "transfer", "new_features", "axis_pc1", "axis_pcs")
}

_IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".svg": "image/svg+xml",
    ".webp": "image/webp",
}
_MAX_ASSET_BYTES = 8 << 20  # figures larger than this are listed, not embedded
_SKIP_COMMANDS = {"report"}


# ================================================================================================================
# Records (I/O edge: reading run folders)
# ================================================================================================================
@dataclasses.dataclass
class Run:
    """One run folder: its ``summary.json``, the bytes of its figures / card fragments, and tensor facts."""

    path: str  # the run folder as given / found (for display)
    summary: dict[str, Any]
    assets: dict[str, bytes] = dataclasses.field(default_factory=dict)  # figure name -> bytes
    tensors: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # file -> {name: {dtype, shape}}
    derived: dict[str, Any] = dataclasses.field(default_factory=dict)  # numbers computed from tensors
    skipped: dict[str, int] = dataclasses.field(default_factory=dict)  # figure name -> bytes, too large to embed

    @property
    def command(self) -> str:
        return str(self.summary.get("command") or "?")

    @property
    def inputs(self) -> dict[str, Any]:
        x = self.summary.get("inputs")
        return x if isinstance(x, dict) else {}

    @property
    def results(self) -> dict[str, Any]:
        x = self.summary.get("results")
        return x if isinstance(x, dict) else {}

    @property
    def figures(self) -> list[str]:
        return [str(f) for f in (self.summary.get("figures") or [])]


def find_runs(paths: Iterable[str | Path]) -> list[Path]:
    """Every folder holding a ``summary.json`` under ``paths`` (a path may also be a summary file itself),
    in a stable order, without duplicates. Hidden folders and activation stores are not descended into."""
    found: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise FeaturescopeError(f"{p} does not exist (give run folders written by featurescope commands)")
        if p.is_file():
            if p.name != "summary.json":
                raise FeaturescopeError(f"{p} is not a summary.json or a folder")
            found.append(p.parent)
            continue
        for root, dirs, files in os.walk(p):
            dirs[:] = sorted(
                d for d in dirs if not d.startswith((".", "_")) and d not in ("activations", "__pycache__")
            )
            if "summary.json" in files:
                found.append(Path(root))
    out, seen = [], set()
    for f in found:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


def safetensors_header(path: str | Path) -> dict[str, Any]:
    """Tensor names, dtypes and shapes (and ``__metadata__``) of a .safetensors file, from its JSON header only."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        if n > 100 << 20:
            raise ValueError(f"{path}: implausible safetensors header length {n}")
        return json.loads(f.read(n))


def _persona_profile(files: Mapping[str, str], run_dir: Path) -> dict[str, Any] | None:
    """Per-layer norms of each persona vector kind, and per-layer cosines of the kinds with response_mean."""
    try:
        import torch
        from safetensors.torch import load_file
    except Exception:  # pragma: no cover - torch is a dependency
        return None
    vecs = {}
    for kind, f in files.items():
        for cand in (Path(f), run_dir / Path(f).name):
            if cand.suffix == ".safetensors" and cand.exists():
                try:
                    vecs[kind] = load_file(str(cand))["vectors"].float()
                except Exception:
                    pass
                break
    if not vecs:
        return None
    prof: dict[str, Any] = {"norm": {k: [round(float(x), 4) for x in v.norm(dim=-1)] for k, v in vecs.items()}}
    ref = vecs.get("response_mean")
    if ref is not None:
        prof["cos_with_response_mean"] = {
            k: [round(float(x), 4) for x in torch.nn.functional.cosine_similarity(v, ref, dim=-1)]
            for k, v in vecs.items()
            if k != "response_mean" and v.shape == ref.shape
        }
    return prof


def load_run(folder: str | Path) -> Run:
    """Read one run folder into a :class:`Run` (summary, listed figures, tensor headers, derived profiles)."""
    d = Path(folder)
    try:
        summary = json.loads((d / "summary.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise FeaturescopeError(f"{d / 'summary.json'} cannot be read: {e}") from e
    if not isinstance(summary, dict):
        raise FeaturescopeError(f"{d / 'summary.json'} is not a JSON object")
    run = Run(path=str(d), summary=summary)
    for name in run.figures:
        p = d / name
        if p.is_file():
            if p.stat().st_size <= _MAX_ASSET_BYTES:
                run.assets[name] = p.read_bytes()
            else:
                run.skipped[name] = p.stat().st_size
    for p in sorted(d.glob("*.safetensors"))[:24]:
        try:
            hdr = safetensors_header(p)
        except Exception:
            continue
        run.tensors[p.name] = {
            k: {"dtype": v.get("dtype"), "shape": v.get("shape")}
            for k, v in hdr.items()
            if k != "__metadata__" and isinstance(v, dict)
        }
    files = run.results.get("files")
    if run.command in ("persona run", "persona extract") and isinstance(files, dict):
        prof = _persona_profile(files, d)
        if prof:
            run.derived["vector_profile"] = prof
    return run


def load_runs(paths: Iterable[str | Path]) -> list[Run]:
    """All runs under ``paths`` (see :func:`find_runs`), except the summaries of earlier reports."""
    runs = []
    for f in find_runs(paths):
        try:
            runs.append(load_run(f))
        except FeaturescopeError as e:  # one unreadable summary must not sink the report: show it as such
            runs.append(Run(path=str(f), summary={"command": "unreadable summary.json", "results": {"error": str(e)}}))
    return [r for r in runs if r.command not in _SKIP_COMMANDS]


def _as_run(x: Run | Mapping[str, Any]) -> Run:
    if isinstance(x, Run):
        return x
    if isinstance(x, Mapping):
        s = dict(x)
        return Run(path=str(s.pop("_path", s.get("command", "run"))), summary=s)
    raise TypeError(f"expected a Run or a summary dict, got {type(x).__name__}")


# ================================================================================================================
# Small pure helpers: formatting, tables, charts
# ================================================================================================================
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


def _num(x: Any) -> float | None:
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
        num = " class='n'" if _num(v) is not None else ""
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
                vals = [float(v) for v in x if _num(v) is not None]
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
    xs: Sequence[float] | None = None,
    mark: float | None = None,
    hline: float | None = None,
    width: int = 560,
    height: int = 220,
) -> str:
    """A small inline SVG line chart (no JavaScript, no external resources); None / NaN points are gaps."""
    clean = {k: [_num(v) for v in vals] for k, vals in series.items() if vals}
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
    vals = [_num(v) or 0.0 for v in values]
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
    mime = _IMAGE_TYPES.get(Path(name).suffix.lower())
    return f"data:{mime};base64,{base64.b64encode(data).decode()}" if mime else None


# ================================================================================================================
# Provenance
# ================================================================================================================
def _model_str(m: Any) -> str | None:
    if isinstance(m, Mapping):
        name = m.get("name") or m.get("model")
        if not name:
            return None
        extra = [str(m[k]) for k in ("stage",) if m.get(k)]
        if m.get("adapter"):
            extra.append(f"adapter {m['adapter']}")
        return f"{name} ({', '.join(extra)})" if extra else str(name)
    if isinstance(m, str):
        return m
    if isinstance(m, (list, tuple)) and m:
        parts = [_model_str(x) for x in m]
        return ", ".join(p for p in parts if p) or None
    return None


def _sae_str(x: Any, sae_id: Any = None) -> str | None:
    if isinstance(x, Mapping):
        name = x.get("name") or x.get("release") or x.get("path")
        if not name:
            return None
        extra = [f"d_sae {x['d_sae']}"] if x.get("d_sae") else []
        if x.get("trained_on"):
            extra.append(f"trained on {x['trained_on']}")
        return f"{name} ({', '.join(extra)})" if extra else str(name)
    if isinstance(x, str) and x:
        return x + (f" / {sae_id}" if sae_id else "")
    return None


def _hooks_str(v: Any) -> str | None:
    """A hook, a layer number, a list of them or a comma-separated string of layers, as hook names."""
    if v is None or v == "" or v == []:
        return None
    if isinstance(v, bool):
        return None
    if isinstance(v, int) or (isinstance(v, str) and v.strip().isdigit()):
        return f"blocks.{int(v)}.hook_resid_post"
    if isinstance(v, str) and "," in v:
        parts = [x.strip() for x in v.split(",") if x.strip()]
        if parts and all(x.isdigit() for x in parts):
            return _hooks_str([int(x) for x in parts])
        return v
    if isinstance(v, (list, tuple)):
        hs = [_hooks_str(x) or str(x) for x in v]
        return ", ".join(hs[:6]) + (f" ... ({len(hs)} hooks)" if len(hs) > 6 else "")
    return str(v)


def _stage_of(m: Any) -> str | None:
    if isinstance(m, Mapping):
        st = m.get("stage")
        if st and m.get("adapter"):
            return f"{st} (adapter)"
        return str(st) if st else None
    return None


def provenance(run: Run | Mapping[str, Any]) -> dict[str, str]:
    """What produced a run: ``model`` (name and stage), ``stage``, ``layer`` (hook), ``sae``, ``data`` and
    ``created``, read from well-known keys of its inputs and results ('-' when the run names none)."""
    r = _as_run(run)
    inp, res, cmd = r.inputs, r.results, r.command
    cfg = inp.get("config") if isinstance(inp.get("config"), Mapping) else {}
    models: list[str] = []
    stages: list[str] = []
    for k in ("model", "base_model", "post_model", "models"):
        s = _model_str(inp.get(k))
        if s:
            pre = "base: " if k == "base_model" else "post: " if k == "post_model" else ""
            models.append(pre + s)
            st = _stage_of(inp.get(k))
            if st:
                stages.append(pre + st)
    if isinstance(inp.get("model"), str) and isinstance(inp.get("stage"), str) and inp["stage"]:
        # e.g. `axis analyze`: the axis file names its model and stage as strings
        models[0] = f"{inp['model']} ({inp['stage']})"
        stages.append(inp["stage"])
    if cmd == "demo":  # per-model info (with its stage) lives in the results
        for name, v in res.items():
            st = get(v, "info", "stage")
            if st:
                stages.append(f"{name}: {st}")
    if not models:
        for k in ("base", "post", "model"):
            s = _model_str(cfg.get(k))
            if s:
                models.append(s + (" (base checkpoint)" if k == "base" else ""))
    if cmd == "posttrain":
        stages = [
            "base -> post-trained (LoRA SFT adapter"
            + (", and one with preventative steering)" if cfg.get("steer_vector") else ")")
        ]
    if cmd == "axis compare":
        models = [f"base axis {inp.get('base', '?')}", f"post axis {inp.get('post', '?')}"]
        stages = ["base vs post-trained"]
    if not stages and cmd == "stages":
        stages = ["base vs post-trained"]
    layer = None
    if cmd == "persona run" and res.get("chosen_layer") is not None:
        layer = f"blocks.{res['chosen_layer']}.hook_resid_post (chosen by steering effect)"
    if cmd == "posttrain":
        layer = "all layers (LoRA)" + (
            f"; preventative steering at blocks.{cfg['steer_layer']}.hook_resid_post"
            if cfg.get("steer_vector") and cfg.get("steer_layer") is not None
            else ""
        )
    for src, k in ((inp, "hook"), (res, "hook"), (inp, "layer"), (inp, "hooks"), (inp, "layers")):
        if layer is None:
            layer = _hooks_str(src.get(k))
    if layer is None and cmd == "sae train" and res:
        layer = ", ".join(k for k in res if str(k).startswith("blocks.")) or None
    if layer is None and get(res, "analysis", "hook"):
        layer = str(res["analysis"]["hook"])
    if layer is None and cmd in ("persona extract", "demo", "capture"):
        layer = "every layer (blocks.L.hook_resid_post)"
        if cmd == "persona extract" and res.get("best_separation_layer") is not None:
            layer += f"; best separation at blocks.{res['best_separation_layer']}.hook_resid_post"
    saes = []
    for k in ("sae", "base_sae", "post_sae"):
        s = _sae_str(inp.get(k), inp.get(f"{k}_id"))
        if s:
            saes.append(("base: " if k == "base_sae" else "post: " if k == "post_sae" else "") + s)
    if not saes and cmd == "sae train":
        saes.append(f"trained here: d_sae {inp.get('d_sae', '?')}, k {inp.get('k', '?')} (folders beside this summary)")
    data = []
    if inp.get("trait"):
        ex = inp.get("extraction") if isinstance(inp.get("extraction"), Mapping) else cfg
        nq, npairs = ex.get("n_questions"), ex.get("n_pairs")
        which = (
            f"{nq or 'all'} extraction questions x {npairs or 'all'} instruction pairs"
            if ex and ("n_questions" in ex or "n_pairs" in ex)
            else "extraction questions"
        )
        data.append(f"trait '{inp['trait']}' (shipped {which}; held-out questions for evaluation)")
    if inp.get("vector"):
        data.append(f"vector {inp['vector']}")
    if isinstance(inp.get("axis"), str) and inp.get("axis"):
        data.append(f"axis {inp['axis']}")
    for k, label in (("prompts_file", "prompts"), ("dataset", "dataset"), ("responses", "responses")):
        if inp.get(k):
            data.append(f"{label} {inp[k]}")
    if get(res, "flagging", "dataset"):
        data.append(f"flagging {res['flagging']['dataset']}")
    if inp.get("judge"):
        data.append(f"judge {inp['judge']}")
    if cfg.get("data"):
        data.append(f"dialogues {cfg['data']}" + (f" (held out: {cfg['heldout']})" if cfg.get("heldout") else ""))
    if isinstance(res.get("texts"), Mapping):
        for k, v in res["texts"].items():
            if isinstance(v, Mapping):
                data.append(f"{k}: {v.get('description', '')} ({fmt(v.get('tokens'))} tokens)".replace(" ()", ""))
    if cmd == "sae train":
        corpus = next((v.get("corpus") for v in res.values() if isinstance(v, Mapping) and v.get("corpus")), None)
        if corpus:
            data.append(f"corpus {corpus}")
    if inp.get("heldout_tokens"):
        data.append(f"held-out corpus, {fmt(inp['heldout_tokens'])} tokens")
    if cmd.startswith("axis"):
        n_roles = get(res, "counts", "n_jobs")
        if cfg.get("n_roles") or n_roles:
            data.append(
                f"role library: {cfg.get('n_roles') or 'all'} roles x {cfg.get('n_questions') or 'all'} questions"
            )
        if isinstance(inp.get("scripts"), list) and inp["scripts"]:
            data.append(f"drift scripts {', '.join(map(str, inp['scripts'][:6]))}")
    if isinstance(inp.get("questions"), list):
        data.append(f"{len(inp['questions'])} questions")
    return {
        "model": "; ".join(models) or "-",
        "stage": "; ".join(dict.fromkeys(stages)) or "-",
        "layer": layer or "-",
        "sae": "; ".join(saes) or "none",
        "data": "; ".join(data) or "-",
        "created": str(r.summary.get("created") or "-"),
    }


PROV_KEYS = ("model", "stage", "layer", "sae", "data", "created")


def provenance_text(p: Mapping[str, str]) -> str:
    return (
        f"model: {p['model']} | stage: {p.get('stage', '-')} | layer: {p['layer']} | SAE: {p['sae']} | "
        f"data: {p['data']} | created: {p['created']}"
    )


def provenance_html(p: Mapping[str, str]) -> str:
    items = "".join(f"<span><b>{k}</b> {esc(p.get(k, '-'))}</span>" for k in PROV_KEYS)
    return f"<p class='prov'>{items}</p>"


# ================================================================================================================
# Render context and key numbers
# ================================================================================================================
@dataclasses.dataclass
class Number:
    """A headline number of a run: label, our value, and the paper's number when there is one."""

    label: str
    value: Any
    paper: str | None = None  # "Chen et al. 2025: r = 0.75-0.83"
    note: str = ""


@dataclasses.dataclass
class Ctx:
    """Per-run render state: which figures a renderer already embedded (the rest are appended at the end)."""

    run: Run
    index: int
    prov: dict[str, str]
    used: set[str] = dataclasses.field(default_factory=set)

    def figure(self, name: str, caption: str = "") -> str:
        """An embedded figure (``data:`` URI) with a caption that names what produced it; '' if the run lacks it."""
        data = self.run.assets.get(name)
        if data is None or name in self.used:
            return ""
        self.used.add(name)
        if Path(name).suffix.lower() in (".html", ".htm"):
            return (
                f"<div class='cards' id='run{self.index}-fig-{_slug(Path(name).stem)}'>"
                f"<p class='cap'>{esc(name)} - {esc(caption or 'feature cards')} | {esc(provenance_text(self.prov))}</p>"
                f"{sanitize_fragment(data.decode('utf-8', 'replace'))}</div>"
            )
        uri = data_uri(name, data)
        if uri is None:
            return ""
        return (
            f"<figure><img alt='{esc(name)}' src='{uri}'/><figcaption><b>{esc(name)}</b>"
            f"{' - ' + esc(caption) if caption else ''}<br/><small>{esc(provenance_text(self.prov))}</small>"
            f"</figcaption></figure>"
        )

    def chart(self, svg: str, caption: str) -> str:
        if not svg:
            return ""
        return (
            f"<figure class='svg'>{svg}<figcaption>{esc(caption)}<br/><small>{esc(provenance_text(self.prov))}"
            f"</small></figcaption></figure>"
        )

    def rest(self) -> str:
        """Every listed figure not embedded yet (and a note for listed ones that are missing)."""
        out = [self.figure(n) for n in self.run.figures if n not in self.used]
        missing = [n for n in self.run.figures if n not in self.run.assets and n not in self.run.skipped]
        if missing:
            out.append(f"<p class='note'>listed but not found in the run folder: {esc(', '.join(missing))}</p>")
        skipped = [n for n in self.run.figures if n in self.run.skipped]
        if skipped:
            out.append(
                "<p class='note'>not embedded (too large): "
                + esc(", ".join(f"{n} ({self.run.skipped[n] / 1e6:.1f} MB)" for n in skipped))
                + "</p>"
            )
        return "".join(out)


def _slug(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(s).lower()).strip("-") or "x"


def numbers_html(nums: Sequence[Number]) -> str:
    if not nums:
        return ""
    has_paper = any(n.paper for n in nums)
    rows = [
        [n.label, Raw(f"<b>{esc(fmt(n.value))}</b>" + (f" <small>{esc(n.note)}</small>" if n.note else ""))]
        + ([n.paper or ""] if has_paper else [])
        for n in nums
    ]
    return table(rows, ["", "ours"] + (["paper"] if has_paper else []), cls="nums")


def _paper(key: str) -> str:
    who, val, _ = PAPER[key]
    return f"{who}: {val}"


# ================================================================================================================
# Renderers: each is (numbers(run) -> [Number], body(ctx) -> html)
# ================================================================================================================
@dataclasses.dataclass
class Renderer:
    section: str
    numbers: Callable[[Run], list[Number]]
    body: Callable[[Ctx], str]
    title: Callable[[Run], str] | None = None


RENDERERS: dict[str, Renderer] = {}

#: Sections in page order: id -> (title, one-line intro).
SECTIONS: dict[str, tuple[str, str]] = {
    "persona": (
        "Persona vectors (Chen et al. 2025)",
        "Per trait: the vector's layer profile, the steering and monitoring curves, data flagging, and its "
        "top SAE features with feature cards.",
    ),
    "saes": (
        "Sparse autoencoders",
        "Training and evaluation of SAEs (fraction of variance explained, CE-loss recovered, L0, dead latents).",
    ),
    "stages": (
        "Training stages: feature reuse across post-training",
        "SAE transfer between base and post-trained activations (Kissane et al.), dictionary matching "
        "(PSM's '< 1% new features'), new and shifted features, persona vectors across stages.",
    ),
    "axis": (
        "The Assistant axis (Lu et al.)",
        "Persona space (PCA of role vectors), role ranking, steering, drift "
        "over multi-turn scripts, activation capping, cross-stage comparison.",
    ),
    "posttrain": ("Post-training", "LoRA SFT of the base checkpoint into an Assistant and its evaluation."),
    "foundation": (
        "Foundation: demo and captures",
        "Model loading, prompt formats, generation and activation capture.",
    ),
    "other": ("Other runs", "Commands without a dedicated renderer: inputs, results and figures as written."),
}


def register(
    command: str,
    section: str,
    numbers: Callable[[Run], list[Number]],
    body: Callable[[Ctx], str],
    title: Callable[[Run], str] | None = None,
) -> None:
    """Render runs of ``command`` (exact, or a prefix: 'axis' covers 'axis run', 'axis drift', ...) with these
    functions in section ``section`` (a key of :data:`SECTIONS`)."""
    if section not in SECTIONS:
        raise ValueError(f"unknown section {section!r}; add it to SECTIONS first")
    RENDERERS[command] = Renderer(section, numbers, body, title)


def renderer_for(command: str) -> Renderer:
    if command in RENDERERS:
        return RENDERERS[command]
    words = command.split()
    for n in range(len(words) - 1, 0, -1):
        key = " ".join(words[:n])
        if key in RENDERERS:
            return RENDERERS[key]
    return GENERIC


# -- generic -----------------------------------------------------------------------------------------------------
def _generic_numbers(run: Run) -> list[Number]:
    return []


def _inputs_table(run: Run) -> str:
    rows = [
        (k, v)
        for k, v in flatten(run.inputs, max_items=40)
        if not k.startswith(("model.weights_sha256", "base_model.weights_sha256", "post_model.weights_sha256"))
    ]
    return details("inputs", table(rows, ["input", "value"])) if rows else ""


def _tensors_table(run: Run) -> str:
    rows = [
        (f, name, v.get("dtype"), "x".join(map(str, v.get("shape") or [])) or "scalar")
        for f, ts in run.tensors.items()
        for name, v in list(ts.items())[:12]
    ]
    return (
        details(f"tensors ({len(run.tensors)} .safetensors files)", table(rows, ["file", "tensor", "dtype", "shape"]))
        if rows
        else ""
    )


def _generic_body(ctx: Ctx) -> str:
    rows = flatten(ctx.run.results, max_items=60)
    out = [_inputs_table(ctx.run)]
    if rows:
        out.append(table(rows, ["result", "value"]))
    return "".join(out)


GENERIC = Renderer("other", _generic_numbers, _generic_body)


# -- persona -----------------------------------------------------------------------------------------------------
def trait_of(run: Run) -> str:
    """The trait a persona-related run is about (inputs.trait, else the vector file's name 'evil.kind.safetensors')."""
    t = run.inputs.get("trait")
    if isinstance(t, str) and t:
        return Path(t).stem if t.endswith((".yaml", ".yml")) else t
    v = run.inputs.get("vector") or ""
    if v:
        return Path(str(v)).name.split(".")[0]
    return "unknown"


def _monotone(xs: Sequence[float], ys: Sequence[float]) -> bool | None:
    pairs = sorted((x, y) for x, y in zip(xs, ys) if _num(x) is not None and _num(y) is not None)
    if len(pairs) < 3:
        return None
    return all(b[1] >= a[1] for a, b in zip(pairs, pairs[1:]))


def _steer_rows(steering: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [r for r in (steering.get("rows") or []) if isinstance(r, Mapping)]


def _persona_numbers(run: Run) -> list[Number]:
    res, n = run.results, []
    c = res.get("counts") or {}
    if c:
        n.append(
            Number(
                "responses kept (trait / baseline)",
                f"{c.get('kept_pos', '?')} / {c.get('kept_neg', '?')}",
                note=f"of {c.get('generated_per_side', '?')} per side",
            )
        )
    d = get(res, "separation", "cohens_d")
    if d:
        best = max(range(len(d)), key=lambda i: d[i] if _num(d[i]) is not None else -1e9)
        n.append(Number("best projection separation (Cohen's d)", d[best], note=f"at layer {best}"))
    if res.get("chosen_layer") is not None:
        n.append(Number("steering layer chosen", res["chosen_layer"], note="largest steering effect, coherent answers"))
    rows = _steer_rows(res.get("steering") or (res if run.command == "persona steer" else {}))
    if rows:
        mono = _monotone([r.get("alpha") for r in rows], [r.get("trait_score") for r in rows])
        n.append(
            Number(
                "steering: trait score at lowest / highest alpha",
                f"{fmt(rows[0].get('trait_score'))} / {fmt(rows[-1].get('trait_score'))}",
                paper=_paper("steering"),
                note=f"alpha {fmt(rows[0].get('alpha'))} .. {fmt(rows[-1].get('alpha'))}; monotone: {fmt(mono)}",
            )
        )
    mon = res.get("monitor") or (res if run.command == "persona monitor" else {})
    if mon.get("r_samples") is not None or mon.get("r_levels") is not None:
        n.append(
            Number(
                "monitoring r (per response)",
                mon.get("r_samples"),
                paper=_paper("monitor_r"),
                note=f"n = {mon.get('n', '?')}",
            )
        )
        n.append(Number("monitoring r (graded-level means)", mon.get("r_levels"), paper=_paper("monitor_r")))
    fl = res.get("flagging") or {}
    if fl.get("auroc_trait_vs_neutral") is not None:
        n.append(
            Number(
                "data flagging AUROC (trait-laden vs neutral)",
                fl["auroc_trait_vs_neutral"],
                paper="Chen et al. 2025: trait-laden data ranks first",
            )
        )
    per = fl.get("per_dataset") or (res.get("per_dataset") if run.command == "persona flag" else None)
    if isinstance(per, Mapping) and per:
        top = max(per, key=lambda k: per[k] if _num(per[k]) is not None else -1e18)
        n.append(Number("dataset ranked first by projection difference", top, note=f"{fmt(per[top])}"))
    return n


def _vector_profile(ctx: Ctx) -> str:
    prof = ctx.run.derived.get("vector_profile") or {}
    out = []
    norms = prof.get("norm") or (
        {"response_mean": ctx.run.results.get("vector_norms")} if ctx.run.results.get("vector_norms") else {}
    )
    mark = ctx.run.results.get("chosen_layer")  # dashed line: the steering layer (run) / best separation (extract)
    if mark is None:
        mark = ctx.run.results.get("best_separation_layer")
    if norms:
        out.append(
            ctx.chart(
                svg_lines(norms, title="persona vector norm per layer", ylabel="||v_L||", mark=mark),
                "Layer profile of the persona vector: norm of mean(trait) - mean(baseline) per layer, "
                "for each vector kind (read from the run's .safetensors files)"
                + (
                    f"; dashed: layer {mark} ({'chosen for steering' if ctx.run.results.get('chosen_layer') is not None else 'best separation'})"
                    if mark is not None
                    else ""
                ),
            )
        )
    cos = prof.get("cos_with_response_mean")
    if cos:
        out.append(
            ctx.chart(
                svg_lines(cos, title="cosine with the response_mean vector", ylabel="cosine", mark=mark),
                "Agreement of the prompt-side vectors with the response-mean vector, per layer",
            )
        )
    return "".join(out)


def _layer_table(res: Mapping[str, Any]) -> str:
    sep = res.get("separation") or {}
    d = sep.get("cohens_d") or []
    eff = {r.get("layer"): r for r in (get(res, "layer_choice", "rows") or []) if isinstance(r, Mapping)}
    norms = res.get("vector_norms") or []
    rows = [
        [
            L,
            get(sep, "pos_mean", L),
            get(sep, "neg_mean", L),
            get(sep, "gap", L),
            d[L],
            norms[L] if L < len(norms) else None,
            get(eff, L, "effect"),
            get(eff, L, "coherence"),
        ]
        for L in range(len(d))
    ]
    return (
        details(
            "per-layer table",
            table(
                rows,
                [
                    "layer",
                    "pos mean proj",
                    "neg mean proj",
                    "gap",
                    "Cohen's d",
                    "||v||",
                    "steering effect",
                    "steered coherence",
                ],
            ),
        )
        if rows
        else ""
    )


def _steering_block(ctx: Ctx, st: Mapping[str, Any]) -> str:
    rows = _steer_rows(st)
    if not rows:
        return ""
    out = [f"<h4>Steering at {esc(st.get('hook', '?'))}</h4>", ctx.figure("steering.png", "steering curve")]
    if "steering.png" not in ctx.run.assets:
        out.append(
            ctx.chart(
                svg_lines(
                    {
                        "trait score": [r.get("trait_score") for r in rows],
                        "coherence": [r.get("coherence") for r in rows],
                    },
                    xs=[r.get("alpha") for r in rows],
                    xlabel="alpha",
                    ylabel="score 0-100",
                    title="steering curve",
                ),
                "steering curve (from summary numbers)",
            )
        )
    out.append(
        table(
            [
                [
                    r.get("alpha"),
                    r.get("trait_score"),
                    r.get("coherence"),
                    r.get("logprob_per_token"),
                    (r.get("examples") or [""])[0],
                ]
                for r in rows
            ],
            ["alpha", "trait score", "coherence", "log-prob/token (unsteered)", "example answer"],
        )
    )
    return "".join(out)


def _monitor_block(ctx: Ctx, mon: Mapping[str, Any]) -> str:
    if not mon or (mon.get("r_samples") is None and not mon.get("per_level")):
        return ""
    per = [p for p in (mon.get("per_level") or []) if isinstance(p, Mapping)]
    out = [
        f"<h4>Monitoring at {esc(mon.get('hook', '?'))}</h4>",
        f"<p>Pearson r between the last-prompt-token projection and the judged trait score: "
        f"<b>{esc(fmt(mon.get('r_samples')))}</b> per response (n = {esc(mon.get('n', '?'))}), "
        f"<b>{esc(fmt(mon.get('r_levels')))}</b> over graded-level means. Paper ({esc(_paper('monitor_r'))}).</p>",
        ctx.figure("monitor.png", "projection vs trait score per graded system prompt"),
    ]
    if per and "monitor.png" not in ctx.run.assets:
        out.append(
            ctx.chart(
                svg_lines(
                    {"projection": [p.get("projection") for p in per]},
                    xlabel="system-prompt level",
                    ylabel="projection",
                    title="last-prompt projection per level",
                ),
                "monitoring (from summary numbers)",
            )
        )
    if per:
        out.append(
            details(
                "per level",
                table(
                    [[p.get("level"), p.get("projection"), p.get("trait_score")] for p in per],
                    ["level (suppress -> elicit)", "mean projection", "mean trait score"],
                ),
            )
        )
    return "".join(out)


def _flag_block(ctx: Ctx, fl: Mapping[str, Any]) -> str:
    per = fl.get("per_dataset") if isinstance(fl, Mapping) else None
    if not per:
        return ""
    ranked = sorted(per.items(), key=lambda kv: -(_num(kv[1]) or -1e18))
    out = [
        "<h4>Data flagging</h4>",
        ctx.figure("flagging.png", "mean projection difference per dataset"),
        table([[k, v] for k, v in ranked], ["dataset", "mean projection difference"]),
    ]
    if fl.get("auroc_trait_vs_neutral") is not None:
        out.append(f"<p>AUROC (trait-laden vs neutral rows): <b>{esc(fmt(fl['auroc_trait_vs_neutral']))}</b></p>")
    return "".join(out)


def _persona_body(ctx: Ctx) -> str:
    r, res = ctx.run, ctx.run.results
    out = []
    if r.command in ("persona run", "persona extract"):
        out += [
            "<h4>Layer profile</h4>",
            _vector_profile(ctx),
            ctx.figure("separation.png", "pos-vs-neg projection separation per layer"),
            ctx.figure("layers.png", "projection separation per layer"),
            ctx.figure("layer_choice.png", "steering effect per candidate layer"),
            _layer_table(res),
        ]
    if r.command == "persona run":
        out += [
            _steering_block(ctx, res.get("steering") or {}),
            _monitor_block(ctx, res.get("monitor") or {}),
            _flag_block(ctx, res.get("flagging") or {}),
        ]
    elif r.command == "persona steer":
        out.append(_steering_block(ctx, res))
    elif r.command == "persona monitor":
        out.append(_monitor_block(ctx, res))
    elif r.command == "persona flag":
        out.append(_flag_block(ctx, res))
    out.append(_inputs_table(r))
    return "".join(out)


# -- decompose ---------------------------------------------------------------------------------------------------
def _decompose_numbers(run: Run) -> list[Number]:
    n = []
    for m, d in (run.results.get("decompositions") or {}).items():
        if not isinstance(d, Mapping):
            continue
        top = (d.get("top") or [[None, None]])[0]
        n.append(
            Number(
                f"{m}: top feature (score)",
                f"{top[0]} ({fmt(top[1])})" if top and top[0] is not None else "-",
                note=f"k for 50% / 90% of the vector: {fmt(d.get('k_for_50pct'))} / {fmt(d.get('k_for_90pct'))}",
            )
        )
    return n


def _cards_from_dicts(cards: Sequence[Any]) -> str:
    """Feature cards rebuilt from their summary dicts (when the run folder has no cards.html)."""
    try:
        from .cards import FeatureCard
    except Exception:  # pragma: no cover
        return ""
    out = []
    for c in cards:
        if not isinstance(c, Mapping):
            continue
        try:
            out.append(
                sanitize_fragment(
                    FeatureCard(**{k: c[k] for k in c if k in FeatureCard.__dataclass_fields__}).to_html()
                )
            )
        except Exception:
            out.append(table([[k, v] for k, v in flatten(c, max_items=12)]))
    return "".join(out)


def _decompose_body(ctx: Ctx) -> str:
    res = ctx.run.results
    decs = {m: d for m, d in (res.get("decompositions") or {}).items() if isinstance(d, Mapping)}
    out = ["<h4>Top SAE features of the vector</h4>"]
    if decs:
        k = max(len(d.get("top") or []) for d in decs.values())
        k = min(k, 12)
        heads, cols = ["rank"], []
        for m, d in decs.items():
            heads += [f"{m} feature", f"{m} score"]
            cols.append(d.get("top") or [])
        rows = [
            [i + 1] + [x for c in cols for x in ((c[i][0], c[i][1]) if i < len(c) else (None, None))] for i in range(k)
        ]
        out.append(table(rows, heads))
        out.append(
            table(
                [
                    [m, d.get("k_for_50pct"), d.get("k_for_90pct"), (d.get("fraction_explained") or [None])[-1]]
                    for m, d in decs.items()
                ],
                ["method", "k for 50%", "k for 90%", "fraction explained by top-k"],
            )
        )
        fig = ctx.figure("fraction_explained.png", "fraction of ||v||^2 reconstructed by the top-k features")
        out.append(
            fig
            or ctx.chart(
                svg_lines(
                    {m: d.get("fraction_explained") or [] for m, d in decs.items()},
                    xs=None,
                    xlabel="k (top features, 0-based)",
                    ylabel="fraction explained",
                    title="fraction of the vector explained by its top-k features",
                ),
                "fraction explained (from summary numbers)",
            )
        )
    cards = ctx.figure("cards.html", "feature cards of the top features")
    if not cards and res.get("cards"):
        cards = (
            f"<div class='cards' id='run{ctx.index}-fig-cards'><p class='cap'>feature cards (rebuilt from summary.json)"
            f" | {esc(provenance_text(ctx.prov))}</p>{_cards_from_dicts(res['cards'][:12])}</div>"
        )
    out += [cards, _inputs_table(ctx.run)]
    return "".join(out)


# -- SAEs --------------------------------------------------------------------------------------------------------
_SAE_METRICS = ("fraction_variance_explained", "ce_loss_recovered", "l0", "dead_fraction", "n_tokens")


def _sae_evals(run: Run) -> dict[str, Mapping[str, Any]]:
    res = run.results
    if run.command == "sae eval":
        return {str(res.get("hook") or run.inputs.get("hook") or "?"): res}
    return {k: v for k, v in res.items() if isinstance(v, Mapping) and "fraction_variance_explained" in v}


def _sae_numbers(run: Run) -> list[Number]:
    n = []
    for h, ev in _sae_evals(run).items():
        n.append(
            Number(
                f"{h}: FVE / CE recovered / L0 / dead",
                f"{fmt(ev.get('fraction_variance_explained'))} / {fmt(ev.get('ce_loss_recovered'))} / "
                f"{fmt(ev.get('l0'))} / {fmt(ev.get('dead_fraction'))}",
            )
        )
    return n


def _sae_body(ctx: Ctx) -> str:
    evs = _sae_evals(ctx.run)
    out = []
    if evs:
        out.append(
            table(
                [[h] + [ev.get(k) for k in _SAE_METRICS] for h, ev in evs.items()],
                ["hook", "FVE", "CE-loss recovered", "L0", "dead fraction", "tokens"],
            )
        )
        for h, ev in evs.items():
            dh = ev.get("density_hist")
            if isinstance(dh, list) and dh:
                edges = [-7 + 7 * i / len(dh) for i in range(len(dh))]
                out.append(
                    ctx.chart(
                        svg_bars([fmt(e) for e in edges], dh, title=f"latent density histogram, {h}", ylabel="latents"),
                        f"log10 firing density of the latents at {h}",
                    )
                )
        extra = [
            (f"{h}: {k}", v)
            for h, ev in evs.items()
            for k, v in ev.items()
            if k not in _SAE_METRICS and k != "density_hist" and not isinstance(v, (dict, list))
        ]
        if extra:
            out.append(details("all metrics", table(extra, ["metric", "value"])))
    out.append(_inputs_table(ctx.run))
    return "".join(out)


# -- stages ------------------------------------------------------------------------------------------------------
def _stages_numbers(run: Run) -> list[Number]:
    res, n = run.results, []
    tr = res.get("transfer") or {}
    for set_k in ("chat", "plain"):
        own = get(tr, "base_sae", "base_model", set_k, "fraction_variance_explained")
        other = get(tr, "base_sae", "post_model", set_k, "fraction_variance_explained")
        if own is not None and other is not None:
            n.append(
                Number(
                    f"base SAE FVE on base / post activations ({set_k})",
                    f"{fmt(own)} / {fmt(other)}",
                    paper=_paper("transfer"),
                    note=f"difference {fmt(other - own)}",
                )
            )
        ce_own = get(tr, "base_sae", "base_model", set_k, "ce_loss_recovered")
        ce_other = get(tr, "base_sae", "post_model", set_k, "ce_loss_recovered")
        if ce_own is not None and ce_other is not None:
            n.append(Number(f"base SAE CE-loss recovered on base / post ({set_k})", f"{fmt(ce_own)} / {fmt(ce_other)}"))
    mt = res.get("matching") or {}
    if mt.get("fraction_post_reused") is not None:
        reused = mt["fraction_post_reused"]
        n_post = mt.get("n_post_latents")
        n.append(
            Number(
                "new features (post latents with no base match)",
                f"{(1 - reused) * 100:.1f}%",
                paper=_paper("new_features"),
                note=f"{fmt(mt.get('n_new'))} of {fmt(n_post)}; threshold cos {fmt(mt.get('threshold'))}",
            )
        )
        rnd = get(mt, "baselines", "random", "fraction_post_reused")
        n.append(
            Number(
                "post latents reused (best decoder cos >= threshold)",
                f"{reused * 100:.1f}%",
                note=f"random-dictionary baseline {fmt(rnd * 100 if rnd is not None else None)}%",
            )
        )
        if mt.get("fraction_base_kept") is not None:
            n.append(Number("base latents kept", f"{mt['fraction_base_kept'] * 100:.1f}%"))
    for t, v in (get(res, "persona", "traits") or {}).items():
        if isinstance(v, Mapping) and v.get("cosine_at_layer") is not None:
            n.append(
                Number(
                    f"persona '{t}': cos(base, post) at layer {get(res, 'persona', 'layer')}",
                    v["cosine_at_layer"],
                    note=f"top-feature Jaccard {fmt(get(v, 'top_features_base_sae', 'jaccard'))}",
                )
            )
    cc = res.get("crosscoder") or {}
    if cc.get("counts"):
        n.append(
            Number(
                "crosscoder latents (base-only / shared / post-only)",
                " / ".join(fmt(cc["counts"].get(k)) for k in ("base_only", "shared", "post_only")),
            )
        )
    return n


def _transfer_table(tr: Mapping[str, Any]) -> str:
    rows = []
    for sk in ("base_sae", "post_sae"):
        for mk in ("base_model", "post_model"):
            for set_k, m in (get(tr, sk, mk) or {}).items():
                if isinstance(m, Mapping):
                    rows.append(
                        [
                            sk.replace("_", " "),
                            mk.replace("_", " "),
                            set_k,
                            m.get("fraction_variance_explained"),
                            m.get("ce_loss_recovered"),
                            m.get("l0"),
                            m.get("dead_fraction"),
                        ]
                    )
    return table(rows, ["SAE", "activations of", "texts", "FVE", "CE-loss recovered", "L0", "dead"]) if rows else ""


def _shift_tables(sh: Mapping[str, Any]) -> str:
    out = []
    for sk in ("base_sae", "post_sae"):
        s = sh.get(sk)
        if not isinstance(s, Mapping):
            continue
        for direction in ("up", "down"):
            rows = [
                [r.get("latent"), r.get("freq_base"), r.get("freq_post"), r.get("delta_freq"), r.get("delta_mean")]
                for r in (s.get(direction) or [])[:10]
                if isinstance(r, Mapping)
            ]
            if rows:
                out.append(
                    f"<h5>{esc(sk.replace('_', ' '))}: most {'up' if direction == 'up' else 'down'}-regulated on "
                    f"Assistant tokens</h5>"
                    + table(rows, ["latent", "freq base", "freq post", "delta freq", "delta mean"])
                )
        if s.get("frequency_correlation") is not None:
            out.append(
                f"<p>{esc(sk.replace('_', ' '))}: firing-frequency correlation base vs post "
                f"{esc(fmt(s['frequency_correlation']))}; alive in both {esc(fmt(s.get('alive_both')))}, base only "
                f"{esc(fmt(s.get('alive_base_only')))}, post only {esc(fmt(s.get('alive_post_only')))}</p>"
            )
    return "".join(out)


def _stages_body(ctx: Ctx) -> str:
    res = ctx.run.results
    out = []
    tr = res.get("transfer")
    if isinstance(tr, Mapping):
        out += [
            f"<h4 id='run{ctx.index}-transfer'>SAE transfer across stages</h4>",
            f"<p>Paper ({esc(PAPER['transfer'][0])}): {esc(PAPER['transfer'][2])}.</p>",
            _transfer_table(tr),
            ctx.figure("transfer.png", "FVE / CE-loss recovered of each SAE on each model's activations"),
        ]
        if tr.get("note"):
            out.append(f"<p class='note'>{esc(tr['note'])}</p>")
    mt = res.get("matching")
    if isinstance(mt, Mapping):
        reused = mt.get("fraction_post_reused")
        out += [
            f"<h4 id='run{ctx.index}-matching'>Feature matching between the dictionaries</h4>",
            f"<p>{esc(fmt(mt.get('n_new')))} of {esc(fmt(mt.get('n_post_latents')))} post-trained latents have no "
            f"base latent with decoder cosine >= {esc(fmt(mt.get('threshold')))}: <b>"
            f"{esc(fmt((1 - reused) * 100 if reused is not None else None))}% new</b> (paper, {esc(_paper('new_features'))}).</p>",
            table(
                [
                    [k, get(v, "fraction_post_reused"), get(v, "median_best_cos"), get(v, "what")]
                    for k, v in (mt.get("baselines") or {}).items()
                ],
                ["baseline", "fraction reused", "median best cos", "what"],
            ),
        ]
        fig = ctx.figure("matching.png", "best decoder cosine histograms, with random baselines")
        hist = get(mt, "histograms", "post_to_base")
        if not fig and isinstance(hist, Mapping) and hist.get("counts"):
            edges = hist.get("edges") or []
            labels = [fmt(e) for e in edges[:-1]] or list(range(len(hist["counts"])))
            thr = mt.get("threshold")
            mark = None
            if thr is not None and len(edges) > 1:
                mark = (thr - edges[0]) / (edges[1] - edges[0])
            fig = ctx.chart(
                svg_bars(
                    labels, hist["counts"], title="best decoder cosine, post -> base", ylabel="latents", mark=mark
                ),
                "matching histogram (from summary numbers); dashed: reuse threshold",
            )
        out.append(fig)
        if mt.get("new_latents"):
            out.append(
                f"<p>New latents (most active first): {esc(', '.join(map(str, mt['new_latents'][:30])))}"
                f"{' ...' if len(mt['new_latents']) > 30 else ''}</p>"
            )
    sh = res.get("activation_shift")
    if isinstance(sh, Mapping):
        out += [
            f"<h4 id='run{ctx.index}-shift'>Activation shift on Assistant tokens</h4>",
            _shift_tables(sh),
            ctx.figure("shift_base_sae.png", "firing frequency base vs post, base SAE"),
            ctx.figure("shift_post_sae.png", "firing frequency base vs post, post SAE"),
        ]
    cards = ctx.figure("cards.html", "new and shifted features")
    if not cards and isinstance(res.get("cards"), Mapping) and res["cards"]:
        cards = (
            f"<div class='cards' id='run{ctx.index}-fig-cards'><p class='cap'>new and shifted features (from "
            f"summary.json; cards.html not found) | {esc(provenance_text(ctx.prov))}</p>"
            + "".join(
                f"<h5>{esc(t)}</h5>"
                + table(
                    [
                        [c.get("feature"), c.get("density"), ", ".join(map(str, c.get("promoted") or []))]
                        for c in cs
                        if isinstance(c, Mapping)
                    ],
                    ["feature", "density", "promotes"],
                )
                for t, cs in res["cards"].items()
            )
            + "</div>"
        )
    if cards:
        out += [f"<h4 id='run{ctx.index}-cards'>New and shifted features (cards)</h4>", cards]
    pe = res.get("persona")
    if isinstance(pe, Mapping):
        rows = [
            [
                t,
                v.get("cosine_at_layer"),
                v.get("norm_base"),
                v.get("norm_post"),
                get(v, "top_features_base_sae", "jaccard"),
                get(v, "top_features_post_sae", "jaccard"),
                get(v, "across_saes", "jaccard"),
            ]
            for t, v in (pe.get("traits") or {}).items()
            if isinstance(v, Mapping)
        ]
        out += [
            f"<h4 id='run{ctx.index}-persona'>Persona vectors across stages</h4>",
            f"<p>{esc(pe.get('how', ''))}</p>",
            table(
                rows,
                [
                    "trait",
                    f"cos(base, post) at layer {pe.get('layer')}",
                    "||v|| base",
                    "||v|| post",
                    "top-feature Jaccard (base SAE)",
                    "(post SAE)",
                    "(across SAEs)",
                ],
            ),
            ctx.figure("persona_cosine.png", "cosine between base and post-trained persona vectors per layer"),
        ]
    cc = res.get("crosscoder")
    if isinstance(cc, Mapping):
        out.append(f"<h4 id='run{ctx.index}-crosscoder'>Crosscoder</h4>")
        if cc.get("counts"):
            out.append(table([[k, v] for k, v in cc["counts"].items()], ["class", "latents"]))
            out.append(ctx.figure("crosscoder.png", "relative decoder norm and Latent Scaling"))
        else:
            out.append(f"<p class='note'>{esc(cc.get('status', ''))}</p>")
    out.append(_inputs_table(ctx.run))
    return "".join(out)


# -- axis --------------------------------------------------------------------------------------------------------
def _axis_results(run: Run) -> dict[str, Any]:
    """The results of any ``axis ...`` command in the layout of ``axis run`` (whose parts the sub-commands write
    at the top level of their results)."""
    res, cmd, inp = dict(run.results), run.command, run.inputs
    if cmd == "axis steer" and "rows" in res:
        return {"steering": res}
    if cmd == "axis prefill" and "rows" in res:
        return {"prefill": res}
    if cmd == "axis compare" and "middle" in res:
        return {"compare": res}
    if cmd in ("axis drift", "axis cap") and any(isinstance(res.get(k), Mapping) for k in ("uncapped", "capped")):
        dr: dict[str, Any] = {
            "hook": inp.get("layer"),
            "cap_percentile": inp.get("percentile"),
            "tau_at_layer": res.get("tau_at_layer"),
        }
        for k in ("uncapped", "capped"):
            v = res.get(k)
            if not isinstance(v, Mapping):
                continue
            v = dict(v)
            per = {n: x for n, x in (v.get("per_script") or {}).items() if isinstance(x, list) and x}
            if per and v.get("first_turn_mean") is None:
                v["first_turn_mean"] = sum(_num(x[0]) or 0.0 for x in per.values()) / len(per)
                v["last_turn_mean"] = sum(_num(x[-1]) or 0.0 for x in per.values()) / len(per)
            dr[k] = v
            if v.get("cap_layers") is not None:
                dr["cap_layers"] = v["cap_layers"]
        return {"drift": dr}
    return res


def _axis_analysis(res: Mapping[str, Any]) -> Mapping[str, Any]:
    an = res.get("analysis")
    return an if isinstance(an, Mapping) else res


def _axis_numbers(run: Run) -> list[Number]:
    res, n = _axis_results(run), []
    an = _axis_analysis(res)
    if an.get("axis_pc1_cosine") is not None:
        n.append(
            Number(
                f"cos(axis, PC1) at {an.get('hook', res.get('hook', '?'))}",
                an["axis_pc1_cosine"],
                paper=_paper("axis_pc1"),
            )
        )
    if an.get("pcs_for_70pct") is not None:
        n.append(Number("PCs for 70% of role-vector variance", an["pcs_for_70pct"], paper=_paper("axis_pcs")))
    if an.get("default_pc1_percentile") is not None:
        n.append(
            Number(
                "default Assistant's percentile on PC1 among roles",
                an["default_pc1_percentile"],
                note="Lu et al.: the Assistant sits at one extreme",
            )
        )
    rows = _steer_rows(res.get("steering") or {})
    if rows:
        nosys = [r for r in rows if not r.get("system_prompt")] or rows
        n.append(
            Number(
                "steering: identifies as AI at lowest / highest alpha",
                f"{fmt(nosys[0].get('ai_fraction'))} / {fmt(nosys[-1].get('ai_fraction'))}",
                note=f"alpha {fmt(nosys[0].get('alpha'))} .. {fmt(nosys[-1].get('alpha'))}",
            )
        )
    dr = res.get("drift")
    if isinstance(dr, Mapping):
        for k in ("uncapped", "capped"):
            v = dr.get(k)
            if isinstance(v, Mapping) and v.get("first_turn_mean") is not None:
                n.append(
                    Number(
                        f"drift ({k}): mean projection first -> last turn",
                        f"{fmt(v['first_turn_mean'])} -> {fmt(v.get('last_turn_mean'))}",
                    )
                )
    cmp = res.get("compare")
    if isinstance(cmp, Mapping) and isinstance(cmp.get("middle"), Mapping):
        m = cmp["middle"]
        n.append(Number("base vs post axis cosine (middle layer)", m.get("axis_cosine")))
        if m.get("pc_cosines"):
            n.append(Number("top-3 PC |cosines| base vs post", m["pc_cosines"], paper="Lu et al.: 0.93, 0.87, 0.83"))
    return n


def _axis_body(ctx: Ctx) -> str:
    res = _axis_results(ctx.run)
    an = _axis_analysis(res)
    out = []
    if an.get("explained_variance") or "explained_variance.png" in ctx.run.assets:
        out.append(f"<h4 id='run{ctx.index}-pca'>Persona space (PCA of the role vectors)</h4>")
        fig = ctx.figure("explained_variance.png", "explained variance of the role-vector PCA")
        ev = an.get("explained_variance")
        if not fig and isinstance(ev, list) and ev:
            cum, s = [], 0.0
            for x in ev:
                s += _num(x) or 0.0
                cum.append(s)
            fig = ctx.chart(
                svg_lines(
                    {"explained": ev, "cumulative": cum},
                    xlabel="principal component (0-based)",
                    ylabel="fraction of variance",
                    hline=0.7,
                    title="role-vector PCA",
                ),
                "explained variance (from summary numbers); dashed: 70%",
            )
        out += [
            fig,
            ctx.figure("pc1_pc2.png", "roles and the default Assistant on PC1 / PC2"),
            ctx.figure("axis_layers.png", "axis profile per layer"),
        ]
    pl = res.get("per_layer")
    if isinstance(pl, Mapping) and pl.get("axis_pc1_cosine") and "axis_layers.png" not in ctx.run.assets:
        out.append(
            ctx.chart(
                svg_lines(
                    {
                        "cos(axis, PC1)": pl["axis_pc1_cosine"],
                        "default PC1 percentile": pl.get("default_pc1_percentile") or [],
                    },
                    ylabel="",
                    title="axis per layer",
                    hline=0.71,
                ),
                "axis per layer (from summary numbers); dashed: Lu et al.'s 0.71",
            )
        )
    ranked = res.get("ranked_roles")
    if isinstance(ranked, list) and ranked:
        out.append(f"<h4 id='run{ctx.index}-roles'>Role ranking along the axis</h4>")
        out.append(ctx.figure("roles_ranked.png", "roles ranked by projection on the axis"))
        top = [r for r in ranked if isinstance(r, (list, tuple)) and len(r) >= 3]
        if top:
            rows = [[i + 1, *top[i][:3]] for i in range(min(8, len(top)))]
            if len(top) > 8:
                rows += [["...", "", "", None]] + [
                    [len(top) - j, *top[-1 - j][:3]] for j in reversed(range(min(5, len(top) - 8)))
                ]
            out.append(table(rows, ["rank", "role", "category", "projection"]))
    rows = _steer_rows(res.get("steering") or {})
    if rows:
        out += [
            f"<h4 id='run{ctx.index}-steering'>Steering along the axis</h4>",
            ctx.figure("steering.png", "steering"),
            table(
                [
                    [
                        r.get("system_prompt") or "(none)",
                        r.get("alpha"),
                        r.get("ai_fraction"),
                        r.get("coherence"),
                        r.get("readback_projection"),
                    ]
                    for r in rows
                ],
                ["system prompt", "alpha", "identifies as AI", "coherence", "read-back projection"],
            ),
        ]
    dr = res.get("drift")
    if isinstance(dr, Mapping):
        out.append(f"<h4 id='run{ctx.index}-drift'>Drift and capping</h4>")
        out += [
            ctx.figure("drift.png", "per-turn projection over multi-turn scripts"),
            ctx.figure("drift_capped.png", "uncapped vs capped"),
        ]
        series = {}
        for k in ("uncapped", "capped"):
            for name, vals in (get(dr, k, "per_script") or {}).items():
                series[f"{name} ({k})"] = vals
        if series and "drift.png" not in ctx.run.assets:
            out.append(
                ctx.chart(
                    svg_lines(
                        dict(list(series.items())[:8]), xlabel="turn", ylabel="projection", title="drift per script"
                    ),
                    "drift (from summary numbers)",
                )
            )
        out.append(
            table(
                [
                    [
                        k,
                        get(dr, k, "first_turn_mean"),
                        get(dr, k, "last_turn_mean"),
                        get(dr, k, "ai_fraction_of_replies"),
                    ]
                    for k in ("uncapped", "capped")
                    if isinstance(dr.get(k), Mapping)
                ],
                ["", "first-turn mean projection", "last-turn mean projection", "replies identifying as AI"],
            )
        )
        if dr.get("cap_layers") is not None:
            out.append(
                f"<p>capping at layers {esc(fmt(dr.get('cap_layers')))}, tau = percentile "
                f"{esc(fmt(dr.get('cap_percentile')))} of the default Assistant's token projections</p>"
            )
    pf = res.get("prefill")
    if isinstance(pf, Mapping):
        out += [
            f"<h4 id='run{ctx.index}-prefill'>Base-model prefill test</h4>",
            ctx.figure("prefill.png", "prefill test"),
            table([[k, v] for k, v in flatten({k: v for k, v in pf.items() if k != "rows"}, max_items=20)]),
        ]
    cmp = res.get("compare")
    if isinstance(cmp, Mapping):
        out += [
            f"<h4 id='run{ctx.index}-compare'>Across stages</h4>",
            ctx.figure("compare.png", "base vs post-trained axes"),
            table([[k, v] for k, v in flatten(cmp.get("middle") or {}, max_items=20)]),
        ]
    dec = res.get("decomposition")
    if isinstance(dec, Mapping):
        out.append(f"<h4 id='run{ctx.index}-features'>SAE features of the axis</h4>")
        out.append(
            table(
                [
                    [m, ", ".join(f"{t[0]} ({fmt(t[1])})" for t in (d.get("top") or [])[:8]), d.get("k_for_50pct")]
                    for m, d in dec.items()
                    if isinstance(d, Mapping)
                ],
                ["method", "top features (score)", "k for 50%"],
            )
        )
    if not out:
        out.append(_generic_body(ctx))
    else:
        out.append(_inputs_table(ctx.run))
    return "".join(out)


# -- posttrain ---------------------------------------------------------------------------------------------------
def _posttrain_numbers(run: Run) -> list[Number]:
    res, n = run.results, []
    for name, v in res.items():
        e = get(v, "eval", "chat")
        if isinstance(e, Mapping):
            n.append(
                Number(
                    f"{name}: assistant format / calls itself an AI",
                    f"{fmt(e.get('assistant_format_fraction'))} / {fmt(e.get('identity_ai_fraction'))}",
                    note=f"final loss {fmt(get(v, 'final_loss'))}",
                )
            )
    b = get(res, "base_eval", "chat")
    if isinstance(b, Mapping):
        n.append(
            Number(
                "base model: assistant format / calls itself an AI",
                f"{fmt(b.get('assistant_format_fraction'))} / {fmt(b.get('identity_ai_fraction'))}",
            )
        )
    return n


def _posttrain_body(ctx: Ctx) -> str:
    return _generic_body(ctx)


# -- foundation --------------------------------------------------------------------------------------------------
def _demo_numbers(run: Run) -> list[Number]:
    n = []
    for name, v in run.results.items():
        if isinstance(v, Mapping) and "capture_tokens_per_s" in v:
            n.append(Number(f"{name}: capture tokens/s", v["capture_tokens_per_s"], note=f"format {v.get('format')}"))
    pe = run.results.get("persona-evil")
    if isinstance(pe, Mapping):
        n.append(
            Number(
                "persona 'evil': chosen layer / monitor r",
                f"{fmt(pe.get('chosen_layer'))} / {fmt(pe.get('monitor_r'))}",
                paper=_paper("monitor_r"),
            )
        )
    if run.command == "capture":
        n.append(
            Number(
                "tokens captured (tokens/s)",
                f"{fmt(run.results.get('n_tokens'))} ({fmt(run.results.get('tokens_per_s'))})",
            )
        )
    return n


def _demo_body(ctx: Ctx) -> str:
    out = []
    for name, v in ctx.run.results.items():
        if not (isinstance(v, Mapping) and "responses" in v):
            continue
        out.append(
            f"<h4>{esc(name)}</h4><p>{esc(get(v, 'info', 'backend') or '')}, stage "
            f"{esc(get(v, 'info', 'stage') or '?')}, prompt format {esc(v.get('format'))}</p>"
        )
        out.append(
            table(
                [[r.get("question"), r.get("response")] for r in v["responses"] if isinstance(r, Mapping)],
                ["question", "greedy response"],
            )
        )
        norms = v.get("response_mean_norm_per_layer")
        cos = v.get("cos_response_vs_last_prompt_per_layer")
        if isinstance(norms, Mapping) and norms:
            out.append(
                ctx.chart(
                    svg_lines(
                        {"mean response norm": list(norms.values())},
                        ylabel="norm",
                        title=f"{name}: response-mean activation norm per layer",
                    ),
                    f"{name}: response-mean norm per layer",
                )
            )
        if isinstance(cos, Mapping) and cos:
            out.append(
                ctx.chart(
                    svg_lines(
                        {"cos": list(cos.values())},
                        ylabel="cosine",
                        title=f"{name}: cos(response mean, last prompt token) per layer",
                    ),
                    f"{name}: response vs last-prompt-token cosine per layer",
                )
            )
    if ctx.run.command == "capture" or not out:
        out.append(_generic_body(ctx))
    else:
        out.append(_inputs_table(ctx.run))
    return "".join(out)


def _title_default(run: Run) -> str:
    p = provenance(run)
    return f"{run.command} - {p['model'].split(';')[0]}"


def _title_persona(run: Run) -> str:
    return f"{run.command} - trait '{trait_of(run)}' - {provenance(run)['model']}"


for _c in ("persona run", "persona extract", "persona steer", "persona monitor", "persona flag"):
    register(_c, "persona", _persona_numbers, _persona_body, _title_persona)
register("decompose", "persona", _decompose_numbers, _decompose_body, _title_persona)
register("sae train", "saes", _sae_numbers, _sae_body)
register("sae eval", "saes", _sae_numbers, _sae_body)
register("stages", "stages", _stages_numbers, _stages_body)
register("axis", "axis", _axis_numbers, _axis_body)
register("axis decompose", "axis", _decompose_numbers, _decompose_body)
register("posttrain", "posttrain", _posttrain_numbers, _posttrain_body)
register("demo", "foundation", _demo_numbers, _demo_body)
register("capture", "foundation", _demo_numbers, _demo_body)


# ================================================================================================================
# The page
# ================================================================================================================
CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#222;background:#fff;line-height:1.4}
main{max-width:1100px;margin:0 auto;padding:16px 24px 60px}
header.top{background:#2c3e50;color:#fff;padding:14px 24px}header.top h1{margin:0;font-size:22px}
header.top p{margin:4px 0 0;font-size:13px;color:#dfe6ee}
nav.toc{background:#f4f6f8;border:1px solid #dde;border-radius:6px;padding:8px 16px;margin:14px 0;font-size:13px}
nav.toc ul{margin:4px 0;padding-left:18px}nav.toc a{color:#2c3e50}
section.sec{margin-top:28px}section.sec>h2{border-bottom:2px solid #2c3e50;padding-bottom:4px}
.intro{color:#555;font-size:13px}
article.run{border:1px solid #dde;border-radius:6px;padding:8px 14px;margin:12px 0;background:#fff}
article.run h3{margin:4px 0;font-size:16px}h4{margin:14px 0 6px}h5{margin:10px 0 4px}
p.prov{font-size:11.5px;color:#444;background:#f7f7f2;border-left:3px solid #c0a060;padding:4px 8px;margin:4px 0 8px}
p.prov span{margin-right:14px;display:inline-block}p.prov b{color:#7a5b1a;text-transform:uppercase;font-size:10px}
table{border-collapse:collapse;font-size:12px;margin:6px 0}td,th{border:1px solid #ddd;padding:2px 6px;vertical-align:top}
th{background:#f0f2f4;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
table.nums td:first-child{color:#333}table.nums{min-width:60%}
figure{margin:10px 0;display:inline-block;max-width:100%;vertical-align:top}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:11px;color:#444;max-width:760px}figcaption small{color:#777}
details{margin:6px 0;font-size:12px}summary{cursor:pointer;color:#2c3e50}
pre.json{background:#f8f8f8;border:1px solid #eee;padding:6px;max-height:360px;overflow:auto;font-size:11px}
.note{color:#8a6d3b;font-size:12px}.cards{border-top:1px dashed #ccc;margin-top:8px}.cap{font-size:11px;color:#555}
span.ext code{font-size:10px;color:#777}
"""


def _overview(runs: Sequence[Run], items: Sequence[tuple[int, Run, Renderer, list[Number]]]) -> str:
    rows = []
    for i, r, _rend, nums in items:
        p = provenance(r)
        head = nums[0] if nums else None
        rows.append(
            [
                Raw(f"<a href='#run{i}'>{i}</a>"),
                r.command,
                r.path,
                p["model"],
                p["created"],
                f"{head.label}: {fmt(head.value)}" if head else "",
            ]
        )
    return table(rows, ["#", "command", "folder", "model", "created", "headline"])


def build_report(
    summaries: Sequence[Run | Mapping[str, Any]], *, title: str = "featurescope report", generated: str | None = None
) -> str:
    """The whole report as one HTML string (pure: no file or network access).

    ``summaries`` are :class:`Run` records (from :func:`load_runs`; they carry figure bytes) or bare summary dicts
    (a ``_path`` key names the folder). Runs are grouped into :data:`SECTIONS` by their command's renderer."""
    runs = [_as_run(s) for s in summaries]
    runs.sort(key=lambda r: (str(r.summary.get("created") or ""), r.path))
    items = []
    for i, r in enumerate(runs, 1):
        rend = renderer_for(r.command)
        try:
            nums = rend.numbers(r)
        except Exception as e:  # a malformed summary must not sink the report
            nums = [Number("(could not read key numbers)", f"{type(e).__name__}: {e}")]
        items.append((i, r, rend, nums))
    by_sec: dict[str, list[tuple[int, Run, Renderer, list[Number]]]] = {k: [] for k in SECTIONS}
    for it in items:
        by_sec.setdefault(it[2].section, []).append(it)

    toc, body = [], []
    for sid, its in by_sec.items():
        if not its:
            continue
        stitle, intro = SECTIONS.get(sid, (sid, ""))
        groups: dict[str, list[Any]] = {}
        for it in its:
            key = f"trait '{trait_of(it[1])}'" if sid == "persona" else ""
            groups.setdefault(key, []).append(it)
        sub_toc, sec_html = [], []
        for gkey, gits in groups.items():
            gid = f"{sid}-{_slug(trait_of(gits[0][1]))}" if gkey else ""
            if gkey:
                sec_html.append(f"<h3 class='group' id='{gid}'>{esc(gkey.capitalize())}</h3>")
                sub_toc.append(f"<li><a href='#{gid}'>{esc(gkey)}</a><ul>")
            for i, r, rend, nums in gits:
                ctx = Ctx(run=r, index=i, prov=provenance(r))
                rtitle = (rend.title or _title_default)(r)
                try:
                    inner = rend.body(ctx)
                except Exception as e:
                    inner = (
                        f"<p class='note'>the {esc(r.command)} renderer failed ({esc(type(e).__name__)}: {esc(e)});"
                        f" generic view below</p>" + _generic_body(ctx)
                    )
                sec_html.append(
                    f"<article class='run' id='run{i}' data-command='{esc(r.command)}'>"
                    f"<h3>{i}. {esc(rtitle)}</h3>{provenance_html(ctx.prov)}"
                    f"<p class='note'>folder <code>{esc(r.path)}</code></p>{numbers_html(nums)}{inner}{ctx.rest()}"
                    f"{_tensors_table(r)}{json_details(r.results)}"
                    f"{json_details(r.summary.get('timings_s') or {}, 'timings (s)')}</article>"
                )
                sub_toc.append(f"<li><a href='#run{i}'>{i}. {esc(rtitle)}</a></li>")
            if gkey:
                sub_toc.append("</ul></li>")
        toc.append(f"<li><a href='#{sid}'>{esc(stitle)}</a> ({len(its)})<ul>{''.join(sub_toc)}</ul></li>")
        body.append(
            f"<section class='sec' id='{sid}'><h2>{esc(stitle)}</h2><p class='intro'>{esc(intro)}</p>"
            f"{''.join(sec_html)}</section>"
        )
    gen = generated or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    envs = {
        json.dumps(
            {
                k: v
                for k, v in (r.summary.get("environment") or {}).items()
                if k in ("featurescope", "torch", "transformer_lens", "sae_lens", "platform")
            },
            sort_keys=True,
        )
        for r in runs
    }
    env_txt = "; ".join(", ".join(f"{k} {v}" for k, v in json.loads(e).items()) for e in sorted(envs) if e != "{}")
    empty = "" if runs else "<p class='note' id='empty'>No runs found: no summary.json under the given folders.</p>"
    papers = table([[who, val, what] for who, val, what in PAPER.values()], ["paper", "number", "what"])
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'/>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'/>"
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f"<header class='top' id='top'><h1>{esc(title)}</h1><p>{len(runs)} run(s); generated {esc(gen)} by featurescope "
        f"report. Self-contained: figures are embedded, nothing is fetched from the network.</p></header><main>"
        f"<nav class='toc' id='toc'><b>Contents</b><ul><li><a href='#overview'>Overview</a></li>{''.join(toc)}"
        f"<li><a href='#papers'>Paper numbers</a></li></ul></nav>"
        f"<section class='sec' id='overview'><h2>Overview</h2>{empty}{_overview(runs, items)}"
        f"<p class='note'>environment: {esc(env_txt or '-')}</p></section>"
        f"{''.join(body)}"
        f"<section class='sec' id='papers'><h2>Paper numbers quoted</h2>{papers}</section>"
        "</main></body></html>"
    )


def build_markdown(
    summaries: Sequence[Run | Mapping[str, Any]],
    *,
    title: str = "featurescope report",
    html_name: str | None = None,
    figure_paths: Mapping[tuple[str, str], str] | None = None,
    generated: str | None = None,
) -> str:
    """A Markdown summary (pure): per section and run, the provenance line and the key numbers next to the paper's.
    ``figure_paths`` maps (run path, figure name) to a link target (e.g. relative to the Markdown file)."""
    runs = sorted((_as_run(s) for s in summaries), key=lambda r: (str(r.summary.get("created") or ""), r.path))
    gen = generated or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = [
        f"# {title}",
        "",
        f"{len(runs)} run(s); generated {gen}."
        + (f" Full report with figures: [{html_name}]({html_name})." if html_name else ""),
        "",
    ]
    if not runs:
        lines += ["No runs found: no summary.json under the given folders.", ""]
    by_sec: dict[str, list[tuple[int, Run, Renderer]]] = {k: [] for k in SECTIONS}
    for i, r in enumerate(runs, 1):
        rend = renderer_for(r.command)
        by_sec.setdefault(rend.section, []).append((i, r, rend))
    for sid, its in by_sec.items():
        if not its:
            continue
        lines += [f"## {SECTIONS.get(sid, (sid, ''))[0]}", ""]
        for i, r, rend in its:
            p = provenance(r)
            lines += [
                f"### {i}. {(rend.title or _title_default)(r)}",
                "",
                f"- model: {p['model']}",
                f"- stage: {p['stage']}",
                f"- layer: {p['layer']}",
                f"- SAE: {p['sae']}",
                f"- data: {p['data']}",
                f"- created: {p['created']}; folder `{r.path}`",
                "",
            ]
            try:
                nums = rend.numbers(r)
            except Exception as e:
                nums = [Number("(could not read key numbers)", f"{type(e).__name__}: {e}")]
            if not nums:
                nums = [Number(k, v) for k, v in flatten(r.results, max_items=12) if _num(v) is not None][:12]
            if nums:
                lines += ["| measurement | ours | paper |", "|---|---|---|"]
                for n in nums:
                    val = fmt(n.value) + (f" ({n.note})" if n.note else "")
                    lines.append(f"| {n.label} | {val.replace('|', '/')} | {(n.paper or '').replace('|', '/')} |")
                lines.append("")
            figs = [f for f in r.figures if Path(f).suffix.lower() in _IMAGE_TYPES or f.endswith(".html")]
            if figs:
                links = [f"[{f}]({(figure_paths or {}).get((r.path, f), f)})" for f in figs]
                lines += ["figures: " + ", ".join(links), ""]
    return "\n".join(lines).rstrip() + "\n"


# ================================================================================================================
# I/O edge: write the files
# ================================================================================================================
def write_report(
    paths: Sequence[str | Path],
    out: str | Path,
    *,
    title: str = "featurescope report",
    markdown: str | Path | None = None,
) -> dict[str, Any]:
    """Load every run under ``paths``, write the HTML report to ``out`` and the Markdown summary beside it
    (``report.md``, or ``markdown``). Returns paths, run count and sizes."""
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        out = out / "report.html"
    runs = load_runs(paths)
    page = build_report(runs, title=title)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    md_path = Path(markdown) if markdown else out.with_suffix(".md")
    md_dir = os.path.abspath(md_path.parent)
    fig_paths = {
        (r.path, f): os.path.relpath(os.path.abspath(Path(r.path) / f), md_dir) for r in runs for f in r.figures
    }
    md = build_markdown(
        runs, title=title, html_name=os.path.relpath(os.path.abspath(out), md_dir), figure_paths=fig_paths
    )
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text(md, encoding="utf-8")
    return {
        "html": str(out),
        "markdown": str(md_path),
        "n_runs": len(runs),
        "bytes": len(page.encode()),
        "commands": sorted({r.command for r in runs}),
        "runs": [r.path for r in runs],
    }


# ================================================================================================================
# I/O edge: headless Chromium check (Chrome DevTools protocol over a websocket)
# ================================================================================================================
def find_chromium() -> str | None:
    """A Chromium / Chrome executable: ``$FEATURESCOPE_CHROMIUM`` or the usual names on PATH."""
    for name in (
        os.environ.get("FEATURESCOPE_CHROMIUM"),
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
        "chrome",
    ):
        if name:
            p = shutil.which(name)
            if p:
                return p
    return None


_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-sync",
    "--mute-audio",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
]


class _CDP:
    def __init__(self, ws: Any):
        self.ws, self.n, self.events = ws, 0, []

    def call(self, method: str, params: dict[str, Any] | None = None, timeout: float = 30) -> dict[str, Any]:
        self.n += 1
        me = self.n
        self.ws.send(json.dumps({"id": me, "method": method, "params": params or {}}))
        end = time.time() + timeout
        while time.time() < end:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == me:
                if "error" in msg:
                    raise FeaturescopeError(f"Chromium {method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)
        raise TimeoutError(f"Chromium did not answer {method} in {timeout}s")

    def wait_event(self, method: str, timeout: float) -> bool:
        if any(e["method"] == method for e in self.events):
            return True
        end = time.time() + timeout
        self.ws.settimeout(1.0)
        try:
            while time.time() < end:
                try:
                    msg = json.loads(self.ws.recv())
                except Exception as e:  # websocket timeout: keep polling
                    if "timed out" in str(e).lower() or type(e).__name__ == "WebSocketTimeoutException":
                        continue
                    raise
                if "method" in msg:
                    self.events.append(msg)
                    if msg["method"] == method:
                        return True
        finally:
            self.ws.settimeout(30)
        return False

    def drain(self, seconds: float) -> None:
        self.wait_event("__none__", seconds)


def _console_text(ev: dict[str, Any]) -> str:
    p = ev.get("params", {})
    if ev["method"] == "Runtime.consoleAPICalled":
        return " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
    if ev["method"] == "Runtime.exceptionThrown":
        d = p.get("exceptionDetails", {})
        return str(get(d, "exception", "description") or d.get("text", "exception"))
    if ev["method"] == "Log.entryAdded":
        e = p.get("entry", {})
        return f"{e.get('source', '')}: {e.get('text', '')} {e.get('url', '')}".strip()
    return json.dumps(p)[:300]


def browser_check(
    path: str | Path,
    *,
    screenshot: str | Path | None = None,
    width: int = 1280,
    max_height: int = 2400,
    timeout: float = 90,
) -> dict[str, Any]:
    """Open ``path`` in headless Chromium and report what a reader's browser would see.

    Returns ``{"errors": [...], "warnings": [...], "requests": [every URL requested other than the page itself and
    data: / about: URLs - a self-contained page makes none], "ids": [element ids],
    "title", "images": {"n", "broken"}, "height", "screenshot", "method"}``. Console errors, uncaught exceptions and
    browser log errors (e.g. a resource that failed to load) all count as errors. Uses the DevTools protocol through
    ``websocket-client`` when installed, else ``--dump-dom`` and the console lines of Chromium's log."""
    exe = find_chromium()
    if exe is None:
        raise FeaturescopeError("no Chromium found (install Debian's `chromium`, or set FEATURESCOPE_CHROMIUM)")
    path = Path(path).resolve()
    if not path.exists():
        raise FeaturescopeError(f"{path} does not exist")
    url = path.as_uri()
    try:
        import websocket  # websocket-client
    except ImportError:
        return _browser_check_dump(exe, url, screenshot, width, max_height, timeout)
    with tempfile.TemporaryDirectory(prefix="fs-chromium-") as prof, tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [
                exe,
                *_FLAGS,
                "--remote-debugging-port=0",
                f"--user-data-dir={prof}",
                f"--window-size={width},900",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        closed = False
        try:
            port_file = Path(prof) / "DevToolsActivePort"
            end = time.time() + timeout
            while not (port_file.exists() and port_file.read_text().strip()):
                if proc.poll() is not None or time.time() > end:
                    log.seek(0)
                    raise FeaturescopeError(f"Chromium did not start: {log.read()[-800:].decode('utf-8', 'replace')}")
                time.sleep(0.1)
            port = int(port_file.read_text().split()[0])
            import urllib.request

            targets = []
            while time.time() < end:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as f:
                    targets = [t for t in json.loads(f.read()) if t.get("type") == "page"]
                if targets:
                    break
                time.sleep(0.1)
            if not targets:
                raise FeaturescopeError("Chromium opened no page")
            ws = websocket.create_connection(targets[0]["webSocketDebuggerUrl"], timeout=30, suppress_origin=True)
            cdp = _CDP(ws)
            for m in ("Runtime.enable", "Log.enable", "Page.enable", "Network.enable"):
                cdp.call(m)
            cdp.call(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False},
            )
            cdp.events.clear()
            cdp.call("Page.navigate", {"url": url})
            loaded = cdp.wait_event("Page.loadEventFired", timeout=max(5.0, end - time.time()))
            cdp.drain(0.5)
            info = cdp.call(
                "Runtime.evaluate",
                {
                    "returnByValue": True,
                    "expression": (
                        "JSON.stringify({ids: Array.from(document.querySelectorAll('[id]')).map(e => e.id),"
                        " title: document.title, height: document.documentElement.scrollHeight,"
                        " images: Array.from(document.images).map(i => i.complete && i.naturalWidth > 0),"
                        " svgs: document.querySelectorAll('svg').length,"
                        " text: document.body ? document.body.innerText.length : 0})"
                    ),
                },
            )
            page = json.loads(get(info, "result", "value") or "{}")
            shot = None
            if screenshot:
                h = int(min(max(page.get("height") or 900, 300), max_height))
                cdp.call(
                    "Emulation.setDeviceMetricsOverride",
                    {"width": width, "height": h, "deviceScaleFactor": 1, "mobile": False},
                )
                cdp.drain(0.3)
                img = cdp.call(
                    "Page.captureScreenshot",
                    {
                        "format": "png",
                        "captureBeyondViewport": False,
                        "clip": {"x": 0, "y": 0, "width": width, "height": h, "scale": 1},
                    },
                    timeout=60,
                )
                shot = Path(screenshot)
                shot.parent.mkdir(parents=True, exist_ok=True)
                shot.write_bytes(base64.b64decode(img["data"]))
            errors, warnings, requests = [], [], []
            for ev in cdp.events:
                m, p = ev["method"], ev.get("params", {})
                if m == "Runtime.exceptionThrown":
                    errors.append(_console_text(ev))
                elif m == "Runtime.consoleAPICalled":
                    (
                        errors
                        if p.get("type") in ("error", "assert")
                        else warnings
                        if p.get("type") == "warning"
                        else []
                    ).append(_console_text(ev))
                elif m == "Log.entryAdded":
                    lvl = get(p, "entry", "level")
                    (errors if lvl == "error" else warnings if lvl == "warning" else []).append(_console_text(ev))
                elif m == "Network.requestWillBeSent":
                    u = str(get(p, "request", "url") or "")
                    if u.split("#")[0] != url and not u.startswith(("data:", "about:")):
                        requests.append(u)
                elif m == "Network.loadingFailed":
                    errors.append(f"network: {p.get('errorText', '')} ({p.get('type', '')})")
            if not loaded:
                errors.append("page did not finish loading (no load event)")
            try:
                cdp.call("Browser.close", timeout=5)
                closed = True
            except Exception:
                pass
            ws.close()
        finally:
            try:
                proc.wait(timeout=10 if closed else 0.1)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
    imgs = page.get("images") or []
    return {
        "method": "devtools",
        "errors": errors,
        "warnings": warnings,
        "requests": requests,
        "ids": page.get("ids") or [],
        "title": page.get("title"),
        "height": page.get("height"),
        "images": {"n": len(imgs), "broken": sum(1 for x in imgs if not x)},
        "svgs": page.get("svgs"),
        "text_chars": page.get("text"),
        "screenshot": str(shot) if shot else None,
    }


def _browser_check_dump(
    exe: str, url: str, screenshot: str | Path | None, width: int, max_height: int, timeout: float
) -> dict[str, Any]:
    """Fallback without a websocket client: ``--dump-dom`` plus Chromium's own console log lines on stderr."""
    with tempfile.TemporaryDirectory(prefix="fs-chromium-") as prof:
        p = subprocess.run(
            [exe, *_FLAGS, f"--user-data-dir={prof}", "--enable-logging=stderr", "--v=0", "--dump-dom", url],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        errors = [ln for ln in p.stderr.splitlines() if ":CONSOLE" in ln and re.search(r"Uncaught|Error|Failed", ln)]
        shot = None
        if screenshot:
            shot = Path(screenshot).resolve()
            shot.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                [
                    exe,
                    *_FLAGS,
                    f"--user-data-dir={prof}",
                    f"--screenshot={shot}",
                    f"--window-size={width},{max_height}",
                    url,
                ],
                capture_output=True,
                timeout=timeout,
            )
    ids = re.findall(r"\sid=\"([^\"]+)\"", p.stdout)
    imgs = re.findall(r"<img\b", p.stdout)
    # no request log without the DevTools protocol: list what the DOM would fetch (external or local files)
    requests = [u for u in re.findall(r"\s(?:src|srcset|poster)=\"([^\"]*)\"", p.stdout) if not u.startswith("data:")]
    requests += re.findall(r"\shref=\"((?:https?:)?//[^\"]*)\"", p.stdout)
    title = re.search(r"<title>(.*?)</title>", p.stdout, re.S)
    return {
        "method": "dump-dom",
        "errors": errors,
        "warnings": [],
        "requests": requests,
        "ids": ids,
        "title": html.unescape(title.group(1)) if title else None,
        "height": None,
        "images": {"n": len(imgs), "broken": None},
        "svgs": p.stdout.count("<svg"),
        "text_chars": len(p.stdout),
        "screenshot": str(shot) if shot else None,
    }
