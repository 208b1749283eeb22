"""Print RESULTS' persona-feature tables (issue 18) from the committed runs under docs/features/ (written by
``bash scripts/evidence_features.sh``): interpretation scores of the decompositions' top latents against
density-matched random latents, and single-latent steering against the same. Every number is read from a file.

    python scripts/feature_tables.py
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
F = ROOT / "docs" / "features"

INTERPRET = {
    "shipped evil vector (generated answers, 11 questions), layer 9": "interpret-evil-gemma-3-270m-layer9",
    "evil vector from written answers (75 questions), layer 9": "interpret-evil-written-gemma-3-270m-layer9",
    "evil vector from written answers, layer 2": "interpret-evil-written-gemma-3-270m-layer2",
    "SFT Gemma's Assistant axis, layer 9 (assistant-voice measure)": "interpret-axis-gemma-sft",
}
STEER = {
    "decomposition's top latents, added at norm 1500": "steer-evil-gemma-3-270m-layer9-add",
    "decomposition's top latents, clamped to 3000 (SAE error kept)": "steer-evil-gemma-3-270m-layer9-clamp",
    "interpretation's top-z latents, added at norm 1500": "steer-evil-interpreted-gemma-3-270m-layer9-add",
    "latent 1196, added at norm 500": "steer-evil-1196-gemma-3-270m-layer9-add500",
    "latent 1196, added at norm 250": "steer-evil-1196-gemma-3-270m-layer9-add250",
}


def committed(runs: dict[str, str], file: str, n_cols: int) -> list[tuple[str, dict[str, Any]]]:
    """``(label, parsed file)`` of each committed run; a row "not run" (``n_cols`` cells) for each absent one."""
    out = []
    for label, name in runs.items():
        p = F / name / file
        if p.exists():
            out.append((label, json.loads(p.read_text())))
        else:
            print(f"| {label} | not run |" + " |" * (n_cols - 2))
    return out


def f(x: Any, fmt: str = ".1f") -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def interpret() -> None:
    print("| decomposition | view | top latents' mean score | set z vs density-matched | empirical p | >= 3 SD alone "
          "| uniform null (mean +- sd) | target met |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    runs = committed(INTERPRET, "summary.json", 8)
    for label, s in runs:
        r = s["results"]
        u = r["uniform_null"]
        for view, v in r["views"].items():
            print(f"| {label} | {view} | {f(v['mean_score'])} | {f(v['set_z_density_matched'], '+.2f')} | "
                  f"{f(v.get('set_p_empirical'), '.2g')} | {v['n_above']} | {f(u['mean'])} +- {f(u['sd'])} | "
                  f"{v['set_z_density_matched'] >= r['z_target']} |")  # fmt: skip
    print()
    for label, s in runs:  # the interval and the null of a view's mean score, where the pooled null was kept
        interval_lines(label, s["results"])
    print()
    for label, s in runs:
        lat = s["results"]["latents"]
        top = sorted(lat, key=lambda j: -(lat[j]["z_density_matched"] or -99))[:3]
        for j in top:
            x = lat[j]
            ctx = " / ".join(" ".join(c.split()).replace("|", "/")[:70] for c in x["contexts"][:3])
            print(f"- {label}: latent {j}, score {f(x['score'])}, z {f(x['z_density_matched'], '+.2f')}, density "
                  f"{f(x['density'], '.3f')}: {ctx}")  # fmt: skip


def interval_lines(label: str, r: dict[str, Any]) -> None:
    """Per view: the interval rule of :func:`featurescope.features.interpret.set_interval_evidence` (the command
    writes it since this session; for older runs it is computed here from their committed pooled null)."""
    from featurescope.features.interpret import set_interval_evidence

    pooled = list((r.get("matched_scores") or {}).values())
    for view, v in r["views"].items():
        ev = v.get("interval_evidence") or set_interval_evidence(
            [r["latents"][str(j)]["score"] for j in v["latents"]], pooled
        )
        if ev is None:
            continue
        e, n = ev["estimate"], ev["null"]
        print(f"- {label}, {view}: mean score {f(e['value'])} [{f(e['lo'])}, {f(e['hi'])}] (bootstrap over its "
              f"latents); {n['what']}: {f(n['mean'])} [{f(n['lo'])}, {f(n['hi'])}]: {ev['verdict']}")  # fmt: skip


def coherence(s: dict[str, Any], x: dict[str, Any]) -> str:
    if "coherence" not in x:
        return "not recorded"
    mean = sum(x["coherence"]) / len(x["coherence"])
    base = s["unsteered_coherence"]
    return f"{mean:.0f} ({sum(base) / len(base):.0f})"


def steer() -> None:
    print("\n| latents (Gemma 3 270M base, layer 9, evil judge) | latent | change in evil score [95% CI] "
          "| density-matched random latents [95% CI] | edited passes | coherence (unsteered) | verdict |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for label, s in committed(STEER, "steering.json", 7):
        for j, x in s["latents"].items():
            e, n = x["evidence"]["estimate"], x["evidence"]["null"]
            print(f"| {label} | {j} | {f(e['value'], '+.1f')} [{f(e['lo'], '+.1f')}, {f(e['hi'], '+.1f')}] | "
                  f"{f(n['mean'], '+.1f')} [{f(n['lo'], '+.1f')}, {f(n['hi'], '+.1f')}] | {x['edited_passes']} | "
                  f"{coherence(s, x)} | {x['evidence']['verdict']}{'' if x.get('coherent', True) else ' (incoherent)'} |")  # fmt: skip
        base = s.get("unsteered") or []
        if base:
            print(f"| {label}: unsteered mean evil score | | {sum(base) / len(base):.1f} | | | | |")


if __name__ == "__main__":
    interpret()
    steer()
