"""What the workers run: a store shard, a chunk of generations. Module-level functions, so Ray pickles them by
reference."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from ..formatting import FormattedPrompt, Message
from ..forward import capture_prompts
from ..generate import generate
from ..models import Model
from ..store import ActivationStore
from .pool import WorkerPool


def capture_shard(
    model: Model,
    store_path: str,
    shard_size: int,
    idx: int,
    lo: int,
    hi: int,
    prompts: Sequence[FormattedPrompt],
    hooks: Sequence[str],
    reduction: str,
    batch_size: int,
    dtype: str,
    compute_dtype: str = "float32",
) -> dict[str, Any]:
    """On a worker: capture prompts ``[lo, hi)`` and write shard ``idx`` (atomically); return its record."""
    acts = capture_prompts(
        model.cast(compute_dtype),
        prompts,
        list(hooks),
        reduction=reduction,
        batch_size=batch_size,
        dtype=getattr(torch, dtype),
        progress=False,
    )
    return ActivationStore(store_path, shard_size=shard_size).write_shard(idx, lo, hi, acts)


def capture_on_pool(
    pool: WorkerPool,
    model: Model,
    prompts: Sequence[FormattedPrompt],
    hooks: Sequence[str],
    store: ActivationStore,
    *,
    reduction: str = "response_mean",
    batch_size: int = 16,
    dtype: str = "float32",
    progress: bool = True,
    on_result: Callable[..., None] | None = None,
) -> Any:
    """Capture into ``store`` with the pool's workers, one shard per task; the driver (this process, holding
    ``model`` for the request's identity) checks each returned shard and writes the manifest. Resumes like a
    single-process capture; the shards are the same files a single-process run writes."""
    m, todo = store.begin(model, prompts, hooks, reduction=reduction, dtype=getattr(torch, dtype))
    args = []
    for idx in todo:
        lo, hi = store.bounds(idx, len(prompts))
        args.append(
            (
                str(store.path),
                store.shard_size,
                idx,
                lo,
                hi,
                list(prompts[lo:hi]),
                list(hooks),
                reduction,
                batch_size,
                dtype,
                model.info.dtype,
            )
        )
    bar = tqdm(total=len(todo), desc=f"capture on {len(pool.actors)} Ray workers", unit="shard", disable=not progress)
    for _, rec in pool.map(capture_shard, args, on_result=on_result):
        store.add_shard(m, rec, len(prompts))
        bar.update(1)
    bar.close()
    return store.finish(m)


def generate_chunk(
    model: Model, convs: Sequence[Sequence[Message]], kw: dict[str, Any], dtype: str = "float32"
) -> list[dict[str, Any]]:
    """On a worker: one chunk of generations (with the model cast to ``dtype``), as the rows generate_cached
    writes."""
    gens = generate(model.cast(dtype), [list(c) for c in convs], progress=False, **kw)
    return [{"response": g.response, "new_tokens": g.new_tokens, "stopped": g.stopped} for g in gens]


def generate_on_pool(
    pool: WorkerPool,
    chunks: Sequence[tuple[Sequence[int], Sequence[Sequence[Message]], dict[str, Any]]],
    on_chunk: Callable[[Sequence[int], list[dict[str, Any]]], None],
    *,
    dtype: str = "float32",
    on_result: Callable[..., None] | None = None,
) -> None:
    """Run ``(indices, conversations, generate kwargs)`` chunks on the pool (models cast to ``dtype``);
    ``on_chunk(indices, rows)`` (in the driver) records each finished chunk."""
    for i, rows in pool.map(generate_chunk, [(c, kw, dtype) for _, c, kw in chunks], on_result=on_result):
        on_chunk(chunks[i][0], rows)


__all__ = ["capture_on_pool", "capture_shard", "generate_chunk", "generate_on_pool"]


def generate_objects(
    model: Model, convs: Sequence[Sequence[Message]], kw: dict[str, Any], dtype: str = "float32"
) -> list[Any]:
    """On a worker: one chunk of :class:`~featurescope.generate.Generation` objects (model cast to ``dtype``)."""
    return generate(model.cast(dtype), [list(c) for c in convs], progress=False, **kw)


def generate_in_chunks(
    model: Model,
    convs: Sequence[Sequence[Message]],
    *,
    chunk: int = 256,
    seed: int = 0,
    pool: WorkerPool | None = None,
    progress: bool = True,
    **kw: Any,
) -> list[Any]:
    """:func:`~featurescope.generate.generate` over ``convs`` in chunks of ``chunk`` (seed ``seed + start`` each), in
    this process or on ``pool``'s workers - the same chunks either way, so greedy answers are identical. Up to
    ``chunk`` conversations this is one ``generate`` call."""
    starts = list(range(0, len(convs), chunk))
    args = [([list(c) for c in convs[c0 : c0 + chunk]], {**kw, "seed": seed + c0}, model.info.dtype) for c0 in starts]
    out: list[list[Any]] = [[] for _ in starts]
    bar = tqdm(total=len(convs), desc=f"generate {model.name}", unit="answer", disable=not progress)
    if pool is not None:
        for i, gens in pool.map(generate_objects, args):
            out[i] = gens
            bar.update(len(gens))
    else:
        for i, (cs, k, _) in enumerate(args):
            out[i] = generate(model, cs, progress=False, **k)
            bar.update(len(out[i]))
    bar.close()
    return [g for gens in out for g in gens]
