"""Print RESULTS' "Re-runs with sampled seeds" tables from the committed summaries (issue 17): every number is
read from docs/evidence/*/summary.json, so anyone can recompute them.

    python scripts/rerun_tables.py
"""

from __future__ import annotations

import json
from pathlib import Path

D = Path("docs/evidence")


def load(name: str) -> dict | None:
    p = D / name / "summary.json"
    return json.loads(p.read_text()) if p.exists() else None


def ci(e: dict, f: str = ".2f") -> str:
    v = e.get("value", e.get("mean"))
    if v is None or e.get("lo") is None:
        return "n/a"
    return f"{v:{f}} [{e['lo']:{f}}, {e['hi']:{f}}]"


def row(what: str, paper: str, ev: dict, f: str = ".2f") -> str:
    return f"| {what} | {paper} | {ci(ev['estimate'], f)} | {ev['null'].get('what', '')}: {ci(ev['null'], f)} | {ev['verdict']} |"


def axis_rows(name: str, label: str) -> list[str]:
    s = load(name)
    if s is None:
        return [f"| {label}: not run yet | | | | |"]
    r = s["results"]
    ev = r["analysis"]["evidence"]
    out = [row(f"{label}: cos(axis, PC1)", "> 0.71", ev["axis_pc1"])]
    nm = ev.get("axis_pc1_without_massive")
    if nm and nm.get("massive_dims"):
        out.append(row(f"{label}: cos(axis, PC1) without massive dims {nm['massive_dims']}", "-", nm))
    st = r["steering"]
    out.append(row(f"{label}: steering, AI identity at alpha {st['control']['alpha']:+g} minus 0 ({len(st['seeds'])} seeds)",
                   "steering away lowers it", st["control"]["evidence"]))
    null_run = load(name.replace("axis-run-", "drift-null-"))
    if null_run is not None:  # the drift re-run with its random-direction null (same scripts, 5 conversations)
        nd = null_run["results"]["drift"]
        for k in ("uncapped", "capped"):
            for script, ev in (nd.get(k) or {}).get("change_null", {}).items():
                paper = "stable" if script == "coding_help" else "drifts away" if script in (
                    "emotional_support", "model_nature_philosophy") else "-"
                if k == "capped":
                    paper = "capping holds it"
                what = f"{label}: drift {k}, {script}, last minus first turn ({nd[k]['n_conversations']} conversations)"
                out.append(row(what, paper, ev, "+.1f"))
        return out
    dr = r.get("drift") or {}
    for k in ("uncapped", "capped"):
        ce = (dr.get(k) or {}).get("change_evidence") or {}
        if ce:
            parts = ", ".join(f"{n} {ci(e, '+.1f')}" for n, e in ce.items())
            out.append(f"| {label}: drift {k}, last minus first turn per script ({dr[k]['n_conversations']} conversations) | drifts away in emotional / philosophical talk; capping holds it | {parts} | - | - |")
    return out


def main() -> None:
    print("| figure | paper | ours [95% CI] | null [95% CI] | verdict |\n|---|---|---|---|---|")
    for name, label in (("axis-run-smollm2", "SmolLM2-135M-Instruct"), ("axis-run-gemma-sft", "our SFT Gemma 3 270M")):
        print("\n".join(axis_rows(name, label)))
    s = load("persona-run-evil-smollm2")
    if s is not None:
        r = s["results"]
        c = r["counts"]
        L = r["chosen_layer"]
        st = r["steering"]
        print(row(f"SmolLM2 evil: steering at layer {L}, trait score at alpha +12 minus 0 ({len(st['seeds'])} seeds; "
                  f"kept {c['kept_pos']} / {c['kept_neg']} of {c['generated_per_side']})", "rises with alpha",
                  st["control"]["evidence"], ".1f"))
        print(row("SmolLM2 evil: monitoring r (per response)", "0.75-0.83", r["monitor"]["r_samples_evidence"]))
        print(row("SmolLM2 evil: projection vs graded prompt level", "-", r["monitor"]["r_projection_vs_level_evidence"]))
        print(row("SmolLM2 evil: flagging AUROC (evil-laden vs neutral)", "high", r["flagging"]["auroc_evidence"]))
        ho = r["separation"].get("held_out") or []
        if L < len(ho):
            print(row(f"SmolLM2 evil: held-out Cohen's d at layer {L}", "-", ho[L]))
    h = load("handling-steer-smollm2-evil")
    if h is not None:
        st = h["results"]["steering"]
        print(f"\nSteering at equal norm per handling ({st['hook']}, norm {st['norm']:.3g}, {len(st['seeds'])} seeds):\n")
        print("| handling | effect [95% CI] | per unit norm | null | verdict |\n|---|---|---|---|---|")
        for hd, x in st["rows"].items():
            e = x["effect"]
            print(f"| {hd} | {ci(e['estimate'], '+.1f')} | {x['effect_per_unit_norm']:+.3f} | {ci(e['null'], '+.1f')} | {e['verdict']} |")


if __name__ == "__main__":
    main()
