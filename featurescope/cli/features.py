"""`featurescope features shared`: latents shared by the Assistant and story characters (featurescope.features)."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_features(args: argparse.Namespace) -> int:
    from ..features import load_pairs, run_shared
    from ..models import load_model
    from ..saes import load_sae

    pairs = load_pairs(args.pairs) if args.pairs else None
    model = load_model(args.model)
    sae = load_sae(args.sae)
    res = run_shared(model, sae, args.out, pairs=pairs, n_perm=args.n_perm, n_shuffles=args.shuffles,
                     sae_name=str(args.sae))  # fmt: skip
    for t, v in res["themes"].items():
        lat = ", ".join(f"{d['latent']} (z {d['z_assistant']:.1f} / {d['z_character']:.1f})" for d in v["latents"])
        print(f"{t:12s} {v['n_pairs']} pairs, threshold z > {v['threshold_z']:.2f}: {lat or 'none'}")
    print(f"shared latents: {res['n_shared']}; with shuffled themes: {res['chance_counts']} -> {res['verdict']}")
    print(f"summary: {Path(args.out) / 'summary.json'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "features",
        help="persona features: latents shared by the Assistant and story characters on paired contexts",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("action", choices=["shared"], help="shared = Assistant / character shared latents per theme")
    p.add_argument("--model", default="offline:gemma-3-270m-sft", help="model whose activations the SAE reads")
    p.add_argument(
        "--sae", default="featurescope:gemma-3-270m-sft/layer_9_resid_post", help="SAE folder or shipped name"
    )
    p.add_argument("--pairs", help="paired-contexts JSONL (default: the shipped featurescope/data/persona_pairs)")
    p.add_argument("--n-perm", type=int, default=500, help="label permutations per theme and side")
    p.add_argument("--shuffles", type=int, default=5, help="theme-label shuffles for the chance count")
    p.add_argument("--out", required=True, help="run folder")
    p.set_defaults(func=cmd_features)
