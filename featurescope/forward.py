"""The forward pass of a capture: validate a request, run batches through TransformerLens hooks that reduce
activations inside the hook, and return :class:`Activations`. Pure compute (no disk): :mod:`featurescope.capture`
is the entry point and :mod:`featurescope.store` streams the same batches to disk.

The forward pass stops after the last block a requested hook lives in (``stop_at_layer``) and never computes the
unembedding. Prompts are sorted by length before batching (less padding); batches are right-padded, which leaves the
real tokens' activations unchanged under causal attention, so no attention mask is needed.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from .errors import PromptError
from .formatting import ROLE_IDS, FormattedPrompt, pad_batch
from .models import Model, hook_layer

Reduction = Literal["response_mean", "prompt_mean", "last_prompt", "all"]
REDUCTIONS: tuple[str, ...] = ("response_mean", "prompt_mean", "last_prompt", "all")


@dataclasses.dataclass
class Activations:
    """Captured activations: ``acts[hook]`` is ``[n_prompts, d]`` for reduced captures, or ``[n_tokens, d]`` for
    ``reduction="all"`` (then ``offsets[i]:offsets[i+1]`` are prompt i's tokens and ``role_ids`` their roles)."""

    hooks: list[str]
    reduction: str
    data: dict[str, Tensor]
    offsets: Int[Tensor, " n_plus_1"] | None = None
    role_ids: Int[Tensor, " n_tokens"] | None = None
    counts: Int[Tensor, " n"] | None = None  # tokens averaged per prompt (for means)
    stats: dict[str, Any] = dataclasses.field(default_factory=dict)  # seconds, tokens, tokens_per_s, stop_at_layer

    def __getitem__(self, hook: str) -> Tensor:
        if hook not in self.data:
            raise KeyError(f"no activations for {hook!r}; captured: {self.hooks}")
        return self.data[hook]

    def __len__(self) -> int:
        if self.offsets is not None:
            return int(self.offsets.shape[0] - 1)
        return int(next(iter(self.data.values())).shape[0]) if self.data else 0

    def stacked(self) -> Float[Tensor, "layer n d"]:
        """All hooks stacked (same order as ``hooks``); hooks must share a width."""
        return torch.stack([self.data[h] for h in self.hooks])

    def per_prompt(self, hook: str, i: int) -> Tensor:
        if self.offsets is None:
            return self.data[hook][i]
        return self.data[hook][self.offsets[i] : self.offsets[i + 1]]

    def __repr__(self) -> str:
        shapes = {h: tuple(t.shape) for h, t in self.data.items()}
        return f"Activations(reduction={self.reduction!r}, n={len(self)}, shapes={shapes})"


def check_request(model: Model, prompts: Sequence[FormattedPrompt], hooks: Sequence[str], reduction: str) -> list[str]:
    """Validate hooks, reduction and prompts before any compute. Returns the checked hook list."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; one of {', '.join(REDUCTIONS)}")
    if not prompts:
        raise PromptError("the prompt set is empty: nothing to capture")
    if not hooks:
        raise ValueError("no hooks given")
    checked = [model.check_hook(h) for h in hooks]
    if len(set(checked)) != len(checked):
        raise ValueError("duplicate hook names")
    n_ctx = model.info.n_ctx
    for i, p in enumerate(prompts):
        if n_ctx and len(p) > n_ctx:
            raise PromptError(f"prompt {i} has {len(p)} tokens, longer than {model.name}'s context ({n_ctx})")
        if len(p) == 0:
            raise PromptError(f"prompt {i} is empty")
        if reduction == "response_mean" and not bool(p.response_mask.any()):
            raise PromptError(
                f"prompt {i} has no response tokens; reduction='response_mean' needs conversations that end with an "
                "assistant message (use 'last_prompt' or 'prompt_mean' for prompts alone)"
            )
    return checked


def stop_layer(hooks: Sequence[str], n_layers: int) -> int | None:
    """Blocks needed for these hooks: ``stop_at_layer`` for TransformerLens, or None for a full body pass."""
    layers = []
    for h in hooks:
        L = hook_layer(h)
        if L is None:
            if h.startswith(("hook_embed", "hook_pos_embed", "embed.")):
                layers.append(0)
            else:  # ln_final, unembed-adjacent hooks: run the whole body
                return None
        else:
            layers.append(L + 1)
    s = max(layers)
    return s


def reduce_batch(
    act: Float[Tensor, "batch pos d"],
    roles: Int[Tensor, "batch pos"],
    last: Int[Tensor, " batch"],
    lens: Int[Tensor, " batch"],
    reduction: str,
    bos_first: bool,
    outlier_k: float | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Reduce one batch. Returns (reduced, counts) with reduced ``[batch, d]`` or, for "all", ``[tokens, d]``.

    ``outlier_k`` (means only): leave out of each prompt's mean the tokens whose residual norm exceeds ``outlier_k``
    x the median norm of that prompt's averaged tokens (outlier-norm tokens / attention sinks; see
    :mod:`featurescope.evidence.massive`). None = every token (the plain mean)."""
    B, P, _ = act.shape
    pos = torch.arange(P, device=act.device)
    if reduction == "last_prompt":
        return act[torch.arange(B, device=act.device), last.to(act.device)], None
    if reduction == "all":
        if bool((lens == P).all()):  # no padding in this batch: a view, no copy
            return einops.rearrange(act, "b p d -> (b p) d"), None
        keep = pos[None, :] < lens[:, None].to(act.device)
        return act[keep], None
    if reduction == "response_mean":
        mask = (roles == ROLE_IDS["assistant"]).to(act.device) & (pos[None, :] > last[:, None].to(act.device))
    else:  # prompt_mean: every prompt token, except a BOS at position 0 (identical in every prompt, huge norm)
        mask = pos[None, :] <= last[:, None].to(act.device)
        if bos_first:
            mask &= pos[None, :] > 0
    if outlier_k is not None:
        norms = act.norm(dim=-1)
        med = torch.where(mask, norms, torch.full_like(norms, float("nan"))).nanmedian(dim=1).values
        mask &= ~(norms > outlier_k * med[:, None])  # a row with no masked token has med nan: unchanged
    w = mask.to(act.dtype)
    counts = w.sum(1)
    summed = einops.einsum(act, w, "b p d, b p -> b d")
    return summed / counts.clamp(min=1)[:, None], counts.long()


def capture_prompts(
    model: Model,
    prompts: Sequence[FormattedPrompt],
    hooks: Sequence[str],
    *,
    reduction: str,
    batch_size: int,
    dtype: torch.dtype = torch.float32,
    progress: bool = True,
    fwd_hooks: Sequence[tuple[str, Callable]] = (),
    desc: str | None = None,
    outlier_k: float | None = None,
) -> Activations:
    """Core loop over already-validated prompts (no store). ``outlier_k``: see :func:`reduce_batch`."""
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    tl = model.tl
    tok = model.tokenizer
    pad_id = tok.pad_token_id if tok is not None and tok.pad_token_id is not None else 0
    bos_id = getattr(tok, "bos_token_id", None)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    stop = stop_layer(hooks, model.n_layers)
    results: dict[str, list[Tensor]] = {h: [] for h in hooks}
    counts_all: list[Tensor] = []
    done_idx: list[int] = []
    t0 = time.perf_counter()
    n_tokens = 0
    bar = tqdm(
        total=len(prompts),
        desc=desc or f"capture {model.name}",
        unit="prompt",
        disable=not progress or len(batches) < 2,
    )
    device = model.device
    for b in batches:
        batch = [prompts[i] for i in b]
        toks, roles, lens = pad_batch(batch, pad_id)
        last = torch.tensor([p.last_prompt_index for p in batch])
        bos_first = bos_id is not None and all(int(p.tokens[0]) == bos_id for p in batch)
        got: dict[str, Tensor] = {}
        cnts: list[Tensor | None] = [None]

        def make_hook(name: str) -> Callable:
            def fn(act: Tensor, hook: Any = None) -> None:
                a = act.detach()
                if a.ndim > 3:
                    a = einops.rearrange(a, "b p ... -> b p (...)")
                red, c = reduce_batch(
                    a if a.dtype == torch.float32 else a.float(), roles, last, lens, reduction, bos_first, outlier_k
                )
                got[name] = red.to(dtype=dtype, device="cpu")
                if c is not None:
                    cnts[0] = c.cpu()
                return None

            return fn

        hooks_fns = list(fwd_hooks) + [(h, make_hook(h)) for h in hooks]
        with torch.inference_mode():
            kw: dict[str, Any] = {"return_type": None}
            if stop is not None:
                kw["stop_at_layer"] = stop
            tl.run_with_hooks(toks.to(device), fwd_hooks=hooks_fns, **kw)
        missing = [h for h in hooks if h not in got]
        if missing:
            raise RuntimeError(f"hooks never fired: {missing}")
        for h in hooks:
            results[h].append(got[h])
        if cnts[0] is not None:
            counts_all.append(cnts[0])
        done_idx.extend(b)
        n_tokens += int(lens.sum())
        bar.update(len(b))
    bar.close()
    elapsed = time.perf_counter() - t0
    inv = torch.empty(len(prompts), dtype=torch.long)
    inv[torch.tensor(done_idx)] = torch.arange(len(prompts))
    identity = bool((inv == torch.arange(len(prompts))).all())
    data: dict[str, Tensor] = {}
    offsets = role_ids = counts = None

    def cat(xs: list[Tensor]) -> Tensor:
        return xs[0] if len(xs) == 1 else torch.cat(xs)

    if reduction == "all":
        # Batches are in length order; rebuild the original prompt order token block by token block.
        lens_sorted = torch.tensor([len(prompts[i]) for i in done_idx])
        starts = torch.cat([torch.zeros(1, dtype=torch.long), lens_sorted.cumsum(0)])
        for h in hooks:
            flat = cat(results[h])
            data[h] = (
                flat
                if identity
                else torch.cat([flat[starts[inv[i]] : starts[inv[i] + 1]] for i in range(len(prompts))])
            )
        lens_orig = torch.tensor([len(p) for p in prompts])
        offsets = torch.cat([torch.zeros(1, dtype=torch.long), lens_orig.cumsum(0)])
        role_ids = torch.cat([p.role_ids for p in prompts])
    else:
        for h in hooks:
            data[h] = cat(results[h]) if identity else cat(results[h])[inv]
        if counts_all:
            counts = cat(counts_all) if identity else cat(counts_all)[inv]
    stats = {
        "seconds": elapsed,
        "tokens": n_tokens,
        "tokens_per_s": n_tokens / max(elapsed, 1e-9),
        "stop_at_layer": stop,
        "outlier_k": outlier_k,
    }
    return Activations(
        hooks=list(hooks),
        reduction=reduction,
        data=data,
        offsets=offsets,
        role_ids=role_ids,
        counts=counts,
        stats=stats,
    )
