"""Traits as data: YAML files with a description, instruction pairs, questions, a judge rubric and monitor prompts.

Shipped traits live in ``featurescope/data/traits/``; a user adds one by writing a new file with the same fields
and passing its path to :func:`load_trait` (or putting it in a folder passed as ``search=``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from .configs import Config
from .errors import DataError, FeaturescopeError, did_you_mean

TRAITS_DIR = Path(__file__).parent / "data" / "traits"
N_PAIRS = 5
MIN_QUESTIONS = 20
REQUIRED = ("name", "description", "instructions", "extraction_questions", "eval_questions", "rubric")


@dataclasses.dataclass(frozen=True)
class InstructionPair(Config):
    pos: str
    neg: str


@dataclasses.dataclass(frozen=True)
class Trait(Config):
    name: str
    description: str
    instructions: tuple[InstructionPair, ...]
    extraction_questions: tuple[str, ...]
    eval_questions: tuple[str, ...]
    rubric: str
    monitor_prompts: tuple[str, ...] = ()
    source: str = ""

    def judge_prompt(self, question: str, answer: str) -> str:
        return self.rubric.replace("{question}", question).replace("{answer}", answer)

    def _repr_html_(self) -> str:
        pairs = "".join(f"<tr><td>{p.pos}</td><td>{p.neg}</td></tr>" for p in self.instructions)
        return (
            f"<div><b>trait: {self.name}</b><p>{self.description}</p>"
            f"<table><tr><th>positive instruction</th><th>negative instruction</th></tr>{pairs}</table>"
            f"<p>{len(self.extraction_questions)} extraction questions, {len(self.eval_questions)} evaluation "
            f"questions, {len(self.monitor_prompts)} monitor prompts</p></div>"
        )


def written_path(trait: str) -> Path:
    """The shipped written pos/neg answers of a trait (``data/traits/<trait>.written.jsonl``)."""
    p = TRAITS_DIR / f"{trait}.written.jsonl"
    if not p.exists():
        have = sorted(x.name.split(".")[0] for x in TRAITS_DIR.glob("*.written.jsonl"))
        raise FeaturescopeError(
            f"no written answers shipped for {trait!r} (have: {', '.join(have) or 'none'}); pass --written FILE"
        )
    return p


def list_traits(search: str | Path | None = None) -> list[str]:
    folders = [TRAITS_DIR] + ([Path(search)] if search else [])
    return sorted({p.stem for f in folders if f.is_dir() for p in f.glob("*.yaml")})


def load_trait(name_or_path: str | Path, search: str | Path | None = None) -> Trait:
    """Load and validate a trait by shipped name (``"evil"``) or by path to a YAML file."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        path = p
    else:
        cands = [Path(search) / f"{name_or_path}.yaml"] if search else []
        cands.append(TRAITS_DIR / f"{name_or_path}.yaml")
        path = next((c for c in cands if c.exists()), cands[-1])
        if not path.exists():
            raise DataError(
                f"unknown trait {str(name_or_path)!r}.{did_you_mean(str(name_or_path), list_traits(search))} "
                f"Shipped traits: {', '.join(list_traits())}; or pass a path to your own YAML file."
            )
    if not path.exists():
        raise DataError(f"trait file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise DataError(f"{path}: not valid YAML ({e})") from e
    return parse_trait(raw, source=str(path))


def parse_trait(raw: Any, source: str = "<dict>") -> Trait:
    """Validate a trait mapping; every problem is reported with the file it came from."""
    where = source
    if not isinstance(raw, dict):
        raise DataError(f"{where}: a trait file must be a mapping with fields {', '.join(REQUIRED)}")
    missing = [k for k in REQUIRED if not raw.get(k)]
    if missing:
        raise DataError(f"{where}: missing field(s) {', '.join(missing)}")
    pairs_raw = raw["instructions"]
    if not isinstance(pairs_raw, list) or len(pairs_raw) != N_PAIRS:
        raise DataError(
            f"{where}: 'instructions' must be a list of exactly {N_PAIRS} pos/neg pairs "
            f"(found {len(pairs_raw) if isinstance(pairs_raw, list) else type(pairs_raw).__name__})"
        )
    pairs = []
    for i, pr in enumerate(pairs_raw):
        if not isinstance(pr, dict) or not str(pr.get("pos", "")).strip() or not str(pr.get("neg", "")).strip():
            raise DataError(f"{where}: instruction pair {i + 1} needs non-empty 'pos' and 'neg'")
        pairs.append(InstructionPair(str(pr["pos"]).strip(), str(pr["neg"]).strip()))
    qs = {}
    for key in ("extraction_questions", "eval_questions"):
        v = raw[key]
        if not isinstance(v, list) or not all(isinstance(q, str) and q.strip() for q in v):
            raise DataError(f"{where}: '{key}' must be a list of non-empty strings")
        if len(v) < MIN_QUESTIONS:
            raise DataError(f"{where}: '{key}' has {len(v)} questions; at least {MIN_QUESTIONS} are needed")
        norm = [q.strip().lower() for q in v]
        dup = sorted({q for q in norm if norm.count(q) > 1})
        if dup:
            raise DataError(f"{where}: '{key}' repeats question(s): {dup[:3]}")
        qs[key] = tuple(q.strip() for q in v)
    overlap = {q.lower() for q in qs["extraction_questions"]} & {q.lower() for q in qs["eval_questions"]}
    if overlap:
        raise DataError(
            f"{where}: {len(overlap)} question(s) are both extraction and evaluation questions "
            f"(held-out questions must be new): {sorted(overlap)[:3]}"
        )
    rubric = str(raw["rubric"])
    for ph in ("{question}", "{answer}"):
        if ph not in rubric:
            raise DataError(f"{where}: the rubric must contain the placeholder {ph}")
    monitor = raw.get("monitor_prompts") or []
    if not isinstance(monitor, list) or not all(isinstance(m, str) for m in monitor):
        raise DataError(f"{where}: 'monitor_prompts' must be a list of strings (graded from suppressing to eliciting)")
    unknown = set(raw) - set(REQUIRED) - {"monitor_prompts"}
    if unknown:
        raise DataError(f"{where}: unknown field(s) {sorted(unknown)}")
    return Trait(
        name=str(raw["name"]).strip(),
        description=" ".join(str(raw["description"]).split()),
        instructions=tuple(pairs),
        extraction_questions=qs["extraction_questions"],
        eval_questions=qs["eval_questions"],
        rubric=rubric,
        monitor_prompts=tuple(monitor),
        source=source,
    )
