"""`featurescope features shared`: latents shared by the Assistant and story characters, on the paired contexts.

Reads every pair's two members in the same chat framing (the Assistant's reply / the model narrating the
character passage), encodes each reply token with the SAE, averages per member, and finds per theme the latents
whose theme selectivity clears a Bonferroni threshold on both sides (see :mod:`featurescope.features.shared`),
with the chance count from shuffled theme labels and a card per shared latent.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..capture import as_prompts, capture
from ..cards import cards_html, make_cards
from ..decompose_run import padded_rows
from ..errors import FeaturescopeError
from ..models import Model
from ..runs import write_summary
from ..saes import check_sae
from ..store import atomic_write_text, write_jsonl
from .pairs import PairedContext, load_pairs
from .shared import chance_count, shared_latents


@torch.no_grad()
def member_latents(
    model: Model, sae: Any, conversations: Sequence[list[dict[str, str]]], hook: str, *, batch_size: int = 8
) -> tuple[Tensor, list[Tensor]]:
    """Mean SAE activation over each conversation's reply tokens: ``(n, latents)``, and each conversation's
    token ids (for cards)."""
    prompts = as_prompts(model, list(conversations))
    acts = capture(model, prompts, [hook], reduction="all", batch_size=batch_size, progress=False)
    off, roles, h = acts.offsets, acts.role_ids, acts[hook]
    if off is None or roles is None:
        raise FeaturescopeError("capture returned no token offsets")
    rows = []
    for i in range(len(prompts)):
        a, b = int(off[i]), int(off[i + 1])
        m = roles[a:b] == 3  # assistant (reply) tokens
        z = sae.encode(h[a:b][m].float().to(sae.W_dec.device))
        rows.append(z.mean(0).cpu())
    return torch.stack(rows), [p.tokens for p in prompts]


def run_shared(
    model: Model,
    sae: Any,
    out_dir: str | Path,
    *,
    pairs: Sequence[PairedContext] | None = None,
    hook: str | None = None,
    n_perm: int = 500,
    n_shuffles: int = 5,
    top: int = 8,
    sae_name: str = "sae",
    cards: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    t0 = time.time()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    h = check_sae(sae, model, hook)
    ps = list(pairs) if pairs is not None else load_pairs()
    themes = [p.theme for p in ps]
    a, ta = member_latents(model, sae, [p.assistant_conversation() for p in ps], h)
    c, tc = member_latents(model, sae, [p.character_conversation() for p in ps], h)
    res = shared_latents(a, c, themes, n_perm=n_perm, top=top)
    chance = chance_count(a, c, themes, n_shuffles=n_shuffles, n_perm=max(100, n_perm // 2))
    per_theme = {}
    for t, r in res.items():
        per_theme[t] = {
            "n_pairs": r.n_pairs,
            "threshold_z": r.threshold,
            "latents": [
                {
                    "latent": j,
                    "z_assistant": za,
                    "z_character": zc,
                    "mean_assistant_in_theme": float(a[[x == t for x in themes]][:, j].mean()),
                    "mean_character_in_theme": float(c[[x == t for x in themes]][:, j].mean()),
                    "mean_elsewhere": float(torch.cat([a, c])[[x != t for x in themes * 2]][:, j].mean()),
                }  # fmt: skip
                for j, za, zc in zip(r.latents, r.z_assistant, r.z_character)
            ],
        }
    found = sum(len(r.latents) for r in res.values())
    results: dict[str, Any] = {
        "model": getattr(model, "name", "?"),
        "hook": h,
        "sae": sae_name,
        "n_pairs": len(ps),
        "themes": per_theme,
        "n_shared": found,
        "chance_counts": chance,
        "verdict": (
            "shared latents found above the chance count"
            if found > max(chance, default=0)
            else "not distinguishable from the null (shuffled themes find as many)"
        ),
    }
    # per-pair activations of every reported latent, for recomputation
    ids = sorted({d["latent"] for v in per_theme.values() for d in v["latents"]})
    rows = [
        {
            "id": p.id,
            "theme": p.theme,
            **{f"a{j}": float(a[i, j]) for j in ids},
            **{f"c{j}": float(c[i, j]) for j in ids},
        }
        for i, p in enumerate(ps)
    ]
    write_jsonl(out / "per_pair.jsonl", rows)
    if cards and ids:
        tok = model.tokenizer
        toks = padded_rows(ta + tc, max(len(t) for t in ta + tc), tok.bos_token_id, tok.pad_token_id)
        sources = [(0, "Assistant replies"), (len(ta), "character passages")]
        cs = make_cards(model, sae, toks, ids, sae_name=sae_name, hook=h, sources=sources)
        atomic_write_text(out / "cards.html", cards_html(cs, f"Assistant / character shared latents ({h})"))
        results["cards"] = "cards.html"
    write_summary(
        out,
        "features shared",
        inputs={"model": results["model"], "sae": sae_name, "hook": h, "n_perm": n_perm, "n_shuffles": n_shuffles},
        results=results,
        timings={"total": time.time() - t0},
    )
    return results
