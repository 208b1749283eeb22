"""Role-vector collection speed for the Assistant axis (target: 120 roles x 40 questions on a 270M model in under
30 minutes on this 2-core CPU, with batched generation; the capture step streams to disk and resumes).

    python benchmarks/axis_collect.py [--model offline:gemma-3-270m] [--roles 12] [--questions 8] [--out runs/axis-bench]

Measures, side by side in one process, on a slice of the role library:

1. ``collect_axis`` from scratch into ``--out`` (batched generation + role judge + capture at every layer, streamed
   to an ActivationStore), timed per stage from its summary;
2. the same call again on the same folder: everything is found on disk and resumed (no generation, no capture);
3. a third call after deleting the activation store's last shard file: only that shard is recomputed (the store
   warns and recomputes deleted shards; truncated or altered ones are refused).

and extrapolates the per-job cost of (1) linearly to the full 120 x 40 scale (plus the default-Assistant jobs,
5 x 40), which is what the target is about. All three are measured for each generation dtype in ``--dtypes``
(float32; bfloat16 generation; bfloat16 generation and capture), and the first and last modes' axes are compared. The slice is a spread over categories, so its answer lengths are
representative. Prints the measured seconds, the extrapolation and the ratio to the 30-minute budget.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

LIMIT_S = 30 * 60
FULL_ROLES, FULL_QUESTIONS, N_DEFAULT = 120, 40, 5


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="offline:gemma-3-270m")
    ap.add_argument("--roles", type=int, default=12)
    ap.add_argument("--questions", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--shard-size", type=int, default=64, help="prompts per activation-store shard")
    ap.add_argument(
        "--dtypes",
        default="float32,bfloat16,bfloat16/bfloat16",
        help="modes to measure side by side: generation dtype[/capture dtype] (capture defaults to float32)",
    )
    ap.add_argument("--out", default="runs/axis-bench")
    args = ap.parse_args(argv)

    from featurescope import load_model
    from featurescope.axis import AxisConfig, build_jobs, collect_axis, load_role_library

    t = time.time()
    model = load_model(args.model)
    t_load = time.time() - t
    lib = load_role_library()
    full_jobs = FULL_ROLES * FULL_QUESTIONS + N_DEFAULT * FULL_QUESTIONS
    rows = []
    for mode in args.dtypes.split(","):
        gdt, cdt = (mode.split("/") + ["float32"])[:2]
        out = Path(args.out) / mode.replace("/", "-")
        if out.exists():
            shutil.rmtree(out)
        cfg = AxisConfig(
            n_roles=args.roles,
            n_questions=args.questions,
            max_new_tokens=args.max_new_tokens,
            batch_size=args.batch_size,
            shard_size=args.shard_size,
            generation_dtype=gdt,
            capture_dtype=cdt,
        )
        n_jobs = len(build_jobs(lib, cfg))
        for d in {gdt, cdt} - {"float32"}:
            model.cast(d)  # the one-off copy is not part of the per-job cost
        t = time.time()
        ax, _ = collect_axis(model, lib, cfg, out_dir=out, progress=True)
        t_first = time.time() - t
        tim = ax.extra["timings"]
        t = time.time()
        collect_axis(model, lib, cfg, out_dir=out, progress=False)
        t_resume = time.time() - t
        shards = sorted((out / "activations").rglob("*.safetensors"))
        t_partial = float("nan")
        if shards:
            shards[-1].unlink()
            t = time.time()
            collect_axis(model, lib, cfg, out_dir=out, progress=False)
            t_partial = time.time() - t
        rows.append((f"generation {gdt}, capture {cdt}", n_jobs, t_first, tim, t_resume, t_partial, len(shards), ax))

    print(
        f"\nmodel {args.model} (loaded in {t_load:.1f} s); slice: {args.roles} roles x {args.questions} questions "
        f"+ default = {rows[0][1]} jobs, {args.max_new_tokens} new tokens, batch {args.batch_size}"
    )
    for gdt, n_jobs, t_first, tim, t_resume, t_partial, n_sh, _ in rows:
        est = t_first / n_jobs * full_jobs
        print(f"[{gdt}]")
        print(
            f"  collect from scratch   {t_first:8.1f} s  ({t_first / n_jobs * 1000:.0f} ms/job; generate "
            f"{tim['generate']:.1f} s, capture {tim['capture']:.1f} s)"
        )
        print(f"  resume, all on disk    {t_resume:8.1f} s  (ratio to scratch {t_resume / t_first:.3f})")
        print(
            f"  resume, last shard lost {t_partial:7.1f} s  (ratio to scratch {t_partial / t_first:.3f}; "
            f"{n_sh} shards of <= {args.shard_size} prompts)"
        )
        print(
            f"  extrapolated to {FULL_ROLES} roles x {FULL_QUESTIONS} questions + default ({full_jobs} jobs): "
            f"{est / 60:.1f} min; budget {LIMIT_S / 60:.0f} min; ratio {est / LIMIT_S:.2f} "
            f"({'within' if est <= LIMIT_S else 'OVER'} budget)"
        )
    if len(rows) > 1:
        from featurescope.axis import cosine

        a, b = rows[0], rows[-1]
        h = a[7].hook(None)
        i = a[7].index(h)
        print(
            f"{b[0]} vs {a[0]}: scratch time ratio {b[2] / a[2]:.2f}; generation time ratio "
            f"{b[3]['generate'] / a[3]['generate']:.2f}; cos(axis {a[0]}, axis {b[0]}) at {h} "
            f"{float(cosine(a[7].vectors[i], b[7].vectors[i])):+.3f}; role-vector cosine mean "
            f"{float(cosine(a[7].role_vectors[:, i], b[7].role_vectors[:, i]).mean()):.4f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
