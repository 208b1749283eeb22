"""``featurescope decompose``: a vector into SAE features, with cards."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any


def padded_rows(seqs: list, context: int, bos: int | None, pad: int | None):
    """``[n, context]`` rows from token sequences: the last ``context`` tokens (BOS kept first), right-padded."""
    import torch

    pad_id = pad if pad is not None else 0
    out = torch.full((len(seqs), context), pad_id, dtype=torch.long)
    for i, t in enumerate(seqs):
        t = t.tolist()
        if len(t) > context:
            head = t[:1] if bos is not None and t[0] == bos else []
            t = head + t[len(t) - (context - len(head)) :]
        out[i, : len(t)] = torch.tensor(t)
    return out


def cmd_decompose(args: argparse.Namespace) -> int:
    import torch

    from .. import corpus, plots
    from ..capture import capture
    from ..cards import cards_html, make_cards
    from ..decompose import decompose
    from ..evidence.decomposition import decomposition_evidence
    from ..formatting import Message
    from ..models import load_model
    from ..persona import PersonaVector
    from ..runs import write_summary
    from ..saes import SHIPPED_PREFIX, check_sae, check_sae_folder, load_sae, resolve_shipped_sae

    t0 = time.time()
    out = Path(args.out)
    pv = PersonaVector.load(args.vector)  # cheap checks first: nothing is loaded or written when one fails
    sae_src = resolve_shipped_sae(args.sae) if args.sae.startswith(SHIPPED_PREFIX) else Path(args.sae).expanduser()
    if sae_src.is_dir():
        check_sae_folder(sae_src)
    model = load_model(args.model)
    pv.check_fits(model, allow_other_model=args.allow_other_model)
    sae = load_sae(args.sae, args.sae_id)
    hook = check_sae(sae, model, allow_other_model=args.allow_other_model)
    pv.check_fits(model, hook, allow_other_model=args.allow_other_model)
    v = pv.at(hook)
    out.mkdir(parents=True, exist_ok=True)
    pos_acts = neg_acts = None
    resp = Path(args.responses) if args.responses else Path(args.vector).parent / "responses.jsonl"
    if resp.exists():
        rows = [json.loads(x) for x in resp.read_text().splitlines() if x.strip()]
        kept = {
            side: [
                ([Message("system", r["instruction"])] if r.get("instruction") else [])
                + [Message("user", r["question"]), Message("assistant", r["response"])]
                for r in rows
                if r.get("kept") and r["side"] == side
            ]
            for side in ("pos", "neg")
        }
        if kept["pos"] and kept["neg"]:
            a = {side: capture(model, convs, [hook], reduction="all", progress=False) for side, convs in kept.items()}
            pos_acts = a["pos"][hook][a["pos"].role_ids == 3]
            neg_acts = a["neg"][hook][a["neg"].role_ids == 3]
    res = decompose(
        v,
        sae,
        pos_acts=pos_acts,
        neg_acts=neg_acts,
        k=args.k,
        methods=("cosine", "encode", "attribution", "selectivity"),
        max_density=args.max_density if args.max_density > 0 else None,
    )
    tag = f"{pv.trait} vector ({pv.kind}) of {pv.model} at {hook}; SAE {args.sae}"
    fig = plots.layer_profile(
        out / "fraction_explained.png",
        {m: d.fraction_explained.tolist() for m, d in res.items()},
        f"fraction of the vector reconstructed by its top-k features - {tag}",
        "fraction of ||v||^2 explained",
        xlabel="k (top features kept)",
        x0=1,
    )
    toks = corpus.sequences(model.tokenizer, "heldout", max_sequences=args.card_sequences, seed=2)
    sources = [(0, "held-out corpus")]
    if pos_acts is not None:  # the trait's own extraction responses: where a persona feature is expected to fire
        from ..formatting import format_conversation

        rows_r = padded_rows(
            [format_conversation(model, c).tokens for side in ("pos", "neg") for c in kept[side]],
            toks.shape[1],
            model.tokenizer.bos_token_id,
            model.tokenizer.pad_token_id,
        )
        sources.append((len(toks), f"{pv.trait} extraction responses (trait-expressing and not)"))
        toks = torch.cat([toks, rows_r])
    top = res.get("attribution", res["cosine"])
    feats, scores = top.indices[: args.cards].tolist(), top.scores[: args.cards].tolist()
    views = {f: top.method for f in feats}
    for name in ("attribution_sparse", "selectivity"):  # these views' top features get cards too
        if name in res:
            sp = res[name]
            for f, sc in zip(sp.indices[: args.cards].tolist(), sp.scores[: args.cards].tolist()):
                if f not in feats:
                    feats.append(f)
                    scores.append(sc)
                    views[f] = name
    cards = make_cards(model, sae, toks, feats, scores=scores, sae_name=str(args.sae), hook=hook, sources=sources)
    tok_acts = torch.cat([pos_acts, neg_acts]) if pos_acts is not None and neg_acts is not None else None
    ev = decomposition_evidence(v, sae, token_acts=tok_acts)
    mean_trackers = set(ev["decoder_bias"]["mean_tracking_latents"])
    for c in cards:
        if c.feature in mean_trackers:
            c.label = "tracks the mean activation (decoder row |cos| >= 0.3 with the decoder bias)"
    (out / "cards.html").write_text("<html><meta charset='utf-8'><body>" + cards_html(cards, tag) + "</body></html>")
    for k_, row in ev["fraction_explained_null"]["per_k"].items():
        iso = row["isotropic"]
        print(
            f"fraction explained by the top {k_} (cosine): {row['value']:.2f}; random directions {iso['mean']:.2f} "
            f"[{iso['lo']:.2f}, {iso['hi']:.2f}]"
            + (
                f", massive-matched {row['massive-matched']['mean']:.2f} [{row['massive-matched']['lo']:.2f}, "
                f"{row['massive-matched']['hi']:.2f}]"
                if "massive-matched" in row
                else ""
            )
            + f" -> {row['verdict']}"
        )
    for m, d in res.items():
        print(
            f"{m:18s} top features {[(i, round(x, 3)) for i, x in d.top(5)]}  k for 50%/90% of the vector: "
            f"{d.k_for(0.5)}/{d.k_for(0.9)}"
        )
    write_summary(
        out,
        "decompose",
        inputs={
            "model": model.info,
            "vector": args.vector,
            "sae": args.sae,
            "hook": hook,
            "responses": str(resp) if pos_acts is not None else None,
        },
        results={
            "decompositions": {m: d.to_dict(args.k) for m, d in res.items()},
            "cards": [
                {**c.to_dict(), "view": views[c.feature], "tracks_mean": c.feature in mean_trackers} for c in cards
            ],
            "evidence": ev,
        },
        timings={"total": time.time() - t0},
        figures=[fig, "cards.html"],
    )
    print(f"summary: {out / 'summary.json'}; cards: {out / 'cards.html'}")
    return 0


def register(sub: Any) -> None:
    dc = sub.add_parser(
        "decompose",
        help="decompose a persona vector (or any direction file) into SAE features, with cards",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    dc.add_argument(
        "--model", default="offline:gemma-3-270m", help="model whose unembedding the cards read (the SAE's model)"
    )
    dc.add_argument("--vector", required=True, help="persona vector .safetensors")
    dc.add_argument(
        "--sae",
        required=True,
        help="SAE folder, shipped SAE name (featurescope:gemma-3-270m/layer_9_resid_post) or sae-lens release",
    )
    dc.add_argument("--sae-id", help="SAE id inside a sae-lens release")
    dc.add_argument("--responses", help="responses.jsonl of the extraction (default: beside the vector)")
    dc.add_argument("--k", type=int, default=100, help="top features per view")
    dc.add_argument("--cards", type=int, default=10, help="feature cards for the top features")
    dc.add_argument("--card-sequences", type=int, default=256, help="held-out corpus rows scanned for card contexts")
    dc.add_argument(
        "--allow-other-model",
        action="store_true",
        help="decompose with an SAE trained on another checkpoint on purpose",
    )
    dc.add_argument(
        "--max-density",
        type=float,
        default=0.1,
        help="also rank only features firing on at most this fraction of the response tokens "
        "(view 'attribution_sparse'; 0 = off)",
    )
    dc.add_argument("--out", required=True, help="output folder")
    dc.set_defaults(func=cmd_decompose)
