"""Fine-tuning shift speed against issue 19's targets: each LoRA fine-tune (training + its measurement) <= 10 min on
this 2-core CPU, the whole experiment <= 2 h.

    python benchmarks/finetune_speed.py --run docs/finetune-shift/smollm2 [--time-one]

From a run folder: every finished fine-tune's recorded seconds (training, checkpoint projections, judged answers,
held-out loss, kept activations) and the run's own stage timings, each as a ratio to its target. ``--time-one``
also trains one shipped set (evil-strong, seed 0, the run's config) now, in a temporary folder, and prints its time
next to the recorded mean - side by side in one run, so a slow recorded time caused by a busy machine shows up as
a gap between the two.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

PER_FINETUNE_S = 600.0
WHOLE_S = 7200.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", default="docs/finetune-shift/smollm2")
    ap.add_argument("--time-one", action="store_true", help="also train one set now and time it")
    args = ap.parse_args(argv)
    run = Path(args.run)
    recs = [json.loads(p.read_text()) for p in sorted(run.glob("*/*/result.json")) if p.parent.parent.name != "base"]
    secs = [float(r["seconds"]) for r in recs if "seconds" in r]
    if not secs:
        raise SystemExit(f"{run}: no finished fine-tunes with recorded times")
    mean, worst = statistics.mean(secs), max(secs)
    print(f"{len(secs)} finished fine-tunes in {run} (each: training + measurement)")
    print(
        f"  mean {mean:.0f} s, max {worst:.0f} s; target <= {PER_FINETUNE_S:.0f} s -> ratio {worst / PER_FINETUNE_S:.2f}"
    )
    cfg = json.loads((run / "config.json").read_text())
    n_planned = len(cfg["sets"]) * len(cfg["seeds"]) + (2 * len(cfg["seeds"]) if cfg.get("preventative_set") else 0)
    total = mean * n_planned
    s = run / "summary.json"
    if s.exists():
        tm = json.loads(s.read_text()).get("timings_s", {})
        extra = float(tm.get("base", 0)) + float(tm.get("data_projection", 0))
        total += extra
        print(f"  base measurement + data projections (this summary's own run): {extra:.0f} s")
    print(f"  whole experiment ({n_planned} fine-tunes at the mean): {total / 60:.0f} min; target <= "
          f"{WHOLE_S / 60:.0f} min -> ratio {total / WHOLE_S:.2f}")  # fmt: skip
    if args.time_one:
        from featurescope.finetune import FinetuneShiftConfig, load_set
        from featurescope.finetune.run import finetune_one, load_hf, load_probes
        from featurescope.judges.choose import get_judge
        from featurescope.posttrain import ensure_chat_template

        c = FinetuneShiftConfig.from_dict(cfg)
        hf, tok = load_hf(c.model, progress=False)
        tok = ensure_chat_template(tok)
        probes = load_probes(c, hf.config.hidden_size, hf.config.num_hidden_layers, c.model)
        train, held = load_set("evil-strong", c.data).split(c.n_heldout, seed=0)
        t = time.time()
        with tempfile.TemporaryDirectory() as d:
            finetune_one(hf, tok, train, held, c, 0, Path(d) / "ft", probes, get_judge(c.judge), None, progress=False)
        now = time.time() - t
        print(f"  one fine-tune now (evil-strong, no axis tracking): {now:.0f} s vs the run's mean {mean:.0f} s "
              f"(ratio {now / mean:.2f}); target ratio {now / PER_FINETUNE_S:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
