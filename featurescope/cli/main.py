"""The ``featurescope`` command: one parser; each command group lives in its own module with ``register(sub)``."""

from __future__ import annotations

import argparse
import sys

from .. import runs
from ..errors import FeaturescopeError
from . import (
    axis,
    capture,
    crosscoder,
    decompose,
    demo,
    export,
    features,
    finetune,
    inspect,
    judge,
    models,
    notebooks,
    persona,
    posttrain,
    report,
    sae,
    stages,
)
from .flagfile import add_flag_files, settings, with_flag_file

#: Command groups in the order ``featurescope --help`` lists them. Imported unconditionally: a missing module is an
#: ImportError, never a silently missing command.
GROUPS = (
    models,
    capture,
    inspect,
    persona,
    judge,
    sae,
    decompose,
    features,
    demo,
    posttrain,
    finetune,
    stages,
    crosscoder,
    axis,
    report,
    notebooks,
    export,
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="featurescope",
        description="Study personas inside language models. `featurescope COMMAND --help` lists a command's flags "
        "with their defaults.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", help="the command to run")
    for group in GROUPS:
        group.register(sub)
    add_flag_files(p)
    _no_abbreviations(p)
    return p


def _no_abbreviations(parser: argparse.ArgumentParser) -> None:
    """Every parser refuses shortened flags: argparse would otherwise read ``--mode`` as ``--model`` when an
    action has no ``--mode`` - a flag silently taken for another one."""
    parser.allow_abbrev = False
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _no_abbreviations(child)


def _suppress_defaults(parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _suppress_defaults(child)
        elif action.dest != "help":
            action.default = argparse.SUPPRESS


def explicit_flags(argv: list[str] | None) -> set[str]:
    """The ``dest`` names the user actually gave on the command line (a second parse with every default
    suppressed): ``--config FILE`` supplies the rest, explicit flags override it."""
    p = build_parser()
    _suppress_defaults(p)
    return set(vars(p.parse_args(argv)))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        args = with_flag_file(parser, argv, args)
        args.explicit = explicit_flags(argv)
        runs.CLI_INVOCATION = {"argv": ["featurescope", *argv], "settings": settings(args)}
        return int(args.func(args) or 0)
    except FeaturescopeError as e:
        print(f"featurescope {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        out = getattr(args, "out", None)
        where = f" Finished shards and cached answers under {out} are kept;" if out else ""
        print(
            f"\nfeaturescope {args.command}: interrupted.{where} run the same command again to resume.", file=sys.stderr
        )
        return 130
    finally:
        runs.CLI_INVOCATION = None  # a later call from Python records no command line
