"""Generate the judge evaluation set of *real* model outputs (issue 16).

For every offline model (SmolLM2-135M-Instruct, Gemma 3 270M base, our SFT Gemma) and every shipped trait, answer
the trait's evaluation questions under six conditions:

* ``pos``: the trait-eliciting instruction (system prompt / the base model's transcript preface), 5 answers;
* ``neg``: the trait-suppressing instruction, 3 answers;
* ``plain``: no instruction, 2 answers;
* ``steer_0.25``, ``steer_0.5``, ``steer_1``: no instruction, steered (all positions) at the middle layer along the
  trait's prompt-contrast direction (mean last-prompt activation under the positive minus the negative
  instructions), scaled to 0.25x, 0.5x and 1x the layer's median residual norm, 2 answers each. 1x breaks the text:
  broken answers are part of what a judge must handle.

Greedy decoding, 64 new tokens, questions drawn per cell by a seeded permutation. Writes
``featurescope/data/judge/real/generated.jsonl`` (id, model, trait, condition, question, instruction, answer, ...).
Resumable: rows already in the file are kept and their (model, trait) cells skipped.

    .venv/bin/python scripts/make_judge_evalset.py            # ~30 min on 2 CPU cores
    .venv/bin/python scripts/make_judge_evalset.py --batch2   # sampled positives-rich batch, ~15 min
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

import torch

import featurescope as fs
from featurescope.capture import capture
from featurescope.formatting import Message
from featurescope.persona import steering_hook

OUT = Path(__file__).resolve().parents[1] / "featurescope" / "data" / "judge" / "real" / "generated.jsonl"
MODELS = ["offline:smollm2-135m-instruct", "offline:gemma-3-270m", "offline:gemma-3-270m-sft"]
CONDITIONS = [("pos", 5), ("neg", 3), ("plain", 2), ("steer_0.25", 2), ("steer_0.5", 2), ("steer_1", 2)]
MAX_NEW_TOKENS = 64
SEED = 16


#: Batch 2 (positives are rare in batch 1: the small models seldom act on an instruction): 16 *sampled* answers
#: (temperature 1.0, two seeds) under the trait-eliciting instructions, for the traits with few positives, from the
#: two chat models. Written to generated2.jsonl.
OUT2 = OUT.with_name("generated2.jsonl")
MODELS2 = ["offline:smollm2-135m-instruct", "offline:gemma-3-270m-sft"]
TRAITS2 = ["evil", "humor", "impoliteness", "sycophancy"]


def batch2() -> None:
    done: set[tuple[str, str]] = set()
    if OUT2.exists():
        done = {(r["model"], r["trait"]) for r in map(json.loads, OUT2.read_text().splitlines())}
    for model_name in MODELS2:
        model = None
        for trait_name in TRAITS2:
            if (model_name, trait_name) in done:
                continue
            model = model or fs.load_model(model_name)
            trait = fs.load_trait(trait_name)
            rng = random.Random(f"{SEED}-b2-{model_name}-{trait_name}")
            qs = list(trait.eval_questions)
            rng.shuffle(qs)
            rows = []
            for seed in (1, 2):
                msgs = [
                    [Message("system", trait.instructions[k % len(trait.instructions)].pos), Message("user", qs[k])]
                    for k in range(8 * (seed - 1), 8 * seed)
                ]
                gens = fs.generate(
                    model,
                    msgs,
                    max_new_tokens=MAX_NEW_TOKENS,
                    do_sample=True,
                    temperature=1.0,
                    seed=seed,
                    progress=False,
                )
                for m, g in zip(msgs, gens):
                    rows.append(
                        {
                            "model": model.name,
                            "trait": trait_name,
                            "condition": f"pos_sampled_seed{seed}",
                            "steer_layer": None,
                            "steer_fraction_of_norm": 0.0,
                            "question": m[1].content,
                            "instruction": m[0].content,
                            "answer": g.response,
                            "new_tokens": g.new_tokens,
                        }
                    )
            with OUT2.open("a") as f:
                for r in rows:
                    f.write(json.dumps(r, ensure_ascii=False) + "\n")
            print(f"batch 2: {model_name} {trait_name}: {len(rows)} answers", flush=True)


def main() -> None:
    if "--batch2" in sys.argv:
        return batch2()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    done: set[tuple[str, str]] = set()
    if OUT.exists():
        for line in OUT.read_text().splitlines():
            r = json.loads(line)
            done.add((r["model"], r["trait"]))
    for model_name in MODELS:
        if all((model_name, t) in done for t in fs.list_traits()):
            continue
        t0 = time.time()
        model = fs.load_model(model_name)
        layer = model.n_layers // 2
        hook = model.resid_hook(layer)
        for trait_name in fs.list_traits():
            if (model_name, trait_name) in done:
                continue
            rows = cell(model, trait_name, layer, hook)
            with OUT.open("a") as f:
                for r in rows:
                    f.write(json.dumps(r, ensure_ascii=False) + "\n")
            print(f"{model_name} {trait_name}: {len(rows)} answers, {time.time() - t0:.0f}s", flush=True)
        del model


def cell(model: fs.Model, trait_name: str, layer: int, hook: str) -> list[dict]:
    trait = fs.load_trait(trait_name)
    rng = random.Random(f"{SEED}-{model.name}-{trait_name}")
    # Prompt-contrast direction at the middle layer: pos vs neg instruction, last prompt token.
    qs = trait.extraction_questions[:6]
    pos = [[Message("system", p.pos), Message("user", q)] for p in trait.instructions for q in qs]
    neg = [[Message("system", p.neg), Message("user", q)] for p in trait.instructions for q in qs]
    a_pos = capture(model, pos, [hook], reduction="last_prompt", progress=False).stacked()[0]
    a_neg = capture(model, neg, [hook], reduction="last_prompt", progress=False).stacked()[0]
    direction = a_pos.mean(0) - a_neg.mean(0)
    direction = direction / direction.norm()
    norm = float(torch.cat([a_pos, a_neg]).norm(dim=-1).median())

    questions = list(trait.eval_questions)
    rng.shuffle(questions)
    qi = 0
    rows: list[dict] = []
    for condition, n in CONDITIONS:
        jobs = []
        for k in range(n):
            q = questions[qi % len(questions)]
            qi += 1
            instruction = ""
            if condition == "pos":
                instruction = trait.instructions[k % len(trait.instructions)].pos
            elif condition == "neg":
                instruction = trait.instructions[k % len(trait.instructions)].neg
            msgs = ([Message("system", instruction)] if instruction else []) + [Message("user", q)]
            jobs.append((q, instruction, msgs))
        hooks = []
        strength = 0.0
        if condition.startswith("steer_"):
            strength = float(condition.split("_")[1])
            hooks = [(hook, steering_hook(direction, strength * norm))]
        gens = fs.generate(
            model, [m for _, _, m in jobs], max_new_tokens=MAX_NEW_TOKENS, fwd_hooks=hooks, progress=False, seed=SEED
        )
        for (q, instruction, _), g in zip(jobs, gens):
            rows.append(
                {
                    "model": model.name,
                    "trait": trait_name,
                    "condition": condition,
                    "steer_layer": layer if strength else None,
                    "steer_fraction_of_norm": strength,
                    "question": q,
                    "instruction": instruction,
                    "answer": g.response,
                    "new_tokens": g.new_tokens,
                }
            )
    return rows


if __name__ == "__main__":
    torch.manual_seed(SEED)
    sys.exit(main())
