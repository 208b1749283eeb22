"""Stages: feature matching (pure)."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from typing import Any

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from .constants import DictionaryMismatchError, StagesError


@dataclasses.dataclass
class Matching:
    """Best decoder cosine of every row of ``a`` among the rows of ``b`` (``a_to_b``) and vice versa."""

    a_to_b_cos: Float[Tensor, " n"]
    a_to_b_idx: Int[Tensor, " n"]
    b_to_a_cos: Float[Tensor, " m"] | None
    b_to_a_idx: Int[Tensor, " m"] | None
    seconds: float = 0.0

    def reused(self, threshold: float = 0.7) -> Bool[Tensor, " n"]:
        return self.a_to_b_cos >= threshold


def _unit_rows(W: Tensor, dtype: torch.dtype, device: torch.device | str | None) -> Tensor:
    W = W.detach().to(device=device, dtype=torch.float32)
    return torch.nn.functional.normalize(W, dim=-1, eps=1e-12).to(dtype)


def default_blocks(device: str | torch.device) -> tuple[int, int]:
    """Tile shape for :func:`match_dictionaries`: 1024 x 16384 (64 MB) on CPU - short, wide tiles keep the strided
    column reduction cheap and the argmax fix-up at 1024/n of the matmul - and 8192 x 65536 (2 GB) on a GPU."""
    return (8192, 65536) if str(device).startswith("cuda") else (1024, 16384)


def match_dictionaries(
    a: Float[Tensor, "n d"],
    b: Float[Tensor, "m d_b"],  # d_b must equal d: checked below with a clear DictionaryMismatchError
    *,
    both: bool = True,
    block_rows: int | None = None,
    block_cols: int | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str = torch.float32,
    progress: bool = False,
) -> Matching:
    """Best cosine (signed: a latent and its negation are different features) of every row of ``a`` with any row of
    ``b`` and, with ``both``, of every row of ``b`` with any row of ``a`` - from one pass of tiled matmuls.

    Memory is the two dictionaries plus one ``block_rows x block_cols`` tile (:func:`default_blocks`) and running
    max / argmax vectors; the ``n x m`` cosine matrix is never held. ``device`` defaults to CUDA when available;
    ``dtype=torch.bfloat16`` trades ~3 significant digits of cosine for tensor-core speed there (1M x 1M latents at
    width 2304 is 4.6 PFLOP). Rows with zero norm get cosine 0 with everything.
    """
    if a.ndim != 2 or b.ndim != 2:
        raise DictionaryMismatchError(
            f"dictionaries must be [latents, d_model] matrices, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if a.shape[1] != b.shape[1]:
        raise DictionaryMismatchError(
            f"the dictionaries have different widths: d_model {a.shape[1]} vs {b.shape[1]} "
            "(they must decode into the same activation space, i.e. the same hook of two "
            "checkpoints of one architecture)"
        )
    if len(a) == 0 or len(b) == 0:
        raise DictionaryMismatchError("a dictionary has no latents")
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    assert isinstance(dtype, torch.dtype)
    dr, dc = default_blocks(device)
    block_rows, block_cols = block_rows or dr, block_cols or dc
    t0 = time.perf_counter()
    A = _unit_rows(a, dtype, device)
    B = _unit_rows(b, dtype, device)
    n, m = len(A), len(B)
    br, bc = min(block_rows, n), min(block_cols, m)
    neg = torch.finfo(torch.float32).min
    a_best = torch.full((n,), neg, device=device)
    a_idx = torch.zeros(n, dtype=torch.long, device=device)
    b_best = torch.full((m,), neg, device=device) if both else None
    b_blk = torch.zeros(m, dtype=torch.long, device=device) if both else None  # row-block holding each column's max
    buf = torch.empty(br * bc, dtype=dtype, device=device)
    n_tiles = math.ceil(n / br) * math.ceil(m / bc)
    bar = tqdm(total=n_tiles, desc="match dictionaries", unit="tile", disable=not progress or n_tiles < 4)
    with torch.no_grad():
        for i in range(0, n, br):
            Ai = A[i : i + br]
            for j in range(0, m, bc):
                Bj = B[j : j + bc]
                S = buf[: len(Ai) * len(Bj)].view(len(Ai), len(Bj))
                torch.mm(Ai, Bj.T, out=S)
                v, k = S.max(dim=1)  # along the contiguous axis: as cheap as the max alone
                v = v.float()
                upd = v > a_best[i : i + br]
                a_best[i : i + br] = torch.where(upd, v, a_best[i : i + br])
                a_idx[i : i + br] = torch.where(upd, k + j, a_idx[i : i + br])
                if b_best is not None and b_blk is not None:
                    # max over the strided axis *with* indices is ~10x slower than amax on CPU: keep only the value
                    # and the row block here, and recover the argmax afterwards (one tile-row of extra matmul)
                    cv = S.amax(dim=0).float()
                    cupd = cv > b_best[j : j + bc]
                    b_best[j : j + bc] = torch.where(cupd, cv, b_best[j : j + bc])
                    b_blk[j : j + bc] = torch.where(cupd, torch.full_like(b_blk[j : j + bc], i), b_blk[j : j + bc])
                bar.update(1)
        bar.close()
        b_idx = None
        if b_best is not None and b_blk is not None:
            b_idx = torch.zeros(m, dtype=torch.long, device=device)
            for i in range(0, n, br):
                cols = (b_blk == i).nonzero().flatten()
                for c in range(0, len(cols), bc):
                    cc = cols[c : c + bc]
                    v, k = torch.mm(B[cc], A[i : i + br].T).max(dim=1)
                    b_idx[cc] = k + i
                    b_best[cc] = v.float()
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
    return Matching(
        a_best.cpu(),
        a_idx.cpu(),
        None if b_best is None else b_best.cpu(),
        None if b_idx is None else b_idx.cpu(),
        seconds=time.perf_counter() - t0,
    )


def random_unit_dictionary(n: int, d: int, seed: int = 0) -> Float[Tensor, "n d"]:
    """``n`` random unit directions in ``d`` dimensions (the chance level of a best-cosine match)."""
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=-1)


def random_rotation(d: int, seed: int = 0) -> Float[Tensor, "d d"]:
    """A Haar-random orthogonal matrix (QR of a Gaussian matrix with the sign fix)."""
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))[None, :]
    return q.float()


def rotated_dictionary(W: Float[Tensor, "n d"], seed: int = 0) -> Float[Tensor, "n d"]:
    """``W`` rotated by a random orthogonal matrix: the same geometry among its own latents, aligned with nothing."""
    return W.detach().float() @ random_rotation(W.shape[1], seed)


def reuse_fraction(best_cos: Float[Tensor, " n"], threshold: float = 0.7) -> float:
    return float((best_cos >= threshold).float().mean()) if len(best_cos) else float("nan")


def cosine_histogram(best_cos: Float[Tensor, " n"], bins: int = 50) -> dict[str, list[float]]:
    edges = torch.linspace(-1, 1, bins + 1)
    counts = torch.histc(best_cos.float().clamp(-1, 1), bins=bins, min=-1, max=1)
    return {"edges": [round(float(e), 4) for e in edges], "counts": [int(c) for c in counts]}


def matching_report(
    post_W: Float[Tensor, "n_post d"],
    base_W: Float[Tensor, "n_base d"],
    *,
    threshold: float = 0.7,
    baselines: Sequence[str] = ("random", "rotated"),
    seed: int = 0,
    bins: int = 50,
    block_rows: int | None = None,
    block_cols: int | None = None,
    device: str | None = None,
    dtype: str = "float32",
    progress: bool = False,
    control_W: Tensor | None = None,
) -> tuple[dict[str, Any], Matching, dict[str, Tensor]]:
    """Match the post-trained dictionary against the base one (both directions) and against each baseline
    dictionary of the base's shape. Returns (report, matching, baseline best cosines of the post latents).

    ``control_W``: a second dictionary trained on the *base* model by the same recipe with another seed. Its latents'
    best cosines with the base dictionary are the ceiling of "reuse" when nothing changed but the SAE's training
    run (two SAEs of one model do not learn identical dictionaries); reported as baseline ``seed`` next to the
    lower baselines, and the post dictionary's reuse is also given relative to it."""
    kw: dict[str, Any] = dict(
        block_rows=block_rows, block_cols=block_cols, device=device, dtype=dtype, progress=progress
    )
    m = match_dictionaries(post_W, base_W, both=True, **kw)
    base_line: dict[str, Tensor] = {}
    for bl in baselines:
        ref = (
            random_unit_dictionary(base_W.shape[0], base_W.shape[1], seed)
            if bl == "random"
            else rotated_dictionary(base_W, seed)
        )
        base_line[bl] = match_dictionaries(post_W, ref, both=False, **kw).a_to_b_cos
    if control_W is not None:
        if control_W.shape[1] != base_W.shape[1]:
            raise StagesError(f"control dictionary width {control_W.shape[1]} != base width {base_W.shape[1]}")
        base_line["seed"] = match_dictionaries(control_W, base_W, both=False, **kw).a_to_b_cos
    assert m.b_to_a_cos is not None
    new = (m.a_to_b_cos < threshold).nonzero().flatten()
    lost = (m.b_to_a_cos < threshold).nonzero().flatten()
    rep = {
        "threshold": threshold,
        "n_post_latents": int(post_W.shape[0]),
        "n_base_latents": int(base_W.shape[0]),
        "fraction_post_reused": reuse_fraction(m.a_to_b_cos, threshold),
        "fraction_base_kept": reuse_fraction(m.b_to_a_cos, threshold),
        "n_new": int(len(new)),
        "n_lost": int(len(lost)),
        "median_best_cos_post_to_base": float(m.a_to_b_cos.median()),
        "median_best_cos_base_to_post": float(m.b_to_a_cos.median()),
        "baselines": {
            bl: {
                "fraction_post_reused": reuse_fraction(c, threshold),
                "median_best_cos": float(c.median()),
                "max_best_cos": float(c.max()),
                "what": {
                    "random": "random unit directions, same count and width as the base dictionary",
                    "rotated": "the base dictionary under a random rotation",
                    "seed": "a second SAE of the BASE model (same recipe, other seed) matched "
                    "against the base SAE: the ceiling when only the SAE run differs",
                }[bl],
            }
            for bl, c in base_line.items()
        },
        "histograms": {
            "post_to_base": cosine_histogram(m.a_to_b_cos, bins),
            "base_to_post": cosine_histogram(m.b_to_a_cos, bins),
            **{f"post_to_{bl}": cosine_histogram(c, bins) for bl, c in base_line.items()},
        },
        "seconds": m.seconds,
    }
    if "seed" in base_line:
        ceil = reuse_fraction(base_line["seed"], threshold)
        rep["fraction_post_reused_relative_to_seed_ceiling"] = (
            rep["fraction_post_reused"] / ceil if ceil > 0 else float("nan")
        )
    return rep, m, base_line
