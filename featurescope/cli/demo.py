"""``featurescope demo``: the end-to-end demo on the offline defaults."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..demo import run_demo


def cmd_demo(args: argparse.Namespace) -> int:
    run_demo(out=Path(args.out), quick=args.quick)
    return 0


def register(sub: Any) -> None:
    d = sub.add_parser(
        "demo",
        help="the end-to-end demo on the offline default models",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    d.add_argument("--out", default="reports/demo", help="output folder (report.html inside)")
    d.add_argument("--quick", action="store_true", help="fewer prompts (for tests)")
    d.set_defaults(func=cmd_demo)
