"""`featurescope finetune-shift`: LoRA fine-tunes on trait / flawed / neutral sets; shift along persona vectors vs
trait expression, emergent misalignment, preventative steering, emergence over steps (see featurescope.finetune)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ..finetune import FinetuneShiftConfig, load_set, run_finetune_shift, set_names
from ..finetune.diffing import FinetuneDiffConfig, run_finetune_diff
from .io import add_config_flag, config_from_args


def _ints(s: str) -> tuple[int, ...]:
    return tuple(int(x) for x in s.split(",") if x.strip())


def _names(s: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in s.split(",") if x.strip())


def cmd_finetune_shift(args: argparse.Namespace) -> int:
    if args.list_sets:
        for name in set_names():
            s = load_set(name, args.data)
            print(f"{name:22s} {s.kind:8s} {len(s):4d} examples  e.g. {s.examples[0].question[:60]!r}")
        return 0
    if not args.out:
        raise SystemExit("featurescope finetune-shift: error: --out is required")
    cfg = config_from_args(
        FinetuneShiftConfig,
        args,
        {"vectors": "vector", "preventative_set": "preventative"},
        preventative_set="" if args.no_preventative else None,
    )
    if cfg.preventative_set == "":
        cfg = dataclasses.replace(cfg, preventative_set=None)
    res = run_finetune_shift(cfg, args.out, device=args.device, train=not args.summarise_only)
    d = res["finetunes_done"]
    print(f"fine-tunes summarised: {d['done']} of {d['planned']} (+ {d['preventative_done']} preventative)")
    print("base expression: " + ", ".join(f"{t} {v:.1f}" for t, v in res["base_expression"].items()))
    for t, c in res["correlation"].items():
        print(f"{t}: {c['line']}  (paper {c['paper']})")
        print(f"  data projection difference vs shift: {c['projection_difference_vs_shift']['line']}")
    for row in res["emergent_misalignment"]:
        e = row["effect_vs_neutral"]
        print(
            f"EM {row['set']:16s} {row['trait']:14s} {row['expression']:5.1f} vs neutral {row['neutral']:5.1f}: "
            f"{e['value']:+.1f} [{e['lo']:+.1f}, {e['hi']:+.1f}] -> {row['verdict']}"
        )
    for arm, a in res.get("preventative", {}).get("arms", {}).items():
        extra = f", vs plain {a['effect_vs_plain']['value']:+.1f} -> {a['verdict']}" if "verdict" in a else ""
        print(f"preventative {arm:6s}: expression {a['expression']:.1f}, held-out loss {a['heldout_loss']:.3f}{extra}")
    print(f"summary: {Path(args.out) / 'summary.json'}")
    return 0


def cmd_finetune_diff(args: argparse.Namespace) -> int:
    cfg = config_from_args(FinetuneDiffConfig, args, {"steer_fracs": "steer_frac"})
    res = run_finetune_diff(args.run, cfg, args.out, edits=not args.no_edits)
    print(f"SAE at layer {res['layer']}, {res['position']} activations, {res['n_finetunes']} fine-tunes")
    for t, r in res["traits"].items():
        print(
            f"{t}: latent {r['latent']} (selected on {r['selected_on']['finetune']} vs {r['selected_on']['control']})"
        )
        print(f"  {r['increase_vs_expression']['line']}")
        print(f"  {r['passages']['line']}")
        if r.get("persona_vector_r"):
            print(f"  persona vector, same run: {r['persona_vector_r']}")
        for ev in r.get("edits", {}).get("steering", {}).values():
            print(f"  {ev['line']}")
        ab = r.get("edits", {}).get("ablation", {})
        if "line" in ab:
            print(f"  {ab['line']} (in {ab['finetune']})")
    print(f"summary: {Path(args.out or Path(args.run) / 'diff') / 'summary.json'}")
    return 0


def register_diff(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "finetune-diff",
        help="model diffing in a finished finetune-shift run: the SAE latent that moved with each trait, its link to "
        "trait expression, its firing on questionable-character passages, steering and ablation (vs random latents)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("run", help="a finetune-shift run folder")
    p.add_argument("--sae", help="SAE folder / shipped name, at one of the run's layers (required)")
    p.add_argument("--position", choices=("response", "prompt"), help="activations diffed (None: response)")
    p.add_argument("--traits", type=_names, help="traits, comma-separated (None: the run's)")
    p.add_argument("--selection-seed", type=int, help="fine-tunes of this seed select the latent (None: 0)")
    p.add_argument("--n-controls", type=int, help="density-matched random latents in the nulls (None: 50)")
    p.add_argument("--n-edit-controls", type=int, help="random latents steered / ablated (None: 3)")
    p.add_argument(
        "--steer-frac", type=lambda s: tuple(float(x) for x in s.split(",")), help="steering norms / residual norm"
    )
    p.add_argument("--passages", help="JSONL of {id, questionable, benign} passage pairs (None: shipped)")
    p.add_argument("--no-edits", action="store_true", help="skip steering and ablation (no generation)")
    add_config_flag(p, "FinetuneDiffConfig")
    p.add_argument("--out", help="output folder (None: RUN/diff)")
    p.set_defaults(func=cmd_finetune_diff)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "finetune-shift",
        help="LoRA fine-tunes on trait-expressing, flawed and neutral sets: projection shift along persona vectors "
        "vs trait expression, emergent misalignment, preventative steering, emergence over steps",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--model", default="offline:smollm2-135m-instruct", help="post-trained offline checkpoint")
    p.add_argument(
        "--vector",
        action="append",
        metavar="TRAIT=PATH@LAYER",
        help="persona vector of a trait and the block it is read at (repeat per trait)",
    )
    p.add_argument(
        "--traits", type=_names, help="traits measured, comma-separated (None: evil,sycophancy,hallucination)"
    )
    p.add_argument("--sets", type=_names, help="fine-tuning sets, comma-separated (None: all; see --list-sets)")
    p.add_argument("--list-sets", action="store_true", help="list the shipped fine-tuning sets and exit")
    p.add_argument("--data", help="folder of dataset files (None: featurescope/data/finetune)")
    p.add_argument("--seeds", type=_ints, help="LoRA seeds per set, comma-separated (None: 0,1)")
    p.add_argument("--n-train", type=int, help="training examples per set (None: all but the held-out ones)")
    p.add_argument("--epochs", type=int, help="passes over each set (None: 1)")
    p.add_argument("--lr", type=float, help="LoRA learning rate (None: 1e-3)")
    p.add_argument("--lora-r", type=int, help="LoRA rank (None: 8)")
    p.add_argument("--n-eval-questions", type=int, help="evaluation questions per trait (None: all 25)")
    p.add_argument("--samples", type=int, help="sampled answers per evaluation question (None: 2)")
    p.add_argument("--max-new-tokens", type=int, help="tokens per evaluation answer (None: 48)")
    p.add_argument("--checkpoint-every", type=int, help="steps between tracked checkpoints (None: 5; 0: none)")
    p.add_argument("--axis", help="Assistant axis PATH@LAYER whose position is tracked too")
    p.add_argument("--preventative", help="set trained again under preventative steering (None: evil-strong)")
    p.add_argument("--no-preventative", action="store_true", help="skip the preventative-steering arms")
    p.add_argument("--preventative-alpha", type=float, help="steering norm / mean residual norm (None: 0.25)")
    p.add_argument("--judge", help="judge name (None: auto, the validated offline probe)")
    p.add_argument(
        "--summarise-only",
        action="store_true",
        help="train nothing: summarise the fine-tunes already finished under --out (a run still going or stopped)",
    )
    p.add_argument("--device", help="cpu / cuda (None: cuda when available)")
    add_config_flag(p, "FinetuneShiftConfig")
    p.add_argument("--out", help="run folder (resumable; required unless --list-sets)")
    p.set_defaults(func=cmd_finetune_shift)
    register_diff(sub)
