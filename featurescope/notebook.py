"""What the tutorial notebooks (``notebooks/``) share, so that their cells hold calls and prose, not set-up code.

>>> from featurescope.notebook import setup, require_sae
>>> session = setup(seed=0)            # warnings filter, torch seed, repository root, a temp folder, a clock
>>> sae, name = require_sae(("saes/gemma-3-270m/layer_9_resid_post", None), session.root)
>>> session.report_time()              # "notebook ran in 41 s wall-clock, 75 s CPU (2 torch threads)"

Nothing here stands in for a missing input: a shipped SAE or committed run that is not in the checkout is a
:class:`~featurescope.errors.FeaturescopeError` that says how to get it.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import os
import re
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from . import saes
from .errors import FeaturescopeError
from .models.registry import OFFLINE_MODELS

__all__ = ["NotebookSession", "find_root", "missing_sae_message", "require_path", "require_sae", "setup"]

SAE_README = "saes/README.md"


def find_root(start: str | os.PathLike | None = None) -> Path:
    """The repository root: the first folder from ``start`` (default: the working directory) upwards that holds a
    ``pyproject.toml`` - the notebooks run from ``notebooks/`` or from the root."""
    here = Path(start if start is not None else Path.cwd()).resolve()
    for p in (here, *here.parents):
        if (p / "pyproject.toml").is_file():
            return p
    raise FeaturescopeError(
        f"no pyproject.toml in {here} or any folder above it: run the notebooks from a featurescope checkout "
        "(its notebooks/ folder or the repository root)"
    )


@dataclasses.dataclass
class NotebookSession:
    """What :func:`setup` returns: ``root`` (the repository), ``out`` (a temporary folder for the figures and files
    a notebook writes) and a clock for :meth:`report_time`."""

    root: Path
    out: Path
    seed: int
    t0: float = dataclasses.field(default_factory=time.time)
    cpu0: float = dataclasses.field(default_factory=time.process_time)

    def elapsed(self) -> tuple[float, float]:
        """Seconds since :func:`setup`: wall-clock and CPU time of this process."""
        return time.time() - self.t0, time.process_time() - self.cpu0

    def report_time(self) -> None:
        """Print ``notebook ran in N s wall-clock, M s CPU (T torch threads)`` (the notebook tests read this line)."""

        wall, cpu = self.elapsed()
        print(f"notebook ran in {wall:.0f} s wall-clock, {cpu:.0f} s CPU ({torch.get_num_threads()} torch threads)")

    def sae(self, spec: str | tuple[str, str | None]) -> tuple[Any, str]:
        """:func:`require_sae` with this session's repository root."""
        return require_sae(spec, self.root)


def setup(seed: int = 0, *, root: str | os.PathLike | None = None, keep_out: bool = False) -> NotebookSession:
    """Start a notebook: hide library warnings (deprecations from sae-lens / transformers that say nothing about the
    tutorial), seed torch, find the repository root (``root`` or from the working directory up) and make a
    temporary output folder (removed when the kernel exits unless ``keep_out``)."""

    warnings.filterwarnings("ignore")
    torch.manual_seed(seed)
    repo = find_root() if root is None else Path(root).resolve()
    out = Path(tempfile.mkdtemp(prefix="featurescope-nb-"))
    if not keep_out:
        atexit.register(shutil.rmtree, out, ignore_errors=True)
    return NotebookSession(root=repo, out=out, seed=seed)


def _retrain_command(folder: Path) -> str | None:
    """The ``featurescope sae train ...`` command for ``folder``: the one that wrote it or its siblings (its
    ``eval.json`` or its parent's ``summary.json``, with ``--layers`` narrowed to this folder's layer when that
    command trained others), else the plain command for a shipped model's layer, else None."""
    m = re.fullmatch(r"layer_(\d+)_resid_post", folder.name)
    for f in (folder / "eval.json", folder.parent / "summary.json"):
        try:
            data = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        found = [data.get("retrain")] + [r.get("retrain") for r in (data.get("results") or {}).values()]
        cmd = next((c for c in found if isinstance(c, str) and c), None)
        if cmd is None:
            continue
        layers = re.search(r"--layers\s+([\d,]+)", cmd)
        if m and layers and m.group(1) not in layers.group(1).split(","):
            cmd = cmd[: layers.start(1)] + m.group(1) + cmd[layers.end(1) :]
        return cmd

    if m and folder.parent.name in OFFLINE_MODELS:
        return (
            f"featurescope sae train --model offline:{folder.parent.name} --layers {m.group(1)} "
            f"--out saes/{folder.parent.name}"
        )
    return None


def missing_sae_message(where: str | os.PathLike, root: str | os.PathLike | None = None) -> str:
    """What to say when the SAE folder ``where`` (relative to the repository ``root``) is not there."""
    folder = Path(where)
    if not folder.is_absolute() and root is not None:
        folder = Path(root) / folder
    retrain = _retrain_command(folder)
    return (
        f"no SAE at {folder} (no cfg.json there). The SAEs this project ships are committed in its saes/ folder "
        f"(listed in {SAE_README}): restore a missing one from git (`git checkout -- {where}`, or a fresh clone; "
        "`bash scripts/setup.sh` sets up the environment, not the SAEs)"
        + (f"; or train it (tens of minutes on a CPU): `{retrain}`" if retrain else "")
        + ". The notebook does not substitute a random SAE."
    )


def require_sae(spec: str | tuple[str, str | None], root: str | os.PathLike | None = None) -> tuple[Any, str]:
    """Load the SAE a notebook's config names and return it with a display name.

    ``spec`` is ``(release, sae_id)`` for the sae-lens registry (Gemma Scope 2 online), ``(folder, None)`` for a
    folder relative to the repository ``root`` (the project's ``saes/``; default root: :func:`find_root`), or a
    ``featurescope:MODEL/HOOK`` name. A missing folder raises :class:`FeaturescopeError` saying how to get it."""

    where, sae_id = (spec, None) if isinstance(spec, (str, os.PathLike)) else spec
    where = str(where)
    if sae_id is not None:
        return saes.load_sae(where, sae_id), f"{where}/{sae_id}"
    if where.startswith(saes.SHIPPED_PREFIX):
        return saes.load_sae(where), where  # resolve_shipped_sae says where shipped SAEs live when it is missing
    folder = Path(where).expanduser()
    base = None if folder.is_absolute() else (find_root() if root is None else Path(root))
    if base is not None:
        folder = base / folder
    if not (folder / "cfg.json").is_file():
        raise FeaturescopeError(missing_sae_message(where, base))
    return saes.load_sae(folder), where


def require_path(path: str | os.PathLike, how: str) -> Path:
    """``path`` if it exists; else a :class:`FeaturescopeError` naming it and ``how`` to get it (for committed
    runs a notebook reads, e.g. ``docs/finetune-shift/smollm2``)."""
    p = Path(path)
    if not p.exists():
        raise FeaturescopeError(f"{p} is not in this checkout: {how}")
    return p
