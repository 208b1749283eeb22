"""The library side of ``featurescope capture``: capture prompts at hooks into an activation store under a run
folder, in this process or on a Ray worker pool, and write the run's ``summary.json``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .capture import capture
from .distributed import capture_on_pool
from .models import Model
from .runs import write_summary
from .store import ActivationStore


def capture_run(
    model: Model,
    prompts: Sequence[Any],
    hooks: Sequence[str],
    out: str | Path,
    *,
    reduction: str = "response_mean",
    batch_size: int = 8,
    dtype: str = "float32",
    shard_size: int = 256,
    pool: Any = None,
    progress: bool = True,
    load_s: float = 0.0,
    inputs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Capture ``prompts`` (formatted) at ``hooks`` into ``out/activations`` (resumable shard store) - on ``pool``
    (a :class:`featurescope.distributed.WorkerPool`) when given - and write ``out/summary.json``. ``load_s``: the
    caller's model-loading time (recorded in the timings); ``inputs``: extra inputs to record (e.g. the prompt file).
    Returns the summary's results."""
    t0 = time.time()
    out = Path(out)
    store = ActivationStore(out / "activations", shard_size=shard_size)
    if pool is not None:
        acts = capture_on_pool(
            pool, model, prompts, hooks, store, reduction=reduction, batch_size=batch_size, dtype=dtype,
            progress=progress,
        )  # fmt: skip
    else:
        acts = capture(
            model, prompts, hooks, store=store, reduction=reduction, batch_size=batch_size, dtype=dtype,
            progress=progress,
        )  # fmt: skip
    t_cap = time.time() - t0
    n_tok = sum(len(p) for p in prompts)
    results = {
        "store": str(store.path),
        "n_tokens": n_tok,
        "tokens_per_s": n_tok / max(t_cap, 1e-9),
        "shapes": {h: list(acts[h].shape) for h in hooks},
        "mean_norm": {h: float(acts[h].float().norm(dim=-1).mean()) for h in hooks},
    }
    write_summary(
        out,
        "capture",
        inputs={
            "model": model.info,
            **(inputs or {}),
            "n_prompts": len(prompts),
            "hooks": list(hooks),
            "reduction": reduction,
            "batch_size": batch_size,
            "dtype": dtype,
        },
        results=results,
        timings={"load_model": load_s, "capture": t_cap, "total": load_s + (time.time() - t0)},
    )
    return results
