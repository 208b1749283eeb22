"""``featurescope stages``: feature reuse across training stages (see :mod:`featurescope.stages`)."""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import FeaturescopeError
from ..models import Model, load_model
from ..saes import check_sae, load_sae, sae_hook
from ..stages import PARTS, StagesConfig, load_persona_vectors, run_stages
from ..stages.random_lora import random_lora_like
from ..traits import list_traits
from .io import add_config_flag, config_from_args


def _csv(s: str | None) -> tuple[str, ...]:
    return tuple(x.strip() for x in s.split(",") if x.strip()) if s else ()


def cmd_stages(args: argparse.Namespace) -> int:
    parts = _csv(args.parts) or PARTS
    skip = set(_csv(args.skip))
    parts = tuple(p for p in parts if p not in skip)
    cfg = config_from_args(
        StagesConfig,
        args,
        {"reuse_threshold": "threshold", "n_cards": "cards"},
        parts=parts if (args.parts or args.skip) else None,
        traits=_csv(args.traits) if args.traits else None,
    )
    base_sae = load_sae(args.base_sae, args.base_sae_id)
    post_sae = load_sae(args.post_sae, args.post_sae_id)
    base = load_model(args.base, device=args.device)
    post = load_model(args.post, device=args.device)
    if args.hook:
        hook: Any = args.hook
    elif args.layer is not None:
        hook = base.resid_hook(args.layer)
    else:
        hook = sae_hook(base_sae)
        if hook is None:
            raise FeaturescopeError("the base SAE records no hook; pass --layer or --hook")
    vectors = None
    if args.persona_base or args.persona_post:
        if not (args.persona_base and args.persona_post):
            raise FeaturescopeError("--persona-base and --persona-post go together (folders of persona extract output)")
        vectors = load_persona_vectors(
            args.persona_base, args.persona_post, list(cfg.traits) or list_traits(), kind=args.persona_vector_kind
        )
    names = (
        f"{args.base_sae}" + (f"/{args.base_sae_id}" if args.base_sae_id else ""),
        f"{args.post_sae}" + (f"/{args.post_sae_id}" if args.post_sae_id else ""),
    )
    control = None
    if args.control_sae:
        control = load_sae(args.control_sae, args.control_sae_id)
        check_sae(control, base, hook)
    null_model = None
    make_null: Callable[[int], Model] | None = None
    if args.random_lora_null or args.random_lora_seeds:
        adapter = post.info.adapter
        if not adapter:
            raise FeaturescopeError(
                "--random-lora-null / --random-lora-seeds need a post-trained model with a peft adapter"
            )
        tmp_root = Path(tempfile.mkdtemp(prefix="featurescope-random-lora-"))

        def null_for(seed: int) -> Model:
            random_lora_like(adapter, tmp_root / str(seed), seed=seed)
            return load_model(args.base, adapter=tmp_root / str(seed), stage="base", device=args.device)

        make_null = null_for
        if args.random_lora_null:
            null_model = null_for(args.seed)
    res = run_stages(
        base,
        post,
        base_sae,
        post_sae,
        hook,
        args.out,
        config=cfg,
        crosscoder=args.crosscoder,
        persona_vectors=vectors,
        sae_names=names,
        progress=not args.quiet,
        control_sae=control,
        null_model=null_model,
        null_seeds=range(args.seed + 1, args.seed + 1 + args.random_lora_seeds),
        make_null_model=make_null,
    )
    _print(res)
    print(f"summary: {Path(args.out) / 'summary.json'}")
    return 0


def _print(res: Any) -> None:  # a StagesResult (dict access) or the dict run_stages used to return
    tr = res.get("transfer")
    if tr:
        for sk in ("base_sae", "post_sae"):
            for mk in ("base_model", "post_model"):
                for set_k, m in tr[sk][mk].items():
                    print(
                        f"{sk:9s} on {mk:10s} {set_k:5s}: FVE {m['fraction_variance_explained']:.3f}  "
                        f"CE recovered {m.get('ce_loss_recovered', float('nan')):.3f}  L0 {m['l0']:.1f}"
                    )
    mt = res.get("matching")
    if mt:
        bl = ", ".join(f"{k} {v['fraction_post_reused']:.1%}" for k, v in mt["baselines"].items())
        print(
            f"post latents reused (best cos >= {mt['threshold']}): {mt['fraction_post_reused']:.1%} "
            f"(baselines: {bl}); base latents kept: {mt['fraction_base_kept']:.1%}; new: {mt['n_new']}"
        )
        if "seed" in mt["baselines"]:
            print(
                f"  a second base-model SAE (other seed) reuses {mt['baselines']['seed']['fraction_post_reused']:.1%}"
                f" of its latents: post reuse relative to that ceiling "
                f"{mt['fraction_post_reused_relative_to_seed_ceiling']:.2f}"
            )
    sh = res.get("activation_shift")
    if sh:
        for sk in ("base_sae", "post_sae"):
            up = [r["latent"] for r in sh[sk]["up"][:5]]
            down = [r["latent"] for r in sh[sk]["down"][:5]]
            print(f"{sk}: most up-regulated on Assistant tokens {up}; down {down}")
    pe = res.get("persona")
    if pe:
        for t, v in pe["traits"].items():
            print(
                f"persona {t:14s} cos(base, post) at layer {pe['layer']}: {v['cosine_at_layer']:+.3f}; top-"
                f"{pe['top_k']} base-SAE feature Jaccard {v['top_features_base_sae']['jaccard']:.2f}"
            )
    cc = res.get("crosscoder")
    if cc:
        print(f"crosscoder: {json.dumps(cc.get('counts', cc.get('status')))}")


def register(sub: Any) -> None:
    s = sub.add_parser(
        "stages",
        help="feature reuse across training stages: SAE transfer, feature matching, "
        "activation shift, persona vectors, crosscoder diff",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    s.add_argument("--base", default="offline:gemma-3-270m", help="base checkpoint")
    s.add_argument("--post", default="offline:gemma-3-270m-sft", help="post-trained checkpoint (same tokenizer)")
    s.add_argument("--base-sae", required=True, help="SAE folder, or sae-lens release (with --base-sae-id)")
    s.add_argument("--base-sae-id", help="sae-lens SAE id within the release")
    s.add_argument("--post-sae", required=True, help="SAE folder, or sae-lens release (with --post-sae-id)")
    s.add_argument("--post-sae-id", help="SAE id inside the post-trained SAE's sae-lens release")
    s.add_argument("--layer", type=int, help="residual layer (blocks.L.hook_resid_post; None: the base SAE's hook)")
    s.add_argument("--hook", help="explicit hook name (overrides --layer)")
    s.add_argument("--out", required=True, help="run folder (summary.json, figures, cards.html)")
    s.add_argument("--parts", help="comma-separated subset of transfer,matching,shift,persona,crosscoder (None: all)")
    s.add_argument("--skip", help="comma-separated parts to leave out")
    s.add_argument(
        "--control-sae",
        help="a second SAE of the BASE model at the same hook (same recipe, other seed): "
        "the reuse ceiling when only the SAE's training run differs",
    )
    s.add_argument("--control-sae-id", help="SAE id of the control SAE's release")
    s.add_argument("--threshold", type=float, default=0.7, help="decoder cosine at which a latent counts as reused")
    s.add_argument("--context", type=int, default=128, help="tokens per text sequence")
    s.add_argument("--plain-rows", type=int, default=48, help="held-out corpus rows")
    s.add_argument("--chat-dialogues", type=int, default=60, help="held-out dialogues answered by the post model")
    s.add_argument("--max-new-tokens", type=int, default=48, help="tokens generated per answer")
    s.add_argument("--ce-rows", type=int, default=12, help="rows per (SAE, model, text set) for CE-loss recovered")
    s.add_argument("--cards", type=int, default=6, help="feature cards per list")
    s.add_argument("--traits", help="comma-separated traits (None: all shipped)")
    s.add_argument("--persona-questions", type=int, default=5, help="extraction questions per instruction pair")
    s.add_argument(
        "--persona-kind",
        default="prompt_mean",
        choices=["prompt_mean", "last_prompt"],
        help="persona vector reduction read by the cross-stage persona part",
    )
    s.add_argument(
        "--persona-format",
        default="own",
        choices=["own", "post"],
        help="own: each model its own prompt format; post: both on the post model's token ids",
    )
    s.add_argument("--persona-base", help="folder of persona vectors of the base model (persona extract output)")
    s.add_argument("--persona-post", help="folder of persona vectors of the post-trained model")
    s.add_argument(
        "--persona-vector-kind",
        default="response_mean",
        help="which saved vector file of the persona folders to compare",
    )
    s.add_argument(
        "--crosscoder",
        help="crosscoder checkpoint (.safetensors/.pt; dictionary_learning or W_enc/W_dec "
        "layout, model 0 = base) to classify and check with Latent Scaling",
    )
    s.add_argument("--block-rows", type=int, help="matching tile rows (None: 1024 on CPU, 8192 on GPU)")
    s.add_argument("--block-cols", type=int, help="matching tile columns (None: 16384 on CPU, 65536 on GPU)")
    s.add_argument(
        "--match-dtype",
        default="float32",
        choices=["float32", "bfloat16"],
        help="matmul dtype for feature matching (bfloat16 for 1M-latent dictionaries on a GPU)",
    )
    s.add_argument("--seed", type=int, default=0, help="seed of sampling and nulls")
    add_config_flag(s, "StagesConfig")
    s.add_argument("--device", help="torch device (None: cuda if present, else cpu)")
    s.add_argument("--quiet", action="store_true", help="no progress bars")
    s.add_argument(
        "--random-lora-null",
        action="store_true",
        help="also measure the base SAE on the base model + a random LoRA with the post adapter's per-module weight "
        "change (the transfer null; needs a post model with a peft adapter)",
    )
    s.add_argument(
        "--random-lora-seeds",
        type=int,
        default=0,
        help="the transfer null over this many more random LoRAs (seeds after --seed; FVE only, one model loaded at "
        "a time; 19 give a rank p below 0.05)",
    )
    s.set_defaults(func=cmd_stages)
