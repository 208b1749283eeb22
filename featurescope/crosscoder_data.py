"""Paired activations for a two-model crosscoder (pure data; no sae-lens): the same token ids through a base and a
post-trained checkpoint (:func:`pair_activations`), the per-model normalisation, and the endless shuffled streams the
sae-lens trainer reads (:func:`model_source`, :func:`tensor_source`, :func:`mixed_batches`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from .errors import FeaturescopeError
from .evidence.massive import OUTLIER_K, outlier_tokens
from .forward import stop_layer
from .models import Model
from .saes import non_special_mask


def check_pair(base_model: Model, post_model: Model, hook: str) -> str:
    """The two checkpoints must share the architecture (``d_model``, ``n_layers``) and have ``hook``."""
    if (base_model.d_model, base_model.n_layers) != (post_model.d_model, post_model.n_layers):
        raise FeaturescopeError(
            f"a crosscoder pairs two checkpoints of one architecture: {base_model.name} has d_model="
            f"{base_model.d_model}, n_layers={base_model.n_layers}, but {post_model.name} has d_model="
            f"{post_model.d_model}, n_layers={post_model.n_layers}"
        )
    base_model.check_hook(hook)
    post_model.check_hook(hook)
    return hook


@torch.no_grad()
def _hook_acts(model: Model, rows: Tensor, hook: str, stop: int | None) -> Tensor:
    _, cache = model.tl.run_with_cache(rows.to(model.device), names_filter=[hook], stop_at_layer=stop)
    return cache[hook].float().cpu()


def pair_activations(
    base_model: Model,
    post_model: Model,
    tokens: Int[Tensor, "rows pos"],
    hook: str,
    *,
    batch_size: int = 16,
    outlier_k: float | None = OUTLIER_K,
    counts: dict[str, int] | None = None,
) -> Iterator[Tensor]:
    """Paired activations ``[n, 2 * d_model]`` (base half first; float32, CPU) of both models at ``hook`` on the
    same token ids, one chunk per ``batch_size`` rows. BOS / padding positions are dropped (either model's
    tokenizer), and so is a token whose norm exceeds ``outlier_k`` x the chunk's median norm at either model
    (``None`` keeps them). ``counts`` (updated live): ``tokens``, ``special``, ``outliers``, ``kept``. Bad input
    (models of different shapes, a missing hook, token ids out of range) is an error at the call, not at the first
    chunk."""
    check_pair(base_model, post_model, hook)
    if tokens.ndim != 2:
        raise FeaturescopeError(f"tokens must be [rows, positions], got shape {tuple(tokens.shape)}")
    vocab = min(int(base_model.tl.cfg.d_vocab), int(post_model.tl.cfg.d_vocab))
    if tokens.numel() and not 0 <= int(tokens.min()) <= int(tokens.max()) < vocab:
        raise FeaturescopeError(f"token ids must lie in [0, {vocab}) for both {base_model.name} and {post_model.name}")
    c = counts if counts is not None else {}
    for key in ("tokens", "special", "outliers", "kept"):
        c.setdefault(key, 0)
    return _pairs(base_model, post_model, tokens, hook, batch_size, outlier_k, c)


def _pairs(
    base_model: Model,
    post_model: Model,
    tokens: Tensor,
    hook: str,
    batch_size: int,
    outlier_k: float | None,
    c: dict[str, int],
) -> Iterator[Tensor]:
    stop = stop_layer([hook], base_model.n_layers)
    for i in range(0, len(tokens), batch_size):
        rows = tokens[i : i + batch_size].long()
        keep = non_special_mask(base_model.tokenizer, rows) & non_special_mask(post_model.tokenizer, rows)
        acts = [_hook_acts(m, rows, hook, stop)[keep] for m in (base_model, post_model)]
        drop = torch.zeros(len(acts[0]), dtype=torch.bool)
        if outlier_k is not None and len(drop):
            for a in acts:
                drop |= outlier_tokens(a, outlier_k).cpu()
        c["tokens"] += rows.numel()
        c["special"] += int((~keep).sum())
        c["outliers"] += int(drop.sum())
        c["kept"] += int((~drop).sum())
        yield torch.cat(acts, dim=-1)[~drop]


def normalisation(pairs: Float[Tensor, "n two_d"]) -> tuple[Tensor, Tensor]:
    """Per-model scales to an expected norm of sqrt(d_model) (``[2]``) and the mean scaled activation (``[2 d]``)."""
    if len(pairs) == 0:
        raise FeaturescopeError("no paired activations to estimate the normalisation from (all tokens dropped?)")
    halves = pairs.double().unflatten(-1, (2, -1))
    scales = halves.shape[-1] ** 0.5 / halves.norm(dim=-1).mean(0).clamp(min=1e-12)
    return scales.float(), (halves * scales[:, None]).mean(0).flatten().float()


def model_source(
    base_model: Model, post_model: Model, tokens: Tensor, hook: str, *, seed: int, counts: dict[str, int], **kw: Any
) -> Callable[[int], Iterator[Tensor]]:
    """An endless stream of paired-activation chunks over ``tokens`` (rows reshuffled each pass), started about
    ``start`` tokens in (a resumed run goes on with rows it has not yet read)."""

    def stream(start: int) -> Iterator[Tensor]:
        per_row = max(1, tokens.shape[1] - 1)
        epoch, skip = divmod(start // per_row, max(1, len(tokens)))
        while True:
            order = torch.randperm(len(tokens), generator=torch.Generator().manual_seed(seed + epoch))[skip:]
            got = 0
            for chunk in pair_activations(base_model, post_model, tokens[order], hook, counts=counts, **kw):
                got += len(chunk)
                yield chunk
            if got == 0 and skip == 0:
                raise FeaturescopeError("a full pass over the training tokens left no token (all BOS / padding?)")
            epoch, skip = epoch + 1, 0

    return stream


def tensor_source(
    pairs: Float[Tensor, "n two_d"], *, seed: int, chunk: int = 4096
) -> Callable[[int], Iterator[Tensor]]:
    """An endless stream over precomputed paired activations (reshuffled each pass)."""

    def stream(start: int) -> Iterator[Tensor]:
        epoch = start // max(1, len(pairs))
        while True:
            x = pairs[torch.randperm(len(pairs), generator=torch.Generator().manual_seed(seed + epoch))]
            yield from x.split(chunk)
            epoch += 1

    return stream


def mixed_batches(
    chunks: Iterator[Tensor], batch_size: int, buffer_tokens: int, scale: Callable[[], Tensor], seed: int
) -> Iterator[Tensor]:
    """Training batches from a shuffling buffer (as sae-lens' mixing buffer: fill, shuffle, hand out half), each
    multiplied by ``scale()`` (read per batch, so scales restored from a checkpoint apply)."""
    g = torch.Generator().manual_seed(seed)
    buffer_tokens = max(buffer_tokens, 2 * batch_size)
    buf: list[Tensor] = []
    while True:
        n = sum(len(b) for b in buf)
        while n < buffer_tokens:
            buf.append(next(chunks))
            n += len(buf[-1])
        x = torch.cat(buf)
        x = x[torch.randperm(len(x), generator=g)]
        m = max(batch_size, len(x) // 2 // batch_size * batch_size)
        buf = [x[m:]]
        for j in range(0, m, batch_size):
            yield x[j : j + batch_size] * scale()


@dataclasses.dataclass
class HeldOut:
    """Held-out paired activations and where each came from: ``pairs[i]`` is token ``rows[where[i, 0], where[i, 1]]``
    (``where`` is None when not tracked)."""

    pairs: Float[Tensor, "n two_d"]
    rows: Int[Tensor, "rows pos"]
    where: Int[Tensor, "n_where 2"] | None = None


def held_out_pairs(
    base: Model,
    post: Model,
    rows: Int[Tensor, "rows pos"],
    hook: str,
    *,
    outlier_k: float | None = OUTLIER_K,
    batch_size: int = 16,
    positions: bool = True,
) -> HeldOut:
    """:func:`pair_activations` of ``rows`` (the same pairs: BOS / padding and outlier-norm tokens dropped) with, when
    ``positions``, the (row, position) of every pair - what a card needs to show a latent's context. The outlier
    test is :func:`pair_activations`' own (each chunk of ``batch_size`` rows, either model), applied here to chunks
    read with ``outlier_k=None`` so the positions of the dropped tokens are known."""
    d = base.d_model
    chunks, where = [], []
    stream = pair_activations(base, post, rows, hook, outlier_k=None, batch_size=batch_size)
    for i, chunk in zip(range(0, len(rows), batch_size), stream, strict=False):
        drop = torch.zeros(len(chunk), dtype=torch.bool)
        if outlier_k is not None and len(chunk):
            drop = outlier_tokens(chunk[:, :d], outlier_k) | outlier_tokens(chunk[:, d:], outlier_k)
        chunks.append(chunk[~drop])
        if positions:
            block = rows[i : i + batch_size].long()
            keep = non_special_mask(base.tokenizer, block) & non_special_mask(post.tokenizer, block)
            pos = keep.nonzero()  # row-major: the order pair_activations keeps the tokens in
            if len(pos) != len(chunk):
                raise FeaturescopeError(
                    f"held-out rows {i}-{i + len(block) - 1}: {len(chunk)} paired tokens but {len(pos)} non-BOS / "
                    "padding positions; cannot tell which token each pair is"
                )
            where.append((pos + torch.tensor([i, 0]))[~drop])
    pairs = torch.cat(chunks) if chunks else torch.zeros(0, 2 * d)
    return HeldOut(pairs, rows, torch.cat(where) if positions and where else None)
