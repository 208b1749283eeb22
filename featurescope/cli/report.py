"""``featurescope report``: one self-contained HTML report + Markdown summary from run folders
(see :mod:`featurescope.report`)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from ..errors import FeaturescopeError
from ..report import browser_check, find_chromium, write_report
from ..runs import write_summary


def cmd_report(args: argparse.Namespace) -> int:
    t0 = time.time()
    if Path(args.out).suffix.lower() in (".html", ".htm"):
        raise FeaturescopeError(
            f"--out is the report's folder (report.html, report.md and summary.json are written inside it), not an "
            f"HTML file: use --out {Path(args.out).parent}"
        )
    out = Path(args.out) / "report.html"
    info = write_report(args.runs, out, title=args.title, markdown=args.markdown)
    if info["n_runs"] == 0:
        print(f"warning: no summary.json found under {', '.join(args.runs)}; the report says so")
    print(
        f"{info['n_runs']} run(s) ({', '.join(info['commands']) or 'none'}) -> {info['html']} "
        f"({info['bytes'] / 1e6:.2f} MB) and {info['markdown']}"
    )
    check: dict[str, Any] | None = None
    if args.check or args.screenshot:
        if find_chromium() is None:
            raise FeaturescopeError("--check/--screenshot need Chromium (Debian: apt-get install chromium)")
        check = browser_check(info["html"], screenshot=args.screenshot)
        print(
            f"browser check ({check['method']}): {len(check['errors'])} console error(s), "
            f"{len(check['requests'])} network request(s), {check['images']['n']} image(s) "
            f"({check['images']['broken']} broken)"
            + (f"; screenshot {check['screenshot']}" if check["screenshot"] else "")
        )
        for e in check["errors"][:20]:
            print(f"  error: {e}")
    # The report's own summary, unless its folder already holds another command's run.
    existing = out.parent / "summary.json"
    other = None
    if existing.exists():
        try:
            other = json.loads(existing.read_text()).get("command")
        except Exception:
            other = "?"
    if other not in (None, "report"):
        print(f"note: {existing} belongs to a '{other}' run; the report's own summary.json was not written")
    else:
        write_summary(
            out.parent,
            "report",
            inputs={"runs": list(args.runs), "title": args.title},
            results={**info, **({"browser_check": {k: v for k, v in check.items() if k != "ids"}} if check else {})},
            timings={"total": time.time() - t0},
        )
    if check and (check["errors"] or check["requests"]):
        return 1
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="one self-contained HTML report (figures embedded) + Markdown summary from run folders",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders (searched recursively for summary.json)")
    p.add_argument(
        "--out", default="reports/report", help="report folder: report.html, report.md and summary.json inside"
    )
    p.add_argument("--markdown", help="Markdown summary path (None: report.md in --out)")
    p.add_argument("--title", default="featurescope report", help="page title")
    p.add_argument(
        "--check",
        action="store_true",
        help="open the report in headless Chromium; exit 1 on console errors or network requests",
    )
    p.add_argument("--screenshot", help="save a PNG screenshot of the report's top (implies the browser check)")
    p.set_defaults(func=cmd_report)
