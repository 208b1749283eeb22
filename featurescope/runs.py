"""Run folders and their ``summary.json``: what was computed, from which inputs, how long it took."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from .store import write_json
from .versions import environment

SUMMARY_FORMAT = "featurescope.summary/1"
#: Set by the ``featurescope`` command before it runs a command: its argv and every setting it ran with (flags,
#: defaults, a ``--config`` file's values); :func:`write_summary` records it under ``cli``. ``None`` from Python.
CLI_INVOCATION: dict[str, Any] | None = None


@runtime_checkable
class SupportsToDict(Protocol):
    """A typed result that serialises itself (e.g. :class:`featurescope.persona.SteeringSweep`)."""

    def to_dict(self) -> dict[str, Any]: ...


def jsonable(x: Any) -> Any:
    """``x`` as plain JSON values: dicts, lists, tensors (as lists), paths (as strings), objects with ``to_dict()``
    (typed results), non-finite floats as ``None``."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    if isinstance(x, torch.Tensor):
        return x.tolist()
    if hasattr(x, "to_dict"):
        return jsonable(x.to_dict())
    if isinstance(x, float) and (x != x or x in (float("inf"), float("-inf"))):
        return None
    return x


def write_summary(
    run_dir: str | Path,
    command: str,
    *,
    inputs: dict[str, Any],
    results: dict[str, Any] | SupportsToDict,
    timings: dict[str, float],
    figures: list[str] | None = None,
) -> Path:
    """Write ``run_dir/summary.json`` atomically and return its path."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    doc = {
        "format": SUMMARY_FORMAT,
        "command": command,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "inputs": jsonable(inputs),
        "results": jsonable(results),
        "figures": list(figures or []),
        "timings_s": {k: round(float(v), 3) for k, v in timings.items()},
        "environment": environment(),
    }
    if CLI_INVOCATION is not None:
        doc["cli"] = jsonable(CLI_INVOCATION)
    path = run_dir / "summary.json"
    write_json(path, doc, indent=2)
    return path


def read_summary(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if p.is_dir():
        p = p / "summary.json"
    return json.loads(p.read_text())
