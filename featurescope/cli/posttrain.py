"""`featurescope posttrain`: LoRA SFT of an offline base checkpoint into an Assistant (see featurescope.posttrain)."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from ..posttrain import PosttrainConfig, posttrain
from .io import add_config_flag, config_from_args

SHIPPED_ADAPTER = Path(__file__).parent / "adapters" / "gemma-3-270m-sft"


def cmd_posttrain(args: argparse.Namespace) -> int:
    explicit = getattr(args, "explicit", set())
    cfg = config_from_args(
        PosttrainConfig,
        args,
        lora_alpha=2 * args.lora_r if "lora_r" in explicit else None,
        base_eval=False if args.no_base_eval else None,
    )
    res = posttrain(cfg, args.out, device=args.device, evaluate=not args.no_eval)
    out = Path(args.out)
    for name in ("adapter", "adapter-preventative"):
        if name in res and "eval" in res[name]:
            e = res[name]["eval"]["chat"]
            print(
                f"{name}: assistant format {e['assistant_format_fraction']:.2f}, calls itself an AI "
                f"{e['identity_ai_fraction']:.2f} (final loss {res[name]['final_loss']:.3f})"
            )
    if "base_eval" in res:
        b = res["base_eval"]
        print(
            f"base: assistant format (chat template) {b['chat']['assistant_format_fraction']:.2f}, calls itself an AI "
            f"{b['chat']['identity_ai_fraction']:.2f} (chat) / {b['transcript']['identity_ai_fraction']:.2f} (transcript)"
        )
    if args.ship:
        if SHIPPED_ADAPTER.exists():
            shutil.rmtree(SHIPPED_ADAPTER)
        shutil.copytree(out / "adapter", SHIPPED_ADAPTER)
        print(f"shipped the adapter to {SHIPPED_ADAPTER} (offline:gemma-3-270m-sft)")
    print(f"summary: {out / 'summary.json'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "posttrain",
        help="LoRA SFT of the offline base into an Assistant (peft), with evaluation and "
        "optional preventative steering",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--base", default="offline:gemma-3-270m", help="base checkpoint to fine-tune")
    p.add_argument("--data", help="dialogue .jsonl or folder of sft-*.jsonl shards (None: the shipped dialogues)")
    p.add_argument("--heldout", help="held-out prompts .jsonl (None: the shipped heldout.jsonl)")
    p.add_argument("--epochs", type=int, default=3, help="passes over the dialogues")
    p.add_argument("--lr", type=float, default=2e-4, help="LoRA learning rate")
    p.add_argument("--batch-size", type=int, default=8, help="dialogues per step")
    p.add_argument("--max-len", type=int, default=1024, help="tokens per dialogue (longer ones are cut)")
    p.add_argument("--lora-r", type=int, default=16, help="LoRA rank")
    p.add_argument("--max-dialogues", type=int, help="train on a seeded random subset of this many dialogues")
    p.add_argument("--warmup-steps", type=int, help="linear warm-up steps (None: 20)")
    p.add_argument("--seed", type=int, default=0, help="training seed")
    add_config_flag(p, "PosttrainConfig")
    p.add_argument("--steer-vector", help="persona vector .safetensors to add during training (preventative steering)")
    p.add_argument("--steer-layer", type=int, help="block whose output gets steer_alpha * v")
    p.add_argument(
        "--steer-alpha", type=float, default=5.0, help="preventative steering coefficient (with --steer-vector)"
    )
    p.add_argument(
        "--baseline-adapter",
        help="with --steer-vector: an adapter trained by the same recipe without "
        "steering, used as the 'without' arm instead of training it again",
    )
    p.add_argument("--no-base-eval", action="store_true", help="skip the base model's format / identity evaluation")
    p.add_argument(
        "--eval-max-new-tokens", type=int, default=96, help="tokens generated per held-out evaluation answer"
    )
    p.add_argument("--device", help="torch device (None: cuda if present, else cpu)")
    p.add_argument("--no-eval", action="store_true", help="skip the held-out evaluation")
    p.add_argument("--ship", action="store_true", help="copy the adapter into the package (offline:gemma-3-270m-sft)")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=cmd_posttrain)
