#!/usr/bin/env bash
# Issue 17: steering effect per unit norm for each massive-activation handling (SmolLM2, the written evil pairs, the
# layer chosen on them), every vector at 8x the plain vector's norm, 3 sampling seeds, against random directions.
# Resumable (skipped when its summary exists). Run from the repository root.
set -euo pipefail
FS=${FS:-.venv/bin/featurescope}
D=docs/evidence
L=$(python3 -c "
import json; s=json.load(open('$D/persona-evil-smollm2-written/summary.json'))['results']['separation']['held_out']
print(max(range(len(s)), key=lambda i: s[i]['estimate']['lo']))")
OUT=$D/handling-steer-smollm2-evil
if [ -f "$OUT/summary.json" ]; then echo "skip $OUT"; else
  $FS inspect handling --model offline:smollm2-135m-instruct --layers "$L" --steer-layer "$L" --alpha 8 \
    --seeds 0,1,2 --n-questions 8 --out "$OUT"
fi
