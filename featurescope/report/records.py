"""Report: records (I/O edge: reading run folders)."""

from __future__ import annotations

import dataclasses
import json
import os
import struct
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from ..errors import FeaturescopeError
from .constants import MAX_ASSET_BYTES, SKIP_COMMANDS


@dataclasses.dataclass
class Run:
    """One run folder: its ``summary.json``, the bytes of its figures / card fragments, and tensor facts."""

    path: str  # the run folder as given / found (for display)
    summary: dict[str, Any]
    assets: dict[str, bytes] = dataclasses.field(default_factory=dict)  # figure name -> bytes
    tensors: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # file -> {name: {dtype, shape}}
    derived: dict[str, Any] = dataclasses.field(default_factory=dict)  # numbers computed from tensors
    skipped: dict[str, int] = dataclasses.field(default_factory=dict)  # figure name -> bytes, too large to embed

    @property
    def command(self) -> str:
        return str(self.summary.get("command") or "?")

    @property
    def inputs(self) -> dict[str, Any]:
        x = self.summary.get("inputs")
        return x if isinstance(x, dict) else {}

    @property
    def results(self) -> dict[str, Any]:
        x = self.summary.get("results")
        return x if isinstance(x, dict) else {}

    @property
    def figures(self) -> list[str]:
        return [str(f) for f in (self.summary.get("figures") or [])]


def find_runs(paths: Iterable[str | Path]) -> list[Path]:
    """Every folder holding a ``summary.json`` under ``paths`` (a path may also be a summary file itself),
    in a stable order, without duplicates. Hidden folders and activation stores are not descended into."""
    found: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise FeaturescopeError(f"{p} does not exist (give run folders written by featurescope commands)")
        if p.is_file():
            if p.name != "summary.json":
                raise FeaturescopeError(f"{p} is not a summary.json or a folder")
            found.append(p.parent)
            continue
        for root, dirs, files in os.walk(p):
            dirs[:] = sorted(
                d for d in dirs if not d.startswith((".", "_")) and d not in ("activations", "__pycache__")
            )
            if "summary.json" in files:
                found.append(Path(root))
    out, seen = [], set()
    for f in found:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


def safetensors_header(path: str | Path) -> dict[str, Any]:
    """Tensor names, dtypes and shapes (and ``__metadata__``) of a .safetensors file, from its JSON header only."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        if n > 100 << 20:
            raise ValueError(f"{path}: implausible safetensors header length {n}")
        return json.loads(f.read(n))


def _persona_profile(files: Mapping[str, str], run_dir: Path) -> dict[str, Any] | None:
    """Per-layer norms of each persona vector kind, and per-layer cosines of the kinds with response_mean."""
    vecs = {}
    for kind, f in files.items():
        for cand in (Path(f), run_dir / Path(f).name):
            if cand.suffix == ".safetensors" and cand.exists():
                try:
                    vecs[kind] = load_file(str(cand))["vectors"].float()
                except Exception:
                    pass
                break
    if not vecs:
        return None
    prof: dict[str, Any] = {"norm": {k: [round(float(x), 4) for x in v.norm(dim=-1)] for k, v in vecs.items()}}
    ref = vecs.get("response_mean")
    if ref is not None:
        prof["cos_with_response_mean"] = {
            k: [round(float(x), 4) for x in torch.nn.functional.cosine_similarity(v, ref, dim=-1)]
            for k, v in vecs.items()
            if k != "response_mean" and v.shape == ref.shape
        }
    return prof


def load_run(folder: str | Path) -> Run:
    """Read one run folder into a :class:`Run` (summary, listed figures, tensor headers, derived profiles)."""
    d = Path(folder)
    try:
        summary = json.loads((d / "summary.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise FeaturescopeError(f"{d / 'summary.json'} cannot be read: {e}") from e
    if not isinstance(summary, dict):
        raise FeaturescopeError(f"{d / 'summary.json'} is not a JSON object")
    run = Run(path=str(d), summary=summary)
    for name in run.figures:
        p = d / name
        if p.is_file():
            if p.stat().st_size <= MAX_ASSET_BYTES:
                run.assets[name] = p.read_bytes()
            else:
                run.skipped[name] = p.stat().st_size
    for p in sorted(d.glob("*.safetensors"))[:24]:
        try:
            hdr = safetensors_header(p)
        except Exception:
            continue
        run.tensors[p.name] = {
            k: {"dtype": v.get("dtype"), "shape": v.get("shape")}
            for k, v in hdr.items()
            if k != "__metadata__" and isinstance(v, dict)
        }
    files = run.results.get("files")
    if run.command in ("persona run", "persona extract", "persona rebuild") and isinstance(files, dict):
        prof = _persona_profile(files, d)
        if prof:
            run.derived["vector_profile"] = prof
    return run


def load_runs(paths: Iterable[str | Path]) -> list[Run]:
    """All runs under ``paths`` (see :func:`find_runs`), except the summaries of earlier reports."""
    runs = []
    for f in find_runs(paths):
        try:
            runs.append(load_run(f))
        except FeaturescopeError as e:  # one unreadable summary must not sink the report: show it as such
            runs.append(Run(path=str(f), summary={"command": "unreadable summary.json", "results": {"error": str(e)}}))
    return [r for r in runs if r.command not in SKIP_COMMANDS]


def as_run(x: Run | Mapping[str, Any]) -> Run:
    if isinstance(x, Run):
        return x
    if isinstance(x, Mapping):
        s = dict(x)
        return Run(path=str(s.pop("_path", s.get("command", "run"))), summary=s)
    raise TypeError(f"expected a Run or a summary dict, got {type(x).__name__}")
