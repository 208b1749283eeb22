#!/usr/bin/env bash
# The full fine-tuning-shift experiment on SmolLM2-135M-Instruct (issue 19): 3 traits, the 10 shipped sets x 2 seeds,
# preventative steering on hallucination-strong, the Assistant axis tracked. Resumable: run it again to continue
# (finished fine-tunes are kept); `--summarise-only` writes the summary of what has finished so far.
# Vectors: evil and hallucination from written pairs (`persona extract --written`; SmolLM2 writes evil answers 4
# times in 125, and the judge scores all its answers to made-up-topic questions as hallucinating, so judge-filtered
# generated answers leave 4 positives / 0 negatives), sycophancy from `persona extract` (judge-filtered generated
# answers, 32 / 94 kept); each at the layer with the best held-out Cohen's d of its extraction (held-out extraction
# questions, not the evaluation questions the shift is measured on).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=docs/finetune-shift/smollm2
V=docs/finetune-shift/vectors-smollm2
.venv/bin/featurescope finetune-shift \
  --vector evil=docs/evidence/persona-evil-smollm2-written/evil.response_mean.safetensors@15 \
  --vector sycophancy=$V/sycophancy/sycophancy.response_mean.safetensors@23 \
  --vector hallucination=$V/hallucination-written/hallucination.response_mean.safetensors@19 \
  --axis docs/evidence/axis-run-smollm2/axis.safetensors@15 \
  --preventative hallucination-strong \
  --out $OUT "$@"
