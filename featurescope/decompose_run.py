"""One call per task: a persona vector into SAE features, with cards, the nulls of the decomposition and (with
``out``) the run folder - what ``featurescope decompose`` runs. Returns a :class:`VectorDecomposition` that renders
in Jupyter and plots itself."""

from __future__ import annotations

import dataclasses
import html
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from . import corpus, plots
from .capture import capture
from .cards import FeatureCard, cards_html, make_cards
from .decompose import Decomposition, decompose
from .evidence.decomposition import decomposition_evidence
from .formatting import Message, format_conversation
from .models import Model
from .persona.vector import PersonaVector
from .runs import write_summary
from .saes import check_sae

METHODS = ("cosine", "encode", "attribution", "selectivity")


def padded_rows(seqs: Sequence[Tensor], context: int, bos: int | None, pad: int | None) -> Tensor:
    """``[n, context]`` rows from token sequences: the last ``context`` tokens (BOS kept first), right-padded."""
    pad_id = pad if pad is not None else 0
    out = torch.full((len(seqs), context), pad_id, dtype=torch.long)
    for i, t in enumerate(seqs):
        ids = t.tolist()
        if len(ids) > context:
            head = ids[:1] if bos is not None and ids[0] == bos else []
            ids = head + ids[len(ids) - (context - len(head)) :]
        out[i, : len(ids)] = torch.tensor(ids)
    return out


def kept_conversations(responses: str | Path) -> dict[str, list[list[Message]]]:
    """The kept trait-expressing (``pos``) and baseline (``neg``) conversations of an extraction's
    ``responses.jsonl``."""
    rows = [json.loads(x) for x in Path(responses).read_text().splitlines() if x.strip()]
    return {
        side: [
            ([Message("system", r["instruction"])] if r.get("instruction") else [])
            + [Message("user", r["question"]), Message("assistant", r["response"])]
            for r in rows
            if r.get("kept") and r["side"] == side
        ]
        for side in ("pos", "neg")
    }


@dataclasses.dataclass(frozen=True)
class VectorDecomposition:
    """A vector decomposed into one SAE's features: each view's ranking (:class:`Decomposition`), feature cards,
    and the nulls (random-direction fraction explained; the decoder bias decomposed; mean-tracking latents)."""

    trait: str
    model: str
    hook: str
    sae: str
    decompositions: Mapping[str, Decomposition]
    cards: Sequence[FeatureCard]
    views: Mapping[int, str]
    mean_trackers: frozenset[int]
    evidence: Mapping[str, Any]
    responses: str | None = None

    def summary_results(self, k: int = 100) -> dict[str, Any]:
        """The ``results`` of the run's ``summary.json`` (the layout the report reads)."""
        return {
            "decompositions": {m: d.to_dict(k) for m, d in self.decompositions.items()},
            "cards": [
                {**c.to_dict(), "view": self.views[c.feature], "tracks_mean": c.feature in self.mean_trackers}
                for c in self.cards
            ],
            "evidence": dict(self.evidence),
        }

    def to_frame(self) -> Any:
        """One row per view: top features, k for 50% / 90%, fraction explained by the top 20."""
        import pandas as pd  # optional (notebook extra)

        return pd.DataFrame(
            [
                {
                    "view": m,
                    "top features": [i for i, _ in d.top(8)],
                    "k for 50%": d.k_for(0.5),
                    "k for 90%": d.k_for(0.9),
                    "fraction explained (top 20)": float(d.fraction_explained[min(19, len(d.fraction_explained) - 1)]),
                }
                for m, d in self.decompositions.items()
            ]
        )

    def plot(self, ax: Any = None) -> Any:
        """Fraction of the vector explained by its top-k features per view, with the random-direction null band;
        returns the matplotlib Figure."""
        import matplotlib.pyplot as plt  # heavy: matplotlib (~0.5 s)

        fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6.5, 3.4))
        for m, d in self.decompositions.items():
            y = d.fraction_explained.tolist()
            ax.plot(range(1, len(y) + 1), y, label=m)
        per_k = (self.evidence.get("fraction_explained_null") or {}).get("per_k") or {}
        if per_k:
            ks = sorted(int(k) for k in per_k)
            iso = [per_k[str(k)]["isotropic"] if str(k) in per_k else per_k[k]["isotropic"] for k in ks]
            ax.fill_between(
                ks,
                [x["lo"] for x in iso],
                [x["hi"] for x in iso],
                color="grey",
                alpha=0.3,
                label="random directions (95%)",
            )
        ax.set_xlabel("k (top features kept)")
        ax.set_ylabel("fraction of ||v||^2 explained")
        ax.set_title(f"{self.trait} vector at {self.hook} in {self.sae}", fontsize=8)
        ax.legend(fontsize=7)
        return fig

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(m)}</td><td>{', '.join(str(i) for i, _ in d.top(8))}</td>"
            f"<td>{d.k_for(0.5)}</td><td>{d.k_for(0.9)}</td></tr>"
            for m, d in self.decompositions.items()
        )
        nulls = []
        for k, row in ((self.evidence.get("fraction_explained_null") or {}).get("per_k") or {}).items():
            iso = row["isotropic"]
            nulls.append(
                f"<li>top {k}: {row['value']:.2f}; random directions {iso['mean']:.2f} [{iso['lo']:.2f}, "
                f"{iso['hi']:.2f}] &rarr; {html.escape(row['verdict'])}</li>"
            )
        return (
            f"<div><b>{html.escape(self.trait)}</b> vector of <code>{html.escape(self.model)}</code> at "
            f"{html.escape(self.hook)} in SAE <code>{html.escape(self.sae)}</code>"
            f"<table><tr><th>view</th><th>top features</th><th>k 50%</th><th>k 90%</th></tr>{rows}</table>"
            f"<p>fraction explained (cosine view) vs its null:</p><ul>{''.join(nulls)}</ul>"
            f"{cards_html(self.cards, '')}</div>"
        )


def decompose_vector(
    model: Model,
    vector: PersonaVector,
    sae: Any,
    *,
    sae_name: str = "sae",
    responses: str | Path | None = None,
    k: int = 100,
    n_cards: int = 10,
    card_sequences: int = 256,
    max_density: float | None = 0.1,
    allow_other_model: bool = False,
    out: str | Path | None = None,
    vector_path: str | None = None,
) -> VectorDecomposition:
    """Decompose ``vector`` (at the SAE's hook) into ``sae``'s features in four views (cosine, encode, attribution,
    selectivity; plus sparse-only attribution with ``max_density``), with cards for the top ``n_cards`` of the
    attribution, sparse and selectivity views and the decomposition's nulls. ``responses`` (an extraction's
    ``responses.jsonl``, default: beside ``vector_path``) supplies the token activations for the attribution and
    selectivity views and card contexts from the trait's own answers. With ``out``, writes the run folder
    (``summary.json``, ``cards.html``, ``fraction_explained.png``)."""
    t0 = time.time()
    vector.check_fits(model, allow_other_model=allow_other_model)
    hook = check_sae(sae, model, allow_other_model=allow_other_model)
    vector.check_fits(model, hook, allow_other_model=allow_other_model)
    v = vector.at(hook)
    pos_acts = neg_acts = None
    resp = Path(responses) if responses else (Path(vector_path).parent / "responses.jsonl" if vector_path else None)
    kept: dict[str, list[list[Message]]] = {"pos": [], "neg": []}
    if resp is not None and resp.exists():
        kept = kept_conversations(resp)
        if kept["pos"] and kept["neg"]:
            a = {side: capture(model, convs, [hook], reduction="all", progress=False) for side, convs in kept.items()}
            pos_acts = a["pos"][hook][a["pos"].role_ids == 3]
            neg_acts = a["neg"][hook][a["neg"].role_ids == 3]
    res = decompose(v, sae, pos_acts=pos_acts, neg_acts=neg_acts, k=k, methods=METHODS, max_density=max_density)
    toks = corpus.sequences(model.tokenizer, "heldout", max_sequences=card_sequences, seed=2)
    sources = [(0, "held-out corpus")]
    if pos_acts is not None:  # the trait's own extraction responses: where a persona feature is expected to fire
        rows_r = padded_rows(
            [format_conversation(model, c).tokens for side in ("pos", "neg") for c in kept[side]],
            toks.shape[1],
            model.tokenizer.bos_token_id,
            model.tokenizer.pad_token_id,
        )
        sources.append((len(toks), f"{vector.trait} extraction responses (trait-expressing and not)"))
        toks = torch.cat([toks, rows_r])
    top = res.get("attribution", res["cosine"])
    feats, scores = top.indices[:n_cards].tolist(), top.scores[:n_cards].tolist()
    views = {f: top.method for f in feats}
    for name in ("attribution_sparse", "selectivity"):  # these views' top features get cards too
        if name in res:
            sp = res[name]
            for f, sc in zip(sp.indices[:n_cards].tolist(), sp.scores[:n_cards].tolist()):
                if f not in feats:
                    feats.append(f)
                    scores.append(sc)
                    views[f] = name
    cards = make_cards(model, sae, toks, feats, scores=scores, sae_name=sae_name, hook=hook, sources=sources)
    tok_acts = torch.cat([pos_acts, neg_acts]) if pos_acts is not None and neg_acts is not None else None
    ev = decomposition_evidence(v, sae, token_acts=tok_acts)
    mean_trackers = frozenset(ev["decoder_bias"]["mean_tracking_latents"])
    for c in cards:
        if c.feature in mean_trackers:
            c.label = "tracks the mean activation (decoder row |cos| >= 0.3 with the decoder bias)"
    result = VectorDecomposition(
        trait=vector.trait,
        model=model.name,
        hook=hook,
        sae=sae_name,
        decompositions=res,
        cards=cards,
        views=views,
        mean_trackers=mean_trackers,
        evidence=ev,
        responses=str(resp) if pos_acts is not None else None,
    )
    if out is not None:
        o = Path(out)
        o.mkdir(parents=True, exist_ok=True)
        tag = f"{vector.trait} vector ({vector.kind}) of {vector.model} at {hook}; SAE {sae_name}"
        fig = plots.layer_profile(
            o / "fraction_explained.png",
            {m: d.fraction_explained.tolist() for m, d in res.items()},
            f"fraction of the vector reconstructed by its top-k features - {tag}",
            "fraction of ||v||^2 explained",
            xlabel="k (top features kept)",
            x0=1,
        )
        (o / "cards.html").write_text("<html><meta charset='utf-8'><body>" + cards_html(cards, tag) + "</body></html>")
        write_summary(
            o,
            "decompose",
            inputs={
                "model": model.info,
                "vector": vector_path,
                "sae": sae_name,
                "hook": hook,
                "responses": result.responses,
                "k": k,
                "n_cards": n_cards,
                "max_density": max_density,
            },
            results=result.summary_results(k),
            timings={"total": time.time() - t0},
            figures=[fig, "cards.html"],
        )
    return result


__all__ = ["Decomposition", "VectorDecomposition", "decompose_vector", "kept_conversations", "padded_rows"]
