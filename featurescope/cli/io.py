"""Reading command inputs: prompt files, hook lists, comma-separated flag values."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from ..capture import default_hooks
from ..configs import Config
from ..distributed import ModelSpec, RayCluster, WorkerPool
from ..errors import FeaturescopeError
from ..models import Model

C = TypeVar("C", bound=Config)
T = TypeVar("T")


def _comma_list(s: str, cast: Callable[[str], T], what: str) -> list[T]:
    out: list[T] = []
    for part in (x.strip() for x in s.split(",")):
        if not part:
            continue
        try:
            out.append(cast(part))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r} is not {what} (expected a comma-separated list)") from None
    return out


def int_list(s: str) -> list[int]:
    """``type=`` for a comma-separated list of integers (``''`` = an empty list): a bad item is a parse error."""
    return _comma_list(s, int, "an integer")


def float_list(s: str) -> list[float]:
    """``type=`` for a comma-separated list of numbers (``''`` = an empty list): a bad item is a parse error."""
    return _comma_list(s, float, "a number")


def nonempty(parse: Callable[[str], list[T]]) -> Callable[[str], list[T]]:
    """A list ``type=`` that also rejects an empty list."""

    def parse_nonempty(s: str) -> list[T]:
        out = parse(s)
        if not out:
            raise argparse.ArgumentTypeError("expected at least one value (a comma-separated list)")
        return out

    return parse_nonempty


def read_text(p: Path, what: str) -> str:
    try:
        return p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise FeaturescopeError(f"{p}: {what} is not UTF-8 text (invalid byte at offset {e.start})") from None
    except OSError as e:
        raise FeaturescopeError(f"{p}: cannot read {what} ({e.strerror})") from None


def read_prompts(path: str) -> list[Any]:
    """A prompt file: .jsonl (one conversation per line: {"messages": [...]}, a list of messages, or a string),
    .json (a list of those) or .txt (one user prompt per line)."""
    p = Path(path)
    if not p.exists():
        raise FeaturescopeError(f"prompt file {path} does not exist")
    if p.is_dir():
        raise FeaturescopeError(f"{path} is a folder, not a prompt file")
    text = read_text(p, "the prompt file")
    if p.suffix == ".jsonl":
        rows = []
        for i, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise FeaturescopeError(f"{path}:{i}: not valid JSON ({e.msg} at column {e.colno})") from None
        return rows
    if p.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise FeaturescopeError(f"{path}:{e.lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(data, list):
            raise FeaturescopeError(f"{path}: expected a JSON list of conversations, got a {type(data).__name__}")
        return data
    return [line for line in text.splitlines() if line.strip()]


def parse_hooks(model: Model, hooks: str | None, layers: str | None) -> list[str]:
    if hooks:
        return [h.strip() for h in hooks.split(",") if h.strip()]
    if layers:
        if layers == "all":
            return default_hooks(model)
        out = []
        for part in layers.split(","):
            try:
                out.append(model.resid_hook(int(part)))
            except ValueError:
                raise FeaturescopeError(f"--layers: {part!r} is not an integer (use e.g. 3,6,9 or all)") from None
        return out
    return default_hooks(model)


def add_config_flag(parser: Any, what: str) -> None:
    """``--config FILE.yaml``: the command's settings from a file (keys = the fields of ``what``); flags given on
    the command line override it."""
    parser.add_argument(
        "--config",
        default=None,
        metavar="FILE.yaml",
        help=f"settings from a YAML/JSON file (the fields of {what}, e.g. from a run's summary.json 'config'); "
        "flags given on the command line override it",
    )


def config_from_args(cls: type[C], args: Any, fields: dict[str, str] | None = None, **computed: Any) -> C:
    """A ``cls`` config: ``--config`` file (or the class defaults), then every flag the user gave explicitly
    (``fields`` maps config field -> argparse dest where they differ), then ``computed`` values the command derived
    itself. Unknown keys and wrong types in the file are a ConfigError naming the key."""
    base = cls.from_file(args.config) if getattr(args, "config", None) else cls()
    explicit: set[str] = getattr(args, "explicit", set(vars(args)))
    fields = fields or {}
    over: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        dest = fields.get(f.name, f.name)
        if dest in explicit and hasattr(args, dest):
            over[f.name] = getattr(args, dest)
    over.update({k: v for k, v in computed.items() if v is not None})
    return cls.from_dict(
        {**base.to_dict(), **{k: v.to_dict() if isinstance(v, Config) else v for k, v in over.items()}}
    )


def add_ray_flags(parser: Any, what: str) -> None:
    """``--ray [ADDRESS]`` / ``--workers`` / ``--gpus-per-worker`` for a command that can spread work over Ray."""
    parser.add_argument(
        "--ray",
        nargs="?",
        const="local",
        default=None,
        metavar="ADDRESS",
        help=f"spread {what} over Ray workers: alone = a local Ray cluster started for this run; ADDRESS = an "
        "existing one ('auto' on a node that ran `ray start`, or HEAD:6379)",
    )
    parser.add_argument("--workers", type=int, default=2, help="Ray workers (actors), each holding one model copy")
    parser.add_argument(
        "--gpus-per-worker",
        type=float,
        default=0.0,
        help="GPUs per Ray worker (> 1 splits one model over several GPUs with device_map=auto)",
    )


@contextlib.contextmanager
def ray_pool(args: Any, model: str, **spec: Any) -> Iterator[Any]:
    """The Ray worker pool asked for by ``--ray`` (None without it), closed (and a local cluster stopped) after."""
    if getattr(args, "ray", None) is None:
        yield None
        return

    address = None if args.ray == "local" else args.ray
    gpus = float(args.gpus_per_worker)
    ms = ModelSpec(
        name=model, num_gpus=gpus, device_map="auto" if gpus > 1 else None, **{k: v for k, v in spec.items() if v}
    )
    with RayCluster(address, n_cpus=None if address else args.workers), WorkerPool(ms, args.workers) as pool:
        yield pool
