"""``featurescope axis ...``: the Assistant axis (Lu et al.) from the command line.

Actions: ``roles`` (show / validate the role library), ``collect`` (role vectors and the axis), ``analyze`` (PCA and
placement figures for a saved axis), ``steer`` (alpha sweep on identity questions), ``drift`` (per-turn projection
over the multi-turn scripts), ``cap`` (drift with and without activation capping), ``prefill`` (the base-model
"I am a ..." test), ``compare`` (base vs post-trained axes), ``decompose`` (the axis in SAE features, with cards) and
``run`` (all of it at a small scale). Every action that computes writes ``summary.json`` in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from .. import axis as A
from ..errors import FeaturescopeError
from ..evidence.nulls import evidence_text
from ..models import Model, load_model
from ..saes import load_sae
from .io import add_config_flag, add_ray_flags, config_from_args, ray_pool

ACTIONS = ("roles", "collect", "analyze", "steer", "drift", "cap", "prefill", "compare", "decompose", "run")


def _floats(s: str) -> list[float]:
    try:
        return [float(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise FeaturescopeError(f"not a comma-separated list of numbers: {s!r}") from None


def _ints(s: str | None) -> list[int] | None:
    if not s:
        return None
    try:
        return [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise FeaturescopeError(f"not a comma-separated list of layers: {s!r}") from None


def _need(args: argparse.Namespace, *names: str) -> None:
    missing = [f"--{n.replace('_', '-')}" for n in names if not getattr(args, n, None)]
    if missing:
        raise FeaturescopeError(f"axis {args.action} needs {', '.join(missing)}")


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


def _run(args: argparse.Namespace, model: Model, out: Path, lib: A.RoleLibrary) -> dict[str, Any]:
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
        alphas=_floats(args.alphas),
        n_identity_questions=args.n_identity_questions,
        steer_seeds=_ints(args.steer_seeds) or (),
        n_random_controls=args.controls,
        prefill_samples=args.samples or 3,
        drift_turns=args.turns,
        drift_conversations=args.conversations,
        drift_scripts=args.scripts.split(",") if args.scripts else None,
        cap_layers=_ints(args.cap_layers),
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
    if args.action == "run":
        _print_analysis(_run(args, model, out, lib)["analysis"])
    elif args.action == "collect":
        cfg = config_from_args(A.AxisConfig, args)
        with ray_pool(args, args.model) as pool:
            res = A.axis_collect(
                model,
                out,
                library=lib,
                config=cfg,
                judge=args.judge,
                responses_from=args.responses_from,
                pool=pool,
                ray=args.ray,
                workers=args.workers,
                layer=args.layer,
                load_s=t_load,
            )
        _print_analysis(res["analysis"])
        print(f"axis: {res['axis_file']}")
    elif args.action == "steer":
        res = A.axis_steer(
            model,
            args.axis,
            out,
            library=lib,
            layer=args.layer,
            alphas=_floats(args.alphas),
            n_questions=args.n_questions,
            system_prompts=args.system_prompt or (),
            max_new_tokens=args.max_new_tokens,
            batch_size=args.batch_size,
            seed=args.seed,
            seeds=_ints(args.steer_seeds) or (),
            n_controls=args.controls,
            load_s=t_load,
        )
        control = res["steering"].get("control")
        if control is not None:
            print(evidence_text(control["evidence"]))
    elif args.action in ("drift", "cap"):
        kw: dict[str, Any] = dict(
            library=lib,
            layer=args.layer,
            n_turns=args.turns,
            n_conversations=args.conversations,
            scripts=args.scripts.split(",") if args.scripts else None,
            cap_layers=_ints(args.cap_layers),
            percentile=args.percentile,
            max_new_tokens=args.max_new_tokens,
            batch_size=args.batch_size,
            seed=args.seed,
            load_s=t_load,
        )
        if args.action == "drift":
            res = A.axis_drift(model, args.axis, out, capped=args.capped, **kw)
        else:
            res = A.axis_cap(model, args.axis, out, **kw)
        for k in ("uncapped", "capped"):
            for n, v in res["drift"].get(k, {}).get("per_script", {}).items():
                print(f"  [{k}] {n:26s} " + " ".join(f"{x:+.2f}" for x in v))
    elif args.action == "prefill":
        A.axis_prefill(
            model,
            args.axis,
            out,
            library=lib,
            layer=args.layer,
            alphas=_floats(args.alphas),
            n_samples=args.samples or 1,
            batch_size=args.batch_size,
            seed=args.seed,
            load_s=t_load,
        )
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
    out = Path(args.out) if args.out else None
    if args.action != "roles" and out is None:
        raise FeaturescopeError(f"axis {args.action} needs --out (the run folder)")
    lib = A.load_role_library(args.extra_roles or ())
    if args.action == "roles":
        _print_roles(lib, A.axis_roles(lib, out, extra_roles=args.extra_roles), args.json)
        return 0
    assert out is not None  # checked above: every other action needs --out
    if args.action == "compare":
        _need(args, "base", "post")
        _print_compare(A.axis_compare(args.base, args.post, out, sae=args.sae, sae_id=args.sae_id)["compare"])
    elif args.action == "analyze":
        _need(args, "axis")
        _print_analysis(A.axis_analyze(args.axis, out, layer=args.layer)["analysis"])
    else:
        _need(args, "model")
        if args.action not in ("run", "collect"):
            _need(args, "axis", *(["sae"] if args.action == "decompose" else []))
        model = load_model(args.model)
        return _with_model(args, model, out, lib, time.time() - t0)
    print(f"summary: {out / 'summary.json'}")
    return 0


def register(sub: Any) -> None:
    a = sub.add_parser(
        "axis",
        help="the Assistant axis (Lu et al.): roles | collect | analyze | steer | drift | cap | "
        "prefill | compare | decompose | run",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    a.add_argument(
        "action",
        choices=ACTIONS,
        help="run = collect, analyze, steer, drift (+ capping) and, on a base "
        "checkpoint, the prefill test, at a small scale",
    )
    a.add_argument("--model", help="checkpoint (offline:smollm2-135m-instruct, offline:gemma-3-270m, a folder, ...)")
    a.add_argument("--out", help="run folder (summary.json, figures, axis.safetensors)")
    a.add_argument("--axis", help="axis file written by `axis collect` / `axis run` (axis.safetensors)")
    a.add_argument("--extra-roles", action="append", help="user role YAML merged with the shipped library (repeatable)")
    a.add_argument("--json", action="store_true", help="machine-readable output (roles)")
    a.add_argument(
        "--n-roles", type=int, default=24, help="roles to use, spread over categories (collect/run; 0 = all)"
    )
    a.add_argument(
        "--n-questions",
        type=int,
        default=8,
        help="shared questions per role (collect/run; 0 = all); identity questions (steer)",
    )
    a.add_argument(
        "--n-identity-questions", type=int, default=8, help="'Who are you?'-style questions per steering point (run)"
    )
    a.add_argument(
        "--instructions",
        default="cycle",
        choices=["cycle", "all"],
        help="cycle: one of the 5 prompts per question; all: every prompt x every question",
    )
    a.add_argument(
        "--reduction",
        default="response_mean",
        choices=["response_mean", "prompt_mean"],
        help="role vectors from response means or prompt means",
    )
    a.add_argument("--max-new-tokens", type=int, default=40, help="tokens generated per answer")
    a.add_argument("--batch-size", type=int, default=16, help="prompts per batch")
    a.add_argument(
        "--generation-dtype",
        default="float32",
        choices=["float32", "bfloat16"],
        help="collect/run: generate the role answers with a bfloat16 copy of the model (~2.5x faster on a "
        "CPU with AVX-512 BF16; greedy text may differ)",
    )
    a.add_argument(
        "--capture-dtype",
        default="float32",
        choices=["float32", "bfloat16"],
        help="collect/run: run the activation capture in bfloat16 (~2.7x faster here; role vectors agree "
        "with float32 to cosine 0.9998; means are accumulated in float32)",
    )
    a.add_argument(
        "--judge",
        default="auto",
        choices=["auto", "probe", "embedding", "llm", "none"],
        help="role-adherence judge (auto: LLM when FEATURESCOPE_JUDGE_URL is set, else the offline role probe; "
        "embedding: the old proxy)",
    )
    a.add_argument(
        "--responses-from",
        help="responses.jsonl of another collect run with the same roles and questions "
        "(read this model on those answers instead of generating)",
    )
    a.add_argument("--layer", type=int, default=None, help="layer for analysis / steering / drift (default: middle)")
    a.add_argument("--alphas", default="-4,-2,0,2,4", help="steering coefficients in units of the axis")
    a.add_argument(
        "--steer-seeds",
        default="0,1,2",
        help="steer/run: sample each answer once per seed (comma-separated; '' = one greedy answer)",
    )
    a.add_argument(
        "--controls",
        type=int,
        default=2,
        help="steer/run: random vectors of the axis' norm swept the same way (the steering null; 0 = none)",
    )
    a.add_argument("--system-prompt", action="append", help="also steer under this system prompt (steer; repeatable)")
    a.add_argument("--turns", type=int, default=None, help="user turns per drift script (default: all)")
    a.add_argument(
        "--conversations",
        type=int,
        default=5,
        help="conversations per drift script, replies sampled (intervals over conversations; 1 = one greedy one)",
    )
    a.add_argument("--scripts", help="comma-separated drift scripts (default: all shipped)")
    a.add_argument("--capped", action="store_true", help="drift: generate under activation capping")
    a.add_argument("--cap-layers", help="comma-separated layers to cap (default: middle to three-quarter depth)")
    a.add_argument("--percentile", type=float, default=25.0, help="tau = this percentile of the default's projections")
    a.add_argument(
        "--samples", type=int, default=None, help="sampled completions per prefill (prefill: 1 = greedy; run: 3)"
    )
    a.add_argument("--base", help="base-checkpoint axis file (compare)")
    a.add_argument("--post", help="post-trained axis file (compare)")
    a.add_argument(
        "--prefill-axis", help="run on a base checkpoint: steer the prefill test with this (post-trained) axis"
    )
    a.add_argument("--compare-with", help="run: an axis of the other stage of the same model, for cross-stage numbers")
    a.add_argument("--sae", help="SAE folder or sae-lens release (decompose, run; compare: both axes in its features)")
    a.add_argument("--sae-id", help="SAE id inside a sae-lens release")
    a.add_argument("--allow-other-model", action="store_true", help="decompose with an SAE of another checkpoint")
    a.add_argument("--k", type=int, default=100, help="top features per view (decompose)")
    a.add_argument("--cards", type=int, default=10, help="feature cards for the top features (decompose)")
    a.add_argument("--card-sequences", type=int, default=256, help="corpus sequences scanned for card contexts")
    a.add_argument("--seed", type=int, default=0, help="seed of generation and bootstraps")
    add_config_flag(a, "AxisConfig (axis collect)")
    add_ray_flags(a, "generation and capture (collect)")
    a.set_defaults(func=_dispatch)


def _dispatch(args: argparse.Namespace) -> int:
    for k in ("n_roles", "n_questions"):
        if getattr(args, k) == 0:
            setattr(args, k, None)
    return cmd_axis(args)
