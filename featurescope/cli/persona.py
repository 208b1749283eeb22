"""``featurescope persona``: run | extract | rebuild | steer | monitor | flag - one subcommand each, with only the
flags that action uses."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import judge as judge_lib
from .. import models, persona
from ..errors import FeaturescopeError
from ..evidence.nulls import evidence_text
from ..persona import ExtractionConfig, check_flag_rows, commands
from .io import (
    add_config_flag,
    add_ray_flags,
    config_from_args,
    float_list,
    int_list,
    nonempty,
    ray_pool,
    read_prompts,
)

if TYPE_CHECKING:
    from ..models import Model
    from ..persona import PersonaVector

FMT = argparse.ArgumentDefaultsHelpFormatter


def _run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    judge = judge_lib.default_judge()  # a configured judge endpoint is checked here, before anything is generated
    model = models.load_model(args.model)
    res = persona.run_persona(
        model,
        args.trait,
        judge,
        out,
        extraction=config_from_args(ExtractionConfig, args),
        layers=args.layers,
        alpha=args.alpha,
        alphas=args.alphas,
        n_eval_questions=args.n_eval_questions,
        n_monitor_questions=args.n_monitor_questions,
        n_random_controls=args.controls,
        seeds=args.seeds,
        **({"flag_dataset": args.dataset} if args.dataset else {}),
    )
    print(
        f"chosen layer {res['chosen_layer']}; monitor r = {res['monitor']['r_samples']:.2f} "
        f"(levels {res['monitor']['r_levels']:.2f}); flagging {res['flagging'].get('per_dataset')}"
    )
    print(f"summary: {out / 'summary.json'}")
    return 0


def _extract(args: argparse.Namespace) -> int:
    out = Path(args.out)
    judge = judge_lib.default_judge()  # a configured judge endpoint is checked here, before anything is generated
    model = models.load_model(args.model)
    cfg = config_from_args(ExtractionConfig, args)
    kw = {"written": args.written, "ray": args.ray, "workers": args.workers}
    if args.written:  # written answers: nothing is generated, so no worker pool
        res = commands.persona_extract(model, args.trait, judge, out, cfg, **kw)
    else:
        with ray_pool(args, args.model) as pool:
            res = commands.persona_extract(model, args.trait, judge, out, cfg, pool=pool, **kw)
    sep, best = res["separation"], res["best_separation_layer"]
    if best is None:
        print("Cohen's d is undefined at every layer (fewer than 2 kept answers on a side, or no spread)")
    print(
        f"kept {res['counts']['kept_pos']} pos / {res['counts']['kept_neg']} neg of "
        f"{res['counts'].get('generated_per_side', res['counts'].get('written_pairs'))} each "
        f"({'written answers' if args.written else 'generated'})"
        + (f"; best separation at layer {best} (d={sep['cohens_d'][best]:.2f} in sample)" if best is not None else "")
    )
    if best is not None and sep.get("held_out"):
        print(f"layer {best}, vector on half the questions: {evidence_text(sep['held_out'][best])}")
    print(f"summary: {out / 'summary.json'}")
    return 0


def _rebuild(args: argparse.Namespace) -> int:
    out = Path(args.out)
    rows = [json.loads(x) for x in Path(args.responses).read_text().splitlines() if x.strip()]  # before the model
    model = models.load_model(args.model)
    cfg = config_from_args(ExtractionConfig, args)
    res = commands.persona_rebuild(model, args.trait, rows, out, cfg, responses=args.responses)
    sep, rr, best = res["separation"], res["reread"], res["best_separation_layer"]
    for tag, sp in (("with the system prompt", sep), ("re-read without it", rr["separation"])):
        if best is not None and sp.get("held_out"):
            print(f"{tag}, layer {best}: {evidence_text(sp['held_out'][best])}")
    if best is not None:
        print(f"cos(vector, re-read vector) at layer {best}: {rr['cosine_with_instruction_vector'][best]:.2f}")
    print(f"summary: {out / 'summary.json'}")
    return 0


def _vector(args: argparse.Namespace) -> PersonaVector:
    """The persona vector of steer / monitor / flag, read before anything else (a cheap check)."""
    return persona.PersonaVector.load(args.vector)


def _model_for(args: argparse.Namespace, pv: PersonaVector) -> Model:
    """The model, with the vector checked against it at ``--layer``."""
    model = models.load_model(args.model)
    pv.check_fits(model, model.resid_hook(args.layer), allow_other_model=args.allow_other_model)
    return model


def _steer(args: argparse.Namespace) -> int:
    t0 = time.time()
    if args.controls > 0 and (0.0 not in args.alphas or max(args.alphas) <= 0):
        raise FeaturescopeError("--controls needs alpha 0 and a positive alpha in --alphas (or pass --controls 0)")
    pv = _vector(args)
    judge = judge_lib.default_judge()  # a configured judge endpoint is checked here, before anything is generated
    model = _model_for(args, pv)
    out = Path(args.out)
    sw = commands.persona_steer(
        model, pv, judge, out, layer=args.layer, alphas=args.alphas, n_questions=args.n_questions, seeds=args.seeds,
        controls=args.controls, seed=args.seed, vector_path=args.vector, started=t0, **_max_new(args),
    )  # fmt: skip
    if sw.control:
        print(evidence_text(sw.control["evidence"], "+.1f"))
    print(f"summary: {out / 'summary.json'}")
    return 0


def _monitor(args: argparse.Namespace) -> int:
    t0 = time.time()
    pv = _vector(args)
    judge = judge_lib.default_judge()  # a configured judge endpoint is checked here, before anything is generated
    model = _model_for(args, pv)
    out = Path(args.out)
    mon = commands.persona_monitor(
        model, pv, judge, out, layer=args.layer, n_questions=args.n_questions, seeds=args.seeds,
        vector_path=args.vector, started=t0, **_max_new(args),
    )  # fmt: skip
    print(
        f"projection vs trait score: r = {mon['r_samples']:.2f} over {mon['n']} responses "
        f"(r = {mon['r_levels']:.2f} over the {len(mon['per_level'])} graded levels); paper: 0.75-0.83"
    )
    print(f"summary: {out / 'summary.json'}")
    return 0


def _flag(args: argparse.Namespace) -> int:
    t0 = time.time()
    pv = _vector(args)
    rows = check_flag_rows(read_prompts(args.dataset), args.dataset)  # cheap checks before the model loads
    model = _model_for(args, pv)  # flagging reads projections only: no judge
    out = Path(args.out)
    fs_ = commands.persona_flag(
        model, pv, rows, out, layer=args.layer, dataset=args.dataset, seed=args.seed, vector_path=args.vector,
        started=t0, **_max_new(args),
    )  # fmt: skip
    for k, m_ in fs_["per_dataset"].items():
        print(f"  {k:24s} mean projection difference {m_:+.3f}")
    if "auroc_evidence" in fs_:
        print(evidence_text(fs_["auroc_evidence"]))
    print(f"summary: {out / 'summary.json'}")
    return 0


def _max_new(args: argparse.Namespace) -> dict[str, Any]:
    """``max_new_tokens`` only when given: the library's defaults are the single home of each action's default."""
    return {} if args.max_new_tokens is None else {"max_new_tokens": args.max_new_tokens}


# Flag groups: each action's parser is built from the groups it uses.


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", default="offline:smollm2-135m-instruct", help="model name (featurescope models) or local folder"
    )
    p.add_argument("--out", required=True, help="run folder (summary.json and the action's files)")


def _trait(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trait", default="evil", help="shipped trait name or path to a trait YAML")


def _extraction(p: argparse.ArgumentParser, generated: bool) -> None:
    """ExtractionConfig's fields (``--config`` FILE, then these flags); ``generated``: the generation and judge
    filter knobs too (extract / run; rebuild re-reads kept answers)."""
    add_config_flag(p, "ExtractionConfig")
    p.add_argument(
        "--handling",
        choices=("none", "project_mean", "drop_massive"),
        default=ExtractionConfig.handling,
        help="massive-activation handling of the vectors (see `featurescope inspect handling`)",
    )
    p.add_argument(
        "--outlier-k",
        type=float,
        default=ExtractionConfig.outlier_k,
        help="leave tokens above this x the response's median norm out of its mean (0 = keep every token)",
    )
    p.add_argument(
        "--seed", type=int, default=ExtractionConfig.seed, help="seed of generation, question splits and bootstraps"
    )
    if not generated:
        return
    p.add_argument(
        "--n-questions", type=int, default=None, help="extraction questions per trait (None: all of the trait's)"
    )
    p.add_argument("--n-pairs", type=int, default=None, help="instruction pairs per trait (None: all)")
    p.add_argument(
        "--max-new-tokens",
        type=int,
        default=None,
        help="tokens generated per answer (None: ExtractionConfig's max_new_tokens)",
    )
    p.add_argument(
        "--pos-threshold",
        type=float,
        default=ExtractionConfig.pos_threshold,
        help="keep a trait answer when the judge's trait score is above this (0-100)",
    )
    p.add_argument(
        "--neg-threshold",
        type=float,
        default=ExtractionConfig.neg_threshold,
        help="keep a baseline answer when its trait score is below this (0-100)",
    )


def _seeds(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--seeds",
        "--steer-seeds",
        dest="seeds",
        type=int_list,
        default="0,1,2",
        help="sample every answer once per seed (comma-separated); intervals over questions of the per-question "
        "mean ('' = one greedy answer each)",
    )


def _alphas(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--alphas",
        type=nonempty(float_list),
        default="-12,-8,-4,0,4,8,12",
        help="comma-separated steering coefficients (negative first: --alphas=-8,0,8)",
    )


def _controls(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--controls",
        type=int,
        default=2,
        help="random vectors of equal norm swept like the persona vector: the steering null (0 = none)",
    )


def _vector_flags(p: argparse.ArgumentParser) -> None:
    """The persona vector of steer / monitor / flag and the layer it acts at."""
    p.add_argument("--vector", required=True, help="persona vector .safetensors (written by `persona extract`)")
    p.add_argument("--layer", type=int, default=15, help="layer to act at (blocks.LAYER.hook_resid_post)")
    p.add_argument(
        "--allow-other-model",
        action="store_true",
        help="use a vector extracted on another checkpoint of the same width",
    )


def _max_new_tokens(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-new-tokens", type=int, default=None, help="tokens generated per answer (None: the library's default)"
    )


def register(sub: Any) -> None:
    pe = sub.add_parser(
        "persona",
        help="persona vectors: run | extract | rebuild | steer | monitor | flag (Chen et al. 2025)",
        description="Persona vectors (Chen et al. 2025): `featurescope persona ACTION --help` lists an action's flags.",
        formatter_class=FMT,
    )
    acts = pe.add_subparsers(dest="action", metavar="ACTION", required=True, help="what to do")

    r = acts.add_parser("run", formatter_class=FMT, help="extract, choose the layer, steer, monitor and flag in one go")
    _common(r)
    _trait(r)
    _extraction(r, generated=True)
    _alphas(r)
    r.add_argument("--alpha", type=float, default=8.0, help="steering coefficient used to choose the layer")
    r.add_argument(
        "--layers", type=int_list, default=None, help="candidate layers for the layer choice (None: every other)"
    )
    r.add_argument("--n-eval-questions", type=int, default=8, help="held-out questions per steering point")
    r.add_argument("--n-monitor-questions", type=int, default=3, help="questions per graded monitor prompt")
    _controls(r)
    _seeds(r)
    r.add_argument("--dataset", help="JSONL of {prompt, response[, dataset]} rows to flag (None: the shipped demo set)")
    r.set_defaults(func=_run)

    e = acts.add_parser(
        "extract", formatter_class=FMT, help="persona vectors from judge-filtered generated (or written) answers"
    )
    _common(e)
    _trait(e)
    _extraction(e, generated=True)
    e.add_argument(
        "--written",
        help="read the model on written paired answers (JSONL of {question, pos, neg}, e.g. "
        "featurescope/data/traits/evil.written.jsonl) instead of generating them",
    )
    add_ray_flags(e, "the answers' generation")
    e.set_defaults(func=_extract)

    b = acts.add_parser(
        "rebuild",
        formatter_class=FMT,
        help="vectors again from a run's kept responses with the current defaults, plus the re-read control "
        "(no generation)",
    )
    _common(b)
    _trait(b)
    b.add_argument("--responses", required=True, help="a run's responses.jsonl with kept flags")
    _extraction(b, generated=False)
    b.set_defaults(func=_rebuild)

    s = acts.add_parser(
        "steer", formatter_class=FMT, help="trait score and coherence under alpha x the vector, with a random null"
    )
    _common(s)
    _vector_flags(s)
    _alphas(s)
    s.add_argument("--n-questions", type=int, default=None, help="evaluation questions (None: all of the trait's)")
    _seeds(s)
    _controls(s)
    s.add_argument("--seed", type=int, default=0, help="seed of the random control vectors and bootstraps")
    _max_new_tokens(s)
    s.set_defaults(func=_steer)

    m = acts.add_parser("monitor", formatter_class=FMT, help="last-prompt projection vs judged trait score")
    _common(m)
    _vector_flags(m)
    m.add_argument(
        "--n-questions",
        type=int,
        default=None,
        help="evaluation questions asked under each graded system prompt (None: all)",
    )
    _seeds(m)
    _max_new_tokens(m)
    m.set_defaults(func=_monitor)

    f = acts.add_parser(
        "flag", formatter_class=FMT, help="projection difference of training rows: which data would shift the trait"
    )
    _common(f)
    _vector_flags(f)
    f.add_argument("--dataset", required=True, help="JSONL of {prompt, response[, dataset]} rows")
    f.add_argument("--seed", type=int, default=0, help="bootstrap / permutation seed")
    _max_new_tokens(f)
    f.set_defaults(func=_flag)
