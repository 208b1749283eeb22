"""``featurescope sae``: train | eval."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from ..models import load_model
from ..sae_run import TRAIN_DEFAULTS, sae_eval, sae_train


def cmd_sae(args: argparse.Namespace) -> int:
    t0 = time.time()
    model = load_model(args.model, adapter=args.adapter)
    common: dict[str, Any] = dict(
        context=args.context, eval_sequences=args.eval_sequences, ce_batches=args.ce_batches, load_s=time.time() - t0
    )
    if args.action == "train":
        sae_train(
            model,
            args.out,
            layers=[int(x) for x in args.layers.split(",")],
            training_tokens=args.training_tokens,
            d_sae=args.d_sae,
            k=args.k,
            lr=args.lr,
            seed=args.seed,
            batch_size_tokens=args.batch_tokens,
            store_batch_size_prompts=args.store_batch,
            dead_feature_window=args.dead_window,
            retrain=f"featurescope sae train --model {args.model} --layers {args.layers} "
            f"--training-tokens {args.training_tokens} --d-sae {args.d_sae} --k {args.k} "
            f"--lr {args.lr} --batch-tokens {args.batch_tokens} --dead-window {args.dead_window} "
            f"--seed {args.seed} "
            f"--out {args.out}",
            **common,
        )
    else:  # eval
        ev = sae_eval(
            model,
            args.sae,
            args.out,
            sae_id=args.sae_id,
            hook=args.hook,
            allow_other_model=args.allow_other_model,
            **common,
        )
        print(json.dumps({k: v for k, v in ev.items() if k != "density_hist"}, indent=2))
    return 0


def register(sub: Any) -> None:
    sa = sub.add_parser(
        "sae",
        help="SAEs: train (sae-lens trainer, offline corpus) | eval (any SAE on any model)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sa.add_argument(
        "action",
        choices=["train", "eval"],
        help="train: SAEs through sae-lens' trainer; eval: FVE, CE recovered, L0, dead latents",
    )
    sa.add_argument("--model", default="offline:gemma-3-270m", help="model name or local folder")
    sa.add_argument("--layers", default="6,9", help="residual layers to train SAEs on (train)")
    sa.add_argument(
        "--training-tokens", type=int, default=TRAIN_DEFAULTS["training_tokens"], help="tokens per SAE (train)"
    )
    sa.add_argument("--d-sae", type=int, default=TRAIN_DEFAULTS["d_sae"], help="latents per SAE (train)")
    sa.add_argument("--k", type=int, default=TRAIN_DEFAULTS["k"], help="BatchTopK k (= mean L0)")
    sa.add_argument("--lr", type=float, default=TRAIN_DEFAULTS["lr"], help="learning rate (train)")
    sa.add_argument(
        "--batch-tokens",
        type=int,
        default=TRAIN_DEFAULTS["batch_size_tokens"],
        help="tokens per SAE training batch (train)",
    )
    sa.add_argument(
        "--dead-window",
        type=int,
        default=TRAIN_DEFAULTS["dead_feature_window"],
        help="steps without firing before a latent counts as dead for the auxiliary loss (train)",
    )
    sa.add_argument(
        "--store-batch",
        type=int,
        default=TRAIN_DEFAULTS["store_batch_size_prompts"],
        help="prompts per model forward pass feeding the SAEs (train)",
    )
    sa.add_argument("--adapter", help="peft adapter folder merged into --model")
    sa.add_argument("--context", type=int, default=128, help="tokens per training / eval sequence")
    sa.add_argument("--seed", type=int, default=TRAIN_DEFAULTS["seed"], help="training seed")
    sa.add_argument("--eval-sequences", type=int, default=128, help="held-out rows of --context tokens for evaluation")
    sa.add_argument("--ce-batches", type=int, default=4, help="batches of 16 held-out rows for CE-loss recovered")
    sa.add_argument("--sae", help="SAE folder, or sae-lens release (eval)")
    sa.add_argument("--sae-id", help="sae-lens SAE id within the release (eval)")
    sa.add_argument("--hook", help="hook to evaluate at (default: the SAE's own)")
    sa.add_argument(
        "--allow-other-model", action="store_true", help="evaluate an SAE trained on another checkpoint (transfer)"
    )
    sa.add_argument("--out", required=True, help="output folder")
    sa.set_defaults(func=cmd_sae)
