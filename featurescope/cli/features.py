"""`featurescope features shared`: latents shared by the Assistant and story characters (featurescope.features)."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_features(args: argparse.Namespace) -> int:
    from ..features import load_pairs, run_shared
    from ..models import load_model
    from ..saes import load_sae

    if args.action == "interpret":
        return _interpret(args)
    if args.action == "steer":
        return _steer(args)
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


def _interpret(args: argparse.Namespace) -> int:
    import json

    from ..errors import FeaturescopeError
    from ..features.interpret import run_interpret
    from ..judges.choose import get_judge
    from ..models import load_model
    from ..saes import load_sae
    from ..traits import load_trait

    if not args.decomposition:
        raise FeaturescopeError("features interpret needs --decomposition (a decompose run's summary.json)")
    dec = json.loads(Path(args.decomposition).read_text())["results"]["decompositions"]
    latents = {}
    for v in args.views.split(","):
        if v not in dec:
            raise FeaturescopeError(f"{args.decomposition} has no {v!r} view (it has {', '.join(dec)})")
        latents[v] = [int(t[0]) for t in dec[v]["top"][: args.k]]
    model = load_model(args.model)
    sae = load_sae(args.sae)
    res = run_interpret(model, sae, latents, load_trait(args.trait), get_judge(args.judge), args.out,
                        n_null=args.n_null, sae_name=str(args.sae))  # fmt: skip
    u = res["uniform_null"]
    print(f"null (random firing latents): score {u['mean']:.1f} +- {u['sd']:.1f} (n = {u['n']})")
    for view, v in res["views"].items():
        print(f"{view:12s} top {len(v['latents'])}: mean score {v['mean_score']:.1f}, set z (density-matched) "
              f"{v['set_z_density_matched']:+.1f}, {v['n_above']} latents >= {res['z_target']} SD, "
              f"{v['n_tracking_mean']} track the mean")  # fmt: skip
    print(f"target (set z >= {res['z_target']}) met: {res['target_met']}; summary: {Path(args.out) / 'summary.json'}")
    return 0


def _steer(args: argparse.Namespace) -> int:

    from ..errors import FeaturescopeError
    from ..features.interpret import heldout_texts, latent_contexts
    from ..features.steer import latent_steering
    from ..judges.choose import get_judge
    from ..models import load_model
    from ..saes import load_sae
    from ..store import write_json
    from ..traits import load_trait

    if not args.latents:
        raise FeaturescopeError("features steer needs --latents (comma-separated latent indices)")
    latents = [int(x) for x in args.latents.split(",") if x.strip()]
    model = load_model(args.model)
    sae = load_sae(args.sae)
    trait = load_trait(args.trait)
    texts = [t for _, t in heldout_texts()][: args.density_texts]
    density = latent_contexts(model, sae, texts, n_top=1)["density"]  # firing density for the matched controls
    res = latent_steering(
        model, sae, latents, trait, get_judge(args.judge), list(trait.eval_questions[: args.n_questions]), density,
        mode=args.mode, value=args.value, alpha=args.alpha, n_random=args.n_random,
        seeds=tuple(int(x) for x in args.seeds.split(",")), max_new_tokens=args.max_new_tokens,
    )  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "steering.json", res, indent=1)
    for r in res["latents"].values():
        print(r["line"])
    print(f"results: {out / 'steering.json'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "features",
        help="persona features: latents shared by the Assistant and story characters on paired contexts",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "action",
        choices=["shared", "interpret", "steer"],
        help="shared = Assistant / character shared latents per theme; interpret = the trait judge's score of a "
        "decomposition's top latents' top contexts on held-out text, against random latents of matched density; "
        "steer = the trait effect of steering with / clamping single latents, against density-matched random latents",
    )
    p.add_argument("--model", default="offline:gemma-3-270m-sft", help="model whose activations the SAE reads")
    p.add_argument(
        "--sae", default="featurescope:gemma-3-270m-sft/layer_9_resid_post", help="SAE folder or shipped name"
    )
    p.add_argument("--pairs", help="paired-contexts JSONL (None: the shipped featurescope/data/persona_pairs)")
    p.add_argument("--n-perm", type=int, default=500, help="label permutations per theme and side")
    p.add_argument("--shuffles", type=int, default=5, help="theme-label shuffles for the chance count")
    p.add_argument("--decomposition", help="interpret: a decompose run's summary.json (its top latents per view)")
    p.add_argument("--views", default="selectivity,attribution", help="interpret: views whose top latents are scored")
    p.add_argument("--k", type=int, default=10, help="interpret: top latents per view")
    p.add_argument("--trait", default="evil", help="interpret: trait the judge scores")
    p.add_argument("--judge", default="auto", help="interpret: judge name")
    p.add_argument("--n-null", type=int, default=60, help="interpret: random latents in the null")
    p.add_argument("--latents", help="steer: latent indices, comma-separated")
    p.add_argument(
        "--mode", choices=["clamp", "add"], default="clamp", help="steer: clamp the activation / add the decoder row"
    )
    p.add_argument("--value", type=float, help="steer (clamp): the activation the latent is clamped to")
    p.add_argument("--alpha", type=float, default=0.0, help="steer (add): the steering norm along the unit decoder row")
    p.add_argument("--n-random", type=int, default=4, help="steer: density-matched random latents in the null")
    p.add_argument("--seeds", default="0,1,2", help="steer: sampling seeds, comma-separated")
    p.add_argument("--n-questions", type=int, default=8, help="steer: the trait's evaluation questions used")
    p.add_argument("--max-new-tokens", type=int, default=48, help="steer: tokens per answer")
    p.add_argument("--density-texts", type=int, default=400, help="steer: held-out texts read for firing densities")
    p.add_argument("--out", required=True, help="run folder")
    p.set_defaults(func=cmd_features)
