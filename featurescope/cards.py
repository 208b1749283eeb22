"""Feature cards: what an SAE feature responds to and what it does.

A card holds the feature's top-activating contexts from a corpus (activating tokens highlighted), a histogram of
its non-zero activations, its density (fraction of tokens it fires on), the output tokens its decoder direction
promotes and suppresses through the unembedding (logit lens), and a Neuronpedia link when the sae-lens registry
names one. Cards render in Jupyter (``_repr_html_``) and in the HTML report (``to_html``).
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from .capture import capture
from .formatting import FormattedPrompt
from .models import Model
from .saes import non_special_mask


@dataclasses.dataclass
class FeatureStats:
    """Running statistics of many features over a token stream (from :func:`feature_stats`)."""

    features: list[int]
    top_values: Tensor  # [n_feat, n_top]
    top_rows: Tensor  # [n_feat, n_top]
    top_pos: Tensor  # [n_feat, n_top]
    fire_counts: Tensor  # [n_feat]
    n_tokens: int
    hist_edges: Tensor  # [bins + 1] over log10 activation
    hists: Tensor  # [n_feat, bins]


def feature_stats(
    model: Model,
    sae: Any,
    tokens: Tensor,
    features: Sequence[int],
    hook: str | None = None,
    *,
    n_top: int = 8,
    batch_size: int = 16,
    bins: int = 24,
) -> FeatureStats:
    """One pass over ``tokens`` (``[n, context]``) collecting, for each feature, its top activations (value, row,
    position), firing count and a log-histogram of its non-zero activations. BOS positions are skipped."""

    h = hook or sae.cfg.metadata.hook_name
    feats = torch.tensor(list(features), dtype=torch.long)
    F = len(feats)
    top_v = torch.full((F, n_top), -1.0)
    top_r = torch.zeros((F, n_top), dtype=torch.long)
    top_p = torch.zeros((F, n_top), dtype=torch.long)
    fires = torch.zeros(F, dtype=torch.long)
    edges = torch.linspace(-3, 3, bins + 1)
    hists = torch.zeros((F, bins))
    n_tok = 0
    for i in range(0, len(tokens), batch_size):
        rows = tokens[i : i + batch_size]
        prompts = [
            FormattedPrompt(
                text="",
                tokens=r,
                role_ids=torch.zeros(len(r), dtype=torch.long),
                last_prompt_index=len(r) - 1,
                kind="transcript",
                messages=[],
                has_response=False,
            )
            for r in rows
        ]
        acts = capture(model, prompts, [h], reduction="all", batch_size=batch_size, progress=False)[h]
        with torch.no_grad():
            f = sae.encode(acts.to(sae.W_dec.dtype))[:, feats].float()  # [B*P, F]
        P = rows.shape[1]
        valid = non_special_mask(model.tokenizer, rows.reshape(-1))  # rows may be right-padded
        f[~valid] = 0
        n_tok += int(valid.sum())
        fires += (f > 0).sum(0)
        logf = torch.where(f > 0, f.clamp(min=1e-6).log10(), torch.full_like(f, float("nan")))
        for j in range(F):
            x = logf[:, j]
            x = x[~x.isnan()]
            if len(x):
                hists[j] += torch.histc(x.clamp(-3, 3), bins=bins, min=-3, max=3)
        k = min(n_top, len(f))
        vals, idx = f.topk(k, dim=0)  # [k, F]
        cat_v = torch.cat([top_v, vals.T], 1)
        cat_r = torch.cat([top_r, (i + idx // P).T], 1)
        cat_p = torch.cat([top_p, (idx % P).T], 1)
        best = cat_v.topk(n_top, dim=1).indices
        top_v = cat_v.gather(1, best)
        top_r = cat_r.gather(1, best)
        top_p = cat_p.gather(1, best)
    return FeatureStats(list(features), top_v, top_r, top_p, fires, n_tok, edges, hists)


def logit_effects(
    model: Model, direction: Tensor, k: int = 8
) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """Top promoted and suppressed output tokens of a residual direction through the unembedding."""
    W_U = model.tl.W_U.detach().float()
    logits = direction.float().to(W_U.device) @ W_U
    tok = model.tokenizer
    up = logits.topk(k)
    down = (-logits).topk(k)
    return (
        [(tok.decode([int(i)]), float(v)) for v, i in zip(up.values, up.indices)],
        [(tok.decode([int(i)]), -float(v)) for v, i in zip(down.values, down.indices)],
    )


@dataclasses.dataclass
class FeatureCard:
    feature: int
    sae_name: str
    hook: str
    model: str
    density: float
    contexts: list[dict[str, Any]]  # {"tokens": [str], "values": [float], "max": float, "pos": int[, "source": str]}
    hist_edges: list[float]
    hist: list[float]
    promoted: list[tuple[str, float]]
    suppressed: list[tuple[str, float]]
    neuronpedia: str | None = None
    score: float | None = None  # e.g. its weight in a decomposition
    label: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def _hist_png(self) -> str:
        import matplotlib  # heavy: matplotlib (~0.5 s)

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # heavy: matplotlib (~0.5 s)

        fig, ax = plt.subplots(figsize=(2.6, 1.3))
        centers = [(a + b) / 2 for a, b in zip(self.hist_edges[:-1], self.hist_edges[1:])]
        ax.bar(centers, self.hist, width=(self.hist_edges[1] - self.hist_edges[0]) * 0.9, color="#8e44ad")
        ax.set_xlabel("log10 activation", fontsize=6)
        ax.tick_params(labelsize=5)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        plt.close(fig)
        return base64.b64encode(buf.getvalue()).decode()

    def to_html(self) -> str:
        def ctx_html(c: dict[str, Any]) -> str:
            mx = max(c["max"], 1e-9)
            spans = []
            for t, v in zip(c["tokens"], c["values"]):
                a = max(0.0, min(1.0, v / mx))
                style = f"background:rgba(231,76,60,{a:.2f})" if v > 0 else ""
                title = f" title='{v:.2f}'" if v > 0 else ""
                spans.append(f"<span style='{style}'{title}>{html.escape(t).replace(chr(10), '&#8629;')}</span>")
            src = f" <small>[{html.escape(c['source'])}]</small>" if c.get("source") else ""
            return (
                f"<div style='font-family:monospace;font-size:11px;margin:2px 0'>{''.join(spans)} "
                f"<i>({c['max']:.2f})</i>{src}</div>"
            )

        head = f"feature {self.feature}" + (f" &middot; {html.escape(self.label)}" if self.label else "")
        link = f" &middot; <a href='{self.neuronpedia}'>Neuronpedia</a>" if self.neuronpedia else ""
        score = f" &middot; score {self.score:.3f}" if self.score is not None else ""
        promoted = ", ".join(f"<code>{html.escape(t)}</code>" for t, _ in self.promoted)
        suppressed = ", ".join(f"<code>{html.escape(t)}</code>" for t, _ in self.suppressed)
        return (
            "<div class='fs-card' style='border:1px solid #ccc;border-radius:6px;padding:6px;margin:6px 0'>"
            f"<div><b>{head}</b> <small>({html.escape(self.sae_name)}, {html.escape(self.hook)}, {html.escape(self.model)})"
            f"{score} &middot; density {self.density:.2e}{link}</small></div>"
            f"<div style='display:flex;gap:8px'><div style='flex:1'>{''.join(ctx_html(c) for c in self.contexts)}</div>"
            f"<img src='data:image/png;base64,{self._hist_png()}'/></div>"
            f"<div><small>promotes: {promoted}<br/>suppresses: {suppressed}</small></div></div>"
        )

    def _repr_html_(self) -> str:
        return self.to_html()


def neuronpedia_url(sae: Any, feature: int) -> str | None:
    np_id = getattr(sae.cfg.metadata, "neuronpedia_id", None)
    return f"https://www.neuronpedia.org/{np_id}/{feature}" if np_id else None


def make_cards(
    model: Model,
    sae: Any,
    tokens: Tensor,
    features: Sequence[int],
    *,
    scores: Sequence[float] | None = None,
    sae_name: str = "sae",
    hook: str | None = None,
    n_contexts: int = 5,
    window: int = 12,
    stats: FeatureStats | None = None,
    sources: Sequence[tuple[int, str]] | None = None,
) -> list[FeatureCard]:
    """Feature cards for ``features`` from one pass over ``tokens``. ``sources`` = [(first row, label), ...] names
    where the rows come from (e.g. ``[(0, "held-out corpus"), (256, "evil responses")]``); each context says it."""
    h = hook or sae.cfg.metadata.hook_name
    st = stats or feature_stats(model, sae, tokens, features, h, n_top=n_contexts)
    tok = model.tokenizer
    cards = []
    for j, f in enumerate(features):
        contexts = []
        for v, r, p in zip(st.top_values[j], st.top_rows[j], st.top_pos[j]):
            if v <= 0:
                continue
            lo, hi = max(1, int(p) - window), min(tokens.shape[1], int(p) + 4)
            ids = tokens[int(r), lo:hi].tolist()
            vals = [0.0] * len(ids)
            vals[int(p) - lo] = float(v)
            ctx = {"tokens": [tok.decode([i]) for i in ids], "values": vals, "max": float(v), "pos": int(p) - lo}
            if sources:
                ctx["source"] = [label for first, label in sources if int(r) >= first][-1]
            contexts.append(ctx)
        up, down = logit_effects(model, sae.W_dec[f].detach())
        cards.append(
            FeatureCard(
                feature=int(f),
                sae_name=sae_name,
                hook=h,
                model=model.name,
                density=float(st.fire_counts[j]) / max(st.n_tokens, 1),
                contexts=contexts,
                hist_edges=st.hist_edges.tolist(),
                hist=st.hists[j].tolist(),
                promoted=up,
                suppressed=down,
                neuronpedia=neuronpedia_url(sae, int(f)),
                score=None if scores is None else float(scores[j]),
            )
        )
    return cards


def cards_html(cards: Sequence[FeatureCard], title: str = "") -> str:
    return (f"<h3>{html.escape(title)}</h3>" if title else "") + "".join(c.to_html() for c in cards)
