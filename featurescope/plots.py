"""Matplotlib figures. Every figure's title says which model, stage, layer and data produced it."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _plt() -> Any:
    import matplotlib  # heavy: matplotlib (~0.5 s)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy: matplotlib (~0.5 s)

    return plt


def _title(ax: Any, title: str) -> None:
    ax.set_title(textwrap.fill(title, 80), fontsize=8)


def _save(fig: Any, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return path.name


def layer_profile(
    path: Path,
    series: dict[str, Sequence[float]],
    title: str,
    ylabel: str,
    mark: int | None = None,
    xlabel: str = "layer L (blocks.L.hook_resid_post)",
    x0: int = 0,
) -> str:
    """One line per series over x = x0, x0 + 1, ... (layers from 0 by default; ``x0=1`` for counts like top-k)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.4))
    for k, v in series.items():
        ax.plot(range(x0, x0 + len(v)), list(v), marker="o", ms=3, label=k)
    if mark is not None:
        ax.axvline(mark, color="grey", ls="--", lw=1, label=f"chosen layer {mark}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    _title(ax, title)
    ax.legend(fontsize=7)
    return _save(fig, path)


def steering_curve(
    path: Path, alphas: Sequence[float], trait: Sequence[float], coherence: Sequence[float], title: str
) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.4))
    ax.plot(alphas, trait, marker="o", label="trait score (judge)")
    ax.plot(alphas, coherence, marker="s", label="coherence")
    ax.set_xlabel("steering coefficient alpha (h <- h + alpha v)")
    ax.set_ylabel("score 0-100")
    ax.set_ylim(-2, 102)
    _title(ax, title)
    ax.legend(fontsize=7)
    return _save(fig, path)


def monitor_scatter(path: Path, levels: Sequence[dict[str, float]], title: str) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    x = [p["projection"] for p in levels]
    y = [p["trait_score"] for p in levels]
    sc = ax.scatter(x, y, c=range(len(x)), cmap="coolwarm")
    for i, (a, b) in enumerate(zip(x, y)):
        ax.annotate(str(i), (a, b), fontsize=7)
    fig.colorbar(sc, ax=ax, label="system prompt level (suppress -> elicit)")
    ax.set_xlabel("last-prompt-token projection on the persona vector")
    ax.set_ylabel("trait score of the response")
    _title(ax, title)
    return _save(fig, path)


def bars(path: Path, labels: Sequence[str], values: Sequence[float], title: str, ylabel: str) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.bar(range(len(values)), list(values), color=["#c0392b" if v > 0 else "#2980b9" for v in values])
    ax.set_xticks(range(len(values)))
    ax.set_xticklabels(list(labels), rotation=20, fontsize=7)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_ylabel(ylabel)
    _title(ax, title)
    return _save(fig, path)
