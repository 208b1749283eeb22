"""Publish the tutorial notebooks: execute each one top to bottom on the offline defaults (as a reader would, with
nbclient, cwd ``notebooks/``) and write the executed copy as a self-contained HTML page under ``docs/notebooks/``,
so a reader sees every output, figure and interval without running anything.

The notebooks live in the repository (``notebooks/``), not in the installed package: publishing works from a
checkout. ``featurescope notebooks publish`` is the command; CI executes the same notebooks in its slow tier."""

from __future__ import annotations

import html as _html
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import FeaturescopeError
from .runs import write_summary

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO / "notebooks"
PUBLISH_DIR = REPO / "docs" / "notebooks"
CELL_TIMEOUT_S = 1800


def notebook_paths(folder: str | Path = NOTEBOOK_DIR, only: Sequence[str] = ()) -> list[Path]:
    """The tutorial notebooks in ``folder`` (sorted), or those whose file stem starts with one of ``only``
    (e.g. ``"02"`` or ``"02_sae_decomposition"``); an unknown name is an error that lists the notebooks."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FeaturescopeError(
            f"no notebooks folder at {folder}: the notebooks ship with the repository, not the installed package "
            "(publish from a checkout)"
        )
    paths = sorted(folder.glob("*.ipynb"))
    if not only:
        return paths
    picked = [p for p in paths if any(p.stem.startswith(o) for o in only)]
    missing = [o for o in only if not any(p.stem.startswith(o) for p in paths)]
    if missing:
        raise FeaturescopeError(f"no notebook named {missing}; there are {[p.stem for p in paths]}")
    return picked


def execute(path: Path, *, timeout: int = CELL_TIMEOUT_S, kernel: str = "python3") -> tuple[Any, float]:
    """Run a notebook top to bottom in its own folder; returns the executed notebook and the seconds it took.
    A failing cell raises :class:`FeaturescopeError` naming the notebook and the cell's error."""
    import nbformat  # optional [notebook] dependencies: imported only by the commands that need them
    from nbclient import NotebookClient  # optional: nbclient (the [notebook] extra)
    from nbclient.exceptions import CellExecutionError  # optional: nbclient (the [notebook] extra)

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name=kernel, resources={"metadata": {"path": str(path.parent)}})
    t0 = time.time()
    try:
        client.execute()
    except CellExecutionError as e:
        raise FeaturescopeError(f"{path.name} failed while executing: {str(e).splitlines()[-1]}") from e
    return nb, time.time() - t0


def to_html(nb: Any, title: str) -> str:
    """The executed notebook as one HTML page with its images embedded (nbconvert's lab template)."""
    from nbconvert import HTMLExporter  # optional: nbconvert (comes with jupyter, the [notebook] extra)

    exporter = HTMLExporter(template_name="lab", embed_images=True)
    nb.metadata["title"] = title
    body, _ = exporter.from_notebook_node(nb)
    return body


def publish(
    out: str | Path = PUBLISH_DIR,
    *,
    only: Sequence[str] = (),
    folder: str | Path = NOTEBOOK_DIR,
    timeout: int = CELL_TIMEOUT_S,
    progress: bool = True,
) -> dict[str, Any]:
    """Execute the notebooks (all, or ``only``) and write ``out/<name>.html`` for each (the template CSS they share in
    ``out/notebook.css``), plus ``out/index.html`` linking them and ``out/summary.json`` (per notebook: seconds, cells, errors). The stored notebooks stay
    without outputs (the executed copies are written only as HTML)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.time()
    rows: dict[str, Any] = {}
    for path in notebook_paths(folder, only):
        if progress:
            print(f"[notebooks] executing {path.name} ...", flush=True)
        nb, seconds = execute(path, timeout=timeout)
        html = to_html(nb, path.stem.replace("_", " "))
        (out / f"{path.stem}.html").write_text(html, encoding="utf-8")
        code = [c for c in nb.cells if c.cell_type == "code"]
        rows[path.stem] = {
            "html": f"{path.stem}.html",
            "seconds": round(seconds, 1),
            "code_cells": len(code),
            "figures": sum(1 for c in code for o in c.get("outputs", []) if "image/png" in o.get("data", {})),
        }
        if progress:
            print(f"[notebooks] {path.name}: {seconds:.0f} s -> {out / (path.stem + '.html')}", flush=True)
    share_styles(out)
    _write_index(out)
    write_summary(
        out,
        "notebooks publish",
        inputs={"notebooks": list(rows), "folder": str(folder)},
        results={"notebooks": rows},
        timings={"total": time.time() - t_all},
    )
    return rows


STYLE_FILE = "notebook.css"
_STYLE = re.compile(r"<style[^>]*>.*?</style>", re.S)


def share_styles(out: Path) -> list[str]:
    """Move the ``<style>`` blocks every published page carries (nbconvert's template CSS, ~260 KB a page) into one
    ``out/notebook.css`` linked from each page; blocks particular to one page stay inline. Idempotent. Returns the
    pages rewritten."""
    pages = sorted(p for p in out.glob("*.html") if p.name != "index.html")
    texts = {p: p.read_text(encoding="utf-8") for p in pages}
    if not pages:
        return []
    common = [b for b in _STYLE.findall(texts[pages[0]]) if all(b in t for t in texts.values())]
    if not common:
        return []
    (out / STYLE_FILE).write_text("\n".join(_STYLE_BODY.sub(r"\1", b) for b in common) + "\n", encoding="utf-8")
    link = f'<link rel="stylesheet" href="{STYLE_FILE}">'
    for p, t in texts.items():
        for i, b in enumerate(common):
            t = t.replace(b, link if i == 0 else "", 1)
        p.write_text(t, encoding="utf-8")
    return [p.name for p in pages]


_STYLE_BODY = re.compile(r"^<style[^>]*>(.*)</style>$", re.S)


def _write_index(out: Path) -> None:
    """``index.html``: one link per published page in ``out`` (pages from earlier runs included)."""
    pages = sorted(p for p in out.glob("*.html") if p.name != "index.html")
    items = "\n".join(f'<li><a href="{_html.escape(p.name)}">{_html.escape(p.stem)}</a></li>' for p in pages)
    (out / "index.html").write_text(
        "<!doctype html><meta charset='utf-8'><title>featurescope notebooks</title>"
        "<h1>featurescope tutorial notebooks, executed</h1>"
        "<p>Executed on the offline default models by <code>featurescope notebooks publish</code>.</p>"
        f"<ul>\n{items}\n</ul>\n",
        encoding="utf-8",
    )
