#!/usr/bin/env bash
# Issue 17's end-to-end re-runs with the evidence defaults: sampled answers with 3 seeds (steering, its random-vector
# controls, monitoring), 5 sampled conversations per drift script, prefills sampled 3 times, the validated judges.
# Each step is skipped when its summary exists, so the script resumes after an interruption. CPU only; run from the
# repository root, one step at a time.
set -euo pipefail
FS=${FS:-.venv/bin/featurescope}
D=docs/evidence
step() { local out=$1; shift; if [ -f "$out/summary.json" ]; then echo "skip $out"; else echo "== $out $(date -u +%H:%M)"; "$@"; fi; }

# Assistant axis on SmolLM2-135M-Instruct (40 roles x 5 questions, like docs/axis/axis-smollm2), validated role judge
step $D/axis-run-smollm2 $FS axis run --model offline:smollm2-135m-instruct --n-roles 40 --n-questions 5 \
  --max-new-tokens 32 --out $D/axis-run-smollm2
# Chen et al.'s loop on SmolLM2 with the validated probe judge (like docs/persona/evil-smollm2-probejudge)
step $D/persona-run-evil-smollm2 $FS persona run --model offline:smollm2-135m-instruct --trait evil \
  --out $D/persona-run-evil-smollm2
# Assistant axis on our SFT Gemma (like docs/axis/axis-gemma-sft)
step $D/axis-run-gemma-sft $FS axis run --model offline:gemma-3-270m-sft --n-roles 40 --n-questions 5 \
  --max-new-tokens 32 --out $D/axis-run-gemma-sft
