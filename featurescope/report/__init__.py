"""One self-contained HTML report (and a Markdown summary) from any number of run folders.

``featurescope report RUN_DIR [RUN_DIR ...] --out reports/x`` (writes ``reports/x/report.html``) walks the folders
for ``summary.json`` files (every featurescope command writes one, see :mod:`featurescope.runs`), groups the runs by ``command`` and
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

Layout (one concept per module): ``constants`` (paper numbers, image types, limits), ``records`` (reading run
folders: :class:`Run`), ``charts`` (matplotlib SVG), ``html`` (escaping, formatting, tables, the bleach fragment sanitiser), ``provenance``,
``context`` (render context and key numbers), ``registry`` (:class:`Renderer`, the section list, the generic
renderer), ``render_persona`` / ``render_saes`` / ``render_stages`` / ``render_axis`` / ``render_foundation`` (one
per analysis), ``renderers`` (registers them), ``page`` (the HTML page and Markdown), ``write`` (files), ``browser``
(the headless Chromium check).
Everything is re-exported here, so ``featurescope.report.X`` keeps working.
"""

from . import renderers  # noqa: F401  (registers every renderer on import)
from .browser import browser_check, find_chromium
from .charts import svg_bars, svg_lines
from .constants import IMAGE_TYPES, MAX_ASSET_BYTES, PAPER, SKIP_COMMANDS
from .context import Ctx, Number, numbers_html, paper, slug
from .html import (
    Raw,
    data_uri,
    details,
    esc,
    flatten,
    fmt,
    get,
    json_details,
    sanitize_fragment,
    table,
    to_number,
    truncate,
)
from .page import CSS, build_markdown, build_report
from .provenance import PROV_KEYS, provenance, provenance_html, provenance_text
from .records import Run, as_run, find_runs, load_run, load_runs, safetensors_header
from .registry import (
    GENERIC,
    RENDERERS,
    SECTIONS,
    Renderer,
    generic_body,
    inputs_table,
    register,
    renderer_for,
    tensors_table,
)
from .render_axis import axis_body, axis_numbers
from .render_foundation import demo_body, demo_numbers, posttrain_body, posttrain_numbers, title_default, title_persona
from .render_persona import persona_body, persona_numbers, steer_rows, trait_of
from .render_saes import decompose_body, decompose_numbers, sae_body, sae_numbers
from .render_stages import stages_body, stages_numbers
from .write import write_report

__all__ = [
    "CSS",
    "Ctx",
    "GENERIC",
    "IMAGE_TYPES",
    "MAX_ASSET_BYTES",
    "Number",
    "PAPER",
    "PROV_KEYS",
    "RENDERERS",
    "Raw",
    "Renderer",
    "Run",
    "SECTIONS",
    "SKIP_COMMANDS",
    "as_run",
    "axis_body",
    "axis_numbers",
    "browser_check",
    "build_markdown",
    "build_report",
    "data_uri",
    "decompose_body",
    "decompose_numbers",
    "demo_body",
    "demo_numbers",
    "details",
    "esc",
    "find_chromium",
    "find_runs",
    "flatten",
    "fmt",
    "generic_body",
    "get",
    "inputs_table",
    "json_details",
    "load_run",
    "load_runs",
    "numbers_html",
    "paper",
    "persona_body",
    "persona_numbers",
    "posttrain_body",
    "posttrain_numbers",
    "provenance",
    "provenance_html",
    "provenance_text",
    "register",
    "renderer_for",
    "sae_body",
    "sae_numbers",
    "safetensors_header",
    "sanitize_fragment",
    "slug",
    "stages_body",
    "stages_numbers",
    "steer_rows",
    "svg_bars",
    "svg_lines",
    "table",
    "tensors_table",
    "title_default",
    "title_persona",
    "to_number",
    "trait_of",
    "truncate",
    "write_report",
]
