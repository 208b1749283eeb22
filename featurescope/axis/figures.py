"""Assistant axis: figures (every title names the model, stage, layer and data)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .. import plots
from .pca import cosine
from .vector import AssistantAxis


def _plots() -> Any:
    return plots


CAT_COLORS = {
    "profession": "#1f77b4",
    "helper_human": "#17becf",
    "creative": "#bcbd22",
    "fictional": "#d62728",
    "mythical": "#9467bd",
    "creature": "#8c564b",
    "ai_good": "#2ca02c",
    "ai_bad": "#ff7f0e",
    "historical": "#7f7f7f",
    "abstract": "#e377c2",
    "antagonist": "#000000",
}


def plot_explained_variance(path: Path, axis: AssistantAxis, tag: str, layer: int | str | None = None) -> str:
    pl = _plots()
    plt = pl._plt()
    p = axis.pca(layer)
    ev = p.explained[:30].tolist()
    cum = torch.tensor(ev).cumsum(0).tolist()
    fig, ax = plt.subplots(figsize=(6, 3.4))
    ax.bar(range(1, len(ev) + 1), ev, color="#2c7fb8", label="explained variance ratio")
    ax.plot(range(1, len(ev) + 1), cum, color="#d95f0e", marker="o", ms=3, label="cumulative")
    ax.axhline(0.7, color="grey", ls="--", lw=1, label=f"70%: {p.n_for(0.7)} PCs")
    ax.set_xlabel("principal component of the role vectors")
    ax.set_ylabel("fraction of variance")
    pl._title(ax, f"persona space PCA at {axis.hook(layer)} - {tag}")
    ax.legend(fontsize=7)
    return pl._save(fig, path)


def plot_pc_scatter(
    path: Path, axis: AssistantAxis, tag: str, layer: int | str | None = None, label_all: bool = True
) -> str:
    pl = _plots()
    plt = pl._plt()
    p = axis.pca(layer)
    i = axis.index(layer)
    s = p.scores
    d = ((axis.default_mean[i] - p.mean) @ p.components[:2].T).tolist()
    fig, ax = plt.subplots(figsize=(7.5, 6))
    for c in dict.fromkeys(axis.role_categories):
        m = torch.tensor([x == c for x in axis.role_categories])
        ax.scatter(
            s[m, 0],
            s[m, 1] if s.shape[1] > 1 else torch.zeros(int(m.sum())),
            s=14,
            color=CAT_COLORS.get(c, "#333"),
            label=c,
        )
    if label_all:
        for n, x, y in zip(
            axis.role_names, s[:, 0].tolist(), (s[:, 1] if s.shape[1] > 1 else torch.zeros(len(s))).tolist()
        ):
            ax.annotate(n, (x, y), fontsize=5, alpha=0.8)
    ax.scatter(
        [d[0]],
        [d[1] if len(d) > 1 else 0],
        marker="*",
        s=180,
        color="gold",
        edgecolor="black",
        label="default Assistant",
        zorder=5,
    )
    ax.set_xlabel(
        f"PC1 ({float(p.explained[0]):.0%}; cos with axis {float(cosine(axis.vectors[i], p.components[0])):+.2f})"
    )
    ax.set_ylabel(f"PC2 ({float(p.explained[1]) if len(p.explained) > 1 else 0:.0%})")
    pl._title(ax, f"roles on PC1/PC2 at {axis.hook(layer)} - {tag}")
    ax.legend(fontsize=6, ncol=2)
    return pl._save(fig, path)


def plot_layers(path: Path, axis: AssistantAxis, tag: str) -> str:
    pl = _plots()
    plt = pl._plt()
    pr = axis.per_layer()
    fig, ax = plt.subplots(figsize=(7, 3.4))
    ax.plot(pr["axis_pc1_cosine"], marker="o", ms=3, label="cos(axis, PC1)")
    ax.plot(pr["pc1_explained"], marker="s", ms=3, label="PC1 explained variance")
    ax.plot(pr["default_pc1_percentile"], marker="^", ms=3, label="default Assistant percentile on PC1")
    ax.axvline(axis.middle_layer, color="grey", ls="--", lw=1, label="middle layer")
    ax.set_xlabel("layer L (blocks.L.hook_resid_post)")
    ax2 = ax.twinx()
    ax2.plot(pr["axis_norm"], color="black", lw=0.8, ls=":", label="axis norm (right)")
    ax2.set_ylabel("axis norm", fontsize=7)
    pl._title(ax, f"the Assistant axis per layer - {tag}")
    ax.legend(fontsize=6, loc="lower left")
    return pl._save(fig, path)


def plot_ranked_roles(path: Path, axis: AssistantAxis, tag: str, layer: int | str | None = None, n: int = 15) -> str:
    pl = _plots()
    plt = pl._plt()
    r = axis.ranked_roles(layer)
    show = r[:n] + r[-n:] if len(r) > 2 * n else r
    fig, ax = plt.subplots(figsize=(6.5, max(3.0, 0.16 * len(show) + 1)))
    ys = list(range(len(show)))[::-1]
    ax.barh(ys, [x[2] for x in show], color=[CAT_COLORS.get(x[1], "#333") for x in show])
    ax.set_yticks(ys)
    ax.set_yticklabels([f"{x[0]} ({x[1]})" for x in show], fontsize=5.5)
    ax.axvline(axis.default_projection(layer), color="gold", lw=2, label="default Assistant")
    ax.set_xlabel("projection of the role vector on the unit axis")
    pl._title(ax, f"roles ranked by projection on the axis at {axis.hook(layer)} (top and bottom {n}) - {tag}")
    ax.legend(fontsize=6)
    return pl._save(fig, path)


def plot_steering(path: Path, sweep: dict[str, Any], tag: str) -> str:
    pl = _plots()
    plt = pl._plt()
    fig, ax = plt.subplots(figsize=(6.2, 3.4))
    for sp in dict.fromkeys(r["system_prompt"] for r in sweep["rows"]):
        rs = [r for r in sweep["rows"] if r["system_prompt"] == sp]
        lab = (sp[:28] + "...") if len(sp) > 28 else (sp or "no system prompt")
        xs, ys = [r["alpha"] for r in rs], [r["ai_fraction"] for r in rs]
        if all("ai_ci" in r for r in rs):
            err = [[y - r["ai_ci"]["lo"] for y, r in zip(ys, rs)], [r["ai_ci"]["hi"] - y for y, r in zip(ys, rs)]]
            ax.errorbar(xs, ys, yerr=err, marker="o", capsize=2, label=f"identifies as AI [{lab}] (95% CI)")
        else:
            ax.plot(xs, ys, marker="o", label=f"identifies as AI [{lab}]")
        ax.plot([r["alpha"] for r in rs], [r["coherence"] for r in rs], marker="s", ls=":", label=f"coherence [{lab}]")
    for j, c in enumerate((sweep.get("control") or {}).get("controls", [])):
        rs = c["rows"]
        ax.plot(
            [r["alpha"] for r in rs],
            [r["ai_fraction"] for r in rs],
            color="grey",
            lw=0.8,
            alpha=0.7,
            label="identifies as AI [random vector, equal norm]" if j == 0 else None,
        )
    ax.set_xlabel("alpha (h <- h + alpha * axis; > 0 toward the Assistant)")
    ax.set_ylim(-0.03, 1.03)
    pl._title(ax, f"steering along the axis at {sweep['hook']} on {len(sweep['questions'])} identity questions - {tag}")
    ax.legend(fontsize=6)
    return pl._save(fig, path)


def plot_drift(path: Path, runs: dict[str, dict[str, Any]], tag: str, tau: float | None = None) -> str:
    """One line per script (solid: uncapped, dashed: capped when given) of the per-turn projection at the first hook."""
    pl = _plots()
    plt = pl._plt()
    fig, ax = plt.subplots(figsize=(7, 3.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    hook = None
    for ls, (label, res) in zip(("-", "--", ":"), runs.items()):
        hook = res["hooks"][0]
        for c, (name, s) in zip(colors * 3, res["scripts"].items()):
            y = s["projection"][hook]
            ax.plot(range(1, len(y) + 1), y, ls=ls, marker="o", ms=3, color=c, label=f"{name} ({label})")
            ci = (s.get("ci") or {}).get(hook)
            if ci:  # several conversations per script: the bootstrap band over conversations
                ax.fill_between(range(1, len(y) + 1), ci["lo"], ci["hi"], color=c, alpha=0.12, lw=0)
    if tau is not None:
        ax.axhline(tau, color="grey", lw=1, ls="-.", label="tau (capping threshold)")
    ax.set_xlabel("Assistant turn")
    ax.set_ylabel("mean projection on the unit axis")
    pl._title(ax, f"persona drift per turn at {hook} over the shipped scripts - {tag}")
    ax.legend(fontsize=5, ncol=2)
    return pl._save(fig, path)


def plot_prefill(path: Path, res: dict[str, Any], tag: str) -> str:
    pl = _plots()
    plt = pl._plt()
    fig, ax = plt.subplots(figsize=(6, 3.4))
    a = [r["alpha"] for r in res["rows"]]
    for k in ("helpful", "fantastical", "other"):
        ax.plot(a, [r[f"{k}_fraction"] for r in res["rows"]], marker="o", label=k)
    ax.set_xlabel("alpha (steering along the axis)")
    ax.set_ylabel("fraction of completions")
    ax.set_ylim(-0.03, 1.03)
    pl._title(ax, f"'I am a ...' completions under steering at {res['hook']}, {res['n_prefills']} prefills - {tag}")
    ax.legend(fontsize=7)
    return pl._save(fig, path)


def plot_compare(path: Path, cmp: dict[str, Any], tag: str) -> str:
    pl = _plots()
    plt = pl._plt()
    fig, ax = plt.subplots(figsize=(7, 3.4))
    ax.plot(cmp["axis_cosine"], marker="o", ms=3, label="cos(base axis, post axis)")
    for j in range(len(cmp["pc_cosines"][0])):
        ax.plot(
            [x[j] if j < len(x) else float("nan") for x in cmp["pc_cosines"]],
            ms=3,
            marker="s",
            label=f"|cos PC{j + 1}|",
        )
    ax.plot(cmp["role_cosine_centred_mean"], marker="^", ms=3, label="role vectors, centred (mean cos)")
    ax.set_xlabel("layer L (blocks.L.hook_resid_post)")
    pl._title(ax, f"base vs post-trained: {cmp['models']['base']} vs {cmp['models']['post']} - {tag}")
    ax.legend(fontsize=6)
    return pl._save(fig, path)
