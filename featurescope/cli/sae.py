"""``featurescope sae``: train | eval - one subcommand each, with only the flags that action uses."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from ..models import load_model
from ..sae_run import TRAIN_DEFAULTS, sae_eval, sae_train
from .crosscoder import add_sources_flag
from .io import int_list, nonempty

FMT = argparse.ArgumentDefaultsHelpFormatter


def _measure(args: argparse.Namespace) -> dict[str, Any]:
    """The held-out evaluation settings both actions pass to the library."""
    return dict(context=args.context, eval_sequences=args.eval_sequences, ce_batches=args.ce_batches)


def cmd_sae_train(args: argparse.Namespace) -> int:
    t0 = time.time()
    model = load_model(args.model, adapter=args.adapter)
    layers = ",".join(str(x) for x in args.layers)
    sae_train(
        model,
        args.out,
        layers=args.layers,
        training_tokens=args.training_tokens,
        d_sae=args.d_sae,
        k=args.k,
        lr=args.lr,
        seed=args.seed,
        batch_size_tokens=args.batch_tokens,
        store_batch_size_prompts=args.store_batch,
        dead_feature_window=args.dead_window,
        outlier_k=args.outlier_k if args.outlier_k > 0 else None,
        sources=args.sources,
        retrain=f"featurescope sae train --model {args.model} --layers {layers} "
        f"--training-tokens {args.training_tokens} --d-sae {args.d_sae} --k {args.k} "
        f"--lr {args.lr} --batch-tokens {args.batch_tokens} --dead-window {args.dead_window} "
        f"--outlier-k {args.outlier_k} --seed {args.seed} --sources {','.join(args.sources)} "
        f"--out {args.out}",
        load_s=time.time() - t0,
        **_measure(args),
    )
    return 0


def cmd_sae_eval(args: argparse.Namespace) -> int:
    t0 = time.time()
    model = load_model(args.model, adapter=args.adapter)
    ev = sae_eval(
        model,
        args.sae,
        args.out,
        sae_id=args.sae_id,
        hook=args.hook,
        allow_other_model=args.allow_other_model,
        load_s=time.time() - t0,
        **_measure(args),
    )
    print(json.dumps({k: v for k, v in ev.items() if k != "density_hist"}, indent=2))
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    """Flags of both actions: the model, the held-out measurement, the run folder."""
    p.add_argument("--model", default="offline:gemma-3-270m", help="model name or local folder")
    p.add_argument("--adapter", help="peft adapter folder merged into --model")
    p.add_argument("--context", type=int, default=128, help="tokens per training / eval sequence")
    p.add_argument("--eval-sequences", type=int, default=128, help="held-out rows of --context tokens for evaluation")
    p.add_argument("--ce-batches", type=int, default=4, help="batches of 16 held-out rows for CE-loss recovered")
    p.add_argument("--out", required=True, help="run folder (summary.json; train: one SAE folder per layer)")


def register(sub: Any) -> None:
    sa = sub.add_parser(
        "sae",
        help="SAEs: train (sae-lens trainer, offline corpus) | eval (any SAE on any model)",
        description="SAEs: `featurescope sae ACTION --help` lists an action's flags.",
        formatter_class=FMT,
    )
    acts = sa.add_subparsers(dest="action", metavar="ACTION", required=True, help="what to do")

    t = acts.add_parser("train", formatter_class=FMT, help="BatchTopK SAEs through sae-lens' trainer")
    _common(t)
    t.add_argument(
        "--layers", type=nonempty(int_list), default="6,9", help="residual layers to train SAEs on, comma-separated"
    )
    t.add_argument("--training-tokens", type=int, default=TRAIN_DEFAULTS["training_tokens"], help="tokens per SAE")
    t.add_argument("--d-sae", type=int, default=TRAIN_DEFAULTS["d_sae"], help="latents per SAE")
    t.add_argument("--k", type=int, default=TRAIN_DEFAULTS["k"], help="BatchTopK k (= mean L0)")
    t.add_argument("--lr", type=float, default=TRAIN_DEFAULTS["lr"], help="learning rate")
    t.add_argument(
        "--batch-tokens", type=int, default=TRAIN_DEFAULTS["batch_size_tokens"], help="tokens per SAE training batch"
    )
    t.add_argument(
        "--dead-window",
        type=int,
        default=TRAIN_DEFAULTS["dead_feature_window"],
        help="steps without firing before a latent counts as dead for the auxiliary loss",
    )
    t.add_argument(
        "--store-batch",
        type=int,
        default=TRAIN_DEFAULTS["store_batch_size_prompts"],
        help="prompts per model forward pass feeding the SAEs",
    )
    t.add_argument(
        "--outlier-k",
        type=float,
        default=TRAIN_DEFAULTS["outlier_k"],
        help="leave out training tokens whose norm exceeds this x the batch's median token norm at any trained "
        "layer (massive-activation tokens; 0 = keep every token)",
    )
    t.add_argument("--seed", type=int, default=TRAIN_DEFAULTS["seed"], help="training seed")
    add_sources_flag(t)
    t.set_defaults(func=cmd_sae_train)

    e = acts.add_parser("eval", formatter_class=FMT, help="FVE, CE loss recovered, L0 and dead latents of any SAE")
    _common(e)
    e.add_argument("--sae", required=True, help="SAE folder, shipped SAE name, or sae-lens release")
    e.add_argument("--sae-id", help="sae-lens SAE id within the release")
    e.add_argument("--hook", help="hook to evaluate at (None: the SAE's own)")
    e.add_argument(
        "--allow-other-model", action="store_true", help="evaluate an SAE trained on another checkpoint (transfer)"
    )
    e.set_defaults(func=cmd_sae_eval)
