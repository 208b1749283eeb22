"""Build ``featurescope/data/corpus/role_answers.jsonl``: the answers the offline models wrote while playing roles in
the committed Assistant-axis runs, for the ``persona`` corpus source (``featurescope.corpus``).

The runs' ``responses.jsonl`` live under ``docs/``, which the wheel does not ship, so this script copies the usable
answers into the package. It is deterministic: the same inputs give the same file byte for byte (rows in the order
of the sorted input files, then their own order; ids are a hash of the row's content). Answers are deduplicated per
model (several runs of one model hold the same greedy answers), and empty or degenerate ones (fewer than three words,
a line or phrase repeated over and over) are left out. Each row keeps the role, the role instruction, the question,
the model that wrote the answer and the runs (and their judges' role-adherence scores) it came from.

    .venv/bin/python scripts/build_persona_corpus.py            # writes the file, prints what it kept
    .venv/bin/python scripts/build_persona_corpus.py --check    # exit 1 if the file is not what the inputs give
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "featurescope" / "data" / "corpus" / "role_answers.jsonl"
INPUTS = ("docs/evidence/axis-run-*/responses.jsonl", "docs/axis/*/responses.jsonl")
MAX_BYTES = 1_000_000


def _model_of(run: Path) -> tuple[str, str | None]:
    """(model name, weights sha256) of a run folder: its summary.json, else its generations cache, else axis.json."""
    summary = run / "summary.json"
    if summary.exists():
        m = json.loads(summary.read_text())["inputs"]["model"]
        return str(m["name"]), m.get("weights_sha256")
    gens = run / "generations.jsonl"
    if gens.exists():
        with gens.open() as f:
            req = json.loads(f.readline()).get("request", {})
        if req.get("model"):
            return str(req["model"]), req.get("weights")
    axis = run / "axis.json"
    if axis.exists() and json.loads(axis.read_text()).get("model"):
        return str(json.loads(axis.read_text())["model"]), None
    raise SystemExit(f"{run}: cannot tell which model wrote these answers (no summary.json, generations or axis.json)")


def _judge_of(run: Path) -> str | None:
    """The role-adherence judge that scored the run's answers: summary.json, else axis.json's extra record."""
    summary, axis = run / "summary.json", run / "axis.json"
    if summary.exists():
        return json.loads(summary.read_text())["inputs"].get("judge")
    if axis.exists():
        extra = json.loads(axis.read_text()).get("extra")
        return extra.get("judge") if isinstance(extra, dict) else None
    return None


def degenerate(text: str) -> str | None:
    """Why an answer is not worth training on (None: it is)."""
    words = text.split()
    if len(words) < 3:
        return "fewer than 3 words"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if lines and Counter(lines).most_common(1)[0][1] >= 3:
        return "a line repeated 3+ times"
    if re.search(r"(.{2,}?)\1{3,}", text):
        return "a unit repeated 4+ times in a row"
    tri = list(zip(words, words[1:], words[2:]))
    if len(words) >= 9 and len(set(tri)) / len(tri) < 0.5:
        return "under half of its word trigrams distinct"
    return None


def build() -> tuple[list[dict[str, Any]], Counter[str]]:
    files = sorted({p for pat in INPUTS for p in ROOT.glob(pat)})
    rows: dict[str, dict[str, Any]] = {}
    dropped: Counter[str] = Counter()
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        model, weights = _model_of(path.parent)
        judge = _judge_of(path.parent)
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            r = json.loads(line)
            response = str(r.get("response") or "").strip()
            why = degenerate(response) if response else "empty"
            if why:
                dropped[why] += 1
                continue
            instruction, question = str(r.get("instruction") or "").strip(), str(r["question"]).strip()
            key = json.dumps([model, instruction, question, response])
            doc_id = "ra-" + hashlib.sha1(key.encode()).hexdigest()[:12]
            if doc_id not in rows:
                rows[doc_id] = {
                    "id": doc_id,
                    "model": model,
                    "weights_sha256": weights,
                    "role": r["role"],
                    "category": r.get("category"),
                    "instruction": instruction,
                    "question": question,
                    "response": response,
                    "runs": [],
                }
            else:
                dropped["duplicate (same model, instruction, question, answer)"] += 1
            rows[doc_id]["runs"].append({"file": rel, "judge": judge, "score": r.get("score")})
    return list(rows.values()), dropped


def render(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=False) + "\n" for r in rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="only check that the shipped file is up to date")
    args = ap.parse_args(argv)
    rows, dropped = build()
    text = render(rows)
    if len(text.encode()) > MAX_BYTES:
        raise SystemExit(f"{OUT} would be {len(text.encode()):,} bytes (> {MAX_BYTES:,}); keep it small")
    if args.check:
        ok = OUT.exists() and OUT.read_text() == text
        print(f"{OUT.relative_to(ROOT)}: {'up to date' if ok else 'STALE - rerun scripts/build_persona_corpus.py'}")
        return 0 if ok else 1
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    per_model = Counter(r["model"] for r in rows)
    print(f"wrote {len(rows)} answers ({len(text.encode()):,} bytes) to {OUT.relative_to(ROOT)}")
    print("per model: " + ", ".join(f"{m} {n}" for m, n in sorted(per_model.items())))
    print(f"roles: {len({r['role'] for r in rows})}")
    print("left out: " + ", ".join(f"{why} {n}" for why, n in sorted(dropped.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
