"""``featurescope crosscoder``: train | eval | compare - a base vs post-trained BatchTopK crosscoder (sae-lens'
trainer), and the seed control of two runs."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from .. import corpus
from ..crosscoder import TRAIN_DEFAULTS, crosscoder_eval, crosscoder_train
from ..crosscoder_compare import CONVERGED_AT, compare_runs
from ..errors import FeaturescopeError
from ..models import load_model

FMT = argparse.ArgumentDefaultsHelpFormatter


def corpus_sources(text: str) -> tuple[str, ...]:
    """``type=`` for ``--sources``: comma-separated corpus source names, checked against ``corpus.SOURCES`` at parse
    time (an unknown, repeated or missing name is a usage error that lists the known sources)."""
    try:
        return corpus.parse_sources(text)
    except FeaturescopeError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_sources_flag(
    p: argparse.ArgumentParser, what: str = "to train on and take the held-out evaluation rows from"
) -> None:
    """``--sources``: the corpus sources a command reads (``crosscoder train|eval``, ``sae train``)."""
    p.add_argument(
        "--sources",
        type=corpus_sources,
        default=",".join(corpus.DEFAULT_SOURCES),
        help=f"corpus sources {what}, comma-separated; known: "
        f"{', '.join(corpus.SOURCES)}; the persona-rich preset is {','.join(corpus.PERSONA_SOURCES)}",
    )


def _cards_line(args: argparse.Namespace, res: dict[str, Any]) -> dict[str, Any]:
    """Where the cards are and how many, for the printout (nothing when ``--cards 0``)."""
    if "cards" not in res:
        return {}
    return {"cards": f"{args.out}/cards.html", "cards_per_class": {k: len(v) for k, v in res["cards"].items()}}


def cmd_crosscoder_train(args: argparse.Namespace) -> int:
    t0 = time.time()
    base, post = load_model(args.base), load_model(args.post)
    res = crosscoder_train(
        base,
        post,
        args.out,
        layer=args.layer,
        d_sae=args.d_sae,
        k=args.k,
        training_tokens=args.training_tokens,
        lr=args.lr,
        batch_size_tokens=args.batch_tokens,
        seed=args.seed,
        resume=not args.no_resume,
        context=args.context,
        eval_sequences=args.eval_sequences,
        sources=args.sources,
        retrain=f"featurescope crosscoder train --base {args.base} --post {args.post} --layer {args.layer} "
        f"--d-sae {args.d_sae} --k {args.k} --training-tokens {args.training_tokens} --lr {args.lr} "
        f"--batch-tokens {args.batch_tokens} --seed {args.seed} --context {args.context} "
        f"--sources {','.join(args.sources)} --cards {args.cards} --out {args.out}",
        cards=args.cards,
        load_s=time.time() - t0,
    )
    print(json.dumps({"crosscoder": str(res["training"]["path"]), **res["eval"], **_cards_line(args, res)}, indent=2))
    return 0


def cmd_crosscoder_eval(args: argparse.Namespace) -> int:
    t0 = time.time()
    base, post = load_model(args.base), load_model(args.post)
    res = crosscoder_eval(
        base,
        post,
        args.crosscoder,
        args.out,
        layer=args.layer,
        context=args.context,
        eval_sequences=args.eval_sequences,
        sources=args.sources,
        cards=args.cards,
        load_s=time.time() - t0,
    )
    print(json.dumps({**res["eval"], "counts": res["report"]["counts"], **_cards_line(args, res)}, indent=2))
    return 0


def cmd_crosscoder_compare(args: argparse.Namespace) -> int:
    res = compare_runs(
        args.a, args.b, args.out, threshold=args.threshold, seed=args.seed, converged_at=args.converged_at
    )
    print(res["text"])
    return 0


def _common(p: argparse.ArgumentParser, layer_help: str, layer_default: int | None) -> None:
    p.add_argument("--base", default="offline:gemma-3-270m", help="base model name or local folder")
    p.add_argument("--post", default="offline:gemma-3-270m-sft", help="post-trained model name or local folder")
    p.add_argument("--layer", type=int, default=layer_default, help=layer_help)
    p.add_argument("--context", type=int, default=128, help="tokens per corpus row (training and held-out)")
    p.add_argument("--eval-sequences", type=int, default=64, help="held-out corpus rows for the evaluation")
    p.add_argument("--out", required=True, help="run folder (summary.json; train: crosscoder/ and checkpoints/)")
    p.add_argument(
        "--cards",
        type=int,
        default=8,
        help="feature cards (top held-out contexts, r, Latent Scaling verdict, density) for up to N post-only and "
        "N base-only latents, in OUT/cards.html; 0: none",
    )


def register(sub: Any) -> None:
    c = sub.add_parser(
        "crosscoder",
        help="base vs post-trained crosscoder: train (BatchTopK, sae-lens trainer) | eval (FVE, Latent Scaling) | "
        "compare (seed control of two runs)",
        description="Crosscoders: `featurescope crosscoder ACTION --help` lists an action's flags.",
        formatter_class=FMT,
    )
    acts = c.add_subparsers(dest="action", metavar="ACTION", required=True, help="what to do")

    t = acts.add_parser("train", formatter_class=FMT, help="train a BatchTopK crosscoder on the offline corpus")
    _common(t, "residual layer (resid_post) to train at", 9)
    t.add_argument("--d-sae", type=int, default=TRAIN_DEFAULTS["d_sae"], help="latents")
    t.add_argument("--k", type=int, default=TRAIN_DEFAULTS["k"], help="BatchTopK k (= mean L0)")
    t.add_argument("--training-tokens", type=int, default=TRAIN_DEFAULTS["training_tokens"], help="training tokens")
    t.add_argument("--lr", type=float, default=TRAIN_DEFAULTS["lr"], help="learning rate")
    t.add_argument("--batch-tokens", type=int, default=TRAIN_DEFAULTS["batch_size_tokens"], help="tokens per batch")
    t.add_argument("--seed", type=int, default=TRAIN_DEFAULTS["seed"], help="training seed (also the corpus order)")
    t.add_argument("--no-resume", action="store_true", help="start over instead of resuming the newest checkpoint")
    add_sources_flag(t)
    t.set_defaults(func=cmd_crosscoder_train)

    e = acts.add_parser("eval", formatter_class=FMT, help="FVE per model, L0, dead latents and Latent Scaling")
    _common(e, "residual layer to evaluate at (None: the hook recorded in the crosscoder's cfg.json)", None)
    e.add_argument("--crosscoder", required=True, help="crosscoder folder (crosscoder train's OUT/crosscoder)")
    add_sources_flag(e, "to take the held-out rows (evaluation and cards) from")
    e.set_defaults(func=cmd_crosscoder_eval)

    m = acts.add_parser(
        "compare",
        formatter_class=FMT,
        help="seed control: match two crosscoder runs' latents (reuse per class, chance level, class agreement)",
        description="Two `crosscoder train` runs of one recipe with other seeds: the fraction of each latent class "
        "of A (base-only, shared, post-only, truly chat-only) with a decoder-cosine match in B, next to a rotated "
        "null, the class agreement of matched pairs and both runs' class fractions. Below the convergence "
        "criterion (reuse >= 50% both ways at cos >= 0.7) the class fractions are not evidence.",
    )
    m.add_argument("--a", required=True, help="run A: a `crosscoder train` run folder, or its crosscoder/ folder")
    m.add_argument("--b", required=True, help="run B (same models, hook and widths; another seed)")
    m.add_argument("--out", required=True, help="run folder for the comparison's summary.json")
    m.add_argument("--threshold", type=float, default=0.7, help="decoder cosine at which a latent counts as matched")
    m.add_argument("--seed", type=int, default=0, help="seed of the random rotation of the null")
    m.add_argument(
        "--converged-at",
        type=float,
        default=CONVERGED_AT,
        help="convergence criterion: the fraction of each run's latents that must have a match in the other",
    )
    m.set_defaults(func=cmd_crosscoder_compare)
