"""An offline text corpus for SAE training and feature cards, from registry packages (no hub).

Sources (each documented with its licence; token counts are printed by ``featurescope sae corpus``):

* ``python-docs``: the reStructuredText sources of the Python 3.11 documentation, Debian package ``python3.11-doc``
  (``/usr/share/doc/python3.11/html/_sources``). Licence: PSF Documentation licence (PSF License Version 2).
* ``fortunes``: the fortune-cookie files of Debian package ``fortunes`` (``/usr/share/games/fortunes``): quotes,
  jokes, aphorisms, literature. Licence: BSD (fortune-mod; see ``/usr/share/doc/fortunes/copyright``).
* ``dialogues``: featurescope's own assistant dialogues (``data/dialogues``), written for the project, Apache-2.0.

Documents are split into train / held-out deterministically by a hash of their id, so every run and every machine
sees the same split.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import torch

from .errors import FeaturescopeError
from .models import cache_dir

DATA = Path(__file__).parent / "data"


@dataclasses.dataclass(frozen=True)
class Source:
    name: str
    package: str | None  # Debian package that provides it (None = shipped in this repo)
    path: str
    licence: str


SOURCES: dict[str, Source] = {
    "python-docs": Source(
        "python-docs",
        "python3.11-doc",
        "/usr/share/doc/python3.11/html/_sources",
        "PSF Documentation licence (Python Software Foundation License Version 2)",
    ),
    "fortunes": Source(
        "fortunes", "fortunes", "/usr/share/games/fortunes", "BSD (fortune-mod); see /usr/share/doc/fortunes/copyright"
    ),
    "dialogues": Source("dialogues", None, str(DATA / "dialogues"), "Apache-2.0 (written for featurescope)"),
}
DEFAULT_SOURCES = ("python-docs", "fortunes", "dialogues")


APT_PACKAGES = tuple(s.package for s in SOURCES.values() if s.package)


def ensure_installed(sources: Sequence[str] = DEFAULT_SOURCES) -> None:
    """Raise a clear error naming the Debian packages behind ``sources`` that are missing.

    featurescope never installs system packages itself: ``scripts/setup.sh`` installs them when it runs as root
    on a Debian machine; elsewhere, install them yourself or copy a tokenised corpus cache (see :func:`sequences`).
    """
    unknown = [s for s in sources if s not in SOURCES]
    if unknown:
        raise FeaturescopeError(f"unknown corpus source(s) {', '.join(unknown)}; known: {', '.join(SOURCES)}")
    still = [SOURCES[s].package for s in sources if SOURCES[s].package and not Path(SOURCES[s].path).exists()]
    if still:
        raise FeaturescopeError(
            f"the offline corpus needs the Debian package(s) {', '.join(p for p in still if p)} (missing "
            f"{', '.join(SOURCES[s].path for s in sources if SOURCES[s].package in still)}): install them with "
            f"`sudo apt-get install {' '.join(p for p in still if p)}` (scripts/setup.sh does this when run as root), "
            "or copy a tokenised corpus cache from a machine that has them into the featurescope cache's corpus/ "
            "folder"
        )


def _docs_python(src: Source) -> Iterator[tuple[str, str]]:
    for p in sorted(Path(src.path).rglob("*.txt")):
        text = p.read_text(errors="replace")
        # split long files into sections at reST headings (blank line + underline), keeping documents small
        chunks, cur = [], []
        for line in text.splitlines():
            cur.append(line)
            if len(cur) > 80 and not line.strip():
                chunks.append("\n".join(cur))
                cur = []
        if cur:
            chunks.append("\n".join(cur))
        for i, c in enumerate(chunks):
            if c.strip():
                yield f"python-docs/{p.relative_to(src.path)}#{i}", c.strip()


def _docs_fortunes(src: Source) -> Iterator[tuple[str, str]]:
    for p in sorted(Path(src.path).iterdir()):
        if p.is_dir() or p.suffix in (".dat", ".u8") or p.is_symlink():
            continue
        for i, c in enumerate(p.read_text(errors="replace").split("\n%\n")):
            c = c.strip().strip("%").strip()
            if len(c) > 20:
                yield f"fortunes/{p.name}#{i}", c


def _docs_dialogues(src: Source) -> Iterator[tuple[str, str]]:
    for p in sorted(Path(src.path).glob("sft-*.jsonl")):
        for line in p.read_text().splitlines():
            if not line.strip():
                continue
            d = json.loads(line)
            text = "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in d["messages"])
            yield f"dialogues/{d['id']}", text


_READERS = {"python-docs": _docs_python, "fortunes": _docs_fortunes, "dialogues": _docs_dialogues}


def _split_of(doc_id: str, heldout_fraction: float) -> str:
    h = int(hashlib.sha1(doc_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "heldout" if h < heldout_fraction else "train"


def documents(
    split: Literal["train", "heldout", "all"] = "train",
    sources: Sequence[str] = DEFAULT_SOURCES,
    heldout_fraction: float = 0.03,
) -> list[tuple[str, str]]:
    """(doc id, text) pairs of the corpus, in a fixed order."""
    out = []
    for s in sources:
        if s not in SOURCES:
            raise FeaturescopeError(f"unknown corpus source {s!r}; known: {', '.join(SOURCES)}")
        src = SOURCES[s]
        if not Path(src.path).exists():
            raise FeaturescopeError(
                f"corpus source {s} is missing ({src.path}); "
                f"install the Debian package {src.package} (sudo apt-get install {src.package})"
            )
        for doc_id, text in _READERS[s](src):
            if split == "all" or _split_of(doc_id, heldout_fraction) == split:
                out.append((doc_id, text))
    return out


def token_sequences(
    tokenizer: Any,
    docs: Sequence[tuple[str, str]],
    context_size: int = 128,
    max_sequences: int | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """Pack documents into ``[n, context_size]`` token rows, each starting with BOS (documents joined by BOS),
    shuffled with ``seed``."""
    bos = tokenizer.bos_token_id
    body = context_size - 1
    rows: list[list[int]] = []
    buf: list[int] = []
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(docs), generator=g).tolist()
    for i in order:
        ids = tokenizer(docs[i][1], add_special_tokens=False)["input_ids"]
        buf.extend(ids + ([bos] if bos is not None else []))
        while len(buf) >= body:
            rows.append(([bos] if bos is not None else []) + buf[:body])
            buf = buf[body:]
            if max_sequences and len(rows) >= max_sequences:
                return torch.tensor(rows)
    if not rows:
        raise FeaturescopeError("the corpus is too small for even one sequence")
    return torch.tensor(rows)


CORPUS_VERSION = 1


def _tokenizer_key(tokenizer: Any) -> str:
    probe = tokenizer("The quick brown fox, naïvely: def f(x): return x ** 2  # 日本", add_special_tokens=False)[
        "input_ids"
    ]
    return f"{type(tokenizer).__name__}-{len(tokenizer)}-{tokenizer.bos_token_id}-{hashlib.sha1(str(probe).encode()).hexdigest()[:10]}"


def sequence_cache_path(
    tokenizer: Any, split: str, context_size: int, seed: int, sources: Sequence[str] = DEFAULT_SOURCES
) -> Path:
    key = f"{CORPUS_VERSION}|{_tokenizer_key(tokenizer)}|{split}|{'+'.join(sources)}|{context_size}|{seed}"
    return cache_dir() / "corpus" / f"{split}-{context_size}-{hashlib.sha1(key.encode()).hexdigest()[:16]}.pt"


def sequences(
    tokenizer: Any,
    split: Literal["train", "heldout"] = "train",
    context_size: int = 128,
    max_sequences: int | None = None,
    seed: int = 0,
    sources: Sequence[str] = DEFAULT_SOURCES,
) -> torch.Tensor:
    """:func:`token_sequences` of the whole ``split``, tokenized once and cached (int32) in the featurescope cache,
    then cut to ``max_sequences`` rows. The cache also lets a machine without the Debian packages (a GPU box) train
    on the same rows: copy the file."""
    path = sequence_cache_path(tokenizer, split, context_size, seed, sources)
    if path.exists():
        # A plain int32 tensor; weights_only refuses anything else (the cache is meant to be copied between machines).
        try:
            rows = torch.load(path, weights_only=True)
        except Exception as e:  # noqa: BLE001 - torch raises several types for a corrupt or foreign file
            raise FeaturescopeError(
                f"corpus cache {path} is unreadable or not a plain tensor ({type(e).__name__}); delete it to rebuild it"
            ) from e
        if not isinstance(rows, torch.Tensor) or rows.ndim != 2:
            raise FeaturescopeError(f"corpus cache {path} does not hold a 2-D token tensor; delete it to rebuild it")
    else:
        ensure_installed(sources)
        rows = token_sequences(tokenizer, documents(split, sources), context_size=context_size, seed=seed).to(
            torch.int32
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(rows, tmp)
        os.replace(tmp, path)
    rows = rows.long()
    return rows[:max_sequences] if max_sequences else rows


def describe(tokenizer: Any, sources: Sequence[str] = DEFAULT_SOURCES) -> dict[str, Any]:
    """Documents and tokens per source and split (for the corpus documentation)."""
    res: dict[str, Any] = {}
    for s in sources:
        docs = documents("all", [s])
        n_tok = {"train": 0, "heldout": 0}
        for doc_id, text in docs:
            n_tok[_split_of(doc_id, 0.03)] += len(tokenizer(text, add_special_tokens=False)["input_ids"])
        res[s] = {"documents": len(docs), "tokens": n_tok, "licence": SOURCES[s].licence, "package": SOURCES[s].package}
    return res


def describe_short(sources: Sequence[str] = DEFAULT_SOURCES) -> list[dict[str, Any]]:
    return [{"source": s, "package": SOURCES[s].package, "licence": SOURCES[s].licence} for s in sources]
