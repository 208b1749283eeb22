"""Stages: activation shift (pure)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from .constants import DictionaryMismatchError


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
