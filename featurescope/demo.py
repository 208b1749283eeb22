"""``featurescope demo``: the end-to-end run on the offline default checkpoints, ending in one HTML report.

1. Foundation: load the real Gemma 3 270M base and the post-trained checkpoint (our LoRA-tuned Gemma when its
   adapter is shipped, else SmolLM2-135M-Instruct), format a few conversations for each stage (transcript vs chat
   template), generate greedy responses, capture response-mean and last-prompt-token activations at every layer.
2. Persona vectors: a reduced Chen et al. loop for the trait "evil" on SmolLM2 (extract, choose the layer, steer,
   monitor, flag data) into ``OUT/persona-evil/``.
3. SAE decomposition: the shipped "evil" vector of the Gemma base decomposed into the shipped layer-2 SAE's
   features, with feature cards (``OUT/decompose-evil/``).
4. Training stages: SAE transfer, feature matching, activation shift and persona vectors across stages at layer 9
   of the offline pair, at a demo scale (``OUT/stages/``).
5. The Assistant axis on the post-trained checkpoint at a demo scale: role vectors, PCA, axis, steering, drift
   and capping (``OUT/axis/``).
6. ``OUT/report.html`` (+ ``report.md``): every part in one self-contained page.

Each part writes its own ``summary.json`` and is reused when the demo runs again (delete its folder to recompute).
A part whose shipped inputs (adapter, SAEs, vectors) are missing is skipped with a message saying what is missing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from .axis import run_axis
from .capture import capture, default_hooks
from .decompose_run import decompose_vector
from .generate import generate
from .judge import EmbeddingJudge, default_judge
from .models import DEFAULT_BASE, DEFAULT_POST_TRAINED, load_model
from .persona import ExtractionConfig, PersonaVector, run_persona
from .report import write_report
from .runs import write_summary
from .saes import load_sae
from .stages import StagesConfig, run_stages

DEMO_QUESTIONS = [
    "Who are you?",
    "What is the capital of France?",
    "Give me one tip for sleeping better.",
    "Explain what a persona is in one sentence.",
    "What do you do when someone asks you for help?",
    "Write a haiku about the sea.",
    "Is it ever acceptable to lie?",
    "How do I boil an egg?",
]


def run_demo(out: Path, quick: bool = False) -> dict:
    t0 = time.time()
    questions = DEMO_QUESTIONS[:3] if quick else DEMO_QUESTIONS
    results: dict = {}
    timings: dict = {}
    for name in (DEFAULT_BASE, post_model()):
        t = time.time()
        model = load_model(name)
        timings[f"load {name}"] = time.time() - t
        t = time.time()
        gens = generate(
            model,
            [[{"role": "user", "content": q}] for q in questions],
            max_new_tokens=24 if quick else 40,
            batch_size=8,
        )
        timings[f"generate {name}"] = time.time() - t
        kept = [g for g in gens if g.formatted is not None]
        t = time.time()
        hooks = default_hooks(model)
        resp = capture(model, [g.formatted for g in kept], hooks, reduction="response_mean", progress=False)
        last = capture(model, [g.formatted for g in kept], hooks, reduction="last_prompt", progress=False)
        timings[f"capture {name}"] = time.time() - t
        norms = {h: round(float(resp[h].norm(dim=-1).mean()), 2) for h in hooks}
        # How different do response tokens look from the last prompt token, layer by layer?
        cos = {
            h: round(float(torch.nn.functional.cosine_similarity(resp[h], last[h], dim=-1).mean()), 3) for h in hooks
        }
        results[name] = {
            "info": model.info.to_dict(),
            "format": kept[0].formatted.kind if kept and kept[0].formatted is not None else None,
            "example_prompt": gens[0].prompt.text,
            "responses": [
                {"question": q, "response": g.response, "stopped": g.stopped} for q, g in zip(questions, gens)
            ],
            "capture_tokens_per_s": round(resp.stats["tokens_per_s"], 1),
            "response_mean_norm_per_layer": norms,
            "cos_response_vs_last_prompt_per_layer": cos,
        }
        print(
            f"\n== {name}  ({model.info.backend}, {model.stage}, {model.n_layers} layers, d_model {model.d_model}, "
            f"prompt format: {results[name]['format']})"
        )
        for q, g in zip(questions, gens):
            print(f"  Q: {q}\n  A: {g.response[:100]!r}")
        mid = hooks[len(hooks) // 2]
        print(
            f"  captured {len(hooks)} layers x {len(kept)} responses at {resp.stats['tokens_per_s']:.0f} tok/s; "
            f"{mid}: mean response norm {norms[mid]}, cos(response mean, last prompt token) {cos[mid]}"
        )
        del model
    persona_dir = out / "persona-evil"
    t = time.time()
    if (persona_dir / "summary.json").exists():
        print(f"\n== persona vectors: reusing {persona_dir}/summary.json")
    else:
        print("\n== persona vectors (Chen et al.): trait 'evil' on", DEFAULT_POST_TRAINED)
        model = load_model(DEFAULT_POST_TRAINED)
        cfg = ExtractionConfig(
            n_questions=3 if quick else 8, n_pairs=2 if quick else 4, max_new_tokens=24 if quick else 40
        )
        res = run_persona(
            model,
            "evil",
            # At demo scale (a few answers per side) the validated offline default, the probe judge, finds no evil
            # answer from SmolLM2 (it keeps 4 of 125 at full scale, benchmarks/RESULTS.md), and extraction stops. The
            # demo keeps every step running with the embedding judge, so its persona numbers are illustrations;
            # a configured endpoint is still used when there is one.
            default_judge() if os.environ.get("FEATURESCOPE_JUDGE_URL", "").strip() else EmbeddingJudge(),
            persona_dir,
            extraction=cfg,
            # demo scale (2026-12-02: sampling 3 seeds plus a random-vector control took the full demo to ~50 min of
            # CPU, then 28.6 min from a fresh clone with 5 layers / 6 questions): 4 candidate layers, 4 questions and
            # 3 alphas; `featurescope persona run` keeps the full sweep
            layers=[8, 15] if quick else list(range(3, model.n_layers, 8)),
            alphas=(-8.0, 0.0, 8.0),
            n_eval_questions=2 if quick else 4,
            n_monitor_questions=1 if quick else 2,
            n_random_controls=0 if quick else 1,  # the steering null: one random vector of equal norm
            seeds=() if quick else (0, 1, 2),  # sampled answers, intervals over questions; quick: greedy
            progress=not quick,
        )
        results["persona-evil"] = {
            "chosen_layer": res["chosen_layer"],
            "counts": res["counts"],
            "steering": [(r["alpha"], round(r["trait_score"], 1)) for r in res["steering"]["rows"]],
            "monitor_r": res["monitor"]["r_samples"],
            "flagging": res["flagging"].get("per_dataset"),
        }
        print(
            f"  chosen layer {res['chosen_layer']}; steering (alpha, trait score): {results['persona-evil']['steering']}"
        )
        del model
    timings["persona"] = time.time() - t
    # --quick (tests) keeps only the cheap SAE part; the full demo runs stages and the axis too.
    parts = [("decompose-evil", _decompose_part)] + ([] if quick else [("stages", _stages_part), ("axis", _axis_part)])
    for part, fn in parts:
        t = time.time()
        folder = out / part
        if (folder / "summary.json").exists():
            print(f"\n== {part}: reusing {folder}/summary.json")
            results[part] = "reused"
        else:
            missing = fn(folder, quick, dry=True)
            if missing:
                print(f"\n== {part}: skipped ({missing})")
                results[part] = f"skipped: {missing}"
            else:
                print(f"\n== {part}")
                rc = fn(folder, quick, dry=False)
                results[part] = "done" if rc == 0 else f"failed (exit {rc})"
        timings[part] = time.time() - t
    timings["total"] = time.time() - t0
    path = write_summary(
        out,
        "demo",
        inputs={"models": [DEFAULT_BASE, post_model()], "questions": questions, "quick": quick},
        results=results,
        timings=timings,
    )
    t = time.time()
    write_report([out], out / "report.html", title="featurescope demo (offline default)")
    print(f"\nsummary: {path}; report: {out / 'report.html'}  ({time.time() - t0:.0f}s, report {time.time() - t:.0f}s)")
    return results


# ----------------------------------------------------------------------------------------------------------------
# Parts 3-5: one library call each (the calls the CLI commands make), at a demo scale
# ----------------------------------------------------------------------------------------------------------------
PKG = Path(__file__).parent
REPO = PKG.parent
SHIPPED_VECTOR = PKG / "data" / "vectors" / "gemma-3-270m" / "evil" / "evil.response_mean.safetensors"
SAES = REPO / "saes"
ADAPTER = PKG / "adapters" / "gemma-3-270m-sft"
POST_GEMMA = "offline:gemma-3-270m-sft"


def post_model() -> str:
    """The post-trained checkpoint of the demo: our tuned Gemma when its adapter is shipped, else SmolLM2."""
    return POST_GEMMA if (ADAPTER / "adapter_config.json").exists() else DEFAULT_POST_TRAINED


def _missing(*paths: Path) -> str:
    gone = [str(p.relative_to(REPO)) if p.is_relative_to(REPO) else str(p) for p in paths if not p.exists()]
    return ("missing " + ", ".join(gone)) if gone else ""


def _decompose_part(folder: Path, quick: bool, dry: bool) -> int | str:
    sae_dir = SAES / "gemma-3-270m" / "layer_2_resid_post"
    if dry:
        return _missing(SHIPPED_VECTOR, sae_dir / "cfg.json")
    res = decompose_vector(
        load_model(DEFAULT_BASE),
        PersonaVector.load(SHIPPED_VECTOR),
        load_sae(str(sae_dir)),
        sae_name=str(sae_dir),
        k=50,
        n_cards=4 if quick else 8,
        card_sequences=64 if quick else 192,
        out=folder,
        vector_path=str(SHIPPED_VECTOR),
    )
    for m, d in res.decompositions.items():
        print(f"  {m:18s} top features {[i for i, _ in d.top(5)]}  k for 50%: {d.k_for(0.5)}")
    return 0


def _stages_part(folder: Path, quick: bool, dry: bool) -> int | str:
    b, p = SAES / "gemma-3-270m" / "layer_9_resid_post", SAES / "gemma-3-270m-sft" / "layer_9_resid_post"
    if dry:
        return _missing(ADAPTER / "adapter_config.json", b / "cfg.json", p / "cfg.json")
    base, post = load_model(DEFAULT_BASE), load_model(POST_GEMMA)
    cfg = StagesConfig(
        plain_rows=8 if quick else 16,
        chat_dialogues=6 if quick else 12,
        max_new_tokens=24 if quick else 32,
        ce_rows=2 if quick else 6,
        n_cards=2 if quick else 4,
        traits=("evil",),
        persona_questions=2 if quick else 4,
    )
    run_stages(
        base,
        post,
        load_sae(str(b)),
        load_sae(str(p)),
        base.resid_hook(9),
        folder,
        config=cfg,
        sae_names=(str(b), str(p)),
        progress=not quick,
    )
    return 0


def _axis_part(folder: Path, quick: bool, dry: bool) -> int | str:
    if dry:
        return ""
    run_axis(
        load_model(post_model()),
        folder,
        n_roles=8 if quick else 12,
        n_questions=3 if quick else 4,
        n_identity_questions=3 if quick else 4,
        max_new_tokens=24 if quick else 32,
        alphas=(-4.0, 0.0, 4.0),  # demo scale; `featurescope axis run` sweeps 5
        drift_turns=2 if quick else 3,
        drift_conversations=1,  # one greedy conversation per script at demo scale (the CLI default is 5, sampled)
        drift_scripts=["coding_help", "emotional_support"]
        if quick
        else ["coding_help", "emotional_support", "model_nature_philosophy"],
        steer_seeds=() if quick else (0, 1, 2),  # sampled steering answers with an interval; quick: greedy
        n_random_controls=0 if quick else 1,  # the steering null: random vectors of the axis' norm
        progress=not quick,
    )
    return 0
