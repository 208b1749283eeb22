"""``featurescope decompose``: a vector into SAE features, with cards."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..decompose_run import decompose_vector
from ..models import load_model
from ..persona import PersonaVector
from ..saes import SHIPPED_PREFIX, check_sae_folder, load_sae, resolve_shipped_sae


def cmd_decompose(args: argparse.Namespace) -> int:
    pv = PersonaVector.load(args.vector)  # cheap checks first: nothing is loaded or written when one fails
    sae_src = resolve_shipped_sae(args.sae) if args.sae.startswith(SHIPPED_PREFIX) else Path(args.sae).expanduser()
    if sae_src.is_dir():
        check_sae_folder(sae_src)
    model = load_model(args.model)
    pv.check_fits(model, allow_other_model=args.allow_other_model)
    res = decompose_vector(
        model,
        pv,
        load_sae(args.sae, args.sae_id),
        sae_name=str(args.sae),
        responses=args.responses,
        k=args.k,
        n_cards=args.cards,
        card_sequences=args.card_sequences,
        max_density=args.max_density if args.max_density > 0 else None,
        allow_other_model=args.allow_other_model,
        out=args.out,
        vector_path=args.vector,
    )
    for k_, row in res.evidence["fraction_explained_null"]["per_k"].items():
        iso = row["isotropic"]
        mm = row.get("massive-matched")
        print(
            f"fraction explained by the top {k_} (cosine): {row['value']:.2f}; random directions {iso['mean']:.2f} "
            f"[{iso['lo']:.2f}, {iso['hi']:.2f}]"
            + (f", massive-matched {mm['mean']:.2f} [{mm['lo']:.2f}, {mm['hi']:.2f}]" if mm else "")
            + f" -> {row['verdict']}"
        )
    for m, d in res.decompositions.items():
        print(
            f"{m:18s} top features {[(i, round(x, 3)) for i, x in d.top(5)]}  k for 50%/90% of the vector: "
            f"{d.k_for(0.5)}/{d.k_for(0.9)}"
        )
    out = Path(args.out)
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
    dc.add_argument("--responses", help="responses.jsonl of the extraction (None: beside the vector)")
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
