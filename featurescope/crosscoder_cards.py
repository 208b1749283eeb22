"""Feature cards for a crosscoder's post-only (chat-only) and base-only latents: their top contexts on held-out
corpus rows read by both models (:class:`~featurescope.crosscoder_data.HeldOut`), drawn with
:mod:`featurescope.cards`' renderer, with each latent's relative decoder norm and Latent Scaling verdict."""

from __future__ import annotations

import html
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import Tensor

from .cards import FeatureCard, FeatureStats, cards_html, make_cards
from .crosscoder_data import HeldOut
from .errors import FeaturescopeError
from .models import Model
from .stages.crosscoder import CrosscoderWeights, classify_latents, load_crosscoder, post_only_verdicts
from .store import atomic_write_text

#: the latent classes cards are made for, in this order, and their titles
CARD_CLASSES: dict[str, str] = {
    "post_only": "post-only (chat-only) latents",
    "base_only": "base-only latents",
    "shared": "shared latents",
}


@torch.no_grad()
def crosscoder_cards(
    crosscoder: CrosscoderWeights | str | Path,
    base_model: Model,
    post_model: Model,
    held: HeldOut,
    report: dict[str, Any],
    tensors: dict[str, Tensor],
    *,
    hook: str,
    per_class: int = 8,
    classes: Sequence[str] = ("post_only", "base_only"),
    n_contexts: int = 5,
    window: int = 12,
    batch_size: int = 4096,
    bins: int = 24,
) -> tuple[dict[str, list[FeatureCard]], dict[str, list[dict[str, Any]]]]:
    """Feature cards (:mod:`featurescope.cards`) for up to ``per_class`` latents of each of ``classes`` (relative
    decoder norm classes of :func:`analyse_crosscoder`'s ``report`` / ``tensors``) on held-out paired activations
    with their positions (:func:`held_out_pairs` with ``positions``): each card has the latent's top ``n_contexts``
    contexts (windows of ``held.rows`` decoded with the tokenizer), its density and activation histogram on these
    tokens, the output tokens its decoder row promotes through the unembedding (the post-trained model's row and
    model for post-only and shared latents, the base's for base-only ones), and in its label the class, r and the
    Latent Scaling verdict. A latent's activation reads both models' activations on the token (the crosscoder's
    encoder over ``[h_base; h_post]``). Latents that never fire on these tokens get no card; of the rest, the most
    strongly activating come first (post-only: the ones Latent Scaling keeps as truly post-only before the
    artefacts). Returns (section title -> cards, section title -> JSON records)."""
    cc = crosscoder if isinstance(crosscoder, CrosscoderWeights) else load_crosscoder(crosscoder)
    where = held.where
    if where is None or len(where) != len(held.pairs):
        raise FeaturescopeError("crosscoder cards need the (row, position) of every held-out pair (held_out_pairs)")
    unknown = set(classes) - set(CARD_CLASSES)
    if unknown:
        raise FeaturescopeError(f"unknown latent classes {sorted(unknown)}; known: {list(CARD_CLASSES)}")
    d, n_lat, n_tok = int(cc.W_dec.shape[-1]), cc.n_latents, len(held.pairs)

    def batches() -> Iterator[tuple[int, Tensor]]:
        for i in range(0, n_tok, batch_size):
            yield i, cc.encode(held.pairs[i : i + batch_size].float().unflatten(-1, (2, d)))

    top = torch.zeros(n_lat)
    fires = torch.zeros(n_lat, dtype=torch.long)
    for _, f in batches():
        top = torch.maximum(top, f.amax(0))
        fires += (f > 0).sum(0)
    r = tensors["relative_norm"]
    th = report["thresholds"]
    cls = classify_latents(r, th["base_only_r_below"], th["post_only_r_above"])
    n_post = len(cls["post_only"])
    tested = tensors["tested_latents"]
    post_betas = {k: v[:n_post] for k, v in tensors.items() if k.startswith(("beta_", "nu_"))}
    verdicts = {
        v["latent"]: v
        for v in post_only_verdicts(tested[:n_post], post_betas, nu_max=th["nu_max"], recon_floor=th["recon_floor"])
    }
    chosen: dict[str, list[int]] = {}
    for c in classes:
        lat = cls[c][top[cls[c]] > 0]
        first = torch.tensor(
            [verdicts.get(int(j), {}).get("verdict") == "truly post-only" for j in lat], dtype=torch.float
        )
        key = top[lat] + first * (float(top.max()) + 1)  # truly post-only first, then by max activation
        chosen[c] = lat[key.argsort(descending=True)][:per_class].tolist()
    feats = sorted({j for v in chosen.values() for j in v})
    sections: dict[str, list[FeatureCard]] = {}
    records: dict[str, list[dict[str, Any]]] = {}
    if not feats:
        return sections, records
    ft = torch.tensor(feats)
    F, k = len(feats), min(n_contexts, n_tok)
    top_v, top_i = torch.full((F, k), -1.0), torch.zeros((F, k), dtype=torch.long)
    edges = torch.linspace(-3, 3, bins + 1)
    hists = torch.zeros(F, bins)
    for i, f in batches():
        fs = f[:, ft]
        vals, idx = fs.topk(min(k, len(fs)), dim=0)
        best = torch.cat([top_v, vals.T], 1).topk(k, dim=1).indices
        top_v = torch.cat([top_v, vals.T], 1).gather(1, best)
        top_i = torch.cat([top_i, (idx + i).T], 1).gather(1, best)
        for j in range(F):
            x = fs[:, j][fs[:, j] > 0]
            if len(x):
                hists[j] += torch.histc(x.log10().clamp(-3, 3), bins=bins, min=-3, max=3)
    top_rows, top_pos = where[top_i, 0], where[top_i, 1]
    made: dict[int, FeatureCard] = {}
    base_only = set(chosen.get("base_only", []))
    for m, model in ((0, base_model), (1, post_model)):  # each latent's logit lens through the model it belongs to
        idx = [i for i, j in enumerate(feats) if (j in base_only) == (m == 0)]
        if not idx:
            continue
        mine = [feats[i] for i in idx]
        st = FeatureStats(mine, top_v[idx], top_rows[idx], top_pos[idx], fires[ft[idx]], n_tok, edges, hists[idx])
        # make_cards reads an SAE's W_dec rows and hook name: this model's half of the crosscoder's decoder
        decoder = SimpleNamespace(W_dec=cc.W_dec[m], cfg=SimpleNamespace(metadata=SimpleNamespace(hook_name=hook)))
        for card in make_cards(
            model, decoder, held.rows, mine, sae_name="crosscoder", hook=hook, n_contexts=k, window=window, stats=st
        ):
            made[card.feature] = card
    class_name = {"post_only": "post-only", "base_only": "base-only", "shared": "shared"}
    for c, lat in chosen.items():
        title = f"{CARD_CLASSES[c]} ({len(lat)} of {len(cls[c])})"
        sections[title], records[title] = [], []
        for j in lat:
            card, v = made[j], verdicts.get(j)
            verdict = v["verdict"] if v else "not tested (Latent Scaling tests post-only latents)"
            card.label = f"{class_name[c]}, r = {float(r[j]):.3f}, Latent Scaling: {verdict}"
            if v:
                card.label += f" ({v['reason']})"
            sections[title].append(card)
            row = feats.index(j)
            records[title].append(
                {
                    "latent": j,
                    "class": c,
                    "relative_norm": float(r[j]),
                    "verdict": verdict,
                    "density": card.density,
                    "max_activation": float(top[j]),
                    "top_context": "".join(card.contexts[0]["tokens"]) if card.contexts else "",
                    "top_row_position": [int(top_rows[row, 0]), int(top_pos[row, 0])],
                }
            )
    return sections, records


CARDS_NOTE = (
    "<p><small>r = ||d_post|| / (||d_base|| + ||d_post||), the relative decoder norm in the training space (0: "
    "base-only, 1: post-only); a latent's activation reads both models' activations on the same token ids; contexts: "
    "its top-activating held-out tokens (highlighted); promotes / suppresses: its decoder row in the named model "
    "through that model's unembedding. The Latent Scaling verdict (Minder et al. 2025) of a post-only latent says "
    "whether it is truly post-only or a sparsity artefact.</small></p>"
)


def write_cards_html(out: str | Path, sections: dict[str, list[FeatureCard]], title: str) -> Path:
    """``out/cards.html``: one heading per section, then its cards (:func:`featurescope.cards.cards_html`)."""
    path = Path(out) / "cards.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "".join(cards_html(cards, name) for name, cards in sections.items()) or "<p>no latent to show</p>"
    atomic_write_text(
        path, f"<html><meta charset='utf-8'><body><h2>{html.escape(title)}</h2>{CARDS_NOTE}{body}</body></html>"
    )
    return path


def card_pass(
    out: Path,
    path: str | Path,
    base: Model,
    post: Model,
    held: HeldOut,
    measured: dict[str, Any],
    tensors: dict[str, Tensor],
    hook: str,
    per_class: int,
) -> list[str]:
    """The optional card pass of ``crosscoder train`` / ``eval``: ``out/cards.html`` and the records in
    ``measured["cards"]``; returns the figures written."""
    if per_class <= 0:
        return []
    sections, records = crosscoder_cards(
        path, base, post, held, measured["report"], tensors, hook=hook, per_class=per_class
    )
    measured["cards"] = records
    write_cards_html(out, sections, f"crosscoder {path}: {base.name} vs {post.name} at {hook}, held-out corpus rows")
    return ["cards.html"]
