"""Report: i/O edge: write the files."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .page import build_markdown, build_report
from .records import load_runs


def write_report(
    paths: Sequence[str | Path],
    out: str | Path,
    *,
    title: str = "featurescope report",
    markdown: str | Path | None = None,
    strict: bool | None = None,
) -> dict[str, Any]:
    """Load every run under ``paths``, write the HTML report to ``out`` and the Markdown summary beside it
    (``report.md``, or ``markdown``). Returns paths, run count and sizes."""
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        out = out / "report.html"
    runs = load_runs(paths)
    page = build_report(runs, title=title, strict=strict)
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
