"""Where an export lands: refuse to overwrite what is not ours, and write a folder atomically."""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import FeaturescopeError

#: Every file featurescope writes as an export carries this key (JSON) or metadata field (GGUF).
MARK = "featurescope_export"


def is_ours_json(path: Path) -> bool:
    try:
        return MARK in json.loads(path.read_text())
    except (OSError, ValueError, TypeError):
        return False


def check_folder_target(folder: Path, overwrite: bool) -> None:
    """A folder export may replace only an earlier featurescope export of the same kind, and only with
    ``overwrite``; an existing folder that is not ours (or a file at that path) is an error."""
    if not folder.exists():
        return
    if not folder.is_dir():
        raise FeaturescopeError(f"{folder} exists and is a file, not an export folder; choose another --out")
    if not any(folder.iterdir()):
        return
    if not is_ours_json(folder / "config.json"):
        raise FeaturescopeError(
            f"{folder} exists and is not a featurescope export (no config.json with {MARK!r}); refusing to write "
            "into it - choose another --out"
        )
    if not overwrite:
        raise FeaturescopeError(f"{folder} already holds a featurescope export; pass overwrite=True (--overwrite)")


@contextlib.contextmanager
def atomic_folder(folder: Path) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces ``folder`` in one rename, on error it is removed
    (a killed or failed export leaves nothing half-written at ``folder``)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        yield tmp
        for q in [tmp, *tmp.rglob("*")]:  # mkdtemp / mkstemp make private entries; an export is for sharing
            q.chmod(0o755 if q.is_dir() else 0o644)
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            folder.rename(old)
            tmp.rename(folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
