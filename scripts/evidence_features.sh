#!/usr/bin/env bash
# Persona-feature evidence (issue 18) on the shipped SAEs: Assistant / character shared latents (SFT Gemma, layer 9)
# and interpretation scores of the evil decompositions' top latents (Gemma base, layers 2 and 9) against random
# latents of matched density, and latent steering against the same. Each run writes its own folder under docs/features/;
# ~5 min (shared) to ~25-30 min (each interpret or steer run) on 2 CPU cores; a finished run is skipped.
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
# Latent steering on Gemma base's layer-9 SAE (evil judge, the trait's 8 first evaluation questions, 3 sampling seeds,
# each latent against 4 density-matched random latents given the same edit; ~25-30 min per run on 2 cores).
# (a) the evil-written vector's top latents by cosine / sparse attribution (selected on the vector's extraction
#     questions), added at norm 1500 along their unit decoder rows, and clamped to 3000 keeping the SAE error;
# (b) the two latents with the highest interpretation z of interpret-evil-gemma-3-270m-layer9 (selected on held-out
#     texts), added at the same norm. Measured on the evaluation questions: another split than either selection.
SAE9=featurescope:gemma-3-270m/layer_9_resid_post
S=$F/steer-evil-gemma-3-270m-layer9
[ -f $S-add/steering.json ] || $FS features steer --model offline:gemma-3-270m --sae $SAE9 --latents 3753,3707 \
  --trait evil --mode add --alpha 1500 --out $S-add
[ -f $S-clamp/steering.json ] || $FS features steer --model offline:gemma-3-270m --sae $SAE9 --latents 3753,3707 \
  --trait evil --mode clamp --value 3000 --out $S-clamp
TOP=$(.venv/bin/python -c "
import json; L = json.load(open('$F/interpret-evil-gemma-3-270m-layer9/summary.json'))['results']['latents']
print(','.join(sorted(L, key=lambda j: -L[j]['z_density_matched'])[:2]))")
S2=$F/steer-evil-interpreted-gemma-3-270m-layer9-add
[ -f $S2/steering.json ] || $FS features steer --model offline:gemma-3-270m --sae $SAE9 --latents "$TOP" \
  --trait evil --mode add --alpha 1500 --out $S2
# (c) the 1,500-norm edits break Gemma's text (read the examples: "shouldn shouldn ...", symbol soup), so latent 1196
#     (the highest interpretation z) again at norms 500 and 250, with the judge's coherence kept (200 density texts).
for a in 500 250; do
  S3=$F/steer-evil-1196-gemma-3-270m-layer9-add$a
  [ -f $S3/steering.json ] || $FS features steer --model offline:gemma-3-270m --sae $SAE9 --latents 1196 \
    --trait evil --mode add --alpha $a --density-texts 200 --out $S3
done
