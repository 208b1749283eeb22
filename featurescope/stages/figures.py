"""Stages: figures (featurescope.plots style: PNG in the run folder, the title says what produced it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .. import plots
from .shift import FeatureActivity


def fig_transfer(path: Path, transfer: dict[str, Any], title: str) -> str:

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


def fig_hist(path: Path, series: dict[str, Tensor], threshold: float, title: str) -> str:

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


def fig_shift(path: Path, base: FeatureActivity, post: FeatureActivity, shift: dict[str, Any], title: str) -> str:

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


def fig_crosscoder(path: Path, tensors: dict[str, Tensor], n_post: int, title: str) -> str:

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
