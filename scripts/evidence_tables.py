"""Print RESULTS' evidence tables (issue 17) from the committed summaries under docs/evidence/ and the shipped
vector: every number here is read from a file a shipped command wrote (``scripts/evidence_runs.sh``).

    python scripts/evidence_tables.py > /tmp/evidence.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
EV = ROOT / "docs" / "evidence"


def load(p: Path) -> dict[str, Any] | None:
    return json.loads(p.read_text()) if p.exists() else None


def ci(e: dict[str, Any], f: str = ".2f") -> str:
    return f"{e['value']:{f}} [{e['lo']:{f}}, {e['hi']:{f}}]"


def null(n: dict[str, Any], f: str = ".2f") -> str:
    return f"{n['mean']:{f}} [{n['lo']:{f}}, {n['hi']:{f}}]"


def ev_cells(ev: dict[str, Any], f: str = ".2f") -> str:
    return f"{ci(ev['estimate'], f)} | {null(ev['null'], f)} ({ev['null']['what']}) | {ev['verdict']}"


def massive() -> None:
    print("### Massive activations per layer (`featurescope inspect massive`)\n")
    for name in ("gemma-3-270m", "smollm2"):
        s = load(EV / f"massive-{name}" / "summary.json")
        if not s:
            continue
        print(
            f"**{s['inputs']['model']['name']}** ({s['inputs']['n_texts']} texts; dims ≥ {s['inputs']['dim_ratio']:.0f}x the median dimension are massive):\n"
        )
        print(
            "| layer | median token norm | BOS norm / median | outlier tokens (> 4x median) | massive dims | top dims (ratio) | mean's share of E‖x‖² |"
        )
        print("|---:|---:|---:|---:|---|---|---:|")
        for r in s["results"]["layers"]:
            L = r["hook"].split(".")[1]
            bos = f"{r['bos_norm_ratio']:.1f}" if r["bos_norm_ratio"] is not None else "-"
            top = ", ".join(f"{d} ({x:.0f}x)" for d, x in r["top_dims"][:3])
            print(
                f"| {L} | {r['median_norm']:.0f} | {bos} | {r['outlier_fraction']:.3f} | {r['massive_dims'] or '-'} | {top} | "
                f"{r['mean_share_of_energy']:.0%} |"
            )
        print()


def handling() -> None:
    print("### Handlings compared: held-out Cohen's d of the evil vector on the written pairs (`inspect handling`)\n")
    print("Vector built on half of the 75 questions, d measured on the other half (20 splits); interval: questions")
    print(
        "bootstrapped; null: pos/neg labels shuffled. Share: fraction of ‖v‖² on the mean direction / massive dims.\n"
    )
    for name in ("gemma-3-270m-evil", "smollm2-evil"):
        s = load(EV / f"handling-{name}" / "summary.json")
        if not s:
            continue
        hooks = list(s["results"]["per_hook"])
        print(f"**{s['inputs']['model']['name']}**\n")
        print("| handling | " + " | ".join(f"layer {h.split('.')[1]}" for h in hooks) + " |")
        print("|---|" + "---|" * len(hooks))
        rows = s["results"]["per_hook"][hooks[0]]["rows"]
        for hd in rows:
            cells = []
            for h in hooks:
                r = s["results"]["per_hook"][h]["rows"][hd]
                cells.append(
                    f"{ci(r['held_out_d']['estimate'])}; mean {r['share_on_mean']:.2f}, massive {r['share_on_massive']:.2f}"
                )
            print(f"| {hd} | " + " | ".join(cells) + " |")
        nulls = [s["results"]["per_hook"][h]["rows"]["none"]["held_out_d"]["null"] for h in hooks]
        print("| *null (shuffled labels)* | " + " | ".join(null(n) for n in nulls) + " |")
        print(
            "| *chosen (largest lower bound)* | "
            + " | ".join(s["results"]["per_hook"][h]["chosen"] for h in hooks)
            + " |"
        )
        print()


def headline() -> None:
    print("### Headline numbers with interval, null and verdict\n")
    print("| measurement | paper | ours [95% CI] | null [95% interval] | verdict | file |")
    print("|---|---|---|---|---|---|")
    v = load(ROOT / "featurescope/data/vectors/gemma-3-270m/evil/summary.json")
    if v:
        r = v["results"]
        for L in (2, 9, r["best_separation_layer"]):
            print(
                f"| Gemma base evil vector (shipped, {r['counts']['kept_pos']}/{r['counts']['kept_neg']} kept), held-out d, layer {L} | — | "
                f"{ev_cells(r['separation']['held_out'][L])} | `featurescope/data/vectors/gemma-3-270m/evil/` |"
            )
            print(
                f"| … re-read without the system prompt, layer {L} | — | {ev_cells(r['reread']['separation']['held_out'][L])} | same |"
            )
    w = load(EV / "persona-evil-smollm2-written" / "summary.json")
    if w:
        r = w["results"]
        held = r["separation"]["held_out"]
        L = max(range(len(held)), key=lambda i: held[i]["estimate"]["lo"])
        print(
            f"| SmolLM2 evil vector from the written pairs, held-out d, layer {L} (chosen here) | — | {ev_cells(held[L])} | `docs/evidence/persona-evil-smollm2-written/` |"
        )
    m = load(EV / "monitor-evil-smollm2" / "summary.json")
    if m:
        r = m["results"]
        print(
            f"| SmolLM2 monitoring r, last-prompt projection vs judged trait (n = {r['n']}, layer {m['inputs']['layer']}) | 0.75–0.83 | "
            f"{ev_cells(r['r_samples_evidence'])} | `docs/evidence/monitor-evil-smollm2/` (items) |"
        )
    if m:
        from featurescope.evidence.nulls import correlation_evidence

        items = m["results"]["items"]
        lv = correlation_evidence([i["projection"] for i in items], [i["level"] for i in items], name="level")
        print(
            f"| … projection vs the graded prompt's level (0 = suppressing, 9 = eliciting), same items | — | "
            f"{ev_cells(lv.to_dict())} | recomputed from the items |"
        )
    for name, label in (("flag-evil-smollm2", "SmolLM2"), ("flag-evil-gemma-3-270m", "Gemma base")):
        f = load(EV / name / "summary.json")
        if f and "auroc_evidence" in f["results"]:
            print(
                f"| {label} flagging AUROC, evil-laden vs neutral rows (layer {f['inputs']['layer']}) | laden data ranks first | "
                f"{ev_cells(f['results']['auroc_evidence'])} | `docs/evidence/{name}/` (per_sample) |"
            )
    for name, label in (
        ("axis-axis-gemma-sft", "SFT Gemma, 40 roles"),
        ("axis-axis-gemma-sft-probejudge", "SFT Gemma, 40 roles, probe-judge filter"),
        ("axis-axis-smollm2", "SmolLM2, 40 roles"),
    ):
        a = load(EV / name / "summary.json")
        if not a:
            continue
        an = a["results"]["analysis"]
        e = an["evidence"]
        print(
            f"| cos(axis, PC1), {label}, {an['hook']} | > 0.71 | {ev_cells(e['axis_pc1'])} | `docs/evidence/{name}/` |"
        )
        nm = e.get("axis_pc1_without_massive")
        if nm and nm.get("massive_dims"):
            print(
                f"| … without massive dims {nm['massive_dims']} (axis share on them {an['axis_share_on_massive']:.2f}) | — | {ev_cells(nm)} | same |"
            )
    sh = load(EV / "axis-axis-gemma-sft" / "summary.json")
    if sh:
        half = sh["results"]["analysis"]["evidence"]["split_half_pc_cosines"]
        for name, label in (
            ("axis-compare", "base writes its own transcripts"),
            ("axis-compare-readsft", "base reads the SFT's answers"),
        ):
            c = load(ROOT / "docs/axis" / name / "summary.json")
            if c:
                pcs = ", ".join(f"{x:.2f}" for x in c["results"]["compare"]["middle"]["pc_cosines"])
                hm = ", ".join(f"{x:.2f}" for x in half["mean"])
                hl = ", ".join(f"{x:.2f}" for x in half["lo"])
                beats = [x > lo for x, lo in zip(c["results"]["compare"]["middle"]["pc_cosines"], half["lo"])]
                print(
                    f"| top-3 PC cosines base vs SFT Gemma ({label}), layer 9 | 0.93, 0.87, 0.83 | {pcs} | {hm} (2.5%: {hl}) "
                    f"(two random halves of the SFT's roles) | as consistent as two halves of one model for PCs "
                    f"{[i + 1 for i, b in enumerate(beats) if b] or 'none'} (above the split-half 2.5% bound) | `docs/axis/{name}/` |"
                )
    si = load(EV / "stages-transfer-interval" / "summary.json")
    if si:
        tr = si["results"]["transfer"]
        for set_k in ("plain", "chat"):
            own = tr["base_sae"]["base_model"][set_k]["fve_interval"]
            ev = tr["random_lora_nulls"]["evidence"][set_k]
            d = tr["fve_post_minus_base"]["base_sae"][set_k]
            print(
                f"| base SAE FVE on the SFT model's activations ({set_k} texts), layer 9; own model {ci(own, '.3f')}; "
                f"interval over text rows | transfers (Kissane et al.) | {ci(ev['estimate'], '.3f')} | {null(ev['null'], '.3f')} "
                f"({len(tr['random_lora_nulls']['seeds'])} random LoRAs of the adapter's per-module weight change; rank p "
                f"{ev['p_lower']:.2f}) | {ev['verdict']} | `docs/evidence/stages-transfer-interval/` |"
            )
            print(
                f"| … post-trained minus base model, same {set_k} text rows (paired) | — | {ci(d['estimate'], '+.4f')} | 0 | "
                f"{d['verdict']} | `transfer_rows.jsonl` there |"
            )
    st = None if si else load(EV / "stages-transfer-null" / "summary.json")
    if st and "random_lora_null" in st["results"].get("transfer", {}):
        tr = st["results"]["transfer"]
        for set_k in ("plain", "chat"):
            own = tr["base_sae"]["base_model"][set_k]["fraction_variance_explained"]
            post = tr["base_sae"]["post_model"][set_k]["fraction_variance_explained"]
            rnd = tr["random_lora_null"][set_k]["fraction_variance_explained"]
            print(
                f"| base SAE FVE on the SFT model's activations ({set_k} texts), layer 9; own model {own:.3f} | "
                f"transfers (Kissane et al.) | {post:.3f} | {rnd:.3f} (base + a random LoRA of the same per-module "
                f"weight change) | {'post-training lowers FVE more than a random change (one random seed, no interval)' if post < rnd else 'no larger change than a random LoRA'} | "
                "`docs/evidence/stages-transfer-null/` |"
            )
    for name, what in (
        ("evil-gemma-3-270m", "the shipped evil vector (21 / 20 kept answers)"),
        ("evil-written-gemma-3-270m", "the evil vector from the 75 written pairs"),
    ):
        for L in (2, 9):
            folder = f"docs/evidence/decomposition-interval-{name}-layer{L}"
            d = load(ROOT / folder / "summary.json")
            if not d or "fraction_explained_interval" not in d["results"]:
                continue
            iv = d["results"]["fraction_explained_interval"]
            for k, row in d["results"]["evidence"]["fraction_explained_null"]["per_k"].items():
                nulls = "; ".join(f"{null(row[n])} (random directions, {n})" for n in ("isotropic", "massive-matched") if n in row)
                print(
                    f"| fraction of {what} explained by its top {k} SAE features (cosine), layer {L}; interval over "
                    f"{iv['per_k'][k]['n']} questions | — | {ci(iv['per_k'][k])} | {nulls} | {iv['verdicts'][k]} | `{folder}/` |"
                )
    for name in ("sae-eval-gemma-3-270m-layer2", "sae-eval-gemma-3-270m-layer9", "sae-eval-gemma-3-270m-sft-layer9"):
        s = load(EV / name / "summary.json")
        if s:
            r = s["results"]
            print(
                f"| CE recovered, {name[9:]}: vs zero ablation / vs mean ablation; CE increase | — | {r['ce_loss_recovered']:.3f} / "
                f"{r['ce_loss_recovered_vs_mean']:.3f}; +{r['ce_increase_nats']:.3f} nats | zero-ablation CE {r['ce_zero_ablation']:.2f}, "
                f"mean-ablation CE {r['ce_mean_ablation']:.2f}, clean {r['ce_clean']:.2f} | — | `docs/evidence/{name}/` |"
            )
    print()


if __name__ == "__main__":
    massive()
    handling()
    headline()
