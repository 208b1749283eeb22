#!/usr/bin/env bash
# The evidence runs behind RESULTS' "Evidence" section (issue 17): each step is skipped when its summary exists, so
# the script resumes after an interruption. CPU only; one step at a time. Run from the repository root.
set -euo pipefail
FS=${FS:-.venv/bin/featurescope}
D=docs/evidence
step() { local out=$1; shift; if [ -f "$out/summary.json" ]; then echo "skip $out"; else echo "== $out"; "$@"; fi; }

# massive activations and the handlings compared, both offline models
step $D/massive-gemma-3-270m $FS inspect massive --model offline:gemma-3-270m --out $D/massive-gemma-3-270m
step $D/massive-smollm2 $FS inspect massive --model offline:smollm2-135m-instruct --out $D/massive-smollm2
step $D/handling-gemma-3-270m-evil $FS inspect handling --model offline:gemma-3-270m --layers 2,6,9,12 --out $D/handling-gemma-3-270m-evil
step $D/handling-smollm2-evil $FS inspect handling --model offline:smollm2-135m-instruct --layers 5,10,15,20 --out $D/handling-smollm2-evil

# SmolLM2: a vector from the written evil pairs (layer chosen there), then monitoring and flagging measured on
# other data (the graded monitor prompts x eval questions; the flagging file)
step $D/persona-evil-smollm2-written $FS persona extract --model offline:smollm2-135m-instruct --trait evil \
  --written featurescope/data/traits/evil.written.jsonl --out $D/persona-evil-smollm2-written
L=$(python3 -c "
import json; s=json.load(open('$D/persona-evil-smollm2-written/summary.json'))['results']['separation']['held_out']
print(max(range(len(s)), key=lambda i: s[i]['estimate']['lo']))")
echo "layer chosen on the written pairs (largest lower bound of held-out d): $L"
V=$D/persona-evil-smollm2-written/evil.response_mean.safetensors
step $D/monitor-evil-smollm2 $FS persona monitor --model offline:smollm2-135m-instruct --vector $V --layer "$L" \
  --n-questions 5 --out $D/monitor-evil-smollm2
step $D/flag-evil-smollm2 $FS persona flag --model offline:smollm2-135m-instruct --vector $V --layer "$L" \
  --dataset featurescope/data/flagging/demo.jsonl --out $D/flag-evil-smollm2

# Gemma 3 270M base: the shipped (rebuilt) vector, flagging at its best held-out layer
VG=featurescope/data/vectors/gemma-3-270m/evil/evil.response_mean.safetensors
LG=$(python3 -c "
import json; s=json.load(open('featurescope/data/vectors/gemma-3-270m/evil/summary.json'))['results']['separation']['held_out']
print(max(range(len(s)), key=lambda i: s[i]['estimate']['lo']))")
step $D/flag-evil-gemma-3-270m $FS persona flag --model offline:gemma-3-270m --vector $VG --layer "$LG" \
  --dataset featurescope/data/flagging/demo.jsonl --out $D/flag-evil-gemma-3-270m

# Stages: the transfer null (base SAE on base + a random LoRA with the SFT adapter's per-module weight change)
step $D/stages-transfer-null $FS stages --base offline:gemma-3-270m --post offline:gemma-3-270m-sft \
  --base-sae saes/gemma-3-270m/layer_9_resid_post --post-sae saes/gemma-3-270m-sft/layer_9_resid_post \
  --layer 9 --parts transfer --random-lora-null --out $D/stages-transfer-null
