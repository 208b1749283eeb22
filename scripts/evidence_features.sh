#!/usr/bin/env bash
# Persona-feature evidence (issue 18) on the shipped SAEs: Assistant / character shared latents (SFT Gemma, layer 9)
# and interpretation scores of the evil decompositions' top latents (Gemma base, layers 2 and 9) against random
# latents of matched density. Each run writes its own folder under docs/features/; ~5 min each on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
FS=.venv/bin/featurescope
[ -f docs/features/shared-gemma-sft-layer9/summary.json ] || \
  $FS features shared --out docs/features/shared-gemma-sft-layer9
for run in evil-gemma-3-270m-layer9:9 evil-written-gemma-3-270m-layer9:9 evil-written-gemma-3-270m-layer2:2; do
  name=${run%%:*}; layer=${run##*:}
  out=docs/features/interpret-$name
  [ -f $out/summary.json ] && continue
  $FS features interpret --model offline:gemma-3-270m --sae featurescope:gemma-3-270m/layer_${layer}_resid_post \
    --decomposition docs/decompositions/$name/summary.json --trait evil --out $out
done
# The Assistant axis of our SFT Gemma (issue 17's re-run) in the SFT layer-9 SAE's features, and whether its top
# latents fire on Assistant speech rather than story characters / general text (assistant-voice measure, no judge).
A=docs/evidence/axis-run-gemma-sft/axis.safetensors
F=docs/features
[ -f $F/axis-decompose-gemma-sft/summary.json ] || $FS axis decompose --model offline:gemma-3-270m-sft --axis $A \
  --sae featurescope:gemma-3-270m-sft/layer_9_resid_post --out $F/axis-decompose-gemma-sft
[ -f $F/interpret-axis-gemma-sft/summary.json ] || $FS features interpret --model offline:gemma-3-270m-sft \
  --sae featurescope:gemma-3-270m-sft/layer_9_resid_post --decomposition $F/axis-decompose-gemma-sft/summary.json \
  --views cosine,attribution --measure assistant-voice --out $F/interpret-axis-gemma-sft
