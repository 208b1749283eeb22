"""Feature-matching throughput against a plain torch matmul of the same shapes, side by side.

    python benchmarks/stages_matching.py [--n 65536 --m 65536 --d 640 --block-rows 1024 --block-cols 16384 --repeats 2]

Two random dictionaries of ``n`` and ``m`` latents (defaults: two 65k x 640 dictionaries, Gemma 3 270M's width).
Measures, interleaved and best of ``--repeats``:

* **plain matmul**: ``torch.mm`` of the same unit-normalised dictionaries over the same tiles, into a reused buffer,
  no reduction - the machine's matmul throughput for these shapes (the full ``n x m`` product, 17 GB in fp32 at the
  defaults, does not fit in memory, so the tiles are the fairest plain baseline);
* **feature matching**: :func:`featurescope.stages.match_dictionaries` - normalisation, the same tiled matmuls, and
  the running max / argmax in *both* directions.

Prints GFLOP/s of both (2 n m d flops) and the ratio matching / plain (target >= 0.5), plus the throughput of one
large ``[4096 x d] @ [d x 8192]`` mm for reference. Use ``--device cuda`` on a GPU (``--n 1048576`` for 1M latents).
"""

from __future__ import annotations

import argparse
import time

import torch

from featurescope.stages import default_blocks, match_dictionaries


def plain_tiled_mm(A: torch.Tensor, B: torch.Tensor, br: int, bc: int) -> float:
    buf = torch.empty(min(br, len(A)) * min(bc, len(B)), dtype=A.dtype, device=A.device)
    t = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(A), br):
            Ai = A[i : i + br]
            for j in range(0, len(B), bc):
                Bj = B[j : j + bc]
                torch.mm(Ai, Bj.T, out=buf[: len(Ai) * len(Bj)].view(len(Ai), len(Bj)))
    if A.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=65536)
    ap.add_argument("--m", type=int, default=65536)
    ap.add_argument("--d", type=int, default=640)
    ap.add_argument("--block-rows", type=int, default=None, help="default: featurescope.stages.default_blocks")
    ap.add_argument("--block-cols", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    dr, dc = default_blocks(args.device)
    args.block_rows, args.block_cols = args.block_rows or dr, args.block_cols or dc
    g = torch.Generator().manual_seed(0)
    a = torch.randn(args.n, args.d, generator=g)
    b = torch.randn(args.m, args.d, generator=g)
    b[: args.n // 2] = a[: args.n // 2] + 0.1 * torch.randn(args.n // 2, args.d, generator=g)  # half the latents reused
    a, b = a.to(args.device), b.to(args.device)
    A = torch.nn.functional.normalize(a, dim=-1)
    B = torch.nn.functional.normalize(b, dim=-1)
    flops = 2.0 * args.n * args.m * args.d
    t_plain, t_match = [], []
    res = None
    for _ in range(args.repeats):
        t_plain.append(plain_tiled_mm(A, B, args.block_rows, args.block_cols))
        res = match_dictionaries(a, b, block_rows=args.block_rows, block_cols=args.block_cols, device=args.device)
        t_match.append(res.seconds)
    one = torch.empty(args.block_rows, args.block_cols, device=args.device)
    t = time.perf_counter()
    torch.mm(A[: args.block_rows], B[: args.block_cols].T, out=one)
    if A.is_cuda:
        torch.cuda.synchronize()
    t_one = time.perf_counter() - t
    gp, gm = flops / min(t_plain) / 1e9, flops / min(t_match) / 1e9
    assert res is not None
    print(
        f"{args.n} x {args.d} vs {args.m} x {args.d} dictionaries, tiles {args.block_rows} x {args.block_cols}, "
        f"{args.device}, {torch.get_num_threads()} threads, best of {args.repeats}"
    )
    print(f"  plain tiled torch.mm (same shapes, no reduction): {min(t_plain):7.2f} s  {gp:7.1f} GFLOP/s")
    print(f"  feature matching (both directions, max+argmax):   {min(t_match):7.2f} s  {gm:7.1f} GFLOP/s")
    print(f"  ratio matching / plain matmul throughput: {gm / gp:.2f}  (target >= 0.50)")
    print(
        f"  one {args.block_rows} x {args.d} @ {args.d} x {args.block_cols} mm: "
        f"{2.0 * args.block_rows * args.block_cols * args.d / t_one / 1e9:.1f} GFLOP/s"
    )
    reused = float((res.a_to_b_cos >= 0.7).float().mean())
    print(f"  check: fraction of a reused in b = {reused:.3f} (planted: 0.500)")


if __name__ == "__main__":
    main()
