"""The judge commands' library side: evaluate judges side by side on the real-output set (``judge eval``), train
the probe judge on written + dev labels (``judge train``), score a JSONL file (``judge score``)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..axis.judges import EmbeddingRoleJudge
from ..errors import DataError
from ..runs import write_summary
from ..store import write_jsonl
from ..traits import load_trait
from .choose import ENSEMBLE, get_judge
from .evalset import ROLES_PATH, TraitItem, load_role_items, load_trait_items, load_written_items, read_jsonl
from .evaluate import TARGETS, JudgeEval, best_threshold, evaluate_scores, format_eval, score_items
from .probe import PROBE_PATH, train_probe
from .roles import ROLE_PROBE_PATH, RoleProbeJudge, evaluate_ai_detector, evaluate_role_judge, train_role_probe

CANDIDATES = ("embedding", "probe", "lm:offline:gemma-3-270m", "lm:offline:smollm2-135m-instruct", "ensemble")


def run_judge_eval(
    judges: Sequence[str] = CANDIDATES,
    labels: str | Path | None = None,
    out: str | Path | None = None,
    seed: int = 0,
    written: bool = True,
    progress: bool = True,
    roles: bool = True,
) -> dict[str, Any]:
    """Each judge scores the dev and test splits (and the written set); thresholds: fixed 50, and chosen on dev.
    Returns (and with ``out`` writes ``summary.json`` + ``scores.jsonl``) every agreement table."""
    t0 = time.time()
    items = load_trait_items(labels)
    dev = [x for x in items if x.split == "dev"]
    test = [x for x in items if x.split == "test"] or items
    wr = load_written_items() if written else []
    results: dict[str, Any] = {
        "judges": {},
        "targets": TARGETS,
        "n": {"dev": len(dev), "test": len(test), "written": len(wr)},
    }
    per_item: list[dict[str, Any]] = []
    timings: dict[str, float] = {}
    computed: dict[str, dict[str, tuple[list[TraitItem], np.ndarray, np.ndarray]]] = {}
    for name in judges:
        t = time.time()
        sets: dict[str, tuple[list[TraitItem], np.ndarray, np.ndarray]] = {}
        members = [m for m in ENSEMBLE if m in computed]
        if name == "ensemble" and len(members) == len(ENSEMBLE):
            # the same judge as get_judge("ensemble") (mean trait score, the first member's coherence), from the
            # members' scores already computed in this run instead of scoring every answer again
            jname = "ensemble(" + "+".join(ENSEMBLE) + ")"
            for split in computed[members[0]]:
                rows = computed[members[0]][split][0]
                ts = np.mean([computed[m][split][1] for m in members], axis=0)
                sets[split] = (rows, ts, computed[members[0]][split][2])
        else:
            judge = get_judge(name, cache=False)
            jname = str(getattr(judge, "name", name))
            for split, rows in (("dev", dev), ("test", test), ("written", wr)):
                if rows:
                    ts, cs = score_items(judge, rows)
                    sets[split] = (rows, ts, cs)
        computed[name] = sets
        for split, (rows, ts, cs) in sets.items():
            per_item += [
                {"judge": name, "split": split, "id": r.id, "trait_score": float(a), "coherence": float(b)}
                for r, a, b in zip(rows, ts, cs)
            ]
        thr = 50.0
        if "dev" in sets:
            rows, ts, _ = sets["dev"]
            thr = best_threshold(ts, np.array([r.expresses for r in rows]))
        evals: dict[str, JudgeEval] = {}
        for split, (rows, ts, cs) in sets.items():
            evals[f"{split}@50"] = evaluate_scores(jname, ts, cs, rows, 50.0, "fixed", split, seed)
            if split != "dev":
                evals[f"{split}@dev"] = evaluate_scores(jname, ts, cs, rows, thr, "chosen on dev", split, seed)
        results["judges"][name] = {k: v.to_dict() for k, v in evals.items()}
        timings[name] = time.time() - t
        if progress:
            print(format_eval(evals["test@dev"] if "test@dev" in evals else evals["test@50"], TARGETS), flush=True)
            print(flush=True)
    # The rule: the default is the candidate with the best test accuracy (threshold chosen on dev). Nothing
    # is fitted or tuned on test; picking the best of a few candidates on it makes the winner's figure slightly
    # optimistic, which RESULTS says.
    key = "test@dev" if dev else "test@50"
    results["best_on_test"] = max(judges, key=lambda n: results["judges"][n][key]["overall"]["accuracy"]["value"])
    if roles:
        if ROLES_PATH.is_file() and ROLE_PROBE_PATH.is_file():
            results["roles"] = run_role_eval(seed=seed, progress=progress)
    if out is not None:
        o = Path(out)
        o.mkdir(parents=True, exist_ok=True)
        write_jsonl(o / "scores.jsonl", per_item)
        write_summary(
            o,
            "judge eval",
            inputs={"judges": list(judges), "labels": str(labels or "shipped real-output set"), "seed": seed},
            results=results,
            timings={**timings, "total": time.time() - t0},
        )
    return results


def run_judge_train(
    labels: str | Path | None = None,
    out: str | Path = PROBE_PATH,
    seed: int = 0,
    written: bool = True,
    role_labels: str | Path | None = None,
    role_out: str | Path | None = ROLE_PROBE_PATH,
) -> list[Path]:
    """Train the probe judge on the written labels and the real set's dev split (never test), and the role probe on
    the role set's dev split; save their weights."""
    items = load_trait_items(labels, split="dev")
    if not items:
        raise DataError("the labels file has no dev split rows to train on")
    rows = (load_written_items() if written else []) + items
    paths = [train_probe(rows, seed=seed).save(out)]
    if role_out is not None:
        roles = load_role_items(role_labels, split="dev")
        paths.append(train_role_probe(roles, seed=seed).save(role_out))
    return paths


def run_role_eval(labels: str | Path | None = None, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """The role judges (the old embedding proxy, the role probe) and the AI word list on the role set's test split."""

    test = load_role_items(labels, split="test")
    res: dict[str, Any] = {"n_test": len(test), "judges": {}}
    for name, j in (("embedding", EmbeddingRoleJudge()), ("probe", RoleProbeJudge.load())):
        a = evaluate_role_judge(j, test, seed)
        res["judges"][name] = a.to_dict()
        if progress:
            print(a.format(), flush=True)
    res["ai_word_list"] = evaluate_ai_detector(test, seed)
    if progress:
        d = res["ai_word_list"]
        print(
            f"'calls itself an AI' word list vs annotators (n={d['n']}, {d['n_claims_ai']} claim): accuracy "
            f"{d['accuracy']['value']:.2f} [{d['accuracy']['lo']:.2f}, {d['accuracy']['hi']:.2f}] vs chance "
            f"{d['chance']:.2f}",
            flush=True,
        )
    return res


def run_judge_score(
    trait: str, input_path: str | Path, judge: str = "auto", output: str | Path | None = None
) -> list[dict[str, Any]]:
    """Score every row of a JSONL file with ``question`` and ``answer`` (or ``response``) fields; writes the rows
    with ``trait_score`` and ``coherence`` added to ``output`` (default: ``<input>.scored.jsonl``)."""
    p = Path(input_path)
    tr = load_trait(trait)
    rows: list[dict[str, Any]] = []
    for i, r in read_jsonl(p, "input file"):
        if "question" not in r or not ("answer" in r or "response" in r):
            raise DataError(f"{p}:{i}: each row needs 'question' and 'answer' (or 'response')")
        rows.append(r)
    j = get_judge(judge)
    scores = j.score_many(
        tr, [str(r["question"]) for r in rows], [str(r.get("answer", r.get("response"))) for r in rows]
    )
    out_rows = [
        {**r, "trait": tr.name, "judge": j.name, "trait_score": s.trait, "coherence": s.coherence}
        for r, s in zip(rows, scores)
    ]
    dest = Path(output) if output else p.with_suffix(".scored.jsonl")
    write_jsonl(dest, out_rows, ensure_ascii=False)
    return out_rows
