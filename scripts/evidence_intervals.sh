#!/usr/bin/env bash
# Issue 17: intervals for the decomposition headline (fraction of the evil vector explained by its top SAE features):
# each vector rebuilt on the model from its questions resampled with replacement (its own massive-activation
# handling; cosine 1.000 with the saved vector at full sample), against random directions. ~1 min per step on 2
# cores. Resumable (a step is skipped when its summary exists). Run from the repository root.
set -euo pipefail
FS=${FS:-.venv/bin/featurescope}
D=docs/evidence
V=featurescope/data/vectors/gemma-3-270m/evil
for L in 2 9; do
  out=$D/decomposition-interval-evil-gemma-3-270m-layer$L
  [ -f $out/summary.json ] || $FS inspect decomposition --vector $V/evil.response_mean.safetensors \
    --sae featurescope:gemma-3-270m/layer_${L}_resid_post --responses $V/responses.jsonl --model offline:gemma-3-270m \
    --out $out
  out=$D/decomposition-interval-evil-written-gemma-3-270m-layer$L
  [ -f $out/summary.json ] || $FS inspect decomposition \
    --vector docs/decompositions/evil-written-vector/evil.response_mean.safetensors \
    --sae featurescope:gemma-3-270m/layer_${L}_resid_post --responses featurescope/data/traits/evil.written.jsonl \
    --model offline:gemma-3-270m --out $out
done
