"""``featurescope inspect``: massive (massive dimensions and outlier-norm tokens per layer) | handling (the ways
to keep them from dominating a persona vector, compared side by side with held-out separation and its null) |
decomposition (the nulls of a saved vector's SAE decomposition)."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import FeaturescopeError
from ..evidence.run import run_decomposition, run_handling, run_massive, written_conversations
from ..judge import default_judge
from ..models import load_model
from ..persona.extraction import load_written
from ..traits import written_path


def _texts(args: argparse.Namespace) -> tuple[list[Any], list[dict[str, str]], str]:
    src = args.written or str(written_path(args.trait))
    rows = load_written(src)
    pos, neg, _ = written_conversations(rows)
    return pos + neg, rows, src


def _decomposition(args: argparse.Namespace) -> int:
    """Nulls of a saved vector's decomposition, without the model: random-direction fraction explained and the
    decoder bias decomposed."""
    if not args.vector or not args.sae:
        raise FeaturescopeError("inspect decomposition needs --vector and --sae")
    res = run_decomposition(args.vector, args.sae, args.out, sae_id=args.sae_id, seed=args.seed)
    hook, ev = res["hook"], res["evidence"]
    for k, row in ev["fraction_explained_null"]["per_k"].items():
        nulls = ", ".join(
            f"{n} {row[n]['mean']:.2f} [{row[n]['lo']:.2f}, {row[n]['hi']:.2f}]"
            for n in ("isotropic", "massive-matched")
            if n in row
        )
        print(
            f"{hook} top {k} features by cosine explain {row['value']:.2f} of the vector; random: {nulls} -> {row['verdict']}"
        )
    b = ev["decoder_bias"]
    print(
        f"decoder bias: top {b['k']} latents explain {b['fraction_explained_top_k']:.2f} of it; "
        f"{len(b['mean_tracking_latents'])} latents track it (|cos| >= {b['threshold']})"
    )
    if args.out:
        print(f"summary: {args.out}/summary.json")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    if args.action == "decomposition":
        return _decomposition(args)
    model = load_model(args.model)
    convs, rows, src = _texts(args)
    if args.action == "massive":
        convs = convs[: args.n_texts] if args.n_texts else convs
        table = run_massive(model, convs, args.out, source=src, batch_size=args.batch_size)
        print(f"{model.name}: layer, median token norm, BOS norm / median, outlier tokens, massive dims (ratio)")
        for r in table:
            bos = f"{r.bos_norm_ratio:.1f}x" if r.bos_norm_ratio is not None else "-"
            top = ", ".join(f"{d} ({x:.0f}x)" for d, x in r.top_dims[:3])
            print(
                f"  {r.hook:26s} {r.median_norm:9.1f}  BOS {bos:>6s}  outliers {r.outlier_fraction:.3f}  "
                f"massive {r.massive_dims or '-'}  top {top}  mean = {r.mean_share_of_energy:.0%} of E|x|^2"
            )
    else:
        if not args.layers:
            raise FeaturescopeError("inspect handling needs --layers (e.g. 2,9)")
        layers = [int(x) for x in args.layers.split(",")]
        judge = None
        if args.steer_layer is not None:
            judge = default_judge()
        res = run_handling(
            model,
            rows,
            layers,
            args.out,
            source=src,
            trait=args.trait,
            seed=args.seed,
            steer_layer=args.steer_layer,
            judge=judge,
            alpha=args.alpha,
            seeds=[int(x) for x in args.seeds.split(",") if x.strip()],
            n_questions=args.n_questions,
        )
        steering = res.pop("steering", None)
        if steering is not None:
            print(
                f"steering at {steering['hook']}, every handling at norm {steering['norm']:.3g} (alpha {args.alpha} x "
                f"the plain vector's norm); best: {steering['best']}"
            )
        for h, tab in res.items():
            print(
                f"{h}: massive dims {tab['massive_dims']}; chosen (largest lower bound of held-out d): {tab['chosen']}"
            )
            for hd, r in tab["rows"].items():
                e, n = r["held_out_d"]["estimate"], r["held_out_d"]["null"]
                print(
                    f"  {hd:17s} held-out d {e['value']:.2f} [{e['lo']:.2f}, {e['hi']:.2f}]  null {n['mean']:+.2f} "
                    f"[{n['lo']:.2f}, {n['hi']:.2f}]  share on mean {r['share_on_mean']:.2f}  on massive "
                    f"{r['share_on_massive']:.2f}  -> {r['held_out_d']['verdict']}"
                )
    if args.out:
        print(f"summary: {args.out}/summary.json")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "inspect",
        help="massive activations: massive dims / outlier tokens per layer | handlings compared with their nulls",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "action",
        choices=("massive", "handling", "decomposition"),
        help="massive: the per-layer table; handling: compare handlings; decomposition: nulls of a vector's SAE "
        "decomposition (no model needed)",
    )
    p.add_argument("--model", default="offline:gemma-3-270m", help="model name (see `featurescope models`)")
    p.add_argument("--trait", default="evil", help="trait whose written pos/neg answers are read")
    p.add_argument("--written", help="written pos/neg JSONL (None: the trait's shipped written answers)")
    p.add_argument("--layers", help="comma list of layers for `handling`")
    p.add_argument("--n-texts", type=int, default=48, help="texts read for `massive` (0 = all)")
    p.add_argument("--batch-size", type=int, default=8, help="prompts per forward pass")
    p.add_argument("--seed", type=int, default=0, help="split / bootstrap / permutation seed")
    p.add_argument("--vector", help="persona vector file (decomposition)")
    p.add_argument("--sae", help="SAE: featurescope:NAME, a folder, or a sae-lens release (decomposition)")
    p.add_argument("--sae-id", help="sae-lens sae_id for a registry release")
    p.add_argument(
        "--steer-layer",
        type=int,
        help="handling: also steer with each handling's vector at this layer (all at the same norm) and judge the "
        "trait change against random directions",
    )
    p.add_argument("--alpha", type=float, default=8.0, help="handling --steer-layer: norm = alpha x the plain vector's")
    p.add_argument("--seeds", default="0,1,2", help="handling --steer-layer: sampling seeds per answer")
    p.add_argument("--n-questions", type=int, default=8, help="handling --steer-layer: evaluation questions")
    p.add_argument("--out", help="run folder: summary.json and the per-layer / per-handling JSONL (None: print only)")
    p.set_defaults(func=cmd_inspect)
