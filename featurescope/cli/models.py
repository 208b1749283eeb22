"""``featurescope models``: what can be loaded here."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..models import list_models


def cmd_models(args: argparse.Namespace) -> int:
    rows = list_models()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'name':38} {'stage':13} {'source':16} {'available':13} description")
    for r in rows:
        avail = "yes" if r["installed"] else "no"
        if r["source"] == "offline-package" and r["installed"]:
            avail += " (cached)" if r["converted"] else ""
        print(f"{r['name']:38} {r['stage']:13} {r['source']:16} {avail:13} {r['description']}")
    return 0


def register(sub: Any) -> None:
    m = sub.add_parser(
        "models",
        help="list the checkpoints that can be loaded here (offline and online)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    m.add_argument("--json", action="store_true", help="machine-readable output")
    m.set_defaults(func=cmd_models)
