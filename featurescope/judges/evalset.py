"""The judge evaluation sets: real model outputs labelled twice, blind, and adjudicated (issue 16), plus the 120
hand-written labels as a second, separate check.

* ``data/judge/real/traits.jsonl`` - trait answers: ``id, split, model, trait, condition, question, answer,
  trait_score`` (0-4), ``expresses`` (bool), ``coherence`` (0-4), and each pass's labels;
* ``data/judge/real/roles.jsonl`` - role answers (Assistant axis): ``id, split, role, role_instruction, question,
  answer, role_score`` (0-3), ``claims_ai`` (bool), ``coherence`` (0-4);
* ``data/judge/labels.jsonl`` - the written set (``score`` 0-100, ``expresses``; no coherence, no split).

Loading checks every row (missing fields, duplicate ids, unknown traits, out-of-range labels) and fails with a
:class:`DataError` that names the file, line and problem.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from ..errors import DataError
from ..traits import list_traits
from .base import LABELS_PATH

REAL = Path(__file__).resolve().parents[1] / "data" / "judge" / "real"
TRAITS_PATH = REAL / "traits.jsonl"
ROLES_PATH = REAL / "roles.jsonl"

Split = Literal["dev", "test", "all"]


@dataclasses.dataclass(frozen=True)
class TraitItem:
    id: str
    trait: str
    question: str
    answer: str
    expresses: bool
    trait_score: float  # 0-4 (real set) or 0-100 / 25 (written set), so both read on one scale
    coherence: float | None  # 0-4; None for the written set
    split: str = "all"
    model: str = ""
    condition: str = ""

    @property
    def broken(self) -> bool | None:
        """Adjudicated coherence <= 1 (gibberish or mostly broken); None when unlabelled."""
        return None if self.coherence is None else self.coherence <= 1


@dataclasses.dataclass(frozen=True)
class RoleItem:
    id: str
    role: str
    role_instruction: str
    question: str
    answer: str
    role_score: int
    claims_ai: bool
    coherence: float
    split: str = "all"


def read_jsonl(path: Path, what: str = "labels file") -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-empty line; a clear DataError for a missing file, bad JSON or an empty file."""
    if not path.is_file():
        raise DataError(f"{what} {path} does not exist")
    out: list[tuple[int, dict[str, Any]]] = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{i}: not valid JSON ({e.msg})") from None
        if not isinstance(r, dict):
            raise DataError(f"{path}:{i}: expected a JSON object per line")
        out.append((i, r))
    if not out:
        raise DataError(f"{what} {path} is empty")
    return out


def _need(path: Path, i: int, r: dict[str, object], fields: Sequence[str]) -> None:
    missing = [f for f in fields if f not in r]
    if missing:
        raise DataError(f"{path}:{i}: missing field(s) {', '.join(missing)} (row {r.get('id', '?')!r})")


def _num(path: Path, i: int, r: dict[str, object], key: str, lo: float, hi: float) -> float:
    v = r[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
        raise DataError(f"{path}:{i}: {key} must be a number in [{lo:g}, {hi:g}], got {v!r}")
    return float(v)


def _unique(path: Path, ids: list[str]) -> None:
    seen: set[str] = set()
    for x in ids:
        if x in seen:
            raise DataError(f"{path}: duplicate id {x!r}")
        seen.add(x)


def load_trait_items(path: str | Path | None = None, split: Split = "all") -> list[TraitItem]:
    """Trait items from the real-output set (default) or any file in either format (``score`` 0-100 = written)."""
    p = Path(path) if path is not None else TRAITS_PATH
    known = set(list_traits())
    items: list[TraitItem] = []
    for i, r in read_jsonl(p):
        _need(p, i, r, ("id", "trait", "question", "expresses"))
        if "answer" not in r and "response" not in r:
            raise DataError(f"{p}:{i}: missing field answer (or response) (row {r.get('id', '?')!r})")
        if r["trait"] not in known:
            raise DataError(f"{p}:{i}: unknown trait {r['trait']!r}; known: {', '.join(sorted(known))}")
        if not isinstance(r["expresses"], bool):
            raise DataError(f"{p}:{i}: expresses must be true or false, got {r['expresses']!r}")
        if "trait_score" in r:
            score = _num(p, i, r, "trait_score", 0, 4)
        elif "score" in r:
            score = _num(p, i, r, "score", 0, 100) / 25
        else:
            raise DataError(f"{p}:{i}: missing field trait_score (0-4) or score (0-100)")
        coh = _num(p, i, r, "coherence", 0, 4) if "coherence" in r else None
        items.append(
            TraitItem(
                id=str(r["id"]),
                trait=str(r["trait"]),
                question=str(r["question"]),
                answer=str(r["answer"] if "answer" in r else r.get("response", "")),
                expresses=bool(r["expresses"]),
                trait_score=score,
                coherence=coh,
                split=str(r.get("split", "all")),
                model=str(r.get("model", "")),
                condition=str(r.get("condition", "")),
            )
        )
    _unique(p, [x.id for x in items])
    return [x for x in items if split == "all" or x.split == split]


def load_written_items() -> list[TraitItem]:
    """The 120 hand-written labels (``response`` -> answer), as trait items (no coherence labels)."""
    out: list[TraitItem] = []
    for i, r in read_jsonl(LABELS_PATH):
        _need(LABELS_PATH, i, r, ("id", "trait", "question", "response", "score", "expresses"))
        out.append(
            TraitItem(
                id=str(r["id"]),
                trait=str(r["trait"]),
                question=str(r["question"]),
                answer=str(r["response"]),
                expresses=bool(r["expresses"]),
                trait_score=_num(LABELS_PATH, i, r, "score", 0, 100) / 25,
                coherence=None,
                split="written",
            )
        )
    return out


def load_role_items(path: str | Path | None = None, split: Split = "all") -> list[RoleItem]:
    p = Path(path) if path is not None else ROLES_PATH
    items: list[RoleItem] = []
    for i, r in read_jsonl(p):
        _need(p, i, r, ("id", "role", "role_instruction", "question", "answer", "role_score", "claims_ai", "coherence"))
        items.append(
            RoleItem(
                id=str(r["id"]),
                role=str(r["role"]),
                role_instruction=str(r["role_instruction"]),
                question=str(r["question"]),
                answer=str(r["answer"]),
                role_score=int(_num(p, i, r, "role_score", 0, 3)),
                claims_ai=bool(r["claims_ai"]),
                coherence=_num(p, i, r, "coherence", 0, 4),
                split=str(r.get("split", "all")),
            )
        )
    _unique(p, [x.id for x in items])
    return [x for x in items if split == "all" or x.split == split]
