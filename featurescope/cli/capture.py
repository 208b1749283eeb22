"""``featurescope capture``: activations at chosen hooks into an on-disk store."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from ..capture import as_prompts
from ..capture_run import capture_run
from ..errors import FeaturescopeError
from ..models import load_model
from .io import add_ray_flags, parse_hooks, ray_pool, read_prompts


def cmd_capture(args: argparse.Namespace) -> int:
    t0 = time.time()
    prompts_raw = read_prompts(args.prompts)
    if not prompts_raw:
        raise FeaturescopeError(f"{args.prompts} holds no prompts: the prompt set is empty")
    model = load_model(args.model, stage=args.stage, adapter=args.adapter, device=args.device)
    t_load = time.time() - t0
    hooks = parse_hooks(model, args.hooks, args.layers)
    for h in hooks:
        model.check_hook(h)
    prompts = as_prompts(model, prompts_raw, kind=args.format)
    with ray_pool(args, args.model, stage=args.stage, adapter=args.adapter, device=args.device) as pool:
        res = capture_run(
            model, prompts, hooks, args.out, reduction=args.reduction, batch_size=args.batch_size, dtype=args.dtype,
            shard_size=args.shard_size, pool=pool, progress=not args.quiet, load_s=t_load,
            inputs={"prompts_file": args.prompts, "format": args.format, "ray": args.ray,
                    "workers": args.workers if args.ray else 1},
        )  # fmt: skip
    n_tok, speed = res["n_tokens"], res["tokens_per_s"]
    print(
        f"captured {len(prompts)} prompts ({n_tok} tokens) at {len(hooks)} hook(s) in {n_tok / speed:.1f}s "
        f"({speed:.0f} tok/s) -> {res['store']}\nsummary: {Path(args.out) / 'summary.json'}"
    )
    return 0


def register(sub: Any) -> None:
    c = sub.add_parser(
        "capture",
        help="capture activations at chosen hooks into an on-disk store",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    c.add_argument("--model", required=True, help="offline:gemma-3-270m | hub name | local folder")
    c.add_argument("--adapter", help="peft adapter folder to merge into the model")
    c.add_argument("--stage", choices=["base", "post-trained"], help="override the inferred training stage")
    c.add_argument("--prompts", required=True, help=".txt (one user prompt a line), .jsonl or .json conversations")
    c.add_argument("--hooks", help="comma-separated TransformerLens hook names")
    c.add_argument("--layers", help="comma-separated layers (residual stream after each block) or 'all' (None: all)")
    c.add_argument(
        "--reduction",
        default="last_prompt",
        choices=["response_mean", "prompt_mean", "last_prompt", "all"],
        help="what to keep per prompt: response/prompt mean, the last prompt token, or every token",
    )
    c.add_argument(
        "--format",
        default="auto",
        choices=["auto", "chat", "transcript"],
        help="prompt format: the chat template, a plain transcript, or auto (chat if the model has a template)",
    )
    c.add_argument("--batch-size", type=int, default=16, help="prompts per forward pass")
    c.add_argument("--shard-size", type=int, default=256, help="prompts per shard of the store")
    c.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "bfloat16", "float16"],
        help="capture dtype (bfloat16 is ~2.5x faster on CPU)",
    )
    c.add_argument("--device", help="torch device (None: cuda if present, else cpu)")
    c.add_argument("--out", required=True, help="run folder (summary.json, activations/)")
    c.add_argument("--quiet", action="store_true", help="no progress bars")
    add_ray_flags(c, "the capture's shards")
    c.set_defaults(func=cmd_capture)
