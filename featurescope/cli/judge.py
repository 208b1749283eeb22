"""``featurescope judge``: eval | train | score - how far to trust a judge, and using it on a file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..judges.probe import PROBE_PATH
from ..judges.roles import ROLE_PROBE_PATH
from ..judges.run import CANDIDATES, run_judge_eval, run_judge_score, run_judge_train


def cmd_judge_eval(args: argparse.Namespace) -> int:
    judges = [j.strip() for j in args.judge.split(",")] if args.judge else list(CANDIDATES)
    res = run_judge_eval(
        judges, labels=args.labels, out=args.out, seed=args.seed, written=not args.no_written, roles=not args.labels
    )
    print(f"best test accuracy (threshold chosen on dev): {res['best_on_test']}")
    if args.out:
        print(f"summary: {args.out}/summary.json; per-item scores: {args.out}/scores.jsonl")
    return 0


def cmd_judge_train(args: argparse.Namespace) -> int:
    out = Path(args.out)
    paths = run_judge_train(
        labels=args.labels,
        out=out / PROBE_PATH.name,
        seed=args.seed,
        written=not args.no_written,
        role_out=out / ROLE_PROBE_PATH.name,
    )
    print("probe weights: " + ", ".join(str(p) for p in paths))
    return 0


def cmd_judge_score(args: argparse.Namespace) -> int:
    rows = run_judge_score(args.trait, args.input, judge=args.judge, output=args.output)
    print(f"scored {len(rows)} answers for {args.trait} with {rows[0]['judge'] if rows else args.judge}")
    return 0


def register(sub: Any) -> None:
    j = sub.add_parser(
        "judge",
        help="judges: eval (agreement with labelled real outputs) | train (probe) | score FILE",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    acts = j.add_subparsers(dest="action", metavar="ACTION", required=True, help="what to do")
    e = acts.add_parser(
        "eval",
        help="agreement table with 95%% bootstrap intervals; writes summary.json with --out",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    e.add_argument("--judge", help="comma list of judge names (None: every offline candidate)")
    e.add_argument("--labels", help="labelled JSONL (None: the shipped real-output set, test split)")
    e.add_argument("--out", help="run folder for summary.json and scores.jsonl (None: print only)")
    e.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    e.add_argument("--no-written", action="store_true", help="skip the 120 hand-written labels")
    e.set_defaults(func=cmd_judge_eval)
    t = acts.add_parser(
        "train",
        help="train the probe judge on the written labels + the dev split (never test)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    t.add_argument("--labels", help="labelled JSONL with a split column (None: the shipped real-output set)")
    t.add_argument(
        "--out",
        default=str(PROBE_PATH.parent),
        help=f"folder for the weights ({PROBE_PATH.name}, role_probe.safetensors); the default is the shipped probes'",
    )
    t.add_argument("--seed", type=int, default=0, help="cross-validation seed")
    t.add_argument("--no-written", action="store_true", help="train on the dev split only")
    t.set_defaults(func=cmd_judge_train)
    s = acts.add_parser(
        "score",
        help="score a JSONL file of question/answer rows for one trait",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    s.add_argument("--trait", required=True, help="trait name (see data/traits)")
    s.add_argument("--input", required=True, help="JSONL with question and answer (or response) per row")
    s.add_argument("--judge", default="auto", help="judge name (auto: the endpoint if configured, else offline)")
    s.add_argument("--output", help="output JSONL file (None: INPUT.scored.jsonl)")
    s.set_defaults(func=cmd_judge_score)
