#!/usr/bin/env bash
# Issue 17: the stages transfer null with more random-LoRA seeds (seed 0 is docs/evidence/stages-transfer-null).
# Resumable (each step skipped when its summary exists). Run from the repository root.
set -euo pipefail
FS=${FS:-.venv/bin/featurescope}
D=docs/evidence
for s in 1 2; do
  OUT=$D/stages-transfer-null-seed$s
  if [ -f "$OUT/summary.json" ]; then echo "skip $OUT"; continue; fi
  $FS stages --base offline:gemma-3-270m --post offline:gemma-3-270m-sft \
    --base-sae saes/gemma-3-270m/layer_9_resid_post --post-sae saes/gemma-3-270m-sft/layer_9_resid_post \
    --layer 9 --parts transfer --random-lora-null --seed $s --out "$OUT"
done
