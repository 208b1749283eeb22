"""``featurescope sae``: train | eval."""

from __future__ import annotations

import argparse
import inspect
import json
import time
from pathlib import Path
from typing import Any

from ..saes import train_saes


def cmd_sae(args: argparse.Namespace) -> int:

    from .. import corpus
    from ..models import load_model
    from ..runs import write_summary
    from ..saes import compact, evaluate_sae, load_sae
    from ..store import write_json

    t0 = time.time()
    out = Path(args.out)
    model = load_model(args.model, adapter=args.adapter)
    heldout = corpus.sequences(
        model.tokenizer, "heldout", context_size=args.context, max_sequences=args.eval_sequences, seed=1
    )
    if args.action == "train":
        hooks = [model.resid_hook(int(x)) for x in args.layers.split(",")]
        n_rows = args.training_tokens // (args.context - 1) + 64
        train = corpus.sequences(
            model.tokenizer, "train", context_size=args.context, max_sequences=n_rows, seed=args.seed
        )
        epochs = args.training_tokens / max(train.numel(), 1)
        print(
            f"training {len(hooks)} SAE(s) on {args.training_tokens:,} tokens ({epochs:.1f} passes over the "
            f"{train.numel():,} corpus tokens; {model.name}, hooks {hooks})",
            flush=True,
        )
        t = time.time()
        paths = train_saes(
            model,
            hooks,
            out / "_work",
            tokens=train,
            d_sae=args.d_sae,
            k=args.k,
            training_tokens=args.training_tokens,
            lr=args.lr,
            seed=args.seed,
            batch_size_tokens=args.batch_tokens,
            store_batch_size_prompts=args.store_batch,
            dead_feature_window=args.dead_window,
        )
        t_train = time.time() - t
        evals = {}
        for h, p in paths.items():
            dst = compact(
                p, out / h.replace(".", "_").replace("blocks_", "layer_").replace("_hook_resid_post", "_resid_post")
            )
            sae = load_sae(dst)
            ev = evaluate_sae(sae, model, heldout, h, ce_batches=args.ce_batches)
            ev.update(
                {
                    "training_tokens": args.training_tokens,
                    "training_seconds": round(t_train, 1),
                    "d_sae": args.d_sae,
                    "k": args.k,
                    "architecture": "batchtopk -> jumprelu (inference)",
                    "seed": args.seed,
                    "corpus": corpus.describe_short(),
                    "heldout_tokens": int(heldout.numel()),
                    "lr": args.lr,
                    "corpus_passes": round(epochs, 2),
                    "device": str(model.device),
                    "retrain": f"featurescope sae train --model {args.model} --layers {args.layers} "
                    f"--training-tokens {args.training_tokens} --d-sae {args.d_sae} --k {args.k} "
                    f"--lr {args.lr} --batch-tokens {args.batch_tokens} --dead-window {args.dead_window} "
                    f"--seed {args.seed} "
                    f"--out {args.out}",
                }
            )
            write_json(dst / "eval.json", ev, indent=2)
            evals[h] = {k: v for k, v in ev.items() if k != "density_hist"}
            print(
                f"{h}: FVE {ev['fraction_variance_explained']:.3f}  CE recovered {ev['ce_loss_recovered']:.3f}  "
                f"L0 {ev['l0']:.1f}  dead {ev['dead_fraction']:.3f}  -> {dst}"
            )
        write_summary(
            out,
            "sae train",
            inputs={
                "model": model.info,
                "layers": args.layers,
                "d_sae": args.d_sae,
                "k": args.k,
                "training_tokens": args.training_tokens,
                "seed": args.seed,
            },
            results=evals,
            timings={"train": t_train, "total": time.time() - t0},
        )
    else:  # eval
        sae = load_sae(args.sae, args.sae_id)
        ev = evaluate_sae(
            sae, model, heldout, args.hook, allow_other_model=args.allow_other_model, ce_batches=args.ce_batches
        )
        print(json.dumps({k: v for k, v in ev.items() if k != "density_hist"}, indent=2))
        write_summary(
            out,
            "sae eval",
            inputs={
                "model": model.info,
                "sae": args.sae,
                "sae_id": args.sae_id,
                "hook": args.hook,
                "heldout_tokens": int(heldout.numel()),
            },
            results=ev,
            timings={"total": time.time() - t0},
        )
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
    lib = inspect.signature(train_saes).parameters  # the library is the single home of the defaults
    sa.add_argument(
        "--training-tokens", type=int, default=lib["training_tokens"].default, help="tokens per SAE (train)"
    )
    sa.add_argument("--d-sae", type=int, default=lib["d_sae"].default, help="latents per SAE (train)")
    sa.add_argument("--k", type=int, default=lib["k"].default, help="BatchTopK k (= mean L0)")
    sa.add_argument("--lr", type=float, default=lib["lr"].default, help="learning rate (train)")
    sa.add_argument(
        "--batch-tokens",
        type=int,
        default=lib["batch_size_tokens"].default,
        help="tokens per SAE training batch (train)",
    )
    sa.add_argument(
        "--dead-window",
        type=int,
        default=lib["dead_feature_window"].default,
        help="steps without firing before a latent counts as dead for the auxiliary loss (train)",
    )
    sa.add_argument(
        "--store-batch",
        type=int,
        default=lib["store_batch_size_prompts"].default,
        help="prompts per model forward pass feeding the SAEs (train)",
    )
    sa.add_argument("--adapter", help="peft adapter folder merged into --model")
    sa.add_argument("--context", type=int, default=128, help="tokens per training / eval sequence")
    sa.add_argument("--seed", type=int, default=lib["seed"].default, help="training seed")
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
