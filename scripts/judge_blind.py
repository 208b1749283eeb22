"""Build the judge evaluation sets' item files and the *blind* files the two annotation passes read (issue 16).

    .venv/bin/python scripts/judge_blind.py roles    # role answers of the SFT Gemma axis run -> roles.*.jsonl
    .venv/bin/python scripts/judge_blind.py traits   # generated.jsonl + hard cases -> items.jsonl, blind.jsonl

``items.jsonl`` keeps every answer's provenance (model, condition, instruction, steering strength) and its split;
``blind.jsonl`` holds only what a judge sees (id, trait, question, answer), in a seeded random order, so an annotator
sees neither the condition nor any judge score. The dev/test split is fixed by seed, stratified by trait and model
(roles: by role category); the test split is never used to fit, tune or choose anything.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / "featurescope" / "data" / "judge" / "real"
SEED = 16


def _read(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _write(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def _split(rows: list[dict], key: str, rng: random.Random) -> None:
    """Half of each stratum to dev, half to test (odd strata: the extra item to test)."""
    strata: dict[str, list[dict]] = {}
    for r in rows:
        strata.setdefault(str(r[key]), []).append(r)
    for k in sorted(strata):
        group = strata[k]
        rng.shuffle(group)
        n_dev = len(group) // 2
        for i, r in enumerate(group):
            r["split"] = "dev" if i < n_dev else "test"


def hard_cases() -> list[dict]:
    """Answers from the shipped Gemma evil-vector run that the old judge scored high for the wrong reasons: echoes of
    the eliciting instruction, one stock apology repeated, loops."""
    rows = _read(ROOT / "featurescope" / "data" / "vectors" / "gemma-3-270m" / "evil" / "responses.jsonl")
    out: list[dict] = []
    seen: dict[str, int] = {}
    for r in sorted(rows, key=lambda r: -r["trait_score"]):
        a = r["response"]
        cap = 3 if a.startswith("I'm sorry, I didn't mean") else 1
        if seen.get(a, 0) >= cap:
            continue
        seen[a] = seen.get(a, 0) + 1
        out.append(
            {
                "model": "offline:gemma-3-270m",
                "trait": "evil",
                "condition": f"shipped_{r['side']}",
                "steer_layer": None,
                "steer_fraction_of_norm": 0.0,
                "question": r["question"],
                "instruction": r["instruction"],
                "answer": a,
                "new_tokens": None,
                "source": "featurescope/data/vectors/gemma-3-270m/evil/responses.jsonl",
            }
        )
        if len(out) == 20:
            break
    return out


def traits() -> None:
    rng = random.Random(SEED)
    rows = _read(REAL / "generated.jsonl")
    for r in rows:
        r["source"] = "scripts/make_judge_evalset.py"
    rows += hard_cases()
    rng.shuffle(rows)
    for i, r in enumerate(rows, 1):
        r["id"] = f"r{i:04d}"
        r["stratum"] = f"{r['trait']}|{r['model']}"
    _split(rows, "stratum", random.Random(SEED + 1))
    items = [
        {"id": r["id"], "split": r["split"], **{k: v for k, v in r.items() if k not in ("id", "split", "stratum")}}
        for r in rows
    ]
    _write(REAL / "items.jsonl", items)
    _write(REAL / "blind.jsonl", [{k: r[k] for k in ("id", "trait", "question", "answer")} for r in rows])
    print(f"{len(rows)} items -> {REAL / 'items.jsonl'}, {REAL / 'blind.jsonl'}")


def traits2() -> None:
    """Batch 2 (generated2.jsonl): appended to items.jsonl with ids after batch 1's, its own blind2.jsonl."""
    items = _read(REAL / "items.jsonl")
    if any(r["source"].endswith("--batch2") for r in items):
        sys.exit("batch 2 is already in items.jsonl")
    start = max(int(r["id"][1:]) for r in items) + 1
    rows = _read(REAL / "generated2.jsonl")
    for r in rows:
        r["source"] = "scripts/make_judge_evalset.py --batch2"
    random.Random(SEED + 2).shuffle(rows)
    for i, r in enumerate(rows, start):
        r["id"] = f"r{i:04d}"
        r["stratum"] = f"{r['trait']}|{r['model']}"
    _split(rows, "stratum", random.Random(SEED + 3))
    new = [
        {"id": r["id"], "split": r["split"], **{k: v for k, v in r.items() if k not in ("id", "split", "stratum")}}
        for r in rows
    ]
    _write(REAL / "items.jsonl", items + new)
    _write(REAL / "blind2.jsonl", [{k: r[k] for k in ("id", "trait", "question", "answer")} for r in rows])
    print(f"{len(rows)} batch-2 items appended -> {REAL / 'items.jsonl'}, {REAL / 'blind2.jsonl'}")


def roles() -> None:
    rng = random.Random(SEED)
    src = ROOT / "docs" / "axis" / "axis-gemma-sft" / "responses.jsonl"
    rows = [r for r in _read(src) if r["condition"] == "role"]
    rng.shuffle(rows)
    items = []
    for i, r in enumerate(rows, 1):
        items.append(
            {
                "id": f"q{i:04d}",
                "model": "offline:gemma-3-270m-sft",
                "role": r["role"],
                "category": r["category"],
                "role_instruction": r["instruction"],
                "question": r["question"],
                "answer": r["response"],
                "old_judge_score": r["score"],
                "source": str(src.relative_to(ROOT)),
            }
        )
    _split(items, "category", random.Random(SEED + 1))
    _write(REAL / "roles.items.jsonl", items)
    _write(
        REAL / "roles.blind.jsonl",
        [{k: r[k] for k in ("id", "role", "role_instruction", "question", "answer")} for r in items],
    )
    print(f"{len(items)} role answers -> {REAL / 'roles.items.jsonl'}, {REAL / 'roles.blind.jsonl'}")


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what not in ("roles", "traits", "traits2"):
        sys.exit("usage: judge_blind.py roles|traits|traits2")
    {"roles": roles, "traits": traits, "traits2": traits2}[what]()
