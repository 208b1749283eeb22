"""Wall time of a full persona-vector extraction for one trait on one offline model, with the offline judge.

    python benchmarks/persona_extract.py [--model offline:smollm2-135m-instruct] [--trait evil]

Full = all 5 instruction pairs x 25 extraction questions x (pos, neg) = 250 batched greedy generations, judged,
then three captures (response mean, prompt mean, last prompt token) at every layer. Issue 3's budget: 10 minutes
on the 2-core CI machine. Prints the time of each stage and the ratio to the budget.
"""

from __future__ import annotations

import argparse
import time

import featurescope as fs
from featurescope.judge import EmbeddingJudge
from featurescope.persona import ExtractionConfig, extract

BUDGET_S = 600.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="offline:smollm2-135m-instruct")
    ap.add_argument("--trait", default="evil")
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()
    t = time.time()
    model = fs.load_model(args.model)
    judge = EmbeddingJudge()
    t_load = time.time() - t
    res = extract(
        model,
        args.trait,
        judge,
        config=ExtractionConfig(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size),
        progress=True,
    )
    tm = res["timings"]
    print(f"{args.model}, trait {args.trait}: {res['counts']}")
    print(
        f"  load {t_load:.0f}s | generate {tm['generate']:.0f}s | judge {tm['judge']:.1f}s | "
        f"capture {tm['total'] - tm['generate'] - tm['judge']:.0f}s | extraction total {tm['total']:.0f}s"
    )
    print(f"  extraction / budget ({BUDGET_S:.0f}s) = {tm['total'] / BUDGET_S:.2f}  (target <= 1.0)")


if __name__ == "__main__":
    main()
