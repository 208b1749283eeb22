"""Distributed capture on Ray: 2 local workers vs 1 process on the same job, side by side in one run.

    python benchmarks/distributed_capture.py [--model offline:smollm2-135m-instruct] [--prompts 96] [--workers 2]

Captures the same prompts (the role library's questions, chat-formatted) at every layer into two activation
stores - one in this process (all cores), one with ``--workers`` Ray actors (one core and one model copy each) -
and prints both wall times, their ratio and whether the two stores hold identical tensors. On this 2-core machine
expect at most 2x (the point here is correctness and the recipe: the same code spreads over many GPUs/nodes with
``--ray ADDRESS``); the Ray run's time includes starting the cluster and loading one model per worker, reported
separately.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="offline:smollm2-135m-instruct")
    ap.add_argument("--prompts", type=int, default=96)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--shard-size", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args(argv)

    import torch

    from featurescope.axis import load_role_library
    from featurescope.capture import as_prompts, capture, default_hooks
    from featurescope.distributed import ModelSpec, RayCluster, WorkerPool, capture_on_pool
    from featurescope.models import load_model
    from featurescope.store import ActivationStore

    model = load_model(args.model, progress=False)
    lib = load_role_library()
    qs = [q for r in lib.roles for q in (f"{r.instructions[0]} {lib.questions[0]}",)][: args.prompts]
    prompts = as_prompts(model, qs)
    hooks = default_hooks(model)
    n_tok = sum(len(p) for p in prompts)
    with tempfile.TemporaryDirectory() as d:
        t = time.time()
        one = capture(
            model,
            prompts,
            hooks,
            reduction="prompt_mean",
            batch_size=args.batch_size,
            progress=False,
            store=ActivationStore(Path(d) / "one", args.shard_size),
        )
        t_one = time.time() - t
        t = time.time()
        with RayCluster(None, n_cpus=args.workers):
            with WorkerPool(ModelSpec(name=args.model), args.workers) as pool:
                t_start = time.time() - t
                t = time.time()
                dist = capture_on_pool(
                    pool,
                    model,
                    prompts,
                    hooks,
                    ActivationStore(Path(d) / "ray", args.shard_size),
                    reduction="prompt_mean",
                    batch_size=args.batch_size,
                    progress=False,
                )
                t_ray = time.time() - t
        same = all(torch.equal(one[h], dist[h]) for h in hooks)
    print(f"{args.model}: {len(prompts)} prompts, {n_tok} tokens, {len(hooks)} hooks, shards of {args.shard_size}")
    print(f"  1 process ({torch.get_num_threads()} threads): {t_one:7.1f} s  ({n_tok / t_one:6.0f} tok/s)")
    print(
        f"  {args.workers} Ray workers (1 thread each):  {t_ray:7.1f} s  ({n_tok / t_ray:6.0f} tok/s)"
        f"  + {t_start:.1f} s to start the cluster and load {args.workers} model copies"
    )
    print(
        f"  ratio 1 process / Ray = {t_one / t_ray:.2f}x (with start-up {t_one / (t_ray + t_start):.2f}x); "
        f"identical tensors: {same}"
    )
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
