"""``featurescope features``: shared | interpret | steer - one subcommand each, with only the flags that action uses
(featurescope.features: persona features of an SAE)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from .. import features, models, saes, traits
from ..errors import FeaturescopeError
from ..features import interpret, steer
from ..judges import choose
from ..judges.choose import JUDGE_NAMES
from ..runs import jsonable, write_summary
from ..store import write_json
from .io import int_list, nonempty

FMT = argparse.ArgumentDefaultsHelpFormatter


def _names(s: str) -> list[str]:
    """``type=`` for a comma-separated list of names (blank items dropped)."""
    return [x.strip() for x in s.split(",") if x.strip()]


def _judge_name(s: str) -> str:
    """``type=`` for a judge name :func:`~featurescope.judges.choose.get_judge` knows (checked before the model
    loads)."""
    if s in (*JUDGE_NAMES, "default") or (s.startswith("lm:") and len(s) > 3):
        return s
    raise argparse.ArgumentTypeError(f"unknown judge {s!r}; known: {', '.join(JUDGE_NAMES)} (or lm:MODEL)")


def cmd_features_shared(args: argparse.Namespace) -> int:
    pairs = features.load_pairs(args.pairs) if args.pairs else None
    model = models.load_model(args.model)
    sae = saes.load_sae(args.sae)
    res = features.run_shared(model, sae, args.out, pairs=pairs, n_perm=args.n_perm, n_shuffles=args.shuffles,
                     sae_name=str(args.sae))  # fmt: skip
    for t, v in res["themes"].items():
        lat = ", ".join(f"{d['latent']} (z {d['z_assistant']:.1f} / {d['z_character']:.1f})" for d in v["latents"])
        print(f"{t:12s} {v['n_pairs']} pairs, threshold z > {v['threshold_z']:.2f}: {lat or 'none'}")
    print(f"shared latents: {res['n_shared']}; with shuffled themes: {res['chance_counts']} -> {res['verdict']}")
    print(f"summary: {Path(args.out) / 'summary.json'}")
    return 0


def cmd_features_interpret(args: argparse.Namespace) -> int:
    dec = json.loads(Path(args.decomposition).read_text())["results"]["decompositions"]
    latents = {}
    for v in args.views:
        if v not in dec:
            raise FeaturescopeError(f"{args.decomposition} has no {v!r} view (it has {', '.join(dec)})")
        latents[v] = [int(t[0]) for t in dec[v]["top"][: args.k]]
    model = models.load_model(args.model)
    sae = saes.load_sae(args.sae)
    if args.measure == "judge":
        trait, judge = traits.load_trait(args.trait), choose.get_judge(args.judge)
    else:  # the assistant-voice measure reads the labelled texts' provenance: no trait, no judge
        trait = judge = None
    res = interpret.run_interpret(model, sae, latents, trait, judge, args.out, n_null=args.n_null,
                                  sae_name=str(args.sae), measure=args.measure)  # fmt: skip
    u = res["uniform_null"]
    print(f"null (random firing latents): score {u['mean']:.1f} +- {u['sd']:.1f} (n = {u['n']})")
    for view, v in res["views"].items():
        print(f"{view:12s} top {len(v['latents'])}: mean score {v['mean_score']:.1f}, set z (density-matched) "
              f"{v['set_z_density_matched']:+.1f} (empirical p {v['set_p_empirical']:.2g}), {v['n_above']} latents >= {res['z_target']} SD, "
              f"{v['n_tracking_mean']} track the mean")  # fmt: skip
        if v.get("interval_evidence"):
            e = v["interval_evidence"]
            print(f"{'':12s} mean score {e['estimate']['value']:.1f} [{e['estimate']['lo']:.1f}, "
                  f"{e['estimate']['hi']:.1f}] (over its latents) vs {e['null']['what']} {e['null']['mean']:.1f} "
                  f"[{e['null']['lo']:.1f}, {e['null']['hi']:.1f}]: {e['verdict']}")  # fmt: skip
    print(f"target (set z >= {res['z_target']}) met: {res['target_met']}; summary: {Path(args.out) / 'summary.json'}")
    return 0


def cmd_features_steer(args: argparse.Namespace) -> int:
    if args.mode == "clamp" and args.value is None:  # checked before the model loads
        raise FeaturescopeError("features steer --mode clamp needs --value (the activation the latent is clamped to)")
    model = models.load_model(args.model)
    sae = saes.load_sae(args.sae)
    trait = traits.load_trait(args.trait)
    t0 = time.time()
    texts = [t for _, t in interpret.heldout_texts()][: args.density_texts]
    contexts = interpret.latent_contexts(model, sae, texts, n_top=1)
    density = contexts["density"]  # firing density for the matched controls
    res = steer.latent_steering(
        model, sae, args.latents, trait, choose.get_judge(args.judge), list(trait.eval_questions[: args.n_questions]),
        density, mode=args.mode, value=args.value, alpha=args.alpha, n_random=args.n_random, seeds=tuple(args.seeds),
        max_new_tokens=args.max_new_tokens,
    )  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "steering.json", jsonable(res), indent=1)  # strict JSON: a nan is written as null
    inputs = {"model": model.info, "sae": str(args.sae), "trait": args.trait, "judge": args.judge}
    inputs |= {k: getattr(args, k) for k in ("latents", "mode", "value", "alpha", "n_random", "seeds")}
    inputs |= {k: getattr(args, k) for k in ("n_questions", "max_new_tokens", "density_texts")}
    write_summary(out, "features steer", inputs=inputs, results=steer.steering_summary(res),
                  timings={"total": time.time() - t0})  # fmt: skip
    for r in res["latents"].values():
        print(r["line"])
    print(f"per-question effects: {out / 'steering.json'}; summary: {out / 'summary.json'}")
    return 0


# Flag groups: each action's parser is built from the groups it uses.


def _common(p: argparse.ArgumentParser, out: str) -> None:
    """The model, the SAE that reads it, the run folder (every action)."""
    p.add_argument("--model", default="offline:gemma-3-270m-sft", help="model whose activations the SAE reads")
    p.add_argument(
        "--sae", default="featurescope:gemma-3-270m-sft/layer_9_resid_post", help="SAE folder or shipped name"
    )
    p.add_argument("--out", required=True, help=f"run folder ({out})")


def _judged(p: argparse.ArgumentParser) -> None:
    """The trait and the judge that scores it (interpret / steer)."""
    p.add_argument("--trait", default="evil", help="shipped trait name or path to a trait YAML: what the judge scores")
    p.add_argument(
        "--judge",
        type=_judge_name,
        default="auto",
        help="judge name (auto: the endpoint if FEATURESCOPE_JUDGE_URL is set, else offline; lm:MODEL: that model)",
    )


def _action(acts: Any, name: str, help: str) -> argparse.ArgumentParser:
    """An action's parser: defaults shown; no abbreviated flags (``--mode`` is not taken for ``--model``)."""
    return acts.add_parser(name, help=help, formatter_class=FMT, allow_abbrev=False)


def register(sub: Any) -> None:
    fp = sub.add_parser(
        "features",
        help="persona features: latents shared by the Assistant and story characters | interpretation scores | "
        "latent steering, each against density-matched random latents",
        description="Persona features of an SAE: `featurescope features ACTION --help` lists an action's flags.",
        formatter_class=FMT,
    )
    acts = fp.add_subparsers(dest="action", metavar="ACTION", required=True, help="what to do")

    s = _action(acts, "shared", "latents shared by the Assistant and story characters, per theme")
    _common(s, "summary.json, per-pair activations and cards")
    s.add_argument("--pairs", help="paired-contexts JSONL (None: the shipped featurescope/data/persona_pairs)")
    s.add_argument("--n-perm", type=int, default=500, help="label permutations per theme and side")
    s.add_argument("--shuffles", type=int, default=5, help="theme-label shuffles for the chance count")
    s.set_defaults(func=cmd_features_shared)

    i = _action(
        acts,
        "interpret",
        "the trait judge's score of a decomposition's top latents' top contexts on held-out text, against "
        "random latents of matched density",
    )
    _common(i, "summary.json and scores.jsonl")
    i.add_argument("--decomposition", required=True, help="a decompose run's summary.json (its top latents per view)")
    i.add_argument(
        "--views",
        type=nonempty(_names),
        default="selectivity,attribution",
        help="views whose top latents are scored, comma-separated",
    )
    i.add_argument("--k", type=int, default=10, help="top latents per view")
    _judged(i)
    i.add_argument("--n-null", type=int, default=60, help="random latents in the null")
    i.add_argument(
        "--measure",
        choices=list(interpret.MEASURES),
        default="judge",
        help="judge: the trait judge scores each top context; assistant-voice (for the Assistant axis): the share of "
        "top contexts from text the Assistant speaks vs story characters / general text (labels, no judge)",
    )
    i.set_defaults(func=cmd_features_interpret)

    t = _action(
        acts,
        "steer",
        "the trait effect of steering with / clamping single latents, against density-matched random latents",
    )
    _common(t, "steering.json")
    t.add_argument("--latents", type=nonempty(int_list), required=True, help="latent indices, comma-separated")
    _judged(t)
    t.add_argument(
        "--mode", choices=["clamp", "add"], default="clamp", help="clamp the activation / add the decoder row"
    )
    t.add_argument("--value", type=float, help="clamp: the activation the latent is clamped to (required with clamp)")
    t.add_argument("--alpha", type=float, default=0.0, help="add: the steering norm along the unit decoder row")
    t.add_argument("--n-random", type=int, default=4, help="density-matched random latents in the null")
    t.add_argument("--seeds", type=nonempty(int_list), default="0,1,2", help="sampling seeds, comma-separated")
    t.add_argument("--n-questions", type=int, default=8, help="the trait's evaluation questions used")
    t.add_argument("--max-new-tokens", type=int, default=48, help="tokens per answer")
    t.add_argument("--density-texts", type=int, default=400, help="held-out texts read for firing densities")
    t.set_defaults(func=cmd_features_steer)
