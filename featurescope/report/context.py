"""Report: render context and key numbers."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .constants import PAPER
from .html import Raw, data_uri, esc, fmt, sanitize_fragment, table
from .provenance import provenance_text
from .records import Run


@dataclasses.dataclass
class Number:
    """A headline number of a run: label, our value, and the paper's number when there is one."""

    label: str
    value: Any
    paper: str | None = None  # "Chen et al. 2025: r = 0.75-0.83"
    note: str = ""
    null: str | None = None  # "0.43 [0.04, 0.79] (any role as the default)"
    verdict: str = ""  # "distinguishable from the null" / "not distinguishable from the null"

    @classmethod
    def from_evidence(cls, label: str, ev: Mapping[str, Any], paper: str | None = None, fmt_: str = ".2f") -> Number:
        """A number from an :class:`featurescope.evidence.Evidence` dict: value [CI], its null and the verdict."""
        e, n = ev["estimate"], ev["null"]

        def f(x: Any) -> str:  # a nan is stored as null in summary.json: "n/a", never a crash
            return "n/a" if x is None or x != x else format(x, fmt_)

        return cls(
            label,
            f"{f(e['value'])} [{f(e['lo'])}, {f(e['hi'])}]",
            paper=paper,
            null=f"{f(n['mean'])} [{f(n['lo'])}, {f(n['hi'])}] ({n.get('what', '')})",
            verdict=str(ev.get("verdict", "")),
        )


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
                f"<div class='cards' id='run{self.index}-fig-{slug(Path(name).stem)}'>"
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


def slug(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(s).lower()).strip("-") or "x"


def numbers_html(nums: Sequence[Number]) -> str:
    if not nums:
        return ""
    has_paper = any(n.paper for n in nums)
    has_null = any(n.null for n in nums)
    rows = [
        [n.label, Raw(f"<b>{esc(fmt(n.value))}</b>" + (f" <small>{esc(n.note)}</small>" if n.note else ""))]
        + ([n.null or "", n.verdict] if has_null else [])
        + ([n.paper or ""] if has_paper else [])
        for n in nums
    ]
    head = ["", "ours"] + (["null", "verdict"] if has_null else []) + (["paper"] if has_paper else [])
    return table(rows, head, cls="nums")


def paper(key: str) -> str:
    who, val, _ = PAPER[key]
    return f"{who}: {val}"
