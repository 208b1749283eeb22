#!/usr/bin/env bash
# Model diffing for the feature that moved (issue 19, Wang et al. 2025) on the full SmolLM2 fine-tuning-shift run.
# 1. an SAE on SmolLM2-135M-Instruct at layer 15 (the evil vector's and the Assistant axis' layer), trained with
#    sae-lens' trainer on the shipped corpus (skipped when saes/smollm2-135m-instruct/layer_15_resid_post exists);
# 2. `featurescope finetune-diff` over docs/finetune-shift/smollm2 (needs the run's kept activations and adapters,
#    which are git-ignored: run scripts/evidence_finetune_shift.sh first on this machine).
set -euo pipefail
cd "$(dirname "$0")/.."
SAE=saes/smollm2-135m-instruct/layer_15_resid_post
if [ ! -f "$SAE/cfg.json" ]; then
  .venv/bin/featurescope sae train --model offline:smollm2-135m-instruct --layers 15 --training-tokens 600000 \
    --d-sae 4096 --k 64 --out saes/smollm2-135m-instruct
fi
.venv/bin/featurescope finetune-diff docs/finetune-shift/smollm2 --sae "$SAE" "$@"
