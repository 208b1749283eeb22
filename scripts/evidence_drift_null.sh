#!/usr/bin/env bash
# Issue 17: drift with its null. The same multi-turn scripts as the headline axis runs (5 sampled conversations per
# script, uncapped and capped), each script's change (last minus first turn) set against 20 random directions of the
# axis' share on the massive dimensions, read on the same conversations. Resumable (a step is skipped when its
# summary exists). Run from the repository root; SmolLM2 ~17 min, Gemma SFT ~40 min on 2 cores.
set -euo pipefail
FS=${FS:-.venv/bin/featurescope}
D=docs/evidence
step() { local out=$1; shift; if [ -f "$out/summary.json" ]; then echo "skip $out"; else echo "== $out $(date -u +%H:%M)"; "$@"; fi; }

step $D/drift-null-smollm2 $FS axis cap --model offline:smollm2-135m-instruct \
  --axis $D/axis-run-smollm2/axis.safetensors --conversations 5 --max-new-tokens 32 --out $D/drift-null-smollm2
if [ "${GEMMA:-1}" = 1 ]; then
  step $D/drift-null-gemma-sft $FS axis cap --model offline:gemma-3-270m-sft \
    --axis $D/axis-run-gemma-sft/axis.safetensors --conversations 5 --max-new-tokens 32 --out $D/drift-null-gemma-sft
fi
