"""Issue 17: the stages transfer null over random-LoRA seeds. The base SAE's FVE on the post-trained model (our SFT
Gemma) against the same SAE on the base model plus a random LoRA with the SFT adapter's per-module ||dW||, one run per
seed (`bash scripts/evidence_lora_seeds.sh`; seed 0 is docs/evidence/stages-transfer-null). Prints the Markdown rows
of benchmarks/RESULTS.md from the committed summaries."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

D = Path("docs/evidence")
runs = [D / "stages-transfer-null"] + sorted(D.glob("stages-transfer-null-seed[0-9]*"))
rows = []
for r in runs:
    s = json.loads((r / "summary.json").read_text())
    t = s["results"]["transfer"]
    rows.append((r.name, t["base_sae"]["base_model"], t["base_sae"]["post_model"], t["random_lora_null"]))
print(f"{len(rows)} random-LoRA seeds: {', '.join(n for n, *_ in rows)}")
print("| text | base SAE on base | on our SFT | on base + random LoRA (per seed) | null range | verdict |")
print("|---|---|---|---|---|---|")
for kind in ("plain", "chat"):
    own = rows[0][1][kind]["fraction_variance_explained"]
    post = rows[0][2][kind]["fraction_variance_explained"]
    nulls = np.array([x[3][kind]["fraction_variance_explained"] for x in rows])
    lo, hi = float(nulls.min()), float(nulls.max())
    n = len(nulls)
    p = (1 + int((nulls <= post).sum())) / (n + 1)  # rank p of a lower FVE than the random LoRAs'
    verdict = (
        f"distinguishable from the null (p = {p:.2f})"
        if p < 0.05
        else f"not distinguishable from the null (rank p = {p:.2f} with {n} seeds; "
        f"{'below every seed' if post < lo else 'inside the seeds'}; p < 0.05 needs >= 19 seeds)"
    )
    print(
        f"| {kind} | {own:.3f} | {post:.3f} | {', '.join(f'{x:.3f}' for x in nulls)} | [{lo:.3f}, {hi:.3f}] | "
        f"{verdict} |"
    )

many = D / "stages-transfer-null-19seeds" / "summary.json"
if many.exists():
    t = json.loads(many.read_text())["results"]["transfer"]
    nl = t["random_lora_nulls"]
    print(f"\none run, {len(nl['seeds'])} random LoRAs (FVE only, the run's own texts):")
    print("| text | base SAE on base | on our SFT | random LoRAs: mean [central 95%] | rank p | verdict |")
    print("|---|---|---|---|---|---|")
    for kind, ev in nl["evidence"].items():
        own = t["base_sae"]["base_model"][kind]["fraction_variance_explained"]
        n = ev["null"]
        print(
            f"| {kind} | {own:.3f} | {ev['estimate']['value']:.3f} | {n['mean']:.3f} [{n['lo']:.3f}, {n['hi']:.3f}] | "
            f"{ev['p_lower']:.3f} | {ev['verdict']} |"
        )
