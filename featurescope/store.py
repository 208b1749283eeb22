"""On-disk activation store: safetensors shards plus a JSON manifest, written atomically and resumable.

Layout of a store folder::

    manifest.json              request (model, hooks, reduction, prompts hash, ...) and the list of finished shards
    shard-00000.safetensors    prompts [0, shard_size): one tensor per hook (+ offsets / role_ids for "all")
    ...

Every file is written to a temporary name and renamed into place, and the manifest is rewritten (atomically)
only after a shard is complete, so an interrupted capture leaves a consistent store that the same request
resumes. A different request on the same folder is refused, naming the fields that differ. Shards are checked
against the byte size and SHA-256 recorded in the manifest; a truncated or altered shard is reported, not read.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from .errors import CorruptStoreError, StoreMismatchError
from .formatting import FormattedPrompt, prompts_hash
from .forward import Activations, capture_prompts, check_request
from .models import Model

FORMAT = "featurescope.activations/1"
_REQUEST_KEYS = (
    "model",
    "model_sha256",
    "hooks",
    "reduction",
    "prompts_hash",
    "n_prompts",
    "shard_size",
    "dtype",
    "compute_dtype",
)


def _umask_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give a new file (0o666 less the umask); mkstemp's is 0o600."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, _umask_mode())  # readable like any other file the user writes, not mkstemp's 0600
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def write_json(path: str | Path, obj: Any, indent: int | None = 1) -> None:
    """Write ``obj`` to ``path`` as one JSON document (``json.dumps(obj, indent=indent)``, no trailing newline),
    atomically; parent folders are created. The one JSON writer of featurescope's run folders and files."""
    atomic_write_text(Path(path), json.dumps(obj, indent=indent))


def write_jsonl(path: str | Path, rows: Iterable[Any], *, ensure_ascii: bool = True) -> None:
    """Write ``rows`` to ``path`` as JSON Lines (one compact JSON object per line, each ending in a newline; no rows
    is an empty file), atomically; parent folders are created."""
    atomic_write_text(Path(path), "".join(json.dumps(r, ensure_ascii=ensure_ascii) + "\n" for r in rows))


def atomic_save_tensors(path: Path, tensors: dict[str, Tensor], metadata: dict[str, str] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        save_file({k: v.contiguous() for k, v in tensors.items()}, tmp, metadata=metadata)
        os.chmod(tmp, _umask_mode())  # safetensors keeps mkstemp's 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def settings_diff(saved: dict[str, Any], run: dict[str, Any]) -> str:
    """The keys on which two run-settings dicts differ, both sides named (``""`` when they agree): the message of a
    refused resume."""
    keys = [k for k in sorted(set(saved) | set(run)) if saved.get(k) != run.get(k)]
    return "; ".join(f"{k}: checkpoint {_short(saved.get(k))}, this run {_short(run.get(k))}" for k in keys)


def sha256_file(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class ActivationStore:
    """A folder of activation shards. Use :meth:`capture` to fill (or resume) it and :meth:`load` to read it."""

    def __init__(self, path: str | os.PathLike, shard_size: int = 256):
        self.path = Path(path)
        self.shard_size = int(shard_size)
        if self.shard_size < 1:
            raise ValueError("shard_size must be >= 1")

    def remove_orphans(self) -> list[Path]:
        """Delete temporary files that a killed run left behind (``.NAME.XXXX`` beside a shard or the manifest).

        Writes go to such a temporary file and are renamed into place, so a shard is either whole or absent; a run
        killed mid-write (SIGKILL, power loss) leaves the temporary file, which the next run removes here."""
        removed = []
        if self.path.is_dir():
            for f in self.path.iterdir():
                if (
                    f.is_file()
                    and f.name.startswith(".")
                    and (f.name.startswith(".shard-") or f.name.startswith(".manifest.json."))
                ):
                    f.unlink(missing_ok=True)
                    removed.append(f)
        return removed

    # -- manifest ---------------------------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.path / "manifest.json"

    def exists(self) -> bool:
        return self.manifest_path.exists()

    def manifest(self) -> dict[str, Any]:
        if not self.exists():
            raise FileNotFoundError(f"no activation store at {self.path} (manifest.json missing)")
        try:
            m = json.loads(self.manifest_path.read_text())
        except json.JSONDecodeError as e:
            raise CorruptStoreError(
                f"{self.manifest_path} is not valid JSON ({e}); delete the folder and capture again"
            ) from e
        if m.get("format") != FORMAT:
            raise StoreMismatchError(f"{self.path} is not a featurescope activation store (format {m.get('format')!r})")
        return m

    def _write_manifest(self, m: dict[str, Any]) -> None:
        write_json(self.manifest_path, m, indent=2)

    @property
    def complete(self) -> bool:
        return self.exists() and bool(self.manifest().get("complete"))

    def request_for(
        self, model: Model, prompts: Sequence[FormattedPrompt], hooks: Sequence[str], reduction: str, dtype: torch.dtype
    ) -> dict[str, Any]:
        return {
            "model": model.info.name,
            "model_sha256": model.info.weights_sha256,
            "hooks": list(hooks),
            "reduction": reduction,
            "prompts_hash": prompts_hash(prompts),
            "n_prompts": len(prompts),
            "shard_size": self.shard_size,
            "dtype": str(dtype).replace("torch.", ""),
            # the forward pass's own dtype, when it is not float32 (float32 requests keep older stores' headers)
            **({"compute_dtype": model.info.dtype} if getattr(model.info, "dtype", "float32") != "float32" else {}),
        }

    def check_request(self, request: dict[str, Any]) -> dict[str, Any] | None:
        """The existing manifest if it matches ``request`` (None if the store is new); raise if it differs."""
        if not self.exists():
            if self.path.exists() and any(p for p in self.path.iterdir() if not p.name.startswith(".")):
                raise StoreMismatchError(
                    f"{self.path} exists, is not empty, and has no manifest.json: not an activation store. "
                    "Choose an empty or new folder."
                )
            return None
        m = self.manifest()
        diffs = [k for k in _REQUEST_KEYS if m.get("request", {}).get(k) != request.get(k)]
        if diffs:
            detail = "; ".join(
                f"{k}: store has {_short(m['request'].get(k))}, request has {_short(request.get(k))}" for k in diffs
            )
            raise StoreMismatchError(
                f"the activation store at {self.path} was written for a different request ({detail}). "
                "Use another folder, or delete this one to start over."
            )
        return m

    # -- shards -----------------------------------------------------------------------------------------------
    def _shard_path(self, idx: int) -> Path:
        return self.path / f"shard-{idx:05d}.safetensors"

    def verify(self) -> None:
        """Check every finished shard's size and checksum; raise :class:`CorruptStoreError` on the first bad one."""
        for s in self.manifest()["shards"]:
            self._check_shard(s)

    def _check_shard(self, s: dict[str, Any]) -> Path:
        p = self.path / s["file"]
        if not p.exists():
            raise CorruptStoreError(f"shard {s['file']} listed in {self.manifest_path} is missing")
        size = p.stat().st_size
        if size != s["bytes"]:
            raise CorruptStoreError(
                f"shard {p} is truncated or altered ({size} bytes, manifest says {s['bytes']}). Delete the shard "
                "(or the whole store) and run the capture again to recompute it."
            )
        if s.get("sha256") and sha256_file(p) != s["sha256"]:
            raise CorruptStoreError(f"shard {p} does not match its recorded SHA-256; it was altered after writing")
        return p

    def _read_shard(self, s: dict[str, Any]) -> dict[str, Tensor]:
        p = self._check_shard(s)
        try:
            return load_file(str(p))
        except (SafetensorError, OSError, ValueError) as e:
            raise CorruptStoreError(f"shard {p} cannot be read: {e}") from e

    # -- capture ----------------------------------------------------------------------------------------------
    def begin(
        self,
        model: Model,
        prompts: Sequence[FormattedPrompt],
        hooks: Sequence[str],
        *,
        reduction: str,
        dtype: torch.dtype = torch.float32,
    ) -> tuple[dict[str, Any], list[int]]:
        """Open (or resume) the store for this request: ``(manifest, indices of the shards still to compute)``.
        Only the process that calls this writes the manifest (:meth:`add_shard`); shards may be written by others
        (:meth:`write_shard`), e.g. Ray workers."""
        hooks = check_request(model, prompts, hooks, reduction)
        request = self.request_for(model, prompts, hooks, reduction, dtype)
        m = self.check_request(request)
        if m is None:
            m = {
                "format": FORMAT,
                "request": request,
                "shards": [],
                "complete": False,
                "model_info": model.info.to_dict(),
            }
            self.path.mkdir(parents=True, exist_ok=True)
            self._write_manifest(m)
        missing = [s for s in m["shards"] if not (self.path / s["file"]).exists()]
        if missing:  # deleted shards are recomputed; truncated or altered ones still raise below
            warnings.warn(
                f"{len(missing)} shard(s) listed in {self.manifest_path} are missing "
                f"({', '.join(s['file'] for s in missing[:3])}); recomputing them",
                stacklevel=3,
            )
            m["shards"] = [s for s in m["shards"] if s not in missing]
            m["complete"] = False
            self._write_manifest(m)
        for s in m["shards"]:
            self._check_shard(s)
        self.remove_orphans()
        done = {s["index"] for s in m["shards"]}
        return m, [i for i in range(self.n_shards(len(prompts))) if i not in done]

    def n_shards(self, n_prompts: int) -> int:
        return (n_prompts + self.shard_size - 1) // self.shard_size

    def bounds(self, idx: int, n_prompts: int) -> tuple[int, int]:
        """Prompt range ``[lo, hi)`` of shard ``idx``."""
        return idx * self.shard_size, min(n_prompts, (idx + 1) * self.shard_size)

    def write_shard(self, idx: int, lo: int, hi: int, acts: Any) -> dict[str, Any]:
        """Write one shard file atomically and return its manifest record (the manifest itself is not touched)."""
        tensors = {f"act.{h}": t for h, t in acts.data.items()}
        if acts.offsets is not None:
            tensors["offsets"] = acts.offsets
            tensors["role_ids"] = acts.role_ids
        if acts.counts is not None:
            tensors["counts"] = acts.counts
        p = self._shard_path(idx)
        atomic_save_tensors(p, tensors, metadata={"lo": str(lo), "hi": str(hi)})
        return {"index": idx, "file": p.name, "lo": lo, "hi": hi, "bytes": p.stat().st_size, "sha256": sha256_file(p)}

    def add_shard(self, m: dict[str, Any], record: dict[str, Any], n_prompts: int) -> None:
        """Record a finished shard in the manifest (checked against its size and checksum first) and rewrite it."""
        self._check_shard(record)
        if any(s["index"] == record["index"] for s in m["shards"]):
            raise CorruptStoreError(f"shard {record['index']} of {self.path} was recorded twice")
        m["shards"].append(record)
        m["shards"].sort(key=lambda s: s["index"])
        m["complete"] = len(m["shards"]) == self.n_shards(n_prompts)
        self._write_manifest(m)

    def finish(self, m: dict[str, Any]) -> Any:
        if not m["complete"]:
            m["complete"] = True
            self._write_manifest(m)
        self.remove_orphans()
        return self.load()

    def capture(
        self,
        model: Model,
        prompts: Sequence[FormattedPrompt],
        hooks: Sequence[str],
        *,
        reduction: str,
        batch_size: int = 16,
        dtype: torch.dtype = torch.float32,
        progress: bool = True,
        fwd_hooks: Sequence[tuple[str, Callable]] = (),
        stop_after_shards: int | None = None,
    ) -> Any:
        """Capture into this store shard by shard, skipping shards already finished. ``stop_after_shards``
        stops early (used to test resumption)."""
        hooks = check_request(model, prompts, hooks, reduction)
        m, todo = self.begin(model, prompts, hooks, reduction=reduction, dtype=dtype)
        n_shards = self.n_shards(len(prompts))
        for written, idx in enumerate(todo):
            if stop_after_shards is not None and written >= stop_after_shards:
                return None
            lo, hi = self.bounds(idx, len(prompts))
            acts = capture_prompts(
                model,
                prompts[lo:hi],
                hooks,
                reduction=reduction,
                batch_size=batch_size,
                dtype=dtype,
                progress=progress,
                fwd_hooks=fwd_hooks,
                desc=f"capture shard {idx + 1}/{n_shards}",
            )
            self.add_shard(m, self.write_shard(idx, lo, hi, acts), len(prompts))
        return self.finish(m)

    # -- reading ----------------------------------------------------------------------------------------------
    def load(self, hooks: Sequence[str] | None = None) -> Any:
        """Read the whole store into an :class:`featurescope.capture.Activations`."""
        m = self.manifest()
        if not m.get("complete"):
            n = len(m["shards"])
            raise CorruptStoreError(
                f"the activation store at {self.path} is incomplete ({n} shard(s) finished); run the same capture "
                "again to resume it"
            )
        req = m["request"]
        want = list(hooks) if hooks is not None else req["hooks"]
        unknown = [h for h in want if h not in req["hooks"]]
        if unknown:
            raise KeyError(f"store has no hooks {unknown}; it holds {req['hooks']}")
        parts: dict[str, list[Tensor]] = {h: [] for h in want}
        offsets: list[Tensor] = []
        roles: list[Tensor] = []
        counts: list[Tensor] = []
        base = 0
        for s in m["shards"]:
            t = self._read_shard(s)
            for h in want:
                parts[h].append(t[f"act.{h}"])
            if "offsets" in t:
                o = t["offsets"]
                offsets.append((o[1:] if offsets else o) + base)
                base += int(o[-1])
                roles.append(t["role_ids"])
            if "counts" in t:
                counts.append(t["counts"])
        return Activations(
            hooks=want,
            reduction=req["reduction"],
            data={h: torch.cat(v) for h, v in parts.items()},
            offsets=torch.cat(offsets) if offsets else None,
            role_ids=torch.cat(roles) if roles else None,
            counts=torch.cat(counts) if counts else None,
        )


def _short(v: Any) -> str:
    s = json.dumps(v)
    return s if len(s) <= 60 else s[:57] + "..."
