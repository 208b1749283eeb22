"""``featurescope axis ACTION ...``: the Assistant axis (Lu et al.) from the command line.

Actions (each its own sub-parser with only the flags it uses): ``roles`` (show / validate the role library),
``collect`` (role vectors and the axis), ``analyze`` (PCA and placement figures for a saved axis), ``steer`` (alpha
sweep on identity questions), ``drift`` (per-turn projection over the multi-turn scripts), ``cap`` (drift with and
without activation capping), ``prefill`` (the base-model "I am a ..." test), ``compare`` (base vs post-trained axes),
``decompose`` (the axis in SAE features, with cards) and ``run`` (all of it at a small scale). Every action that
computes writes ``summary.json`` in the run folder ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import axis as A
from ..evidence.nulls import evidence_text
from ..models import Model, load_model
from ..saes import load_sae
from .io import add_config_flag, add_ray_flags, config_from_args, float_list, int_list, nonempty, ray_pool

ACTIONS = ("roles", "collect", "analyze", "steer", "drift", "cap", "prefill", "compare", "decompose", "run")
FMT = argparse.ArgumentDefaultsHelpFormatter
CFG = A.AxisConfig  # the one home of the collection defaults (n_roles, batch_size, dtypes, ...)


# --- argument types: a bad value is an argparse error (exit 2) that names the flag ---------------------------------


def _type(conv: Callable[[str], Any], what: str, ok: Callable[[Any], bool] = lambda v: True) -> Callable[[str], Any]:
    def parse(s: str) -> Any:
        try:
            if ok(v := conv(s)):
                return v
        except ValueError:
            pass
        raise argparse.ArgumentTypeError(f"{s!r} is not {what}")

    return parse


_pos = _type(int, "an integer >= 1", lambda v: v >= 1)
_nonneg = _type(int, "an integer >= 0", lambda v: v >= 0)
_count = _type(lambda s: int(s) or None, "an integer >= 0 (0 = all)", lambda v: v is None or v > 0)  # 0 -> None
_percent = _type(float, "a percentile in [0, 100]", lambda v: 0.0 <= v <= 100.0)


def _names(s: str) -> list[str]:
    return [x.strip() for x in s.split(",") if x.strip()]


# --- flag groups, each added by one helper --------------------------------------------------------------------------


def _flag(p: argparse.ArgumentParser, *flags: str, required: bool = False, **kw: Any) -> None:
    """One argument; a required one is an argparse error when missing (and shows no "(default: None)")."""
    if required:
        kw.update(required=True, default=argparse.SUPPRESS)
    p.add_argument(*flags, **kw)


def _out(p: argparse.ArgumentParser, required: bool = True) -> None:
    what = "" if required else " (None: print only)"
    _flag(p, "--out", required=required, metavar="DIR", help=f"run folder: summary.json, figures, files{what}")


def _roles(p: argparse.ArgumentParser) -> None:
    p.add_argument("--extra-roles", action="append", metavar="YAML", help="role YAML added to the library (repeatable)")


def _axis_file(p: argparse.ArgumentParser) -> None:
    _flag(p, "--axis", required=True, metavar="FILE", help="axis file written by `axis collect` / `axis run`")


def _model_flags(p: argparse.ArgumentParser, axis: bool = True, roles: bool = True) -> None:
    """--model (--axis), --out (--extra-roles): what the actions that drive a model take."""
    _flag(p, "--model", required=True, help="checkpoint (offline:gemma-3-270m, a folder, a Hugging Face name, ...)")
    if axis:
        _axis_file(p)
    _out(p)
    if roles:
        _roles(p)


def _layer(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--layer", type=int, help=f"layer for {what} (None: the axis' middle layer)")


def _generation_flags(p: argparse.ArgumentParser, max_new_tokens: bool = True) -> None:
    if max_new_tokens:
        p.add_argument("--max-new-tokens", type=_pos, default=CFG.max_new_tokens, help="tokens generated per answer")
    p.add_argument("--batch-size", type=_pos, default=CFG.batch_size, help="prompts per batch")
    p.add_argument("--seed", type=int, default=CFG.seed, help="seed of generation and bootstraps")


def _collection_flags(p: argparse.ArgumentParser) -> None:
    """The role-vector collection (`collect`, `run`)."""
    p.add_argument("--n-roles", type=_count, default=CFG.n_roles, help="roles, spread over categories (0 = all)")
    p.add_argument("--n-questions", type=_count, default=CFG.n_questions, help="shared questions per role (0 = all)")
    p.add_argument(
        "--instructions",
        default=CFG.instructions,
        choices=["cycle", "all"],
        help="cycle: one of the 5 prompts per question; all: every prompt x every question",
    )
    p.add_argument(
        "--judge",
        default="auto",
        choices=["auto", "probe", "embedding", "llm", "none"],
        help="role-adherence judge (auto: LLM when FEATURESCOPE_JUDGE_URL is set, else the offline role probe; "
        "embedding: the old proxy)",
    )
    dtypes = ["float32", "bfloat16"]
    p.add_argument(
        "--generation-dtype",
        default=CFG.generation_dtype,
        choices=dtypes,
        help="generate the role answers with a bfloat16 copy of the model (~2.5x faster on a CPU with AVX-512 "
        "BF16; greedy text may differ)",
    )
    p.add_argument(
        "--capture-dtype",
        default=CFG.capture_dtype,
        choices=dtypes,
        help="run the activation capture in bfloat16 (~2.7x faster here; role vectors agree with float32 to cosine "
        "0.9998; means are accumulated in float32)",
    )
    _generation_flags(p)


def _alphas(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--alphas", type=nonempty(float_list), default="-4,-2,0,2,4", help="steering coefficients, in units of the axis"
    )


def _steering_flags(p: argparse.ArgumentParser) -> None:
    _alphas(p)
    p.add_argument(
        "--steer-seeds", type=int_list, default="0,1,2", help="sample each answer once per seed ('' = greedy)"
    )
    p.add_argument("--controls", type=_nonneg, default=2, help="random vectors of the axis' norm (the null; 0 = none)")


def _drift_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--turns", type=_nonneg, help="user turns per drift script (None: all)")
    p.add_argument(
        "--conversations",
        type=_pos,
        default=5,
        help="conversations per drift script, replies sampled (intervals over conversations; 1 = one greedy one)",
    )
    p.add_argument("--scripts", type=_names, help="comma-separated drift scripts (None: all shipped)")
    p.add_argument("--cap-layers", type=int_list, help="comma-separated layers to cap (None: middle to 3/4 depth)")
    p.add_argument(
        "--percentile", type=_percent, default=25.0, help="tau = this percentile of the default's projections"
    )


def _sae_flags(p: argparse.ArgumentParser, what: str, required: bool = False) -> None:
    _flag(p, "--sae", required=required, help=f"SAE folder or sae-lens release ({what})")
    p.add_argument("--sae-id", help="SAE id inside a sae-lens release")


def _print_analysis(a: dict[str, Any]) -> None:
    rf = a.get("role_filter") or {}
    if rf.get("n_roles") and rf["unfiltered"] > rf["n_roles"] / 2:
        print(
            f"  note: {rf['unfiltered']} of {rf['n_roles']} role vectors average every answer (the judge found fewer "
            "than min_kept in-role answers): the role filter is mostly off in this run"
        )
    nm = a.get("evidence", {}).get("axis_pc1_without_massive")
    if nm and nm.get("massive_dims"):
        print(f"  without the massive dims {nm['massive_dims']}: {evidence_text(nm)}")
    ev = a.get("evidence", {}).get("axis_pc1")
    if ev:
        print(f"{a['hook']}: {evidence_text(ev)}")
    print(
        f"{a['hook']}: cos(axis, PC1) {a['axis_pc1_cosine']:+.2f}; {a['pcs_for_70pct']} PCs reach 70%; default "
        f"Assistant at PC1 percentile {a['default_pc1_percentile']:.2f}\n  most Assistant-like: "
        f"{', '.join(a['top_roles'][:6])}\n  least: {', '.join(a['bottom_roles'][:6])}"
    )


def _print_roles(lib: A.RoleLibrary, info: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps({**info, "roles": [{"name": r.name, "category": r.category} for r in lib.roles]}, indent=2))
        return
    print(
        f"{len(lib.roles)} roles x {A.N_INSTRUCTIONS} instructions, {len(lib.default_prompts)} default "
        f"prompts, {len(lib.questions)} questions, {len(lib.scripts)} drift scripts (from {', '.join(lib.sources)})"
    )
    for c, k in info["categories"].items():
        print(f"  {c:13s} {k:3d}  {', '.join(r.name for r in lib.roles if r.category == c)[:100]}")


def _print_compare(cmp: dict[str, Any]) -> None:
    if "features" in cmp:
        print(
            f"{cmp['features']['hook']} in SAE {cmp['features']['sae']}: top-20 feature overlap (Jaccard) "
            + ", ".join(f"{m} {o['jaccard']:.2f}" for m, o in cmp["features"]["overlap"].items())
        )
    m = cmp["middle"]
    print(
        f"{m['hook']}: cos(base axis, post axis) {m['axis_cosine']:+.3f}; top PC |cos| "
        f"{', '.join(f'{x:.2f}' for x in m['pc_cosines'])} (paper 0.93/0.87/0.83); role vectors raw "
        f"{m['role_cosine_raw_mean']:.3f}, centred {m['role_cosine_centred_mean']:.3f}; post default on base "
        f"axis at {m['post_default_on_base_axis']:.2f} (0 = base roles, 1 = base default)\n  null: top PC |cos| "
        "between two random halves of one model's roles: "
        + "; ".join(f"{k} {', '.join(f'{x:.2f}' for x in v)}" for k, v in cmp["split_half_pc_cosines"].items())
    )


def _print_drift(res: Any) -> None:  # a DriftResult (dict access)
    for k in ("uncapped", "capped"):
        for n, v in res["drift"].get(k, {}).get("per_script", {}).items():
            print(f"  [{k}] {n:26s} " + " ".join(f"{x:+.2f}" for x in v))


# --- the actions ----------------------------------------------------------------------------------------------------


def _run(args: argparse.Namespace, model: Model, out: Path, lib: A.RoleLibrary) -> Any:
    """``axis run``: the whole experiment (:func:`featurescope.axis.run_axis`) with the axes and SAE it names."""
    return A.run_axis(
        model,
        out,
        n_roles=args.n_roles,
        n_questions=args.n_questions,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        judge=args.judge,
        library=lib,
        instructions=args.instructions,
        layer=args.layer,
        alphas=args.alphas,
        n_identity_questions=args.n_identity_questions,
        steer_seeds=args.steer_seeds or (),
        n_random_controls=args.controls,
        prefill_samples=args.samples,
        drift_turns=args.turns,
        drift_conversations=args.conversations,
        drift_scripts=args.scripts or None,
        cap_layers=args.cap_layers or None,
        cap_percentile=args.percentile,
        prefill_axis=A.AssistantAxis.load(args.prefill_axis) if args.prefill_axis else None,
        compare_with=A.AssistantAxis.load(args.compare_with) if args.compare_with else None,
        sae=load_sae(args.sae, args.sae_id) if args.sae else None,
        seed=args.seed,
        generation_dtype=args.generation_dtype,
        capture_dtype=args.capture_dtype,
    )


def _with_model(args: argparse.Namespace, model: Model, out: Path, lib: A.RoleLibrary, t_load: float) -> int:
    """The actions that drive a model: one library call each, then what it found."""
    kw: dict[str, Any] = dict(library=lib, layer=getattr(args, "layer", None), load_s=t_load)
    gen = dict(batch_size=getattr(args, "batch_size", None), seed=getattr(args, "seed", None))
    if args.action == "run":
        _print_analysis(_run(args, model, out, lib)["analysis"])
    elif args.action == "collect":
        cfg = config_from_args(A.AxisConfig, args)
        with ray_pool(args, args.model) as pool:
            res = A.axis_collect(
                model,
                out,
                config=cfg,
                judge=args.judge,
                responses_from=args.responses_from,
                pool=pool,
                ray=args.ray,
                workers=args.workers,
                **kw,
            )
        _print_analysis(res["analysis"])
        print(f"axis: {res['axis_file']}")
    elif args.action == "steer":
        res = A.axis_steer(
            model,
            args.axis,
            out,
            alphas=args.alphas,
            n_questions=args.n_questions,
            system_prompts=args.system_prompt or (),
            max_new_tokens=args.max_new_tokens,
            seeds=args.steer_seeds or (),
            n_controls=args.controls,
            **gen,
            **kw,
        )
        control = res["steering"].get("control")
        if control is not None:
            print(evidence_text(control["evidence"]))
    elif args.action in ("drift", "cap"):
        kw.update(
            n_turns=args.turns,
            n_conversations=args.conversations,
            scripts=args.scripts or None,
            cap_layers=args.cap_layers or None,
            percentile=args.percentile,
            max_new_tokens=args.max_new_tokens,
            **gen,
        )
        if args.action == "drift":
            _print_drift(A.axis_drift(model, args.axis, out, capped=args.capped, **kw))
        else:
            _print_drift(A.axis_cap(model, args.axis, out, **kw))
    elif args.action == "prefill":
        A.axis_prefill(model, args.axis, out, alphas=args.alphas, n_samples=args.samples, **gen, **kw)
    elif args.action == "decompose":
        res = A.axis_decompose(
            model,
            args.axis,
            args.sae,
            out,
            sae_id=args.sae_id,
            allow_other_model=args.allow_other_model,
            k=args.k,
            n_cards=args.cards,
            card_sequences=args.card_sequences,
            load_s=t_load,
        )
        for m, d in res["decompositions"].items():
            print(f"{m:12s} top features {d['top'][:5]}  k for 50%/90%: {d['k_for_50pct']}/{d['k_for_90pct']}")
    print(f"summary: {out / 'summary.json'}")
    return 0


def cmd_axis(args: argparse.Namespace) -> int:
    t0 = time.time()
    if args.action == "roles":
        lib = A.load_role_library(args.extra_roles or ())
        out = Path(args.out) if args.out else None
        _print_roles(lib, A.axis_roles(lib, out, extra_roles=args.extra_roles), args.json)
        return 0
    out = Path(args.out)
    if args.action == "compare":
        _print_compare(A.axis_compare(args.base_axis, args.post_axis, out, sae=args.sae, sae_id=args.sae_id)["compare"])
    elif args.action == "analyze":
        _print_analysis(A.axis_analyze(args.axis, out, layer=args.layer)["analysis"])
    else:
        lib = A.load_role_library(getattr(args, "extra_roles", None) or ())  # decompose takes no --extra-roles
        model = load_model(args.model)
        return _with_model(args, model, out, lib, time.time() - t0)
    print(f"summary: {out / 'summary.json'}")
    return 0


def register(sub: Any) -> None:
    a = sub.add_parser(
        "axis",
        help="the Assistant axis (Lu et al.): " + " | ".join(ACTIONS),
        description="The Assistant axis (Lu et al.); `featurescope axis ACTION --help` lists an action's flags.",
        formatter_class=FMT,
    )
    acts = a.add_subparsers(
        dest="action", metavar="ACTION", required=True, help="the step of the Assistant-axis workflow to run"
    )

    def action(name: str, help: str) -> argparse.ArgumentParser:
        p = acts.add_parser(name, help=help, description=help, formatter_class=FMT)
        p.set_defaults(func=cmd_axis)
        return p

    p = action("roles", "show / validate the role library (with --out: its counts in summary.json)")
    _out(p, required=False)
    _roles(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = action("collect", "role vectors and the axis (axis.safetensors), with the PCA and placement figures")
    _model_flags(p, axis=False)
    _collection_flags(p)
    p.add_argument(
        "--reduction",
        default=CFG.reduction,
        choices=["response_mean", "prompt_mean"],
        help="role vectors from response means or prompt means",
    )
    p.add_argument(
        "--responses-from",
        metavar="JSONL",
        help="responses.jsonl of another collect run with the same roles and questions (read this model on "
        "those answers instead of generating)",
    )
    _layer(p, "the analysis")
    add_config_flag(p, "AxisConfig")
    add_ray_flags(p, "generation and capture")

    p = action("analyze", "PCA and placement figures for a saved axis")
    _axis_file(p)
    _out(p)
    _layer(p, "the analysis")

    p = action("steer", "alpha sweep along the axis on identity questions, against random-vector controls")
    _model_flags(p)
    _layer(p, "steering")
    _steering_flags(p)
    p.add_argument("--n-questions", type=_count, default=8, help="identity questions (0 = all)")
    p.add_argument("--system-prompt", action="append", help="also steer under this system prompt (repeatable)")
    _generation_flags(p)

    for name, help in (
        ("drift", "per-turn projection on the axis over the multi-turn drift scripts"),
        ("cap", "drift with and without activation capping, side by side"),
    ):
        p = action(name, help)
        _model_flags(p)
        _layer(p, "the drift projection")
        _drift_flags(p)
        _generation_flags(p)
        if name == "drift":
            p.add_argument("--capped", action="store_true", help="generate under activation capping")

    p = action("prefill", 'the base-model "I am a ..." prefill test, steered along the axis')
    _model_flags(p)
    _layer(p, "steering")
    _alphas(p)
    p.add_argument("--samples", type=_pos, default=1, help="sampled completions per prefill (1 = greedy)")
    _generation_flags(p, max_new_tokens=False)

    p = action("compare", "a base and a post-trained axis compared layer by layer")
    # --base / --post: deprecated aliases (elsewhere in the CLI, --base / --post name models, not axis files)
    _flag(
        p, "--base-axis", "--base", required=True, metavar="FILE", help="base-checkpoint axis file (--base: deprecated)"
    )
    _flag(p, "--post-axis", "--post", required=True, metavar="FILE", help="post-trained axis file (--post: deprecated)")
    _out(p)
    _sae_flags(p, "also compare both axes in its features")

    p = action("decompose", "the axis in SAE features, with feature cards")
    _model_flags(p, roles=False)
    _sae_flags(p, "the axis is read in its features", required=True)
    p.add_argument("--allow-other-model", action="store_true", help="decompose with an SAE of another checkpoint")
    p.add_argument("--k", type=_pos, default=100, help="top features per view")
    p.add_argument("--cards", type=_nonneg, default=10, help="feature cards for the top features")
    p.add_argument("--card-sequences", type=_pos, default=256, help="corpus sequences scanned for card contexts")

    p = action("run", "collect, analyze, steer, drift (+ capping) and, on a base checkpoint, the prefill test")
    _model_flags(p, axis=False)
    _collection_flags(p)
    _layer(p, "analysis / steering / drift")
    _steering_flags(p)
    p.add_argument(
        "--n-identity-questions", type=_nonneg, default=8, help="'Who are you?' questions per steering point"
    )
    _drift_flags(p)
    p.add_argument("--samples", type=_pos, default=3, help="sampled completions per prefill (1 = greedy)")
    p.add_argument("--prefill-axis", metavar="FILE", help="on a base checkpoint: steer the prefill test with this axis")
    p.add_argument("--compare-with", metavar="FILE", help="an axis of the model's other stage (cross-stage numbers)")
    _sae_flags(p, "the axis is decomposed in its features")
