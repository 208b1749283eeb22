"""Issue 17: how many SAE training tokens the outlier-norm rule leaves out (`sae train --outlier-k 4`, the default
now): the shipped Gemma base SAEs' training corpus rows (same seed and context as their retrain line), BOS and
padding dropped as sae-lens does, then tokens above 4x the batch's median norm at layer 2 or 9. Writes
docs/evidence/sae-outliers-gemma-3-270m/outlier_count.json. Usage: python scripts/sae_outlier_count.py [--rows 96]"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import featurescope as fs
from featurescope import corpus
from featurescope.evidence.massive import OUTLIER_K, outlier_tokens
from featurescope.saes import non_special_mask

OUT = Path("docs/evidence/sae-outliers-gemma-3-270m/outlier_count.json")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=96, help="corpus rows of 128 tokens (16 per store batch)")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    m = fs.load_model("offline:gemma-3-270m", progress=False)
    rows = corpus.sequences(m.tokenizer, "train", context_size=128, max_sequences=args.rows, seed=42)
    hooks = ["blocks.2.hook_resid_post", "blocks.9.hook_resid_post"]
    total = dropped = 0
    per = dict.fromkeys(hooks, 0)
    for i in range(0, len(rows), 16):
        b = rows[i : i + 16]
        _, cache = m.tl.run_with_cache(b, names_filter=hooks, stop_at_layer=10)
        keep = non_special_mask(m.tokenizer, b).flatten()
        d = torch.zeros(int(keep.sum()), dtype=torch.bool)
        for h in hooks:
            o = outlier_tokens(cache[h].reshape(-1, cache[h].shape[-1])[keep], OUTLIER_K)
            per[h] += int(o.sum())
            d |= o
        total += len(d)
        dropped += int(d.sum())
    res = {
        "outlier_k": OUTLIER_K,
        "non_special_tokens": total,
        "dropped": dropped,
        "fraction": dropped / total,
        "per_hook": per,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
