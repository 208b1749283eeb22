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

from ..errors import FeaturescopeError
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


def _tag(axis: Any, extra: str = "") -> str:
    q = len(axis.extra.get("questions", [])) or "?"
    return f"{axis.model} ({axis.stage}); {len(axis.role_names)} roles x {q} questions, {axis.extra.get('judge', '?')}{extra}"


def _analysis_figures(ax: Any, out: Path, hook: str) -> list[str]:
    from .. import axis as A

    tag = _tag(ax)
    return [
        A.plot_explained_variance(out / "explained_variance.png", ax, tag, hook),
        A.plot_pc_scatter(out / "pc1_pc2.png", ax, tag, hook),
        A.plot_layers(out / "axis_layers.png", ax, tag),
        A.plot_ranked_roles(out / "roles_ranked.png", ax, tag, hook),
    ]


def _print_analysis(a: dict[str, Any]) -> None:
    from ..evidence.nulls import evidence_text

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


def cmd_axis(args: argparse.Namespace) -> int:
    from .. import axis as A
    from ..runs import write_summary
    from ..store import write_json

    t0 = time.time()
    out_opt = Path(args.out) if args.out else None
    if args.action != "roles" and out_opt is None:
        raise FeaturescopeError(f"axis {args.action} needs --out (the run folder)")
    if out_opt is not None:
        out_opt.mkdir(parents=True, exist_ok=True)
    lib = A.load_role_library(args.extra_roles or ())

    if args.action == "roles":
        counts = lib.category_counts()
        info = {
            "n_roles": len(lib.roles),
            "n_instructions_each": A.N_INSTRUCTIONS,
            "categories": counts,
            "n_default_prompts": len(lib.default_prompts),
            "n_questions": len(lib.questions),
            "n_identity_questions": len(lib.identity_questions),
            "n_prefills": len(lib.prefills),
            "scripts": [s.name for s in lib.scripts],
            "sources": list(lib.sources),
        }
        if args.json:
            print(
                json.dumps({**info, "roles": [{"name": r.name, "category": r.category} for r in lib.roles]}, indent=2)
            )
        else:
            print(
                f"{len(lib.roles)} roles x {A.N_INSTRUCTIONS} instructions, {len(lib.default_prompts)} default "
                f"prompts, {len(lib.questions)} questions, {len(lib.scripts)} drift scripts (from {', '.join(lib.sources)})"
            )
            for c, k in counts.items():
                print(f"  {c:13s} {k:3d}  {', '.join(r.name for r in lib.roles if r.category == c)[:100]}")
        if out_opt is not None:
            write_summary(
                out_opt,
                "axis roles",
                inputs={"extra_roles": args.extra_roles},
                results=info,
                timings={"total": time.time() - t0},
            )
        return 0

    assert out_opt is not None  # checked above: every other action needs --out
    out: Path = out_opt
    if args.action == "compare":
        _need(args, "base", "post")
        b, p = A.AssistantAxis.load(args.base), A.AssistantAxis.load(args.post)
        cmp = A.compare_axes(b, p)
        fig = A.plot_compare(
            out / "compare.png", cmp, f"{len(cmp['hooks'])} layers, {cmp['n_common_roles']} common roles"
        )
        if args.sae:  # both axes in one SAE's features: how many top features the stages share
            from ..saes import load_sae

            cmp["features"] = {"sae": args.sae, **A.axis_features_across_stages(b, p, load_sae(args.sae, args.sae_id))}
            print(
                f"{cmp['features']['hook']} in SAE {args.sae}: top-20 feature overlap (Jaccard) "
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
        write_summary(
            out,
            "axis compare",
            inputs={"base": args.base, "post": args.post, "sae": args.sae},
            results={"compare": cmp},
            timings={"total": time.time() - t0},
            figures=[fig],
        )
        print(f"summary: {out / 'summary.json'}")
        return 0

    if args.action == "analyze":
        _need(args, "axis")
        ax = A.AssistantAxis.load(args.axis)
        hook = ax.hook(args.layer)
        a = ax.analysis(hook)
        _print_analysis(a)
        figs = _analysis_figures(ax, out, hook)
        write_summary(
            out,
            "axis analyze",
            inputs={"axis": args.axis, "model": ax.model, "stage": ax.stage, "layer": hook},
            results={
                "analysis": a,
                "per_layer": ax.per_layer(),
                "ranked_roles": ax.ranked_roles(hook),
                "paper": A.PAPER,
            },
            timings={"total": time.time() - t0},
            figures=figs,
        )
        print(f"summary: {out / 'summary.json'}")
        return 0

    from ..models import load_model

    _need(args, "model")
    model = load_model(args.model)
    t_load = time.time() - t0

    if args.action == "run":
        pa = A.AssistantAxis.load(args.prefill_axis) if args.prefill_axis else None
        cw = A.AssistantAxis.load(args.compare_with) if args.compare_with else None
        sae = None
        if args.sae:
            from ..saes import load_sae

            sae = load_sae(args.sae, args.sae_id)
        res = A.run_axis(
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
            prefill_axis=pa,
            compare_with=cw,
            sae=sae,
            seed=args.seed,
            generation_dtype=args.generation_dtype,
            capture_dtype=args.capture_dtype,
        )
        _print_analysis(res["analysis"])
        print(f"summary: {out / 'summary.json'}")
        return 0

    if args.action == "collect":
        cfg = config_from_args(A.AxisConfig, args)
        responses = None
        if args.responses_from:
            rows = [json.loads(x) for x in Path(args.responses_from).read_text().splitlines() if x.strip()]
            responses = [r["response"] for r in rows]
        with ray_pool(args, args.model) as pool:
            ax, _ = A.collect_axis(model, lib, cfg, judge=args.judge, out_dir=out, responses=responses, pool=pool)
        path = ax.save(out / "axis.safetensors")
        hook = ax.hook(args.layer)
        a = ax.analysis(hook)
        _print_analysis(a)
        figs = _analysis_figures(ax, out, hook)
        write_summary(
            out,
            "axis collect",
            inputs={
                "model": model.info,
                "config": cfg.to_dict(),
                "judge": ax.extra["judge"],
                "responses_from": args.responses_from,
                "ray": args.ray,
                "workers": args.workers if args.ray else 1,
                "library": list(lib.sources),
            },
            results={
                "axis_file": str(path),
                "analysis": a,
                "per_layer": ax.per_layer(),
                "counts": {
                    k: ax.extra[k]
                    for k in ("n_jobs", "n_default", "n_role_responses", "n_kept", "score_counts", "dropped_roles")
                },
                "ranked_roles": ax.ranked_roles(hook),
                "paper": A.PAPER,
            },
            timings={"load_model": t_load, **ax.extra["timings"], "total": time.time() - t0},
            figures=figs,
        )
        print(f"axis: {path}\nsummary: {out / 'summary.json'}")
        return 0

    _need(args, "axis")
    ax = A.AssistantAxis.load(args.axis)
    hook = ax.hook(args.layer)
    tag = f"{model.name} ({model.stage}); axis of {ax.model}"

    if args.action == "steer":
        qs = A.spread(lib.identity_questions, args.n_questions)
        sps = [None] + list(args.system_prompt or [])
        sw = A.axis_steering_sweep(
            model,
            ax,
            layer=hook,
            alphas=_floats(args.alphas),
            questions=qs,
            system_prompts=sps,
            max_new_tokens=args.max_new_tokens,
            batch_size=args.batch_size,
            seed=args.seed,
            seeds=_ints(args.steer_seeds) or (),
            ai_terms=lib.ai_terms,
        )
        control = None
        if args.controls > 0:
            control = A.axis_steering_control(
                model,
                ax,
                sw,
                n_random=args.controls,
                seed=args.seed,
                max_new_tokens=args.max_new_tokens,
                batch_size=args.batch_size,
                ai_terms=lib.ai_terms,
            )
            from ..evidence.nulls import evidence_text  # with the axis package: torch-heavy, not at CLI start-up

            print(evidence_text(control["evidence"]))
        section = A.steering_section(sw, control)
        fig = A.plot_steering(out / "steering.png", section, tag)
        with open(out / "steering.jsonl", "w") as f:
            for r in sw["rows"]:
                for x in r["responses"]:
                    f.write(json.dumps({"system_prompt": r["system_prompt"], "alpha": r["alpha"], **x}) + "\n")
        write_summary(
            out,
            "axis steer",
            inputs={
                "model": model.info,
                "axis": args.axis,
                "layer": hook,
                "alphas": sw["alphas"],
                "system_prompts": sps,
            },
            results={"steering": section},
            timings={"load_model": t_load, "total": time.time() - t0},
            figures=[fig],
        )
    elif args.action in ("drift", "cap"):
        scripts = [lib.script(s) for s in args.scripts.split(",")] if args.scripts else list(lib.scripts)
        kw: dict[str, Any] = dict(
            layers=[hook],
            n_turns=args.turns,
            max_new_tokens=args.max_new_tokens,
            batch_size=args.batch_size,
            seed=args.seed,
            n_conversations=args.conversations,
        )
        cap_layers = _ints(args.cap_layers)
        runs: dict[str, Any] = {}
        if args.action == "cap" or not args.capped:
            runs["uncapped"] = A.drift(model, ax, scripts, **kw)
        if args.action == "cap" or args.capped:
            runs["capped"] = A.drift(
                model, ax, scripts, capped=True, cap_layers=cap_layers, percentile=args.percentile, **kw
            )
        tau = ax.tau(hook, args.percentile, "tokens" if ax.token_quantiles is not None else "responses")
        fig = A.plot_drift(out / ("drift.png" if args.action == "drift" else "drift_capped.png"), runs, tag, tau=tau)
        write_json(out / "drift.json", runs, indent=1)
        res = A.drift_section(ax, hook, runs, args.percentile)
        for k in runs:
            for n, v in res[k]["per_script"].items():
                print(f"  [{k}] {n:26s} " + " ".join(f"{x:+.2f}" for x in v))
        write_summary(
            out,
            f"axis {args.action}",
            inputs={
                "model": model.info,
                "axis": args.axis,
                "layer": hook,
                "turns": args.turns,
                "scripts": [s.name for s in scripts],
                "cap_layers": cap_layers,
                "percentile": args.percentile,
            },
            results={"drift": {**res, "tau_at_layer": tau}},
            timings={"load_model": t_load, "total": time.time() - t0},
            figures=[fig],
        )
    elif args.action == "prefill":
        pf = A.prefill_test(
            model,
            ax,
            layer=hook,
            alphas=_floats(args.alphas),
            library=lib,
            n_samples=args.samples or 1,
            batch_size=args.batch_size,
            seed=args.seed,
        )
        fig = A.plot_prefill(out / "prefill.png", pf, tag)
        with open(out / "prefill.jsonl", "w") as f:
            for r in pf["rows"]:
                for c in r["completions"]:
                    f.write(json.dumps({"alpha": r["alpha"], **c}) + "\n")
        write_summary(
            out,
            "axis prefill",
            inputs={
                "model": model.info,
                "axis": args.axis,
                "layer": hook,
                "alphas": pf["alphas"],
                "samples": args.samples,
            },
            results={"prefill": A.prefill_section(pf)},
            timings={"load_model": t_load, "total": time.time() - t0},
            figures=[fig],
        )
    elif args.action == "decompose":
        _need(args, "sae")
        from .. import corpus
        from ..cards import cards_html, make_cards
        from ..saes import check_sae, load_sae

        sae = load_sae(args.sae, args.sae_id)
        h = check_sae(sae, model, allow_other_model=args.allow_other_model)
        dec = A.decompose_axis(ax, sae, layer=h, k=args.k)
        corpus.ensure_installed()
        toks = corpus.token_sequences(
            model.tokenizer, corpus.documents("heldout"), max_sequences=args.card_sequences, seed=2
        )
        top = dec["cosine"]
        cards = make_cards(
            model,
            sae,
            toks,
            top.indices[: args.cards].tolist(),
            scores=top.scores[: args.cards].tolist(),
            sae_name=str(args.sae),
            hook=h,
        )
        title = f"Assistant axis of {ax.model} ({ax.stage}) at {h} in features of SAE {args.sae}, read on {model.name}"
        (out / "cards.html").write_text(
            "<html><meta charset='utf-8'><body>" + cards_html(cards, title) + "</body></html>"
        )
        for m, d in dec.items():
            print(f"{m:12s} top features {d.top(5)}  k for 50%/90%: {d.k_for(0.5)}/{d.k_for(0.9)}")
        write_summary(
            out,
            "axis decompose",
            inputs={"model": model.info, "axis": args.axis, "sae": args.sae, "hook": h},
            results={
                "decompositions": {m: d.to_dict(args.k) for m, d in dec.items()},
                "cards": [c.to_dict() for c in cards],
            },
            timings={"load_model": t_load, "total": time.time() - t0},
            figures=["cards.html"],
        )
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
