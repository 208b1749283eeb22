"""``featurescope capture``: activations at chosen hooks into an on-disk store."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from ..errors import FeaturescopeError
from .io import add_ray_flags, parse_hooks, ray_pool, read_prompts


def cmd_capture(args: argparse.Namespace) -> int:
    from ..capture import as_prompts, capture
    from ..models import load_model
    from ..runs import write_summary
    from ..store import ActivationStore

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
    out = Path(args.out)
    store = ActivationStore(out / "activations", shard_size=args.shard_size)
    t1 = time.time()
    with ray_pool(args, args.model, stage=args.stage, adapter=args.adapter, device=args.device) as pool:
        if pool is not None:
            from ..distributed import capture_on_pool

            acts = capture_on_pool(
                pool,
                model,
                prompts,
                hooks,
                store,
                reduction=args.reduction,
                batch_size=args.batch_size,
                dtype=args.dtype,
                progress=not args.quiet,
            )
        else:
            acts = capture(
                model,
                prompts,
                hooks,
                reduction=args.reduction,
                batch_size=args.batch_size,
                store=store,
                dtype=args.dtype,
                progress=not args.quiet,
            )
    t_cap = time.time() - t1
    n_tok = sum(len(p) for p in prompts)
    norms = {h: float(acts[h].float().norm(dim=-1).mean()) for h in hooks}
    path = write_summary(
        out,
        "capture",
        inputs={
            "model": model.info,
            "prompts_file": args.prompts,
            "n_prompts": len(prompts),
            "hooks": hooks,
            "reduction": args.reduction,
            "format": args.format,
            "batch_size": args.batch_size,
            "dtype": args.dtype,
            "ray": args.ray,
            "workers": args.workers if args.ray else 1,
        },
        results={
            "store": str(store.path),
            "n_tokens": n_tok,
            "tokens_per_s": n_tok / max(t_cap, 1e-9),
            "shapes": {h: list(acts[h].shape) for h in hooks},
            "mean_norm": norms,
        },
        timings={"load_model": t_load, "capture": t_cap, "total": time.time() - t0},
    )
    print(
        f"captured {len(prompts)} prompts ({n_tok} tokens) at {len(hooks)} hook(s) in {t_cap:.1f}s "
        f"({n_tok / max(t_cap, 1e-9):.0f} tok/s) -> {store.path}\nsummary: {path}"
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
    c.add_argument("--layers", help="comma-separated layers (residual stream after each block) or 'all' (default)")
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
