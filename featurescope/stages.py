"""Feature reuse across training stages: what a base checkpoint's features become after post-training.

Given a base checkpoint, a post-trained checkpoint of the same architecture (same tokenizer), one hook and an SAE
for each stage, :func:`run_stages` measures five things and writes ``summary.json``, figures and ``cards.html``:

1. **SAE transfer** (Kissane et al. 2024): each SAE evaluated on both models' activations over the *same token ids*
   - held-out corpus text and chat-formatted held-out dialogues - with fraction of variance explained, CE-loss
   recovered and L0 (BOS / padding and the top 1% activation norms excluded, via :mod:`featurescope.saes`).
2. **Feature matching**: for every post-SAE latent the best decoder cosine with any base-SAE latent (and vice
   versa), computed in tiles that never materialise the ``n x m`` matrix (:func:`match_dictionaries`); the fraction
   reused (best cosine >= ``reuse_threshold``) next to random-dictionary baselines; unmatched ("new") latents with
   feature cards.
3. **Activation shift**: per latent, firing frequency and mean activation on Assistant-turn tokens in both models;
   the most up- and down-regulated latents, with cards.
4. **Persona vectors across stages**: per layer, the cosine between the base and the post-trained vector of each
   shipped trait, and the overlap of their top SAE features (decoder cosine, :mod:`featurescope.decompose`).
5. **Crosscoder model diff** (Minder et al. 2025): relative decoder norm classification (base-only / shared /
   post-only) and the Latent Scaling check against false post-only latents. No crosscoder library fits this
   project's pins (see :data:`CROSSCODER_STATUS`), so these are pure functions over decoder tensors and activations
   (:func:`relative_decoder_norm`, :func:`classify_latents`, :func:`latent_scaling`) plus a loader for the two common
   crosscoder checkpoint layouts (:func:`load_crosscoder`); :func:`run_stages` analyses a crosscoder when one is given.

The functions over tensors are pure; the model-driving ones (``prepare_*``, ``transfer_*``, ``persona_*``) and
:func:`run_stages` do the I/O.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import einops
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from .configs import Config
from .errors import FeaturescopeError

PARTS: tuple[str, ...] = ("transfer", "matching", "shift", "persona", "crosscoder")

#: Why no crosscoder is trained here (checked against the project's pins; see the module docstring).
CROSSCODER_STATUS = (
    "no crosscoder library fits: PyPI 'dictionary-learning' (0.1.0, the only release) has no CrossCoder class (the "
    "crosscoder code lives only in a GitHub fork that is not on PyPI), and installing it would replace torch "
    "2.13.0+cpu with torch 2.14.1 plus ~3 GB of CUDA wheels (via its pin nnsight>=0.3,<0.4, which requires "
    "torchvision and diffusers); sae-lens 6.54, transformer-lens 3.9 and eai-sparsify 1.3 have no crosscoder. "
    "featurescope therefore analyses a crosscoder trained elsewhere (load_crosscoder: dictionary_learning CrossCoder "
    "or Kissane/Nanda-style state dicts) and does not train one."
)


class StagesError(FeaturescopeError):
    """Bad input to the cross-stage analysis."""


class DictionaryMismatchError(StagesError):
    """Two dictionaries (or a dictionary and activations) do not share a width."""


class StageMismatchError(StagesError):
    """The base and post-trained checkpoints cannot be compared token for token."""


# ----------------------------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class StagesConfig(Config):
    """Everything :func:`run_stages` can be told. Defaults fit a 270M model on a 2-core CPU in under 15 minutes."""

    parts: tuple[str, ...] = PARTS
    seed: int = 0
    # texts
    context: int = 128  # tokens per row (plain corpus rows and packed chat rows)
    plain_rows: int = 48  # held-out corpus rows
    chat_dialogues: int = 60  # held-out dialogues (featurescope/data/dialogues/heldout.jsonl)
    max_new_tokens: int = 48  # greedy responses of the post-trained model to the held-out prompts
    batch_size: int = 16
    # transfer
    ce_rows: int = 12  # rows per (SAE, model, text set) for CE-loss recovered (3 full forwards each)
    ce_batch: int = 4  # rows per CE forward (three full-vocabulary logit tensors are held at once)
    outlier_quantile: float = 0.01
    # matching
    reuse_threshold: float = 0.7
    baselines: tuple[str, ...] = ("random", "rotated")
    block_rows: int | None = None  # None: featurescope.stages.default_blocks (CPU 1024 x 16384, GPU 8192 x 65536)
    block_cols: int | None = None
    match_dtype: str = "float32"  # "bfloat16" on a GPU for 1M-latent dictionaries
    hist_bins: int = 50
    # activation shift and cards
    shift_rank_by: Literal["frequency", "mean_activation"] = "frequency"
    top_k_shift: int = 20
    n_cards: int = 6
    card_plain_rows: int = 16
    # persona vectors
    traits: tuple[str, ...] = ()  # () = every shipped trait
    persona_questions: int = 5
    persona_kind: Literal["prompt_mean", "last_prompt"] = "prompt_mean"
    persona_format: Literal["own", "post"] = "own"  # each model's own format, or the post model's token ids for both
    persona_top_k: int = 20
    # crosscoder
    base_only_max: float = 0.1
    post_only_min: float = 0.9
    nu_max: float = 0.2  # Latent Scaling: a post-only latent is kept when nu (base/post beta) is below this

    def __post_init__(self) -> None:
        bad = set(self.parts) - set(PARTS)
        if bad:
            raise StagesError(f"unknown part(s) {sorted(bad)}; choose from {', '.join(PARTS)}")
        if not 0 < self.reuse_threshold <= 1:
            raise StagesError(f"reuse_threshold must be in (0, 1], got {self.reuse_threshold}")
        if set(self.baselines) - {"random", "rotated"}:
            raise StagesError(f"unknown baseline(s) in {self.baselines}; use 'random' and/or 'rotated'")
        if not 0 <= self.base_only_max < self.post_only_min <= 1:
            raise StagesError("need 0 <= base_only_max < post_only_min <= 1")


# ----------------------------------------------------------------------------------------------------------------
# Feature matching (pure)
# ----------------------------------------------------------------------------------------------------------------
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
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
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


# ----------------------------------------------------------------------------------------------------------------
# Activation shift (pure)
# ----------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class FeatureActivity:
    """Per-latent firing frequency and mean activation over a token set."""

    frequency: Float[Tensor, " n_latents"]
    mean: Float[Tensor, " n_latents"]  # over all tokens (zeros included)
    mean_when_active: Float[Tensor, " n_latents"]
    n_tokens: int


def encode_stats(
    encode: Callable[[Tensor], Tensor], acts: Float[Tensor, "n d"], n_latents: int, *, batch_size: int = 1024
) -> FeatureActivity:
    """Firing frequency and mean activation of every latent of ``encode`` (e.g. ``sae.encode``) over ``acts``."""
    fires = torch.zeros(n_latents, dtype=torch.float64)
    total = torch.zeros(n_latents, dtype=torch.float64)
    with torch.no_grad():
        for i in range(0, len(acts), batch_size):
            f = encode(acts[i : i + batch_size]).float()
            fires += (f > 0).sum(0).double().cpu()
            total += f.sum(0).double().cpu()
    n = max(len(acts), 1)
    return FeatureActivity((fires / n).float(), (total / n).float(), (total / fires.clamp(min=1)).float(), len(acts))


def activation_shift(
    base: FeatureActivity, post: FeatureActivity, *, k: int = 20, rank_by: str = "frequency"
) -> dict[str, Any]:
    """Most up- and down-regulated latents from ``base`` to ``post`` activity (same latents, same tokens), ranked by
    the change in firing frequency (scale-free) or in mean activation."""
    if len(base.frequency) != len(post.frequency):
        raise DictionaryMismatchError(f"activity of {len(base.frequency)} vs {len(post.frequency)} latents")
    d_freq = post.frequency - base.frequency
    d_mean = post.mean - base.mean
    key = d_freq if rank_by == "frequency" else d_mean
    k = min(k, len(key))
    up = key.topk(k).indices
    down = (-key).topk(k).indices

    def rows(idx: Tensor) -> list[dict[str, Any]]:
        return [
            {
                "latent": int(i),
                "freq_base": float(base.frequency[i]),
                "freq_post": float(post.frequency[i]),
                "mean_base": float(base.mean[i]),
                "mean_post": float(post.mean[i]),
                "delta_freq": float(d_freq[i]),
                "delta_mean": float(d_mean[i]),
            }
            for i in idx
        ]

    alive_b, alive_p = base.frequency > 0, post.frequency > 0
    return {
        "rank_by": rank_by,
        "n_tokens": {"base": base.n_tokens, "post": post.n_tokens},
        "up": rows(up[key[up] > 0]),
        "down": rows(down[key[down] < 0]),
        "alive_base_only": int((alive_b & ~alive_p).sum()),
        "alive_post_only": int((alive_p & ~alive_b).sum()),
        "alive_both": int((alive_b & alive_p).sum()),
        "frequency_correlation": _pearson(base.frequency, post.frequency),
        "mean_abs_delta_freq": float(d_freq.abs().mean()),
    }


def _pearson(x: Tensor, y: Tensor) -> float:
    x, y = x.double() - x.double().mean(), y.double() - y.double().mean()
    d = x.norm() * y.norm()
    return float(x @ y / d) if d > 0 else float("nan")


# ----------------------------------------------------------------------------------------------------------------
# Persona vectors across stages (pure)
# ----------------------------------------------------------------------------------------------------------------
def layer_cosines(v_base: Float[Tensor, "layer d"], v_post: Float[Tensor, "layer d"]) -> Float[Tensor, " layer"]:
    if v_base.shape != v_post.shape:
        raise DictionaryMismatchError(f"persona vectors of shape {tuple(v_base.shape)} vs {tuple(v_post.shape)}")
    return torch.nn.functional.cosine_similarity(v_base.float(), v_post.float(), dim=-1)


def top_features(v: Float[Tensor, " d"], W_dec: Float[Tensor, "n d"], k: int) -> list[int]:
    from .decompose import by_cosine

    return by_cosine(v, W_dec, k=k).indices[:k].tolist()


def feature_overlap(a: Sequence[int], b: Sequence[int]) -> dict[str, Any]:
    sa, sb = set(a), set(b)
    return {"jaccard": len(sa & sb) / max(len(sa | sb), 1), "shared": sorted(sa & sb), "n": max(len(sa), len(sb))}


def matched_overlap(
    top_base: Sequence[int],
    top_post: Sequence[int],
    base_to_post_idx: Int[Tensor, " n_base"],
    base_to_post_cos: Float[Tensor, " n_base"],
    threshold: float,
) -> dict[str, Any]:
    """Overlap of a base-SAE feature list and a post-SAE feature list, via the decoder matching (a base feature
    counts as its best post match when their cosine clears ``threshold``)."""
    mapped = [int(base_to_post_idx[i]) for i in top_base if float(base_to_post_cos[i]) >= threshold]
    sp = set(top_post)
    hit = sorted({m for m in mapped if m in sp})
    return {
        "fraction_of_base_top_matched": len(mapped) / max(len(top_base), 1),
        "fraction_of_post_top_hit": len(hit) / max(len(sp), 1),
        "shared_post_latents": hit,
    }


# ----------------------------------------------------------------------------------------------------------------
# Crosscoder model diff (pure): relative decoder norm + Latent Scaling (Minder et al. 2025)
# ----------------------------------------------------------------------------------------------------------------
def relative_decoder_norm(
    d_base: Float[Tensor, "n d"],
    d_post: Float[Tensor, "n_post d_post"],  # must equal d_base's shape: checked with a clear error
) -> Float[Tensor, " n"]:
    """r = ||d_post|| / (||d_base|| + ||d_post||) per latent (0: base-only, 0.5: equal, 1: post-only)."""
    if d_base.shape != d_post.shape:
        raise DictionaryMismatchError(f"crosscoder decoders of shape {tuple(d_base.shape)} vs {tuple(d_post.shape)}")
    nb, npost = d_base.float().norm(dim=-1), d_post.float().norm(dim=-1)
    return npost / (nb + npost).clamp(min=1e-12)


def classify_latents(
    r: Float[Tensor, " n"], base_only_max: float = 0.1, post_only_min: float = 0.9
) -> dict[str, Int[Tensor, " k"]]:
    """Split latents by relative norm: base-only (r < base_only_max), post-only (r > post_only_min), shared."""
    base_only = r < base_only_max
    post_only = r > post_only_min
    return {
        "base_only": base_only.nonzero().flatten(),
        "post_only": post_only.nonzero().flatten(),
        "shared": (~base_only & ~post_only).nonzero().flatten(),
    }


@dataclasses.dataclass
class ScalingSums:
    """Running sums for :func:`latent_scaling` (accumulate over token chunks, then call ``betas``)."""

    num_err: Float[Tensor, "2 k"]  # per model (0 = base, 1 = post)
    num_rec: Float[Tensor, "2 k"]
    den: Float[Tensor, " k"]

    def betas(self) -> dict[str, Tensor]:
        den = self.den.clamp(min=1e-30)
        b_err, b_rec = self.num_err / den, self.num_rec / den
        dead = self.den <= 0
        out = {
            "beta_error_base": b_err[0],
            "beta_error_post": b_err[1],
            "beta_recon_base": b_rec[0],
            "beta_recon_post": b_rec[1],
        }
        out = {k: torch.where(dead, torch.full_like(v, float("nan")), v) for k, v in out.items()}
        out["nu_error"] = out["beta_error_base"] / out["beta_error_post"]
        out["nu_recon"] = out["beta_recon_base"] / out["beta_recon_post"]
        return out


def latent_scaling_sums(
    f: Float[Tensor, "n k"],
    direction: Float[Tensor, "k d"],
    acts: Float[Tensor, "2 n d"],
    recon: Float[Tensor, "2 n d"],
    own_decoder: Float[Tensor, "2 k d"],
) -> ScalingSums:
    """Sufficient statistics of the Latent Scaling fits for one chunk of tokens.

    For latent j with activation f_j(x) and direction d_j (the post-trained decoder row, Minder et al.), and model m
    with activation h_m(x), crosscoder reconstruction r_m(x) and own decoder row d_j^m, the least-squares scale

        beta_m = argmin_b sum_x || b f_j(x) d_j - y_m(x) ||^2 = sum_x f_j(x) <d_j, y_m(x)> / (||d_j||^2 sum_x f_j(x)^2)

    is fitted for two targets that leave latent j's own contribution out:
    *error*: y = h_m - r_m + f_j d_j^m (what the rest of the crosscoder misses; catches Complete Shrinkage), and
    *reconstruction*: y = r_m - f_j d_j^m (what other latents already encode; catches Latent Decoupling).
    nu = beta_base / beta_post; a true post-only latent has nu ~ 0 on both."""
    f = f.float()
    D = direction.float()
    f2 = (f * f).sum(0)  # [k]
    dn2 = (D * D).sum(-1)  # [k]
    num_err = torch.zeros(2, D.shape[0])
    num_rec = torch.zeros(2, D.shape[0])
    for m in range(2):
        self_dot = (own_decoder[m].float() * D).sum(-1)  # <d_j^m, d_j>
        err_proj = (acts[m].float() - recon[m].float()) @ D.T  # [n, k]
        rec_proj = recon[m].float() @ D.T
        num_err[m] = (f * err_proj).sum(0) + f2 * self_dot
        num_rec[m] = (f * rec_proj).sum(0) - f2 * self_dot
    return ScalingSums(num_err, num_rec, dn2 * f2)


def latent_scaling(
    f: Float[Tensor, "n k"],
    direction: Float[Tensor, "k d"],
    acts: Float[Tensor, "2 n d"],
    recon: Float[Tensor, "2 n d"],
    own_decoder: Float[Tensor, "2 k d"],
) -> dict[str, Tensor]:
    """Latent Scaling betas and nu ratios in one call (see :func:`latent_scaling_sums`)."""
    return latent_scaling_sums(f, direction, acts, recon, own_decoder).betas()


@dataclasses.dataclass
class CrosscoderWeights:
    """A two-model crosscoder: model 0 = base, 1 = post-trained. ``encode`` is ReLU (optionally JumpReLU thresholds
    or per-token top-k), the architectures the two common checkpoint layouts use."""

    W_enc: Float[Tensor, "2 d n"]
    b_enc: Float[Tensor, " n"]
    W_dec: Float[Tensor, "2 n d"]
    b_dec: Float[Tensor, "2 d"]
    threshold: Float[Tensor, " n"] | None = None
    k: int | None = None
    source: str = ""

    @property
    def n_latents(self) -> int:
        return int(self.W_dec.shape[1])

    def encode(self, x: Float[Tensor, "batch 2 d"]) -> Float[Tensor, "batch n"]:
        pre = einops.einsum(x.float(), self.W_enc.float(), "b m d, m d n -> b n") + self.b_enc.float()
        f = torch.relu(pre)
        if self.threshold is not None:
            f = f * (pre > self.threshold.float())
        if self.k is not None and self.k < f.shape[-1]:
            top = f.topk(self.k, dim=-1)
            f = torch.zeros_like(f).scatter_(-1, top.indices, top.values)
        return f

    def decode(self, f: Float[Tensor, "batch n"]) -> Float[Tensor, "2 batch d"]:
        return einops.einsum(f.float(), self.W_dec.float(), "b n, m n d -> m b d") + self.b_dec.float()[:, None, :]


def load_crosscoder(path: str | Path, *, base_index: int = 0) -> CrosscoderWeights:
    """Read a two-model crosscoder from ``.safetensors`` / ``.pt``: the ``dictionary_learning`` CrossCoder layout
    (``encoder.weight [2, d, n]``, ``decoder.weight [2, n, d]``, ``encoder.bias``, ``decoder.bias``, optional
    ``threshold`` / ``k``) or the Kissane / Nanda replication layout (``W_enc [2, d, n]``, ``W_dec [n, 2, d]``,
    ``b_enc``, ``b_dec``). ``base_index`` says which of the two models is the base."""
    p = Path(path)
    if not p.exists():
        raise StagesError(f"no crosscoder file at {p}")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        sd = load_file(str(p))
    else:
        sd = torch.load(p, map_location="cpu", weights_only=True)
        sd = sd.get("state_dict", sd) if isinstance(sd, dict) else sd
    order = [base_index, 1 - base_index]
    if "decoder.weight" in sd:
        W_enc, W_dec = sd["encoder.weight"], sd["decoder.weight"]
        b_enc, b_dec = sd["encoder.bias"], sd["decoder.bias"]
    elif "W_dec" in sd:
        W_enc, b_enc, b_dec = sd["W_enc"], sd["b_enc"], sd["b_dec"]
        W_dec = einops.rearrange(sd["W_dec"], "n m d -> m n d")
    else:
        raise StagesError(
            f"{p}: not a crosscoder state dict I know (keys {sorted(sd)[:8]}...); expected "
            "dictionary_learning's encoder.weight/decoder.weight or W_enc/W_dec/b_enc/b_dec"
        )
    if W_dec.ndim != 3 or W_dec.shape[0] != 2 or W_enc.shape[0] != 2:
        raise StagesError(f"{p}: expected a crosscoder over 2 models, got decoder shape {tuple(W_dec.shape)}")
    k = sd.get("k")
    thr = sd.get("threshold")
    if thr is not None and thr.ndim == 0:
        thr = thr.expand(W_dec.shape[1])
    if thr is not None and bool((thr < 0).all()):
        thr = None  # dictionary_learning stores threshold = -1 until it is calibrated
    return CrosscoderWeights(
        W_enc=W_enc[order].float(),
        b_enc=b_enc.float(),
        W_dec=W_dec[order].float(),
        b_dec=b_dec[order].float(),
        threshold=None if thr is None else thr.float(),
        k=None if k is None else int(k),
        source=str(p),
    )


def crosscoder_report(
    cc: CrosscoderWeights,
    acts_base: Float[Tensor, "n d"],
    acts_post: Float[Tensor, "n d"],
    *,
    base_only_max: float = 0.1,
    post_only_min: float = 0.9,
    nu_max: float = 0.2,
    batch_size: int = 1024,
    progress: bool = False,
) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Relative-norm classes and Latent Scaling of every post-only latent (and of the shared ones, as the reference
    distribution) over paired activations of the two models on the same tokens."""
    if acts_base.shape != acts_post.shape:
        raise StageMismatchError(f"paired activations must match: {tuple(acts_base.shape)} vs {tuple(acts_post.shape)}")
    if acts_base.shape[-1] != cc.W_dec.shape[-1]:
        raise DictionaryMismatchError(
            f"the crosscoder decodes d_model {cc.W_dec.shape[-1]}, activations have {acts_base.shape[-1]}"
        )
    r = relative_decoder_norm(cc.W_dec[0], cc.W_dec[1])
    cls = classify_latents(r, base_only_max, post_only_min)
    test = torch.cat([cls["post_only"], cls["shared"]])
    D = cc.W_dec[1][test]
    own = cc.W_dec[:, test]
    sums = ScalingSums(torch.zeros(2, len(test)), torch.zeros(2, len(test)), torch.zeros(len(test)))
    fires = torch.zeros(cc.n_latents)
    with torch.no_grad():
        for i in tqdm(range(0, len(acts_base), batch_size), desc="latent scaling", disable=not progress):
            x = torch.stack([acts_base[i : i + batch_size], acts_post[i : i + batch_size]], 1).float()
            f = cc.encode(x)
            fires += (f > 0).sum(0).float()
            rec = cc.decode(f)
            s = latent_scaling_sums(f[:, test], D, einops.rearrange(x, "b m d -> m b d"), rec, own)
            sums.num_err += s.num_err
            sums.num_rec += s.num_rec
            sums.den += s.den
    betas = sums.betas()
    n_post = len(cls["post_only"])
    nu_e, nu_r = betas["nu_error"][:n_post], betas["nu_recon"][:n_post]
    true_post = (nu_e < nu_max) & (nu_r < nu_max)
    dead = torch.isnan(nu_e) | torch.isnan(nu_r)
    rep = {
        "n_latents": cc.n_latents,
        "source": cc.source,
        "thresholds": {"base_only_r_below": base_only_max, "post_only_r_above": post_only_min, "nu_max": nu_max},
        "counts": {k: int(len(v)) for k, v in cls.items()},
        "post_only_passing_latent_scaling": int(true_post.sum()),
        "post_only_flagged_as_artifacts": int((~true_post & ~dead).sum()),
        "post_only_never_active": int(dead.sum()),
        "true_post_only_latents": cls["post_only"][true_post].tolist()[:200],
        "flagged_post_only_latents": cls["post_only"][~true_post & ~dead].tolist()[:200],
        "nu_error_median": {"post_only": _nanmedian(nu_e), "shared": _nanmedian(betas["nu_error"][n_post:])},
        "nu_recon_median": {"post_only": _nanmedian(nu_r), "shared": _nanmedian(betas["nu_recon"][n_post:])},
        "relative_norm_hist": cosine_histogram(r * 2 - 1, 20) | {"note": "edges over 2r-1; r = (edge + 1) / 2"},
        "n_tokens": int(len(acts_base)),
    }
    return rep, {"relative_norm": r, "tested_latents": test, "firing_counts": fires, **betas}


def _nanmedian(x: Tensor) -> float | None:
    x = x[~torch.isnan(x)]
    return float(x.median()) if len(x) else None


# ----------------------------------------------------------------------------------------------------------------
# Texts: held-out corpus rows and packed chat rows (I/O)
# ----------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class TokenRows:
    """``[n, context]`` token rows (each starting with BOS) with a role id per token (3 = Assistant)."""

    tokens: Int[Tensor, "n ctx"]
    role_ids: Int[Tensor, "n ctx"]
    description: str


def pack_conversations(prompts: Sequence[Any], context: int, bos_id: int | None) -> TokenRows:
    """Concatenate formatted conversations (token ids + role ids, each with its own BOS) and cut the stream into
    ``context``-token rows that each start with BOS, as :func:`featurescope.corpus.token_sequences` packs documents.
    No padding, so CE-loss over whole rows is well defined. A partial last row is dropped unless it is the only one."""
    toks = torch.cat([p.tokens for p in prompts])
    roles = torch.cat([p.role_ids for p in prompts])
    lead = 1 if bos_id is not None else 0
    body = context - lead
    n = len(toks) // body
    if n == 0:
        raise StagesError(f"the conversations hold {len(toks)} tokens, fewer than one row of {context}")
    toks = einops.rearrange(toks[: n * body], "(n p) -> n p", p=body)
    roles = einops.rearrange(roles[: n * body], "(n p) -> n p", p=body)
    if lead:
        toks = torch.cat([torch.full((n, 1), bos_id, dtype=torch.long), toks], 1)
        roles = torch.cat([torch.zeros((n, 1), dtype=torch.long), roles], 1)
    return TokenRows(toks, roles, f"{len(prompts)} conversations packed into {n} rows of {context} tokens")


def heldout_dialogues(n: int | None = None) -> list[list[dict[str, str]]]:
    path = Path(__file__).parent / "data" / "dialogues" / "heldout.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return [r["messages"] for r in rows[:n]]


def prepare_chat_rows(
    post_model: Any,
    *,
    n_dialogues: int = 60,
    max_new_tokens: int = 48,
    context: int = 128,
    conversations: Sequence[Any] | None = None,
    batch_size: int = 8,
    progress: bool = True,
) -> tuple[TokenRows, list[dict[str, Any]]]:
    """Chat-formatted rows in the post-trained model's template. ``conversations`` ending with an assistant turn are
    used as they are; otherwise the post-trained model answers the held-out prompts (greedy) first."""
    from .formatting import format_conversation
    from .generate import generate

    if conversations is None:
        prompts = heldout_dialogues(n_dialogues)
        gens = generate(post_model, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress)
        fps = [g.formatted for g in gens if g.formatted is not None]
        rows = [
            {"prompt": p[-1]["content"], "response": g.response, "new_tokens": g.new_tokens, "stopped": g.stopped}
            for p, g in zip(prompts, gens)
        ]
        src = (
            f"featurescope/data/dialogues/heldout.jsonl ({len(prompts)} prompts) with greedy responses of "
            f"{post_model.name} (max {max_new_tokens} new tokens)"
        )
    else:
        fps = [format_conversation(post_model, c, kind="chat") for c in conversations]
        rows = [{"messages": [dataclasses.asdict(m) for m in fp.messages]} for fp in fps]
        src = f"{len(fps)} given conversations"
    if not fps:
        raise StagesError("no chat conversations to evaluate on (every generated response was empty)")
    packed = pack_conversations(fps, context, post_model.tokenizer.bos_token_id)
    packed.description = (
        f"{src}; formatted with {post_model.name}'s chat template; {packed.description}; the base "
        "model is evaluated on these same token ids"
    )
    return packed, rows


def prepare_plain_rows(tokenizer: Any, *, n_rows: int = 48, context: int = 128, seed: int = 1) -> TokenRows:
    """Held-out rows of the offline corpus (:mod:`featurescope.corpus`)."""
    from . import corpus

    if hasattr(corpus, "sequences"):
        toks = corpus.sequences(tokenizer, "heldout", context_size=context, max_sequences=n_rows, seed=seed)
    else:
        corpus.ensure_installed()
        toks = corpus.token_sequences(
            tokenizer, corpus.documents("heldout"), context_size=context, max_sequences=n_rows, seed=seed
        )
    return TokenRows(
        toks.long(),
        torch.zeros_like(toks, dtype=torch.long),
        f"{len(toks)} held-out rows of {context} tokens of the offline corpus (python-docs, fortunes, "
        f"dialogues; seed {seed})",
    )


def check_pair(base_model: Any, post_model: Any, hook: str) -> None:
    """Both checkpoints must share the tokenizer (to evaluate on the same token ids), the width and the hook."""
    if base_model.d_model != post_model.d_model:
        raise StageMismatchError(
            f"{base_model.name} has d_model {base_model.d_model} but {post_model.name} has "
            f"{post_model.d_model}: not two checkpoints of one architecture"
        )
    if base_model.n_layers != post_model.n_layers:
        raise StageMismatchError(
            f"{base_model.name} has {base_model.n_layers} layers, {post_model.name} {post_model.n_layers}"
        )
    tb, tp = base_model.tokenizer, post_model.tokenizer
    probe = "The Assistant said: hello, world! 42 <start_of_turn>"
    if (
        len(tb) != len(tp)
        or tb(probe, add_special_tokens=False)["input_ids"] != tp(probe, add_special_tokens=False)["input_ids"]
    ):
        raise StageMismatchError(
            f"{base_model.name} and {post_model.name} tokenize differently; the stages comparison "
            "evaluates both on the same token ids and needs one tokenizer"
        )
    base_model.check_hook(hook)
    post_model.check_hook(hook)


def capture_rows(model: Any, rows: TokenRows, hook: str, batch_size: int = 16) -> tuple[Tensor, Tensor, Tensor]:
    """Activations at ``hook`` for every token of ``rows`` -> (acts [n*ctx, d], role ids, keep mask excluding BOS and
    padding, as :func:`featurescope.saes.evaluate_sae` does)."""
    from .capture import capture
    from .formatting import FormattedPrompt

    prompts = [
        FormattedPrompt(
            text="",
            tokens=t,
            role_ids=r,
            last_prompt_index=len(t) - 1,
            kind="transcript",
            messages=[],
            has_response=False,
        )
        for t, r in zip(rows.tokens, rows.role_ids)
    ]
    acts = capture(model, prompts, [hook], reduction="all", batch_size=batch_size, progress=False)[hook]
    flat = rows.tokens.reshape(-1)
    keep = torch.ones(len(flat), dtype=torch.bool)
    for t in {model.tokenizer.bos_token_id, model.tokenizer.pad_token_id} - {None}:
        keep &= flat != t
    return acts, rows.role_ids.reshape(-1), keep


# ----------------------------------------------------------------------------------------------------------------
# SAE transfer (drives the models)
# ----------------------------------------------------------------------------------------------------------------
def transfer_metrics(
    sae: Any,
    model: Any,
    rows: TokenRows,
    acts: Float[Tensor, "n d"],
    keep: Bool[Tensor, " n"],
    hook: str,
    *,
    ce_rows: int = 12,
    ce_batch: int = 4,
    outlier_quantile: float = 0.01,
) -> dict[str, Any]:
    """:func:`featurescope.saes.reconstruction_metrics` on the kept activations and
    :func:`featurescope.saes.ce_loss_recovered` on the first ``ce_rows`` rows (averaged over batches as
    :func:`featurescope.saes.evaluate_sae` does). CE batches are small: sae-lens holds three full-vocabulary logit
    tensors at once (3 x 16 x 128 x 262k fp32 = 6 GB for Gemma at batch 16)."""
    from .saes import ce_loss_recovered, check_sae, reconstruction_metrics

    check_sae(sae, model, hook, allow_other_model=True)
    rec = reconstruction_metrics(sae, acts[keep], outlier_quantile=outlier_quantile)
    rec.pop("firing_counts")
    out: dict[str, Any] = {**rec, "n_special_excluded": int((~keep).sum())}
    if ce_rows > 0:
        ce = [
            ce_loss_recovered(sae, model, rows.tokens[i : min(i + ce_batch, ce_rows)], hook)
            for i in range(0, min(ce_rows, len(rows.tokens)), ce_batch)
        ]
        m = {k: sum(c[k] for c in ce) / len(ce) for k in ("ce_clean", "ce_with_sae", "ce_zero_ablation")}
        den = m["ce_zero_ablation"] - m["ce_clean"]
        m["ce_loss_recovered"] = (m["ce_zero_ablation"] - m["ce_with_sae"]) / den if den != 0 else float("nan")
        out.update(m, ce_rows=min(ce_rows, len(rows.tokens)))
    return out


# ----------------------------------------------------------------------------------------------------------------
# Persona vectors across stages (drives the models)
# ----------------------------------------------------------------------------------------------------------------
def trait_prompt_pairs(trait: Any, n_questions: int) -> tuple[list[list[dict[str, str]]], list[list[dict[str, str]]]]:
    """Every instruction pair x the first ``n_questions`` extraction questions, as (positive, negative) prompts with
    the instruction as the system prompt (no generation: a prompt-side persona vector)."""
    pos, neg = [], []
    for pair in trait.instructions:
        for q in trait.extraction_questions[:n_questions]:
            pos.append([{"role": "system", "content": pair.pos}, {"role": "user", "content": q}])
            neg.append([{"role": "system", "content": pair.neg}, {"role": "user", "content": q}])
    return pos, neg


def prompt_persona_vectors(
    base_model: Any,
    post_model: Any,
    traits: Sequence[str],
    *,
    n_questions: int = 5,
    kind: str = "prompt_mean",
    fmt: str = "own",
    batch_size: int = 16,
    progress: bool = True,
) -> dict[str, dict[str, Tensor]]:
    """Prompt-side persona vectors (mean over prompt tokens, or the last prompt token, of the positive-instruction
    prompts minus the negative ones; Chen et al.'s prompt-based variant) at every layer of both models.
    ``fmt="own"``: each model in its own format (chat template / base transcript), as ``persona extract`` does;
    ``fmt="post"``: both on the post-trained model's token ids. Returns ``{trait: {"base": [L, d], "post": [L, d]}}``."""
    from .capture import capture, default_hooks
    from .formatting import format_conversation
    from .persona import mean_difference
    from .traits import load_trait

    out: dict[str, dict[str, Tensor]] = {}
    for name in tqdm(traits, desc="persona vectors", disable=not progress):
        tr = load_trait(name)
        pos, neg = trait_prompt_pairs(tr, n_questions)
        out[name] = {}
        for stage, model in (("base", base_model), ("post", post_model)):
            hooks = default_hooks(model)
            sides = {}
            for side, convs in (("pos", pos), ("neg", neg)):
                prompts = [format_conversation(post_model, c) for c in convs] if fmt == "post" else convs
                a = capture(model, prompts, hooks, reduction=kind, batch_size=batch_size, progress=False)
                sides[side] = einops.rearrange(a.stacked(), "layer n d -> n layer d")
            out[name][stage] = mean_difference(sides["pos"], sides["neg"])
    return out


def load_persona_vectors(
    base_dir: str | Path, post_dir: str | Path, traits: Sequence[str], kind: str = "response_mean"
) -> dict[str, dict[str, Tensor]]:
    """Persona vectors written by ``featurescope persona extract/run`` (``{trait}.{kind}.safetensors``) for both
    stages; traits missing on either side are skipped."""
    from .persona import PersonaVector

    out = {}
    for t in traits:
        pb, pp = Path(base_dir) / f"{t}.{kind}.safetensors", Path(post_dir) / f"{t}.{kind}.safetensors"
        if pb.exists() and pp.exists():
            out[t] = {"base": PersonaVector.load(pb).vectors, "post": PersonaVector.load(pp).vectors}
    if not out:
        raise StagesError(f"no {kind} persona vectors found for both stages in {base_dir} and {post_dir}")
    return out


def persona_report(
    vectors: Mapping[str, Mapping[str, Tensor]],
    layer: int,
    base_W: Tensor,
    post_W: Tensor,
    matching: Matching | None,
    *,
    k: int = 20,
    threshold: float = 0.7,
) -> dict[str, Any]:
    """Per trait: cosine between stages per layer; at ``layer``, the overlap of the top-k decoder-cosine features of
    the two vectors in the base SAE, in the post SAE, and across the two SAEs through the decoder matching."""
    from .decompose import by_cosine

    rep: dict[str, Any] = {}
    for t, v in vectors.items():
        cos = layer_cosines(v["base"], v["post"])
        vb, vp = v["base"][layer], v["post"][layer]
        tb_b, tp_b = top_features(vb, base_W, k), top_features(vp, base_W, k)
        tb_p, tp_p = top_features(vb, post_W, k), top_features(vp, post_W, k)
        r: dict[str, Any] = {
            "cosine_per_layer": [round(float(c), 4) for c in cos],
            "cosine_at_layer": float(cos[layer]),
            "norm_base": float(vb.norm()),
            "norm_post": float(vp.norm()),
            "top_features_base_sae": {"base_vector": tb_b, "post_vector": tp_b, **feature_overlap(tb_b, tp_b)},
            "top_features_post_sae": {"base_vector": tb_p, "post_vector": tp_p, **feature_overlap(tb_p, tp_p)},
            "k_for_50pct": {
                "base_vector_in_base_sae": by_cosine(vb, base_W, k=k).k_for(0.5),
                "post_vector_in_post_sae": by_cosine(vp, post_W, k=k).k_for(0.5),
            },
        }
        if matching is not None and matching.b_to_a_idx is not None:
            r["across_saes"] = matched_overlap(tb_b, tp_p, matching.b_to_a_idx, matching.b_to_a_cos, threshold)
        rep[t] = r
    return rep


# ----------------------------------------------------------------------------------------------------------------
# Figures (featurescope.plots style: PNG in the run folder, the title says what produced it)
# ----------------------------------------------------------------------------------------------------------------
def _fig_transfer(path: Path, transfer: dict[str, Any], title: str) -> str:
    from . import plots

    plt = plots._plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    labels, fve, ce = [], [], []
    for sae_k, per_model in transfer.items():
        for model_k, per_set in per_model.items():
            for set_k, m in per_set.items():
                labels.append(f"{sae_k.replace('_sae', '')} SAE\non {model_k.replace('_model', '')}\n{set_k}")
                fve.append(m["fraction_variance_explained"])
                ce.append(m.get("ce_loss_recovered", float("nan")))
    for ax, vals, name in ((axes[0], fve, "fraction of variance explained"), (axes[1], ce, "CE-loss recovered")):
        ax.bar(range(len(vals)), vals, color=["#2980b9" if "base SAE" in lab else "#c0392b" for lab in labels])
        ax.set_xticks(range(len(vals)))
        ax.set_xticklabels(labels, fontsize=5.5)
        ax.set_ylabel(name, fontsize=8)
        ax.axhline(0, color="black", lw=0.6)
    plots._title(axes[0], title)
    return plots._save(fig, path)


def _fig_hist(path: Path, series: dict[str, Tensor], threshold: float, title: str) -> str:
    from . import plots

    plt = plots._plt()
    fig, ax = plt.subplots(figsize=(7, 3.4))
    bins = torch.linspace(-0.2, 1.0, 61).tolist()
    for name, c in series.items():
        ax.hist(c.clamp(-0.2, 1.0).numpy(), bins=bins, histtype="step", lw=1.3, label=name)
    ax.axvline(threshold, color="grey", ls="--", lw=1, label=f"reuse threshold {threshold}")
    ax.set_yscale("log")
    ax.set_xlabel("best decoder cosine with any latent of the other dictionary")
    ax.set_ylabel("latents")
    ax.legend(fontsize=7)
    plots._title(ax, title)
    return plots._save(fig, path)


def _fig_shift(path: Path, base: FeatureActivity, post: FeatureActivity, shift: dict[str, Any], title: str) -> str:
    from . import plots

    plt = plots._plt()
    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    eps = 1.0 / max(base.n_tokens, post.n_tokens, 1)
    x, y = base.frequency.clamp(min=eps), post.frequency.clamp(min=eps)
    ax.scatter(x.numpy(), y.numpy(), s=3, alpha=0.4, color="grey")
    for key, col in (("up", "#c0392b"), ("down", "#2980b9")):
        idx = [r["latent"] for r in shift[key][:10]]
        if idx:
            ax.scatter(x[idx].numpy(), y[idx].numpy(), s=14, color=col, label=f"top {key}-regulated")
            for i in idx[:5]:
                ax.annotate(str(i), (float(x[i]), float(y[i])), fontsize=6)
    ax.plot([eps, 1], [eps, 1], color="black", lw=0.6, label="no change")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("firing frequency, base model")
    ax.set_ylabel("firing frequency, post-trained model")
    ax.legend(fontsize=7)
    plots._title(ax, title)
    return plots._save(fig, path)


def _fig_crosscoder(path: Path, tensors: dict[str, Tensor], n_post: int, title: str) -> str:
    from . import plots

    plt = plots._plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    axes[0].hist(tensors["relative_norm"].numpy(), bins=50, color="#8e44ad")
    axes[0].set_xlabel("relative decoder norm ||d_post|| / (||d_base|| + ||d_post||)")
    axes[0].set_ylabel("latents")
    axes[0].set_yscale("log")
    ne, nr = tensors["nu_error"], tensors["nu_recon"]
    axes[1].scatter(ne[n_post:].numpy(), nr[n_post:].numpy(), s=3, alpha=0.3, color="grey", label="shared")
    axes[1].scatter(ne[:n_post].numpy(), nr[:n_post].numpy(), s=8, color="#c0392b", label="post-only")
    axes[1].set_xlabel("nu (error target)")
    axes[1].set_ylabel("nu (reconstruction target)")
    axes[1].legend(fontsize=7)
    plots._title(axes[0], title)
    return plots._save(fig, path)


# ----------------------------------------------------------------------------------------------------------------
# The orchestrator
# ----------------------------------------------------------------------------------------------------------------
def _sae_name(sae: Any, given: str | None) -> str:
    if given:
        return given
    m = sae.cfg.metadata
    return f"{getattr(m, 'release', None) or m.model_name or 'sae'}/{getattr(m, 'sae_id', None) or m.hook_name}"


def run_stages(
    base_model: Any,
    post_model: Any,
    base_sae: Any,
    post_sae: Any,
    hook: str | int | None,
    out_dir: str | Path,
    *,
    config: StagesConfig = StagesConfig(),
    crosscoder: Any = None,
    conversations: Sequence[Any] | None = None,
    plain_rows: TokenRows | None = None,
    persona_vectors: Mapping[str, Mapping[str, Tensor]] | None = None,
    sae_names: tuple[str | None, str | None] = (None, None),
    progress: bool = True,
    command: str = "stages",
    control_sae: Any = None,
) -> dict[str, Any]:
    """Run the cross-stage analysis (module docstring) and write ``out_dir/summary.json``, figures and ``cards.html``.

    ``hook`` is a hook name or a residual layer (default: the base SAE's own hook). ``crosscoder`` is a path for
    :func:`load_crosscoder` or a :class:`CrosscoderWeights`. ``conversations`` (ending with assistant turns) replace
    the generated held-out dialogues; ``plain_rows`` replace the corpus rows; ``persona_vectors``
    (``{trait: {"base": [L, d], "post": [L, d]}}``) replace the prompt-side extraction. Returns the results dict.
    """
    from .cards import cards_html, make_cards
    from .runs import write_summary
    from .saes import check_sae, sae_hook
    from .traits import list_traits

    cfg = config
    t_start = time.time()
    timings: dict[str, float] = {}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    if hook is None:
        hook = sae_hook(base_sae)
    if isinstance(hook, int):
        hook = base_model.resid_hook(hook)
    assert isinstance(hook, str)
    check_pair(base_model, post_model, hook)
    for sae, m in ((base_sae, base_model), (post_sae, post_model)):
        check_sae(sae, m, hook, allow_other_model=True)
    base_W = base_sae.W_dec.detach().float().cpu()
    post_W = post_sae.W_dec.detach().float().cpu()
    if base_W.shape[1] != post_W.shape[1]:
        raise DictionaryMismatchError(f"base SAE d_in {base_W.shape[1]} vs post SAE d_in {post_W.shape[1]}")
    from .models import hook_layer

    layer = hook_layer(hook)
    names = {"base": _sae_name(base_sae, sae_names[0]), "post": _sae_name(post_sae, sae_names[1])}
    tag = (
        f"{hook} | base {base_model.name} ({base_model.stage}), SAE {names['base']} | post {post_model.name} "
        f"({post_model.stage}), SAE {names['post']}"
    )
    results: dict[str, Any] = {"hook": hook, "layer": layer, "sae_names": names}
    figures: list[str] = []
    card_sections: list[str] = []

    # -- texts and activations (shared by transfer, shift, crosscoder) -----------------------------------------
    # texts are needed by transfer, shift and crosscoder, and by matching for ranking / carding the new latents
    need_acts = (
        bool({"transfer", "shift"} & set(cfg.parts))
        or ("crosscoder" in cfg.parts and crosscoder is not None)
        or ("matching" in cfg.parts and cfg.n_cards > 0)
    )
    rows: dict[str, TokenRows] = {}
    acts: dict[tuple[str, str], tuple[Tensor, Tensor, Tensor]] = {}
    if need_acts:
        t = time.time()
        rows["plain"] = (
            plain_rows
            if plain_rows is not None
            else prepare_plain_rows(post_model.tokenizer, n_rows=cfg.plain_rows, context=cfg.context, seed=cfg.seed + 1)
        )
        chat, responses = prepare_chat_rows(
            post_model,
            n_dialogues=cfg.chat_dialogues,
            max_new_tokens=cfg.max_new_tokens,
            context=cfg.context,
            conversations=conversations,
            progress=progress,
        )
        rows["chat"] = chat
        (out / "responses.jsonl").write_text("\n".join(json.dumps(r) for r in responses) + "\n")
        timings["texts"] = time.time() - t
        t = time.time()
        for set_k, r in rows.items():
            for stage, model in (("base", base_model), ("post", post_model)):
                acts[(stage, set_k)] = capture_rows(model, r, hook, cfg.batch_size)
        timings["capture"] = time.time() - t
        results["texts"] = {
            k: {
                "description": r.description,
                "rows": int(r.tokens.shape[0]),
                "context": int(r.tokens.shape[1]),
                "tokens": int(r.tokens.numel()),
                "assistant_tokens": int((r.role_ids == 3).sum()),
            }
            for k, r in rows.items()
        }
        results["texts"]["format"] = (
            "plain: corpus rows, identical token ids for both models; chat: the post-trained model's chat template, "
            "and the base model reads the same token ids (not its own transcript framing) so the texts are identical"
        )

    saes = {"base_sae": base_sae, "post_sae": post_sae}
    models = {"base_model": base_model, "post_model": post_model}

    # -- 1. SAE transfer -------------------------------------------------------------------------------------
    if "transfer" in cfg.parts:
        t = time.time()
        tr: dict[str, Any] = {}
        for sk, sae in saes.items():
            tr[sk] = {}
            for mk, model in models.items():
                stage = mk.split("_")[0]
                tr[sk][mk] = {
                    set_k: transfer_metrics(
                        sae,
                        model,
                        rows[set_k],
                        acts[(stage, set_k)][0],
                        acts[(stage, set_k)][2],
                        hook,
                        ce_rows=cfg.ce_rows,
                        ce_batch=cfg.ce_batch,
                        outlier_quantile=cfg.outlier_quantile,
                    )
                    for set_k in rows
                }
        deltas = {
            sk: {
                set_k: {
                    "fve_other_minus_own": tr[sk]["post_model" if sk == "base_sae" else "base_model"][set_k][
                        "fraction_variance_explained"
                    ]
                    - tr[sk]["base_model" if sk == "base_sae" else "post_model"][set_k]["fraction_variance_explained"],
                    "ce_recovered_other_minus_own": tr[sk]["post_model" if sk == "base_sae" else "base_model"][
                        set_k
                    ].get("ce_loss_recovered", float("nan"))
                    - tr[sk]["base_model" if sk == "base_sae" else "post_model"][set_k].get(
                        "ce_loss_recovered", float("nan")
                    ),
                }
                for set_k in rows
            }
            for sk in saes
        }
        results["transfer"] = {
            **tr,
            "deltas": deltas,
            "note": "BOS/padding and the top 1% activation norms excluded from FVE/L0 (Kissane et "
            "al.); CE-loss recovered = (CE_zero_abl - CE_sae) / (CE_zero_abl - CE_clean) "
            f"on the first {cfg.ce_rows} rows of each set (sae-lens get_recons_loss)",
        }
        figures.append(
            _fig_transfer(
                out / "transfer.png",
                tr,
                f"SAE transfer across stages at {tag}; texts: held-out "
                "corpus (plain) and held-out dialogues in the post model's chat template (chat)",
            )
        )
        timings["transfer"] = time.time() - t

    # -- 2. feature matching ---------------------------------------------------------------------------------
    matching: Matching | None = None
    new_latents: list[int] = []
    if "matching" in cfg.parts or "persona" in cfg.parts:
        t = time.time()
        rep, matching, base_line = matching_report(
            post_W,
            base_W,
            threshold=cfg.reuse_threshold,
            baselines=cfg.baselines,
            seed=cfg.seed,
            bins=cfg.hist_bins,
            block_rows=cfg.block_rows,
            block_cols=cfg.block_cols,
            dtype=cfg.match_dtype,
            progress=progress,
            control_W=None if control_sae is None else control_sae.W_dec.detach().float().cpu(),
        )
        assert matching.b_to_a_cos is not None
        new = (matching.a_to_b_cos < cfg.reuse_threshold).nonzero().flatten()
        # rank new latents by how often they fire in the post-trained model (dead ones are not interesting)
        if acts:
            pa = torch.cat([acts[("post", s)][0][acts[("post", s)][2]] for s in rows])
            act_post = encode_stats(lambda x: post_sae.encode(x.to(post_sae.W_dec.dtype)), pa, post_W.shape[0])
            order = act_post.frequency[new].argsort(descending=True)
            new = new[order]
            rep["new_latents_alive"] = int((act_post.frequency[new] > 0).sum())
        new_latents = new.tolist()
        rep["new_latents"] = new_latents[:500]
        rep["lost_base_latents"] = (matching.b_to_a_cos < cfg.reuse_threshold).nonzero().flatten().tolist()[:500]
        from .store import atomic_save_tensors

        atomic_save_tensors(
            out / "matching.safetensors",
            {
                "post_to_base_cos": matching.a_to_b_cos.contiguous(),
                "post_to_base_idx": matching.a_to_b_idx.contiguous(),
                "base_to_post_cos": matching.b_to_a_cos.contiguous(),
                "base_to_post_idx": matching.b_to_a_idx.contiguous(),
                **{f"post_to_{k}_cos": v.contiguous() for k, v in base_line.items()},
            },
        )
        if "matching" in cfg.parts:
            results["matching"] = rep
            figures.append(
                _fig_hist(
                    out / "matching.png",
                    {
                        "post -> base": matching.a_to_b_cos,
                        "base -> post": matching.b_to_a_cos,
                        **{f"post -> {k} baseline": v for k, v in base_line.items()},
                    },
                    cfg.reuse_threshold,
                    f"best decoder cosine between dictionaries at {tag}; reused: post {rep['fraction_post_reused']:.1%} "
                    f"vs random {rep['baselines'].get('random', {}).get('fraction_post_reused', float('nan')):.1%}",
                )
            )
        timings["matching"] = time.time() - t

    # -- 3. activation shift on Assistant tokens ---------------------------------------------------------------
    card_jobs: dict[tuple[str, str], dict[str, list[int]]] = {}  # (model, sae) -> {section: latents}
    if "shift" in cfg.parts:
        t = time.time()
        sh: dict[str, Any] = {}
        for sk, sae in saes.items():
            enc = (lambda s: lambda x: s.encode(x.to(s.W_dec.dtype)))(sae)
            n_lat = int(sae.W_dec.shape[0])
            act = {}
            for stage in ("base", "post"):
                a, roles, keep = acts[(stage, "chat")]
                sel = keep & (roles == 3)
                act[stage] = encode_stats(enc, a[sel], n_lat)
            s = activation_shift(act["base"], act["post"], k=cfg.top_k_shift, rank_by=cfg.shift_rank_by)
            sh[sk] = s
            from .store import atomic_save_tensors

            atomic_save_tensors(
                out / f"activity_{sk}.safetensors",
                {
                    f"{k}_{stage}": getattr(act[stage], k).contiguous()
                    for stage in act
                    for k in ("frequency", "mean", "mean_when_active")
                },
            )
            figures.append(
                _fig_shift(
                    out / f"shift_{sk}.png",
                    act["base"],
                    act["post"],
                    s,
                    f"latent firing frequency on Assistant-turn tokens (role 3) of the held-out "
                    f"dialogues, {names[sk.split('_')[0]]} ({sk.replace('_', ' ')}) at {hook}: "
                    f"{base_model.name} vs {post_model.name}",
                )
            )
            card_jobs.setdefault(("post", sk), {})[
                f"up-regulated ({sk.replace('_', ' ')}, cards on {post_model.name})"
            ] = [r["latent"] for r in s["up"][: cfg.n_cards]]
            card_jobs.setdefault(("base", sk), {})[
                f"down-regulated ({sk.replace('_', ' ')}, cards on {base_model.name})"
            ] = [r["latent"] for r in s["down"][: cfg.n_cards]]
        results["activation_shift"] = {
            **sh,
            "tokens": "Assistant-turn tokens (role_ids == 3) of the chat set, same token ids in both models",
        }
        timings["shift"] = time.time() - t
    if "matching" in cfg.parts and new_latents:
        card_jobs.setdefault(("post", "post_sae"), {})[
            f"new latents of the post SAE (best cosine < {cfg.reuse_threshold} with every base latent), most active "
            "first"
        ] = new_latents[: cfg.n_cards]

    # -- cards (one pass per (model, SAE) over chat rows + some corpus rows) -----------------------------------
    card_dicts: dict[str, list[dict[str, Any]]] = {}
    card_jobs = {k: v for k, v in card_jobs.items() if any(v.values())}
    if card_jobs and rows:
        t = time.time()
        card_rows = torch.cat([rows["chat"].tokens, rows["plain"].tokens[: cfg.card_plain_rows]])
        for (stage, sk), sections in card_jobs.items():
            feats = sorted({f for v in sections.values() for f in v})
            if not feats:
                continue
            model = base_model if stage == "base" else post_model
            cards = make_cards(model, saes[sk], card_rows, feats, sae_name=names[sk.split("_")[0]], hook=hook)
            by_f = {c.feature: c for c in cards}
            for title, fl in sections.items():
                cs = [by_f[f] for f in fl]
                card_dicts[title] = [c.to_dict() for c in cs]
                card_sections.append(cards_html(cs, title))
        (out / "cards.html").write_text(
            f"<html><meta charset='utf-8'><body><h2>{tag}</h2>" + "".join(card_sections) + "</body></html>"
        )
        figures.append("cards.html")
        timings["cards"] = time.time() - t
    results["cards"] = {
        k: [
            {"feature": c["feature"], "density": c["density"], "promoted": [p[0] for p in c["promoted"][:5]]} for c in v
        ]
        for k, v in card_dicts.items()
    }

    # -- 4. persona vectors across stages ----------------------------------------------------------------------
    if "persona" in cfg.parts:
        t = time.time()
        traits = list(cfg.traits) or list_traits()
        if persona_vectors is None:
            persona_vectors = prompt_persona_vectors(
                base_model,
                post_model,
                traits,
                n_questions=cfg.persona_questions,
                kind=cfg.persona_kind,
                fmt=cfg.persona_format,
                batch_size=cfg.batch_size,
                progress=progress,
            )
            how = (
                f"prompt-side vectors ({cfg.persona_kind}; {cfg.persona_questions} extraction questions x 5 "
                "instruction pairs per trait as system prompts, no generation or judge); format: "
                + (
                    "each model its own (post: chat template, base: transcript)"
                    if cfg.persona_format == "own"
                    else "the post-trained model's token ids for both"
                )
            )
        else:
            how = "given vectors"
        assert layer is not None
        pr = persona_report(
            persona_vectors, layer, base_W, post_W, matching, k=cfg.persona_top_k, threshold=cfg.reuse_threshold
        )
        results["persona"] = {"how": how, "layer": layer, "top_k": cfg.persona_top_k, "traits": pr}
        figures.append(
            _layer_fig(
                out / "persona_cosine.png",
                {t: v["cosine_per_layer"] for t, v in pr.items()},
                f"cosine between base ({base_model.name}) and post-trained ({post_model.name}) "
                f"persona vectors per layer; {how}",
                layer,
            )
        )
        timings["persona"] = time.time() - t

    # -- 5. crosscoder ----------------------------------------------------------------------------------------
    if "crosscoder" in cfg.parts:
        if crosscoder is None:
            results["crosscoder"] = {"status": "not run: no crosscoder given", "why_none_is_trained": CROSSCODER_STATUS}
        else:
            t = time.time()
            cc = crosscoder if isinstance(crosscoder, CrosscoderWeights) else load_crosscoder(crosscoder)
            ab = torch.cat([acts[("base", s)][0][acts[("base", s)][2]] for s in rows])
            ap = torch.cat([acts[("post", s)][0][acts[("post", s)][2]] for s in rows])
            rep, ten = crosscoder_report(
                cc,
                ab,
                ap,
                base_only_max=cfg.base_only_max,
                post_only_min=cfg.post_only_min,
                nu_max=cfg.nu_max,
                progress=progress,
            )
            results["crosscoder"] = {"status": "analysed", **rep, "why_none_is_trained": CROSSCODER_STATUS}
            figures.append(
                _fig_crosscoder(
                    out / "crosscoder.png",
                    ten,
                    rep["counts"]["post_only"],
                    f"crosscoder {cc.source or '(given)'} over {base_model.name} and "
                    f"{post_model.name} at {hook}; Latent Scaling on the chat + plain texts",
                )
            )
            timings["crosscoder"] = time.time() - t

    timings["total"] = time.time() - t_start
    write_summary(
        out,
        command,
        inputs={
            "base_model": base_model.info,
            "post_model": post_model.info,
            "hook": hook,
            "base_sae": {
                "name": names["base"],
                "d_sae": int(base_W.shape[0]),
                "d_in": int(base_W.shape[1]),
                "trained_on": base_sae.cfg.metadata.model_name,
            },
            "post_sae": {
                "name": names["post"],
                "d_sae": int(post_W.shape[0]),
                "d_in": int(post_W.shape[1]),
                "trained_on": post_sae.cfg.metadata.model_name,
            },
            "config": cfg.to_dict(),
            "crosscoder": None if crosscoder is None else str(getattr(crosscoder, "source", crosscoder)),
        },
        results=results,
        timings=timings,
        figures=figures,
    )
    results["figures"] = figures
    results["timings"] = timings
    return results


def _layer_fig(path: Path, series: dict[str, Sequence[float]], title: str, mark: int) -> str:
    from . import plots

    return plots.layer_profile(path, series, title, "cosine(base vector, post vector)", mark=mark)
