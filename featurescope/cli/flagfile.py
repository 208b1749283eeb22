"""``--config FILE.yaml`` for every command: commands whose settings live in a config dataclass read the file as
that dataclass (``cli.io.config_from_args``); every other command reads it as its own flags - keys are the long
flag names (``n_questions`` or ``n-questions``), values as on the command line (lists may be YAML lists) - checked
by the same parser, so a wrong type or choice is the same error as on the command line and an unknown key is an
error naming it. Flags given on the command line override the file. The settings a command ran with are recorded
in its ``summary.json`` under ``cli`` (:data:`featurescope.runs.CLI_INVOCATION`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml

from ..configs import ConfigError

FLAGS_KIND = "flags"


def leaves(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """The parsers that run something (no sub-commands below them)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [parser]
    return [leaf for a in subs for child in a.choices.values() for leaf in leaves(child)]


def add_flag_files(parser: argparse.ArgumentParser) -> None:
    """Give every runnable parser without a ``--config`` one that reads its own flags from a file."""
    for leaf in leaves(parser):
        if any(a.dest == "config" for a in leaf._actions):
            continue
        leaf.add_argument(
            "--config",
            default=None,
            metavar="FILE.yaml",
            help="this command's flags from a YAML/JSON file (keys: long flag names, e.g. n_questions; lists may "
            "be YAML lists); flags given on the command line override it",
        )
        leaf.set_defaults(config_kind=FLAGS_KIND)


def leaf_of(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[argparse.ArgumentParser, int]:
    """The runnable parser ``argv`` selects and how many leading tokens name it (``persona steer`` -> 2)."""
    n = 0
    while True:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or n >= len(argv) or argv[n] not in subs[0].choices:
            return parser, n
        parser = subs[0].choices[argv[n]]
        n += 1


def _read(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist")
    try:
        data = json.loads(p.read_text()) if p.suffix == ".json" else yaml.safe_load(p.read_text())
    except (yaml.YAMLError, json.JSONDecodeError) as e:
        raise ConfigError(f"config file {p} is not valid {'JSON' if p.suffix == '.json' else 'YAML'}: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping of flag names to values, not {type(data).__name__}")
    return data


def file_tokens(leaf: argparse.ArgumentParser, path: str | Path) -> list[str]:
    """The command-line tokens a flag file stands for (to be parsed before the user's own flags)."""
    options = {s: a for a in leaf._actions for s in a.option_strings if s.startswith("--")}
    tokens: list[str] = []
    for key, value in _read(path).items():
        flag = "--" + str(key).replace("_", "-")
        action = options.get(flag)
        if action is None or flag in ("--config", "--help"):
            known = sorted(s[2:].replace("-", "_") for s in options if s not in ("--config", "--help"))
            raise ConfigError(f"config file {path}: unknown key {key!r} for `{leaf.prog}`; known keys: {known}")
        if value is None:
            continue
        if isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction):
            if not isinstance(value, bool):
                raise ConfigError(f"config file {path}: {key!r} is a switch: give true or false, not {value!r}")
            if value == isinstance(action, argparse._StoreTrueAction):
                tokens.append(flag)
            continue
        if isinstance(value, list | tuple):
            if isinstance(action, argparse._AppendAction):
                for v in value:
                    tokens += [flag, str(v)]
                continue
            value = ",".join(str(v) for v in value)
        tokens.append(f"{flag}={value}")
    return tokens


def with_flag_file(parser: argparse.ArgumentParser, argv: list[str], args: argparse.Namespace) -> argparse.Namespace:
    """``args`` re-parsed with the flag file's tokens placed before the user's (so explicit flags win)."""
    if getattr(args, "config_kind", None) != FLAGS_KIND or not getattr(args, "config", None):
        return args
    leaf, n = leaf_of(parser, argv)
    return parser.parse_args([*argv[:n], *file_tokens(leaf, args.config), *argv[n:]])


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """The values a command ran with (every parsed flag, defaults included), for ``summary.json``."""
    skip = {"func", "explicit", "config_kind"}
    return {k: v for k, v in sorted(vars(args).items()) if k not in skip and not callable(v)}
