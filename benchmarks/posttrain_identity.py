"""Re-measure "identifies as an AI" for our SFT Gemma with the one negation-aware detector (issue 15, item 5).

    .venv/bin/python benchmarks/posttrain_identity.py

Greedy answers of ``offline:gemma-3-270m-sft`` (chat template) and of the base model (its transcript framing, as
in the post-training evaluation's transcript arm) to the 20 held-out identity prompts (``data/dialogues/heldout.jsonl``, kind identity),
96 new tokens each, as in the shipped adapter's evaluation. Each answer is scored by the negation-aware detector
(``featurescope.measures.identifies_as_ai``) and by the old regex that ignored negation, and written to
``docs/posttrain-identity/answers.jsonl``; the fractions with 95% bootstrap intervals (over prompts) and the
base model's fraction (the null: an untuned model asked the same questions) go to ``summary.json``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import torch

import featurescope as fs
from featurescope.measures import identifies_as_ai
from featurescope.posttrain import DIALOGUES
from featurescope.versions import environment

OUT = Path(__file__).resolve().parent.parent / "docs" / "posttrain-identity"
OLD_RE = re.compile(r"\b(AI|A\.I\.|artificial intelligence|assistant|language model|chatbot|chat bot|LLM)\b", re.I)


def bootstrap_ci(xs: list[bool], n: int = 10_000, seed: int = 0) -> tuple[float, float]:
    g = torch.Generator().manual_seed(seed)
    t = torch.tensor(xs, dtype=torch.float32)
    idx = torch.randint(0, len(t), (n, len(t)), generator=g)
    means = t[idx].mean(1)
    return float(means.quantile(0.025)), float(means.quantile(0.975))


def main() -> int:
    rows = [json.loads(x) for x in (DIALOGUES / "heldout.jsonl").read_text().splitlines() if x.strip()]
    ident = [r for r in rows if r.get("kind") == "identity"]
    OUT.mkdir(parents=True, exist_ok=True)
    results, lines = {}, []
    for name, kind in (("offline:gemma-3-270m-sft", "chat"), ("offline:gemma-3-270m", "transcript")):
        m = fs.load_model(name, progress=False)
        gens = fs.generate(
            m, [r["messages"] for r in ident], kind=kind, max_new_tokens=96, batch_size=10, progress=False
        )
        new = [identifies_as_ai(g.response) for g in gens]
        old = [bool(OLD_RE.search(g.response)) for g in gens]
        for r, g, a, b in zip(ident, gens, new, old):
            lines.append(
                json.dumps(
                    {
                        "model": name,
                        "format": kind,
                        "id": r["id"],
                        "prompt": r["messages"][-1]["content"],
                        "answer": g.response,
                        "identifies_as_ai": a,
                        "old_regex_without_negation": b,
                    }
                )
            )
        results[name] = {
            "n": len(gens),
            "identifies_as_ai": sum(new) / len(new),
            "ci95": bootstrap_ci(new),
            "old_regex_without_negation": sum(old) / len(old),
            "changed_by_negation": sum(a != b for a, b in zip(new, old)),
        }
        print(name, results[name], flush=True)
    (OUT / "answers.jsonl").write_text("\n".join(lines) + "\n")
    sft, base = results["offline:gemma-3-270m-sft"], results["offline:gemma-3-270m"]
    verdict = (
        "not distinguishable from the null (base model)"
        if sft["ci95"][0] <= base["ci95"][1]
        else "above the base model's interval"
    )
    (OUT / "summary.json").write_text(
        json.dumps({"results": results, "verdict": verdict, "environment": environment()}, indent=2)
    )
    print(verdict)
    return 0


if __name__ == "__main__":
    sys.exit(main())
