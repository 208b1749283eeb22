"""``featurescope persona``: run | extract | steer | monitor | flag."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from ..errors import FeaturescopeError
from .io import add_config_flag, add_ray_flags, config_from_args, ray_pool, read_prompts


def cmd_persona(args: argparse.Namespace) -> int:
    from ..evidence.nulls import evidence_text
    from ..judge import default_judge
    from ..models import load_model
    from ..persona import ExtractionConfig, PersonaVector, check_flag_rows, run_persona
    from ..persona.commands import persona_extract, persona_flag, persona_monitor, persona_rebuild, persona_steer

    t0 = time.time()
    out = Path(args.out)
    if args.action == "rebuild" and not args.responses:
        raise FeaturescopeError("persona rebuild needs --responses (a run's responses.jsonl with kept flags)")
    if args.action not in ("extract", "run", "rebuild") and not args.vector:
        raise FeaturescopeError(f"persona {args.action} needs --vector (a file written by `persona extract`)")
    if args.action == "flag" and not args.dataset:
        raise FeaturescopeError("persona flag needs --dataset")
    # Cheap checks before the model loads or anything is generated.
    pv_in = PersonaVector.load(args.vector) if args.vector and args.action not in ("extract", "rebuild") else None
    resp_rows = (
        [json.loads(x) for x in Path(args.responses).read_text().splitlines() if x.strip()]
        if args.action == "rebuild"
        else None
    )
    flag_rows = check_flag_rows(read_prompts(args.dataset), args.dataset) if args.action == "flag" else None
    judge = default_judge()  # a configured judge endpoint is checked here, before anything is generated
    model = load_model(args.model)
    if pv_in is not None:
        pv_in.check_fits(
            model,
            model.resid_hook(args.layer) if args.action in ("steer", "monitor", "flag") else None,
            allow_other_model=args.allow_other_model,
        )
    if args.action == "run":
        cfg = config_from_args(ExtractionConfig, args)
        alphas = [float(a) for a in args.alphas.split(",")]
        layers = [int(x) for x in args.layers.split(",")] if args.layers else None
        res = run_persona(
            model,
            args.trait,
            judge,
            out,
            extraction=cfg,
            layers=layers,
            alpha=args.alpha,
            alphas=alphas,
            n_eval_questions=args.n_eval_questions,
            n_monitor_questions=args.n_monitor_questions,
            n_random_controls=args.controls,
            seeds=_seeds(args),
            **({"flag_dataset": args.dataset} if args.dataset else {}),
        )
        print(
            f"chosen layer {res['chosen_layer']}; monitor r = {res['monitor']['r_samples']:.2f} "
            f"(levels {res['monitor']['r_levels']:.2f}); flagging {res['flagging'].get('per_dataset')}"
        )
    elif args.action == "extract":
        cfg = config_from_args(ExtractionConfig, args)
        kw = {"written": args.written, "ray": args.ray, "workers": args.workers}
        if args.written:  # written answers: nothing is generated, so no worker pool
            res = persona_extract(model, args.trait, judge, out, cfg, **kw)
        else:
            with ray_pool(args, args.model) as pool:
                res = persona_extract(model, args.trait, judge, out, cfg, pool=pool, **kw)
        sep, best = res["separation"], res["best_separation_layer"]
        if best is None:
            print("Cohen's d is undefined at every layer (fewer than 2 kept answers on a side, or no spread)")
        print(
            f"kept {res['counts']['kept_pos']} pos / {res['counts']['kept_neg']} neg of "
            f"{res['counts'].get('generated_per_side', res['counts'].get('written_pairs'))} each "
            f"({'written answers' if args.written else 'generated'})"
            + (
                f"; best separation at layer {best} (d={sep['cohens_d'][best]:.2f} in sample)"
                if best is not None
                else ""
            )
        )
        if best is not None and sep.get("held_out"):
            print(f"layer {best}, vector on half the questions: {evidence_text(sep['held_out'][best])}")
    elif args.action == "rebuild":
        assert resp_rows is not None
        cfg = config_from_args(ExtractionConfig, args)
        res = persona_rebuild(model, args.trait, resp_rows, out, cfg, responses=args.responses)
        sep, rr, best = res["separation"], res["reread"], res["best_separation_layer"]
        for tag, sp in (("with the system prompt", sep), ("re-read without it", rr["separation"])):
            if best is not None and sp.get("held_out"):
                print(f"{tag}, layer {best}: {evidence_text(sp['held_out'][best])}")
        if best is not None:
            print(f"cos(vector, re-read vector) at layer {best}: {rr['cosine_with_instruction_vector'][best]:.2f}")
    elif args.action == "steer":
        assert pv_in is not None
        alphas = [float(a) for a in args.alphas.split(",")]
        if args.controls > 0 and (0.0 not in alphas or max(alphas) <= 0):
            raise FeaturescopeError("--controls needs alpha 0 and a positive alpha in --alphas (or pass --controls 0)")
        sw = persona_steer(
            model, pv_in, judge, out, layer=args.layer, alphas=alphas, n_questions=args.n_questions,
            seeds=_seeds(args), controls=args.controls, seed=args.seed, vector_path=args.vector, started=t0,
            **_max_new(args),
        )  # fmt: skip
        if sw.control:
            print(evidence_text(sw.control["evidence"], "+.1f"))
    elif args.action == "monitor":
        assert pv_in is not None
        mon = persona_monitor(
            model, pv_in, judge, out, layer=args.layer, n_questions=args.n_questions, seeds=_seeds(args),
            vector_path=args.vector, started=t0, **_max_new(args),
        )  # fmt: skip
        print(
            f"projection vs trait score: r = {mon['r_samples']:.2f} over {mon['n']} responses "
            f"(r = {mon['r_levels']:.2f} over the {len(mon['per_level'])} graded levels); paper: 0.75-0.83"
        )
    elif args.action == "flag":
        assert pv_in is not None and flag_rows is not None
        fs_ = persona_flag(
            model, pv_in, flag_rows, out, layer=args.layer, dataset=args.dataset, seed=args.seed,
            vector_path=args.vector, started=t0, **_max_new(args),
        )  # fmt: skip
        for k, m_ in fs_["per_dataset"].items():
            print(f"  {k:24s} mean projection difference {m_:+.3f}")
        if "auroc_evidence" in fs_:
            print(evidence_text(fs_["auroc_evidence"]))
    print(f"summary: {out / 'summary.json'}")
    return 0


def _seeds(args: argparse.Namespace) -> list[int]:
    return [int(x) for x in args.seeds.split(",") if x.strip()] if args.seeds else []


def _max_new(args: argparse.Namespace) -> dict[str, Any]:
    """``max_new_tokens`` only when given: the library's defaults are the single home of each action's default."""
    return {} if args.max_new_tokens is None else {"max_new_tokens": args.max_new_tokens}


def register(sub: Any) -> None:
    from ..persona.extraction import ExtractionConfig

    pe = sub.add_parser(
        "persona",
        help="persona vectors: run | extract | rebuild | steer | monitor | flag (Chen et al. 2025)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    pe.add_argument(
        "action",
        choices=["run", "extract", "rebuild", "steer", "monitor", "flag"],
        help="run = extract, choose the layer, steer, monitor and flag in one go; rebuild = vectors again from a "
        "run's kept responses with the current defaults, plus the re-read control (no generation)",
    )
    pe.add_argument(
        "--model", default="offline:smollm2-135m-instruct", help="model name (featurescope models) or local folder"
    )
    pe.add_argument("--trait", default="evil", help="shipped trait name or path to a trait YAML (extract)")
    pe.add_argument("--vector", help="persona vector .safetensors (steer, monitor, flag)")
    pe.add_argument("--layer", type=int, default=15, help="layer to steer / monitor / flag at")
    pe.add_argument(
        "--alphas", default="-12,-8,-4,0,4,8,12", help="comma-separated steering coefficients (steer / run)"
    )
    pe.add_argument("--alpha", type=float, default=8.0, help="steering coefficient used to choose the layer (run)")
    pe.add_argument(
        "--layers", help="candidate layers for the layer choice, comma-separated (run; default every other)"
    )
    pe.add_argument("--dataset", help="JSONL of {prompt, response[, dataset]} rows (flag)")
    pe.add_argument(
        "--written",
        help="extract: read the model on written paired answers (JSONL of {question, pos, neg}, "
        "e.g. featurescope/data/traits/evil.written.jsonl) instead of generating them",
    )
    pe.add_argument(
        "--n-questions",
        type=int,
        default=None,
        help="extraction questions per trait (None: all) / monitor questions (monitor)",
    )
    pe.add_argument("--n-pairs", type=int, default=None, help="instruction pairs per trait (None: all)")
    pe.add_argument("--n-eval-questions", type=int, default=8, help="held-out questions per steering point (run)")
    pe.add_argument("--n-monitor-questions", type=int, default=3, help="questions per graded monitor prompt (run)")
    pe.add_argument(
        "--max-new-tokens",
        type=int,
        default=None,
        help="tokens generated per answer (default: the library's for each action: extract/run 64, steer/monitor 48, "
        "flag 64)",
    )
    pe.add_argument(
        "--controls",
        type=int,
        default=2,
        help="random vectors of equal norm swept like the persona vector: the steering null (steer / run; 0 = none)",
    )
    pe.add_argument(
        "--seeds",
        "--steer-seeds",
        dest="seeds",
        default="0,1,2",
        help="steer / monitor / run: sample every answer once per seed (comma-separated); per-alpha intervals over "
        "questions of the per-question mean ('' = one greedy answer each)",
    )
    pe.add_argument("--responses", help="a run's responses.jsonl with kept flags (rebuild)")
    pe.add_argument(
        "--handling",
        choices=("none", "project_mean", "drop_massive"),
        default=ExtractionConfig.handling,
        help="massive-activation handling of the vectors (extract / run / rebuild; see `featurescope inspect handling`)",
    )
    pe.add_argument(
        "--outlier-k",
        type=float,
        default=ExtractionConfig.outlier_k,
        help="leave tokens above this x the response's median norm out of its mean (0 = keep every token)",
    )
    pe.add_argument(
        "--pos-threshold",
        type=float,
        default=50.0,
        help="keep a trait answer when the judge's trait score is above this (0-100)",
    )
    pe.add_argument(
        "--neg-threshold",
        type=float,
        default=50.0,
        help="keep a baseline answer when its trait score is below this (0-100)",
    )
    pe.add_argument("--seed", type=int, default=0, help="seed of generation and bootstraps")
    add_config_flag(pe, "ExtractionConfig (persona run / extract)")
    add_ray_flags(pe, "the answers' generation (extract)")
    pe.add_argument(
        "--allow-other-model",
        action="store_true",
        help="use a vector extracted on another checkpoint of the same width (steer, monitor, flag)",
    )
    pe.add_argument("--out", required=True, help="output folder")
    pe.set_defaults(func=cmd_persona)
