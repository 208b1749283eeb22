#!/usr/bin/env bash
# Issue 17: the stages transfer null over random LoRAs. Seeds 0 and 1 were single runs (docs/evidence/stages-transfer-
# null, -seed1: FVE and CE each); the many-seed run measures FVE on 19 more random LoRAs in one go, reusing the
# texts (rank p < 0.05 becomes possible). Resumable (each step skipped when its summary exists). Run from the
# repository root; the 19-seed step takes ~15 min alone on 2 cores.
set -euo pipefail
FS=${FS:-.venv/bin/featurescope}
D=docs/evidence
ARGS=(--base offline:gemma-3-270m --post offline:gemma-3-270m-sft
  --base-sae saes/gemma-3-270m/layer_9_resid_post --post-sae saes/gemma-3-270m-sft/layer_9_resid_post
  --layer 9 --parts transfer)
OUT=$D/stages-transfer-null-seed1
if [ -f "$OUT/summary.json" ]; then echo "skip $OUT"; else $FS stages "${ARGS[@]}" --random-lora-null --seed 1 --out "$OUT"; fi
OUT=$D/stages-transfer-null-19seeds
if [ -f "$OUT/summary.json" ]; then echo "skip $OUT"; else $FS stages "${ARGS[@]}" --random-lora-seeds 19 --seed 100 --out "$OUT"; fi
