"""An on-disk cache of judgements keyed by (judge, rubric, question, answer): re-scoring the same answers costs
nothing, and an interrupted scoring run resumes. SQLite (standard library), one file, safe to share between runs.

Location: ``$FEATURESCOPE_JUDGE_CACHE`` (a file path; ``off`` disables caching), else
``~/.cache/featurescope/judgements.sqlite``.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .base import Score


def cache_path() -> Path | None:
    env = os.environ.get("FEATURESCOPE_JUDGE_CACHE", "").strip()
    if env.lower() == "off":
        return None
    if env:
        return Path(env)
    return Path(os.path.expanduser("~")) / ".cache" / "featurescope" / "judgements.sqlite"


def _key(judge: str, rubric: str, question: str, answer: str) -> str:
    h = hashlib.sha256()
    for part in (judge, rubric, question, answer):
        h.update(part.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()


class CachedJudge:
    """Wraps any judge with ``score_many``; only answers not yet in the cache reach the judge."""

    def __init__(self, judge: Any, path: str | Path | None = None):
        self.judge = judge
        self.name = str(getattr(judge, "name", type(judge).__name__))
        p = Path(path) if path is not None else cache_path()
        self.path = p
        self._db: sqlite3.Connection | None = None
        self.hits = 0
        self.misses = 0

    def __getattr__(self, item: str) -> Any:  # embed, anchors, _ask ... of the wrapped judge
        return getattr(self.judge, item)

    def _conn(self) -> sqlite3.Connection | None:
        if self.path is None:
            return None
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), timeout=30)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS scores (key TEXT PRIMARY KEY, trait REAL, coherence REAL, refusal INTEGER)"
            )
        return self._db

    def score_many(self, trait: Any, questions: Sequence[str], answers: Sequence[str]) -> list[Score]:
        db = self._conn()
        if db is None:
            return list(self.judge.score_many(trait, questions, answers))
        rubric = f"{getattr(trait, 'name', trait)}\n{getattr(trait, 'rubric', '')}\n{getattr(trait, 'description', '')}"
        keys = [_key(self.name, rubric, q, a) for q, a in zip(questions, answers)]
        found: dict[str, Score] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            q = f"SELECT key, trait, coherence, refusal FROM scores WHERE key IN ({','.join('?' * len(chunk))})"
            for k, t, c, r in db.execute(q, chunk):
                found[k] = Score(trait=float(t), coherence=float(c), refusal=bool(r))
        todo = [i for i, k in enumerate(keys) if k not in found]
        self.hits += len(keys) - len(todo)
        self.misses += len(todo)
        if todo:
            new = self.judge.score_many(trait, [questions[i] for i in todo], [answers[i] for i in todo])
            rows = []
            for i, s in zip(todo, new):
                found[keys[i]] = s
                rows.append((keys[i], float(s.trait), float(s.coherence), int(s.refusal)))
            db.executemany("INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?)", rows)
            db.commit()
        return [found[k] for k in keys]
