"""Merge the two blind annotation passes and the adjudication into the shipped evaluation sets (issue 16).

    .venv/bin/python scripts/judge_merge.py roles    # -> featurescope/data/judge/real/roles.jsonl
    .venv/bin/python scripts/judge_merge.py traits   # -> featurescope/data/judge/real/traits.jsonl
    .venv/bin/python scripts/judge_merge.py disagreements roles|traits   # items the adjudicator must see

Final label = the annotators' label where they agree, else the adjudicator's. Coherence: the adjudicator's where
the passes differ by 2 or more, else their mean. Writes Cohen's kappa of the two passes (before adjudication) to
``labels/agreement.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / "featurescope" / "data" / "judge" / "real"
sys.path.insert(0, str(ROOT))

from featurescope import stats  # noqa: E402

KEYS = {
    "roles": ("role_score", "claims_ai", "coherence"),
    "traits": ("trait_score", "expresses", "coherence"),
}


def _read(p: Path) -> list[dict]:
    return [json.loads(x) for x in p.read_text().splitlines() if x.strip()]


def _disagree(what: str, a: dict, b: dict) -> bool:
    k1, k2, _ = KEYS[what]
    if what == "traits":
        return (
            a["expresses"] != b["expresses"]
            or abs(a["trait_score"] - b["trait_score"]) >= 2
            or abs(a["coherence"] - b["coherence"]) >= 2
        )
    return a[k1] != b[k1] or a[k2] != b[k2] or abs(a["coherence"] - b["coherence"]) >= 2


def passes(what: str) -> tuple[list[dict], list[dict], list[dict]]:
    stem = "roles" if what == "roles" else "traits"
    items = _read(REAL / ("roles.items.jsonl" if what == "roles" else "items.jsonl"))
    # batch 2 of the trait set has its own pass files (traits2.pass_*.jsonl), in items order after batch 1
    a, b = [], []
    for s in (stem, f"{stem}2"):
        if (REAL / "labels" / f"{s}.pass_a.jsonl").exists():
            a += _read(REAL / "labels" / f"{s}.pass_a.jsonl")
            b += _read(REAL / "labels" / f"{s}.pass_b.jsonl")
    ids = [x["id"] for x in items]
    for name, rows in (("pass_a", a), ("pass_b", b)):
        if [r["id"] for r in rows] != ids:
            sys.exit(f"{stem}.{name}: ids differ from the items file (missing, extra or out of order)")
    return items, a, b


def disagreements(what: str) -> None:
    items, a, b = passes(what)
    blind = {r["id"]: r for r in _read(REAL / ("roles.blind.jsonl" if what == "roles" else "blind.jsonl"))}
    if what == "traits" and (REAL / "blind2.jsonl").exists():
        blind.update({r["id"]: r for r in _read(REAL / "blind2.jsonl")})
    stem = "roles" if what == "roles" else "traits"
    done = set()
    for s in (stem, f"{stem}2"):
        if (REAL / "labels" / f"{s}.adjudicated.jsonl").exists():
            done |= {r["id"] for r in _read(REAL / "labels" / f"{s}.adjudicated.jsonl")}
    out = []
    for it, la, lb in zip(items, a, b):
        if _disagree(what, la, lb) and it["id"] not in done:
            keep = ("note",) + KEYS[what]
            out.append(
                {
                    **blind[it["id"]],
                    "annotator_1": {k: la.get(k) for k in keep},
                    "annotator_2": {k: lb.get(k) for k in keep},
                }
            )
    dest = Path("/tmp/adj") / f"{what}.disagreements.jsonl"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out))
    print(f"{len(out)} disagreements -> {dest}")


def merge(what: str) -> None:
    items, a, b = passes(what)
    stem = "roles" if what == "roles" else "traits"
    adj = {}
    for s in (stem, f"{stem}2"):
        adj_path = REAL / "labels" / f"{s}.adjudicated.jsonl"
        if adj_path.exists():
            adj.update({r["id"]: r for r in _read(adj_path)})
    k1, k2, _ = KEYS[what]
    rows = []
    n_adj = 0
    for it, la, lb in zip(items, a, b):
        final: dict = {}
        if _disagree(what, la, lb):
            if it["id"] not in adj:
                sys.exit(f"{it['id']}: the passes disagree and there is no adjudicated label")
            r = adj[it["id"]]
            final = {k1: r[k1], k2: r[k2], "coherence": r["coherence"]}
            n_adj += 1
        else:
            if what == "traits":
                final = {"expresses": la["expresses"], "trait_score": (la["trait_score"] + lb["trait_score"]) / 2}
            else:
                final = {k1: la[k1], k2: la[k2]}
            final["coherence"] = (la["coherence"] + lb["coherence"]) / 2
        rows.append(
            {
                **it,
                **final,
                "adjudicated": it["id"] in adj and _disagree(what, la, lb),
                "pass_a": {k: la[k] for k in KEYS[what]},
                "pass_b": {k: lb[k] for k in KEYS[what]},
            }
        )
    (REAL / f"{stem}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    agree_path = REAL / "labels" / "agreement.json"
    doc = json.loads(agree_path.read_text()) if agree_path.exists() else {}
    ka = {
        k1: {
            "kappa": stats.cohen_kappa([x[k1] for x in a], [x[k1] for x in b]),
            **({"kappa_quadratic": stats.cohen_kappa([x[k1] for x in a], [x[k1] for x in b], "quadratic")}),
        },
        k2: {"kappa": stats.cohen_kappa([x[k2] for x in a], [x[k2] for x in b])},
        "coherence": {
            "kappa_quadratic": stats.cohen_kappa([x["coherence"] for x in a], [x["coherence"] for x in b], "quadratic")
        },
        "n": len(items),
        "n_disagreements_adjudicated": n_adj,
        "raw_agreement": {
            k1: sum(x[k1] == y[k1] for x, y in zip(a, b)) / len(a),
            k2: sum(x[k2] == y[k2] for x, y in zip(a, b)) / len(a),
        },
    }
    doc[stem] = ka
    agree_path.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"{len(rows)} rows -> {REAL / (stem + '.jsonl')}; {n_adj} adjudicated; kappa {json.dumps(ka)}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "disagreements":
        disagreements(sys.argv[2])
    elif len(sys.argv) == 2 and sys.argv[1] in KEYS:
        merge(sys.argv[1])
    else:
        sys.exit("usage: judge_merge.py roles|traits | disagreements roles|traits")
