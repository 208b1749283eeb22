"""Print RESULTS' fine-tuning-shift tables from a committed run's summary.json (paper / ours / interval / null).

    python scripts/finetune_tables.py [docs/finetune-shift/smollm2]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(folder: str = "docs/finetune-shift/smollm2") -> None:
    s = json.loads((Path(folder) / "summary.json").read_text())["results"]
    d = s.get("finetunes_done", {})
    print(f"fine-tunes: {d.get('done')} of {d.get('planned')} (+ {d.get('preventative_done')} preventative)\n")
    print("| trait | paper r | ours: r (shift vs expression) [95% CI] | null (shuffled pairing) | verdict | r (data projection difference vs shift) | n |")
    print("|---|---|---|---|---|---|---|")
    for t, c in s["correlation"].items():
        e, n, p = c["estimate"], c["null"], c["projection_difference_vs_shift"]
        pe = p["estimate"]
        print(f"| {t} | {c['paper']} | {e['value']:+.2f} [{e['lo']:+.2f}, {e['hi']:+.2f}] | {n['mean']:+.2f} "
              f"[{n['lo']:+.2f}, {n['hi']:+.2f}] | {c['verdict']} | {pe['value']:+.2f} [{pe['lo']:+.2f}, {pe['hi']:+.2f}] "
              f"({p['verdict']}) | {c['n_finetunes']} fine-tunes / {p['n_sets']} sets |")
    print("\n| set | seed | held-out loss | " + " | ".join(f"shift {t} | {t}" for t in s["correlation"]) + " |")
    print("|---|---|---|" + "---|---|" * len(s["correlation"]))
    base = s["base_expression"]
    print("| (before) | | | " + " | ".join(f"0 | {base[t]:.1f}" for t in s["correlation"]) + " |")
    for r in s["finetunes"]:
        cells = " | ".join(f"{r[f'shift_{t}']:+.2f} | {r[f'expression_{t}']:.1f}" for t in s["correlation"])
        print(f"| {r['set']} | {r['seed']} | {r['heldout_loss']:.3f} | {cells} |")
    if s["emergent_misalignment"]:
        print("\n| set | trait | expression | neutral control | effect [Bonferroni CI] | verdict |")
        print("|---|---|---|---|---|---|")
        for r in s["emergent_misalignment"]:
            e = r["effect_vs_neutral"]
            print(f"| {r['set']} | {r['trait']} | {r['expression']:.1f} | {r['neutral']:.1f} | {e['value']:+.1f} "
                  f"[{e['lo']:+.1f}, {e['hi']:+.1f}] | {r['verdict']} |")
    pv = s.get("preventative") or {}
    if pv:
        print(f"\npreventative steering on {pv['set']} ({pv['trait']}, {pv['alpha_fraction_of_norm']} x residual norm):")
        for a, v in pv["arms"].items():
            extra = ""
            if "effect_vs_plain" in v:
                e = v["effect_vs_plain"]
                extra = f", vs plain {e['value']:+.1f} [{e['lo']:+.1f}, {e['hi']:+.1f}] -> {v['verdict']}"
            print(f"- {a}: expression {v['expression']:.1f}, held-out loss {v['heldout_loss']:.3f}, shift {v['shift']:+.2f} "
                  f"({v['n_seeds']} seeds){extra}")


def diff_tables(folder: str = "docs/finetune-shift/smollm2/diff") -> None:
    f = Path(folder) / "summary.json"
    if not f.exists():
        return
    s = json.loads(f.read_text())["results"]
    print(f"\nmodel diffing: SAE at layer {s['layer']}, {s['position']} activations, {s['n_finetunes']} fine-tunes")
    print("| trait | latent (selected on) | test | ours [95% CI] | null [95% CI] | verdict |")
    print("|---|---|---|---|---|---|")

    def row(t: str, lat: str, what: str, ev: dict, f: str = "+.2f") -> None:
        e, n = ev["estimate"], ev["null"]

        def g(x):
            return "n/a" if x is None else format(x, f)

        print(f"| {t} | {lat} | {what} | {g(e['value'])} [{g(e['lo'])}, {g(e['hi'])}] | {g(n['mean'])} "
              f"[{g(n['lo'])}, {g(n['hi'])}] ({n.get('what', '')}) | {ev['verdict']} |")

    for t, r in s["traits"].items():
        lat = f"{r['latent']} ({r['selected_on']['finetune']} vs {r['selected_on']['control']})"
        row(t, lat, f"increase vs {t} expression, r over {r['increase_vs_expression']['n_finetunes']} fine-tunes",
            r["increase_vs_expression"])
        row(t, lat, f"questionable vs benign passages ({r['passages']['n_pairs']} pairs, standardised)", r["passages"])
        for k, ev in (r.get("edits", {}).get("steering") or {}).items():
            row(t, lat, f"steering +{k} x norm: {t} score change", ev, "+.1f")
        ab = r.get("edits", {}).get("ablation") or {}
        if "estimate" in ab:
            row(t, lat, f"ablation in {ab['finetune']}: {t} score change", ab, "+.1f")


if __name__ == "__main__":
    main(*sys.argv[1:])
    diff_tables(*[str(Path(a) / "diff") for a in sys.argv[1:2]])
