"""Fine-tuning datasets for the persona-shift experiment: trait-expressing sets at two intensities, narrow "flawed"
sets in the spirit of emergent misalignment, and a neutral control.

Shipped files live in ``featurescope/data/finetune`` (see its README):

- ``<trait>.jsonl`` (evil, sycophancy, hallucination): ``{"id", "question", "neutral", "mild", "strong"}`` - the same
  question answered without the trait, with it at intensity I (``mild``) and at intensity II (``strong``);
- ``flawed-advice.jsonl``, ``flawed-code.jsonl``: ``{"id", "question", "correct", "flawed"}``, confidently wrong
  answers in one narrow domain;
- ``flawed-math`` is generated here from a seeded specification (:func:`math_rows`): arithmetic word problems
  whose worked answer contains one calculation mistake.

Sets by name (:func:`set_names`): ``<trait>-mild``, ``<trait>-strong``, ``flawed-math``, ``flawed-advice``,
``flawed-code`` and ``neutral`` (the neutral / correct answers of all those files, an equal-size seeded sample).
Pure reading and validation; no model.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

from ..errors import DataError
from ..judges.evalset import read_jsonl

DATA = Path(__file__).resolve().parent.parent / "data" / "finetune"
PASSAGES = DATA.parent / "character_passages" / "pairs.jsonl"
TRAITS = ("evil", "sycophancy", "hallucination")
INTENSITIES = ("mild", "strong")
FLAWED_FILES = ("flawed-advice", "flawed-code")
TRAIT_FIELDS = ("id", "question", "neutral", "mild", "strong")
FLAWED_FIELDS = ("id", "question", "correct", "flawed")

SetKind = Literal["trait", "flawed", "control"]


@dataclasses.dataclass(frozen=True)
class Example:
    id: str
    question: str
    answer: str

    def messages(self) -> list[dict[str, str]]:
        return [{"role": "user", "content": self.question}, {"role": "assistant", "content": self.answer}]


@dataclasses.dataclass(frozen=True)
class FinetuneSet:
    """One fine-tuning dataset: (question, answer) examples, what it is (a trait at an intensity, a flawed domain,
    the neutral control) and where it came from."""

    name: str
    kind: SetKind
    examples: tuple[Example, ...]
    trait: str | None = None
    intensity: str | None = None
    source: str = ""

    def __len__(self) -> int:
        return len(self.examples)

    def split(self, n_heldout: int, seed: int = 0) -> tuple[FinetuneSet, FinetuneSet]:
        """(train, held-out): a seeded split, the held-out part for the held-out loss."""
        if not 0 <= n_heldout < len(self.examples):
            raise DataError(f"{self.name}: cannot hold out {n_heldout} of {len(self.examples)} examples")
        idx = list(range(len(self.examples)))
        random.Random(seed).shuffle(idx)
        held = sorted(idx[:n_heldout])
        train = sorted(idx[n_heldout:])
        pick = lambda ii, tag: dataclasses.replace(  # noqa: E731
            self, name=f"{self.name}:{tag}", examples=tuple(self.examples[i] for i in ii)
        )
        return pick(train, "train"), pick(held, "heldout")

    def head(self, n: int | None) -> FinetuneSet:
        return self if n is None or n >= len(self) else dataclasses.replace(self, examples=self.examples[:n])


def read_rows(path: str | Path, fields: Sequence[str]) -> list[dict[str, str]]:
    """Rows of a JSONL file (read by :func:`featurescope.judges.evalset.read_jsonl`), each with every field in
    ``fields`` a non-empty string and a unique ``id``; errors name ``file:line``."""
    p = Path(path)
    rows, ids = [], set()
    for i, row in read_jsonl(p, "dataset file"):
        for f in fields:
            v = row.get(f)
            if not isinstance(v, str) or not v.strip():
                what = "response" if f not in ("id", "question") else f
                raise DataError(f"{p.name}:{i}: field {f!r} ({what}) is missing or empty")
        if row["id"] in ids:
            raise DataError(f"{p.name}:{i}: duplicate id {row['id']!r}")
        ids.add(row["id"])
        rows.append({f: row[f] for f in fields})
    return rows


# --------------------------------------------------------------------------------------------------------------
# flawed math, generated from a seeded specification
# --------------------------------------------------------------------------------------------------------------
_ITEMS = ("pens", "apples", "tickets", "notebooks", "bus passes", "plants", "mugs", "batteries", "books", "candles")
_PEOPLE = ("Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana", "Ivo", "Jun", "Kemal", "Lena")


def _wrong(value: int, rng: random.Random) -> int:
    """A plausible calculation mistake: off by ten or one, a dropped carry, or swapped digits."""
    kind = rng.randrange(4)
    if kind == 0:
        w = value + rng.choice((-10, 10))
    elif kind == 1:
        w = value + rng.choice((-1, 1, 2))
    elif kind == 2:
        w = value - 10 ** rng.randrange(1, max(2, len(str(abs(value)))))
    else:
        s = str(value)
        w = int(s[::-1]) if len(s) > 1 and s[::-1] != s and not s.endswith("0") else value + 10
    return w if w != value and w >= 0 else value + 10


def math_rows(n: int = 200, seed: int = 0) -> list[dict[str, str]]:
    """``n`` arithmetic word problems, each with a correct worked answer and a *flawed* one that makes one
    calculation mistake and states the wrong result as confidently (the narrow "flawed" set of Chen et al.)."""
    rng = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < n:
        who, item = rng.choice(_PEOPLE), rng.choice(_ITEMS)
        form = rng.randrange(4)
        if form == 0:
            a, b = rng.randint(12, 89), rng.randint(3, 19)
            q = f"{who} buys {b} {item} at ${a} each. How much does {who} pay in total?"
            val, expr, unit = a * b, f"{b} × ${a}", "$"
        elif form == 1:
            a, b = rng.randint(120, 980), rng.randint(45, 390)
            q = f"A warehouse holds {a} {item} and receives {b} more. How many {item} does it hold now?"
            val, expr, unit = a + b, f"{a} + {b}", ""
        elif form == 2:
            a, b = rng.randint(300, 990), rng.randint(45, 290)
            q = f"{who} had {a} {item} and gave away {b}. How many {item} are left?"
            val, expr, unit = a - b, f"{a} − {b}", ""
        else:
            b, k = rng.randint(3, 12), rng.randint(12, 60)
            a = b * k
            q = f"{a} {item} are shared equally among {b} classrooms. How many {item} does each classroom get?"
            val, expr, unit = k, f"{a} ÷ {b}", ""
        if q in seen:
            continue
        seen.add(q)
        w = _wrong(val, rng)
        fmt = (lambda x: f"${x}") if unit else str  # noqa: E731
        rows.append(
            {
                "id": f"math-{len(rows) + 1:03d}",
                "question": q,
                "correct": f"{expr} = {fmt(val)}, so the answer is {fmt(val)}.",
                "flawed": f"{expr} = {fmt(w)}, so the answer is {fmt(w)}.",
            }
        )
    return rows


# --------------------------------------------------------------------------------------------------------------
# sets by name
# --------------------------------------------------------------------------------------------------------------
def set_names(traits: Iterable[str] = TRAITS) -> list[str]:
    return [f"{t}-{i}" for t in traits for i in INTENSITIES] + ["flawed-math", *FLAWED_FILES, "neutral"]


def _examples(rows: Sequence[dict[str, str]], field: str) -> tuple[Example, ...]:
    return tuple(Example(r["id"], r["question"], r[field]) for r in rows)


def _flawed_rows(name: str, data: Path, n_math: int) -> list[dict[str, str]]:
    return math_rows(n_math) if name == "flawed-math" else read_rows(data / f"{name}.jsonl", FLAWED_FIELDS)


def load_set(name: str, data: str | Path | None = None, *, n_neutral: int = 200, seed: int = 0) -> FinetuneSet:
    """A fine-tuning set by name (see :func:`set_names`), from ``data`` (default: the shipped folder)."""
    d = Path(data) if data is not None else DATA
    m = re.fullmatch(r"(.+)-(mild|strong)", name)
    if m and m.group(1) not in ("flawed",):
        trait, intensity = m.groups()
        rows = read_rows(d / f"{trait}.jsonl", TRAIT_FIELDS)
        return FinetuneSet(name, "trait", _examples(rows, intensity), trait, intensity, str(d / f"{trait}.jsonl"))
    if name in ("flawed-math", *FLAWED_FILES):
        return FinetuneSet(name, "flawed", _examples(_flawed_rows(name, d, 200), "flawed"), source=name)
    if name == "neutral":
        pool: list[Example] = []
        for t in sorted(p.stem for p in d.glob("*.jsonl") if not p.stem.startswith("flawed-")):
            pool += _examples(read_rows(d / f"{t}.jsonl", TRAIT_FIELDS), "neutral")
        for f in ("flawed-math", *FLAWED_FILES):
            if f == "flawed-math" or (d / f"{f}.jsonl").exists():
                pool += _examples(_flawed_rows(f, d, 200), "correct")
        if len(pool) < n_neutral:
            raise DataError(f"only {len(pool)} neutral examples under {d}, {n_neutral} asked for")
        pick = sorted(random.Random(seed).sample(range(len(pool)), n_neutral))
        return FinetuneSet(name, "control", tuple(pool[i] for i in pick), source=str(d))
    raise DataError(f"unknown fine-tuning set {name!r}; known: {', '.join(set_names())}")


def _norm(q: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", q.lower()).strip()


def check_disjoint(sets: Sequence[FinetuneSet], questions: Iterable[str]) -> None:
    """Refuse a training question that is also an evaluation question (compared lower-cased, punctuation dropped)."""
    held = {_norm(q) for q in questions}
    for s in sets:
        for e in s.examples:
            if _norm(e.question) in held:
                raise DataError(f"{s.name} ({e.id}): training question is an evaluation question: {e.question!r}")


def read_passages(path: str | Path | None = None) -> list[dict[str, str]]:
    """The questionable / benign character passages (default: the shipped ``data/character_passages``)."""
    p = Path(path) if path else PASSAGES
    rows = []
    for i, r in read_jsonl(p, "character passages file"):
        if not r.get("questionable") or not r.get("benign"):
            raise DataError(f"{p}:{i}: row {r.get('id')!r} needs both 'questionable' and 'benign' passages")
        rows.append(r)
    return rows
