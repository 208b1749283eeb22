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


#: What an inlined fragment (a feature card, an HTML file from a run) may contain: text, tables, lists, images
#: (``data:`` URIs only) and inline styles. Everything else is removed by bleach; external links become text.
ALLOWED_TAGS = frozenset(
    "a abbr b blockquote br caption code col colgroup dd del details div dl dt em figcaption figure h1 h2 h3 h4 h5 h6 "
    "hr i img ins kbd li mark ol p pre q s samp small span strong sub summary sup table tbody td tfoot th thead tr "
    "u ul".split()
)
ALLOWED_ATTRIBUTES = {
    "*": ["class", "title", "style", "id"],
    "img": ["alt", "width", "height", "src"],
    "td": ["colspan", "rowspan"],
    "th": ["colspan", "rowspan", "scope"],
    "details": ["open"],
}
ALLOWED_CSS = frozenset(
    "background-color border border-bottom border-collapse border-left border-radius border-right "
    "border-top color display font-family font-size font-style font-weight height line-height margin margin-bottom "
    "margin-left margin-right margin-top max-width min-width opacity padding padding-bottom padding-left "
    "padding-right padding-top text-align text-decoration vertical-align white-space width".split()
)
_BODY = re.compile(r"<body[^>]*>(.*)</body>", re.I | re.S)
_DROP_WITH_CONTENT = re.compile(r"<(script|style|noscript|template|title)\b.*?</\1\s*>", re.I | re.S)


def sanitize_fragment(fragment: str) -> str:
    """An HTML fragment made safe to inline offline and script-free, with bleach and an allow-list
    (:data:`ALLOWED_TAGS`, :data:`ALLOWED_ATTRIBUTES`, :data:`ALLOWED_CSS`): body only; scripts, styles sheets,
    event handlers, embedding tags and ``javascript:`` URLs gone; images only from ``data:`` URIs (a local or external
    ``src`` is dropped); links turned into text with the URL readable, so the page never fetches or navigates."""
    import bleach  # a well-kept HTML sanitiser (html5lib parser); imported here: only reports inline fragments
    from bleach.css_sanitizer import CSSSanitizer  # heavy: bleach's CSS sanitiser (~0.3 s)

    m = _BODY.search(fragment)
    s = _DROP_WITH_CONTENT.sub("", m.group(1) if m else fragment)

    def allow(tag: str, name: str, value: str) -> bool:
        if name == "src":
            return tag == "img" and value.strip().lower().startswith("data:image/")
        if name == "href":
            return False  # rewritten below from the parsed tree instead
        return name in ALLOWED_ATTRIBUTES.get(tag, []) or name in ALLOWED_ATTRIBUTES["*"]

    # keep link targets readable: <a href=URL>text</a> -> <span class=ext title=URL>text <code>URL</code></span>
    s = _A_TAG.sub(_link_text, s)
    cleaned = bleach.clean(
        s,
        tags=ALLOWED_TAGS,
        attributes=allow,
        protocols=["data"],
        strip=True,
        strip_comments=True,
        css_sanitizer=CSSSanitizer(allowed_css_properties=ALLOWED_CSS),
    )
    return cleaned


def _link_text(m: re.Match[str]) -> str:
    url = m.group(2)
    if not re.match(r"https?://", url, re.I):
        return m.group(3)  # javascript:, relative or other links: the text only
    return f"<span class='ext' title='{esc(url)}'>{m.group(3)} <code>{esc(url)}</code></span>"


_A_TAG = re.compile(r"<a\b[^>]*?href\s*=\s*(['\"]?)([^'\" >]*)\1[^>]*>(.*?)</a\s*>", re.I | re.S)


def data_uri(name: str, data: bytes) -> str | None:
    mime = IMAGE_TYPES.get(Path(name).suffix.lower())
    return f"data:{mime};base64,{base64.b64encode(data).decode()}" if mime else None
