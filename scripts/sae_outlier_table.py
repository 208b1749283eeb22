"""Issue 17: the shipped Gemma base SAEs (layers 2, 9) beside the same recipe trained without outlier-norm tokens
(`bash scripts/evidence_sae_outliers.sh`). Paired on the same held-out rows (the `sae eval` runs in docs/evidence/ and
the retrained SAEs' own eval.json): FVE, CE recovered against zero and mean ablation, CE increase, L0, dead latents;
then what the weights say (retrained weights under runs/, if present): the decoder bias' share on the massive dims,
the mean-tracking latents, and the shipped evil vector's fraction explained by its top-20 / 100 latents against
random directions (isotropic and massive-matched). Writes docs/evidence/sae-outliers-gemma-3-270m/compare.json and
prints a Markdown table. Usage: python scripts/sae_outlier_table.py [--weights runs/sae-outliers/gemma-3-270m]"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from featurescope.evidence.decomposition import decomposition_evidence
from featurescope.evidence.massive import massive_dims_of, share_on_dims
from featurescope.persona import PersonaVector
from featurescope.saes import load_sae

D = Path("docs/evidence/sae-outliers-gemma-3-270m")
KEYS = (
    "fraction_variance_explained",
    "ce_loss_recovered",
    "ce_loss_recovered_vs_mean",
    "ce_increase_nats",
    "l0",
    "dead_fraction",
)


def weights_view(sae_dir: Path, layer: int) -> dict:
    sae = load_sae(sae_dir)
    b = sae.b_dec.detach().float()
    dims = massive_dims_of(b)
    v = PersonaVector.load("featurescope/data/vectors/gemma-3-270m/evil/evil.response_mean.safetensors").at(layer).float()
    ev = decomposition_evidence(v, sae)
    fe = ev["fraction_explained_null"]["per_k"]
    return {
        "bias_massive_dims": dims,
        "bias_share_on_massive": share_on_dims(b, dims),
        "mean_tracking_latents": len(ev["decoder_bias"]["mean_tracking_latents"]),
        "evil_fraction_explained": {
            k: {
                "value": r["value"],
                "null_isotropic_hi": r["isotropic"]["hi"],
                "null_massive_hi": r.get("massive-matched", {}).get("hi"),
                "verdict": r["verdict"],
            }
            for k, r in fe.items()
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default="runs/sae-outliers/gemma-3-270m", help="retrained SAE folders (git-ignored)")
    args = ap.parse_args()
    out: dict = {"outlier_exclusion": json.loads((D / "outlier_exclusion.json").read_text()), "layers": {}}
    rows = []
    for L in (2, 9):
        name = f"layer_{L}_resid_post"
        shipped = json.loads(Path(f"docs/evidence/sae-eval-gemma-3-270m-layer{L}/summary.json").read_text())["results"]
        new = json.loads((D / name / "eval.json").read_text())
        entry = {"shipped": {k: shipped.get(k) for k in KEYS}, "no_outliers": {k: new.get(k) for k in KEYS}}
        entry["heldout_tokens"] = {"shipped": shipped.get("n_tokens"), "no_outliers": new.get("n_tokens")}
        w = Path(args.weights) / name
        if w.exists():
            entry["weights"] = {
                "shipped": weights_view(Path("saes/gemma-3-270m") / name, L),
                "no_outliers": weights_view(w, L),
            }
        out["layers"][name] = entry
        for k in KEYS:
            a, b = entry["shipped"][k], entry["no_outliers"][k]
            rows.append(
                f"| {L} | {k} | {a:.3f} | {b:.3f} |"
                if a is not None and b is not None
                else f"| {L} | {k} | {a} | {b} |"
            )
        if "weights" in entry:
            for lab, f in (
                (
                    "decoder-bias share on massive dims",
                    lambda x: f"{x['bias_share_on_massive']:.2f} {x['bias_massive_dims']}",
                ),
                ("mean-tracking latents", lambda x: str(x["mean_tracking_latents"])),
                (
                    "evil vector, top-20 fraction explained (massive-matched null hi)",
                    lambda x: (
                        f"{x['evil_fraction_explained']['20']['value']:.2f} ({x['evil_fraction_explained']['20']['null_massive_hi'] or float('nan'):.2f})"
                    ),
                ),
                (
                    "evil vector, top-100 fraction explained (massive-matched null hi)",
                    lambda x: (
                        f"{x['evil_fraction_explained']['100']['value']:.2f} ({x['evil_fraction_explained']['100']['null_massive_hi'] or float('nan'):.2f})"
                    ),
                ),
            ):
                rows.append(
                    f"| {L} | {lab} | {f(entry['weights']['shipped'])} | {f(entry['weights']['no_outliers'])} |"
                )
    (D / "compare.json").write_text(json.dumps(out, indent=1) + "\n")
    ex = out["outlier_exclusion"]
    print(
        f"training tokens left out as outliers (> {ex['outlier_k']}x batch median norm): {ex['excluded']:,} of {ex['seen']:,}"
    )
    print("| layer | measure | shipped | without outlier tokens |\n|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
