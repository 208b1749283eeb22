"""``featurescope notebooks publish``: execute the tutorial notebooks and write their HTML under ``docs/notebooks/``."""

from __future__ import annotations

import argparse
from typing import Any

from ..notebooks import CELL_TIMEOUT_S, PUBLISH_DIR, publish


def cmd_publish(args: argparse.Namespace) -> int:
    rows = publish(args.out, only=args.only or (), timeout=args.timeout)
    print(f"published {len(rows)} notebook(s) to {args.out}/ (index.html)")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "notebooks",
        help="the tutorial notebooks: publish executed copies as HTML",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    acts = p.add_subparsers(dest="action", metavar="ACTION", required=True, help="what to do with the notebooks")
    pub = acts.add_parser(
        "publish",
        help="execute each notebook on the offline defaults and write it as HTML (from a checkout)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    pub.add_argument("--out", default=str(PUBLISH_DIR), help="folder for the HTML pages, index.html and summary.json")
    pub.add_argument(
        "--only", action="append", help="publish only notebooks whose name starts with this (repeatable, e.g. 02)"
    )
    pub.add_argument("--timeout", type=int, default=CELL_TIMEOUT_S, help="seconds allowed per cell")
    pub.set_defaults(func=cmd_publish)
