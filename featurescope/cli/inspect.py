"""``featurescope inspect``: massive | handling | decomposition - one subcommand each, with only the flags that action
uses. massive: massive dimensions and outlier-norm tokens per layer; handling: the ways to keep them from dominating a
persona vector, compared side by side with held-out separation and its null; decomposition: the nulls of a saved
vector's SAE decomposition (no model needed; with the model and the vector's responses, also its interval)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import FeaturescopeError
from ..evidence.run import run_decomposition, run_handling, run_massive, written_conversations
from ..judge import default_judge
from ..judges.evalset import read_jsonl
from ..models import load_model
from ..persona.extraction import load_written
from ..traits import written_path
from .io import int_list, nonempty

FMT = argparse.ArgumentDefaultsHelpFormatter


def _texts(args: argparse.Namespace) -> tuple[list[Any], list[dict[str, str]], str]:
    src = args.written or str(written_path(args.trait))
    rows = load_written(src)
    pos, neg, _ = written_conversations(rows)
    return pos + neg, rows, src


def _summary(args: argparse.Namespace) -> None:
    if args.out:
        print(f"summary: {args.out}/summary.json")


def cmd_inspect_massive(args: argparse.Namespace) -> int:
    convs, _, src = _texts(args)  # the written answers are read (and checked) before the model loads
    model = load_model(args.model)
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
    _summary(args)
    return 0


def cmd_inspect_handling(args: argparse.Namespace) -> int:
    if args.steer_layer is not None and args.steer_layer not in args.layers:
        raise FeaturescopeError(f"--steer-layer {args.steer_layer} is not among --layers {args.layers}")
    _, rows, src = _texts(args)  # the written answers are read (and checked) before the model loads
    judge = default_judge() if args.steer_layer is not None else None
    model = load_model(args.model)
    res = run_handling(
        model,
        rows,
        args.layers,
        args.out,
        source=src,
        trait=args.trait,
        seed=args.seed,
        batch_size=args.batch_size,
        steer_layer=args.steer_layer,
        judge=judge,
        alpha=args.alpha,
        seeds=args.seeds,
        n_questions=args.n_questions,
    )
    steering = res.pop("steering", None)
    if steering is not None:
        print(
            f"steering at {steering['hook']}, every handling at norm {steering['norm']:.3g} (alpha {args.alpha} x "
            f"the plain vector's norm); best: {steering['best']}"
        )
    for h, tab in res.items():
        print(f"{h}: massive dims {tab['massive_dims']}; chosen (largest lower bound of held-out d): {tab['chosen']}")
        for hd, r in tab["rows"].items():
            e, n = r["held_out_d"]["estimate"], r["held_out_d"]["null"]
            print(
                f"  {hd:17s} held-out d {e['value']:.2f} [{e['lo']:.2f}, {e['hi']:.2f}]  null {n['mean']:+.2f} "
                f"[{n['lo']:.2f}, {n['hi']:.2f}]  share on mean {r['share_on_mean']:.2f}  on massive "
                f"{r['share_on_massive']:.2f}  -> {r['held_out_d']['verdict']}"
            )
    _summary(args)
    return 0


def cmd_inspect_decomposition(args: argparse.Namespace) -> int:
    """Nulls of a saved vector's decomposition, without the model: random-direction fraction explained and the
    decoder bias decomposed."""
    if (args.responses is None) != (args.model is None):
        raise FeaturescopeError("inspect decomposition: --responses and --model go together (the interval rebuilds "
                                "the vector from its responses on the model)")  # fmt: skip
    rows = [r for _, r in read_jsonl(Path(args.responses), "responses file")] if args.responses else None
    model = load_model(args.model) if args.model else None
    res = run_decomposition(args.vector, args.sae, args.out, sae_id=args.sae_id, seed=args.seed, model=model,
                            responses=rows, responses_path=args.responses, n_boot=args.n_boot)  # fmt: skip
    hook, ev = res["hook"], res["evidence"]
    iv = res.get("fraction_explained_interval")
    for k, row in ev["fraction_explained_null"]["per_k"].items():
        nulls = ", ".join(
            f"{n} {row[n]['mean']:.2f} [{row[n]['lo']:.2f}, {row[n]['hi']:.2f}]"
            for n in ("isotropic", "massive-matched")
            if n in row
        )
        if iv is not None and k in iv["per_k"]:
            e = iv["per_k"][k]
            value, verd = (
                f"{e['value']:.2f} [{e['lo']:.2f}, {e['hi']:.2f}] (over {e['n']} questions)",
                iv["verdicts"][k],
            )
        else:
            value, verd = f"{row['value']:.2f}", row["verdict"]
        print(f"{hook} top {k} features by cosine explain {value} of the vector; random: {nulls} -> {verd}")
    if iv is not None:
        print(f"rebuilt vector vs saved: cosine {iv['cosine_rebuilt_vs_saved']:.3f} ({iv['n_pos']} / {iv['n_neg']} "
              f"responses, handling {iv['handling']})")  # fmt: skip
    b = ev["decoder_bias"]
    print(
        f"decoder bias: top {b['k']} latents explain {b['fraction_explained_top_k']:.2f} of it; "
        f"{len(b['mean_tracking_latents'])} latents track it (|cos| >= {b['threshold']})"
    )
    _summary(args)
    return 0


# Flag groups: each action's parser is built from the groups it uses.


def _written_texts(p: argparse.ArgumentParser) -> None:
    """The model and the written pos/neg answers it reads (massive / handling)."""
    p.add_argument("--model", default="offline:gemma-3-270m", help="model name (see `featurescope models`)")
    p.add_argument("--trait", default="evil", help="trait whose written pos/neg answers are read")
    p.add_argument("--written", help="written pos/neg JSONL (None: the trait's shipped written answers)")
    p.add_argument("--batch-size", type=int, default=8, help="prompts per forward pass")


def _seed(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--seed", type=int, default=0, help=what)


def _out(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--out", help=f"run folder: summary.json{what} (None: print only)")


def _action(acts: Any, name: str, help: str) -> argparse.ArgumentParser:
    """An action's parser: defaults shown; no abbreviated flags (``--mode`` is not taken for ``--model``)."""
    return acts.add_parser(name, help=help, formatter_class=FMT, allow_abbrev=False)


def register(sub: Any) -> None:
    ip = sub.add_parser(
        "inspect",
        help="massive activations: massive dims / outlier tokens per layer | handlings compared with their nulls | "
        "nulls of a vector's SAE decomposition",
        description="Massive activations and decomposition nulls: `featurescope inspect ACTION --help` lists an "
        "action's flags.",
        formatter_class=FMT,
    )
    acts = ip.add_subparsers(dest="action", metavar="ACTION", required=True, help="what to do")

    m = _action(acts, "massive", "massive dims, outlier-norm tokens and BOS norm per layer")
    _written_texts(m)
    m.add_argument("--n-texts", type=int, default=48, help="texts read (pos and neg answers; 0 = all)")
    _out(m, " and layers.jsonl (one row per layer)")
    m.set_defaults(func=cmd_inspect_massive)

    h = _action(
        acts,
        "handling",
        "massive-activation handlings compared side by side: held-out separation against its null",
    )
    _written_texts(h)
    h.add_argument(
        "--layers", type=nonempty(int_list), required=True, help="layers to compare the handlings at (e.g. 2,9)"
    )
    _seed(h, "split / bootstrap / permutation seed")
    h.add_argument(
        "--steer-layer",
        type=int,
        help="also steer with each handling's vector at this layer (one of --layers; all at the same norm) and judge "
        "the trait change against random directions",
    )
    h.add_argument("--alpha", type=float, default=8.0, help="--steer-layer: norm = alpha x the plain vector's")
    h.add_argument(
        "--seeds",
        type=int_list,
        default="0,1,2",
        help="--steer-layer: sampling seeds per answer, comma-separated ('' = one greedy answer each)",
    )
    h.add_argument("--n-questions", type=int, default=8, help="--steer-layer: evaluation questions")
    _out(h, " and handlings.jsonl (one row per layer and handling)")
    h.set_defaults(func=cmd_inspect_handling)

    d = _action(
        acts,
        "decomposition",
        "nulls of a saved vector's SAE decomposition: random-direction fraction explained, decoder bias "
        "(no model needed)",
    )
    d.add_argument("--vector", required=True, help="persona vector .safetensors (written by `persona extract`)")
    d.add_argument("--sae", required=True, help="SAE: featurescope:NAME, a folder, or a sae-lens release")
    d.add_argument("--sae-id", help="sae-lens sae_id for a registry release")
    d.add_argument(
        "--responses",
        help="the vector's items for an interval over questions: its run's responses.jsonl or written pairs "
        "(needs --model)",
    )
    d.add_argument("--model", help="the vector's model (with --responses: the vector is rebuilt on it)")
    d.add_argument("--n-boot", type=int, default=200, help="question resamples of the interval")
    _seed(d, "random-direction and bootstrap seed")
    _out(d, "")
    d.set_defaults(func=cmd_inspect_decomposition)
