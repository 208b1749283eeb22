#!/usr/bin/env bash
# Issue 17: do the shipped base SAEs change when outlier-norm tokens are left out of training? The shipped layer-2 /
# layer-9 SAEs' exact settings (their eval.json "retrain" line) with `sae train`'s new default (tokens above 4x the
# batch's median norm at either layer dropped, as BOS and padding are). The weights go to runs/ (git-ignored, the
# sae-lens checkpoints make it resumable); the eval.json files and the summary are copied into docs/evidence/, where
# `python scripts/sae_outlier_table.py` sets them beside the shipped ones. ~40 min on 2 cores.
set -euo pipefail
FS=${FS:-.venv/bin/featurescope}
W=runs/sae-outliers/gemma-3-270m
D=docs/evidence/sae-outliers-gemma-3-270m
if [ -f "$D/summary.json" ]; then echo "skip $D"; exit 0; fi
$FS sae train --model offline:gemma-3-270m --layers 2,9 --training-tokens 1200000 --d-sae 4096 --k 64 --lr 0.0004 \
  --batch-tokens 1024 --dead-window 50 --seed 42 --out "$W"
mkdir -p "$D"
for L in layer_2_resid_post layer_9_resid_post; do mkdir -p "$D/$L"; cp "$W/$L/eval.json" "$W/$L/cfg.json" "$D/$L/"; done
cp "$W/_work/outlier_exclusion.json" "$D/"
cp "$W/summary.json" "$D/summary.json"
