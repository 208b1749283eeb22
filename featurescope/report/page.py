"""Report: the page."""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from ..versions import TRACKED
from .constants import IMAGE_TYPES, PAPER
from .context import Ctx, Number, numbers_html, slug
from .html import Raw, flatten, fmt, json_details, table, to_number
from .provenance import provenance, provenance_html
from .records import Run, as_run
from .registry import SECTIONS, Renderer, generic_body, renderer_for, tensors_table
from .render_foundation import title_default
from .render_persona import trait_of

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


def strict_default() -> bool:
    """Renderer failures raise instead of degrading to the generic view when ``FEATURESCOPE_REPORT_STRICT=1``
    (the test suite sets it, so a summary/renderer mismatch fails a test instead of printing a note)."""
    return os.environ.get("FEATURESCOPE_REPORT_STRICT") == "1"


def build_report(
    summaries: Sequence[Run | Mapping[str, Any]],
    *,
    title: str = "featurescope report",
    generated: str | None = None,
    strict: bool | None = None,
) -> str:
    """The whole report as one HTML string (pure: no file or network access).

    ``summaries`` are :class:`Run` records (from :func:`load_runs`; they carry figure bytes) or bare summary dicts
    (a ``_path`` key names the folder). Runs are grouped into :data:`SECTIONS` by their command's renderer.
    ``strict`` (default: :func:`strict_default`) re-raises a renderer's exception instead of showing a note."""
    strict = strict_default() if strict is None else strict
    runs = [as_run(s) for s in summaries]
    runs.sort(key=lambda r: (str(r.summary.get("created") or ""), r.path))
    items = []
    for i, r in enumerate(runs, 1):
        rend = renderer_for(r.command)
        try:
            nums = rend.numbers(r)
        except Exception as e:  # a malformed summary must not sink the report (unless strict)
            if strict:
                raise
            nums = [Number("(could not read key numbers)", f"{type(e).__name__}: {e}")]
        items.append((i, r, rend, nums))
    by_sec: dict[str, list[tuple[int, Run, Renderer, list[Number]]]] = {k: [] for k in SECTIONS}
    for it in items:
        by_sec.setdefault(it[2].section, []).append(it)

    sections = []
    for sid, its in by_sec.items():
        if not its:
            continue
        stitle, intro = SECTIONS.get(sid, (sid, ""))
        groups: dict[str, list[Any]] = {}
        for it in its:
            key = f"trait '{trait_of(it[1])}'" if sid == "persona" else ""
            groups.setdefault(key, []).append(it)
        sec_groups = []
        for gkey, gits in groups.items():
            articles = []
            for i, r, rend, nums in gits:
                ctx = Ctx(run=r, index=i, prov=provenance(r))
                failure = ""
                try:
                    inner = rend.body(ctx)
                except Exception as e:
                    if strict:
                        raise
                    failure = f"{type(e).__name__}: {e}"
                    inner = generic_body(ctx)
                articles.append(
                    {
                        "index": i,
                        "command": r.command,
                        "title": (rend.title or title_default)(r),
                        "path": r.path,
                        "failure": failure,
                        # fragments built by the renderers (escaped there) are marked safe; everything else above is
                        # escaped by the template
                        "provenance": Markup(provenance_html(ctx.prov)),
                        "numbers": Markup(numbers_html(nums)),
                        "body": Markup(inner),
                        "rest": Markup(ctx.rest()),
                        "tensors": Markup(tensors_table(r)),
                        "results": Markup(json_details(r.results)),
                        "timings": Markup(json_details(r.summary.get("timings_s") or {}, "timings (s)")),
                    }
                )
            gid = f"{sid}-{slug(trait_of(gits[0][1]))}" if gkey else ""
            sec_groups.append({"id": gid, "key": gkey, "articles": articles})
        sections.append({"id": sid, "title": stitle, "intro": intro, "n": len(its), "groups": sec_groups})
    gen = generated or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    envs = {
        json.dumps(
            {
                k: v
                for k, v in (r.summary.get("environment") or {}).items()
                if k in ("featurescope", "platform", *TRACKED.values())
            },
            sort_keys=True,
        )
        for r in runs
    }
    env_txt = "; ".join(", ".join(f"{k} {v}" for k, v in json.loads(e).items()) for e in sorted(envs) if e != "{}")
    papers = table([[who, val, what] for who, val, what in PAPER.values()], ["paper", "number", "what"])
    return _template().render(
        title=title,
        css=Markup(CSS),
        generated=gen,
        n_runs=len(runs),
        sections=sections,
        overview=Markup(_overview(runs, items)),
        environment=env_txt,
        papers=Markup(papers),
    )


def _template() -> Any:
    """The page template (``templates/report.html.j2``, package data), autoescaping on."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("featurescope.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    return env.get_template("report.html.j2")


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
    runs = sorted((as_run(s) for s in summaries), key=lambda r: (str(r.summary.get("created") or ""), r.path))
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
                f"### {i}. {(rend.title or title_default)(r)}",
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
                nums = [Number(k, v) for k, v in flatten(r.results, max_items=12) if to_number(v) is not None][:12]
            if nums:
                lines += ["| measurement | ours | null | verdict | paper |", "|---|---|---|---|---|"]
                for n in nums:
                    val = fmt(n.value) + (f" ({n.note})" if n.note else "")
                    cells = [n.label, val, n.null or "", n.verdict, n.paper or ""]
                    lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
                lines.append("")
            figs = [f for f in r.figures if Path(f).suffix.lower() in IMAGE_TYPES or f.endswith(".html")]
            if figs:
                links = [f"[{f}]({(figure_paths or {}).get((r.path, f), f)})" for f in figs]
                lines += ["figures: " + ", ".join(links), ""]
    return "\n".join(lines).rstrip() + "\n"
