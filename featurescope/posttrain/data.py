"""Post-training data: the shipped SFT dialogues, their validation, the chat template, and SFT examples and batches.

A dialogue is one JSON row ``{"messages": [{"role": ..., "content": ...}, ...]}``; :func:`sft_example` turns it
into (input ids, labels) in the Gemma chat template with the loss on assistant tokens only, including the
``<end_of_turn>`` that closes each assistant turn (so the model learns to stop).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Int
from torch import Tensor

from ..errors import DataError
from ..formatting import (
    GEMMA_CHAT_TEMPLATE,  # its home is formatting; still importable from featurescope.posttrain
    format_conversation,
)

DIALOGUES = Path(__file__).parent.parent / "data" / "dialogues"

ROLES = ("system", "user", "assistant")


def read_dialogues(path: str | Path) -> list[tuple[str, dict[str, Any]]]:
    """Rows of ``path`` (a folder of ``sft-*.jsonl`` shards or one ``.jsonl``) as (``file:line``, row)."""
    p = Path(path)
    files = sorted(p.glob("sft-*.jsonl")) if p.is_dir() else [p]
    if not files or not all(f.exists() for f in files):
        raise DataError(f"no dialogue files at {p} (a .jsonl file, or a folder of sft-*.jsonl shards)")
    rows = []
    for f in files:
        for i, line in enumerate(f.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append((f"{f.name}:{i}", json.loads(line)))
            except json.JSONDecodeError as e:
                raise DataError(f"{f.name} row {i}: not valid JSON ({e})") from None
    return rows


def validate_dialogues(
    rows: Sequence[tuple[str, dict[str, Any]]],
    tokenizer: Any = None,
    max_len: int | None = None,
    require_assistant: bool = True,
) -> None:
    """Refuse a dataset row with an unknown role, an empty turn, a misplaced system turn, no assistant turn, or a
    turn longer than ``max_len`` tokens. Errors name the row (``file:line``)."""
    for where, row in rows:
        msgs = row.get("messages") if isinstance(row, dict) else None
        if not isinstance(msgs, list) or not msgs:
            raise DataError(f"row {where}: 'messages' must be a non-empty list")
        for j, m in enumerate(msgs):
            role = m.get("role") if isinstance(m, dict) else None
            if role not in ROLES:
                raise DataError(f"row {where}: message {j} has unknown role {role!r} (allowed: {', '.join(ROLES)})")
            content = m.get("content")
            if not isinstance(content, str) or not content.strip():
                raise DataError(f"row {where}: message {j} ({role}) is empty")
            if role == "system" and j != 0:
                raise DataError(f"row {where}: a system message may only come first (message {j})")
            if tokenizer is not None and max_len is not None:
                n = len(tokenizer(content, add_special_tokens=False)["input_ids"])
                if n > max_len:
                    raise DataError(
                        f"row {where}: message {j} ({role}) is {n} tokens, over the context length {max_len}"
                    )
        turns = [m["role"] for m in msgs if m["role"] != "system"]
        for a, b in zip(turns, turns[1:]):
            if a == b:
                raise DataError(f"row {where}: two {a} turns in a row (user and assistant must alternate)")
        if turns and turns[0] != "user":
            raise DataError(f"row {where}: the first turn after the system prompt must be the user's")
        if require_assistant and "assistant" not in turns:
            raise DataError(f"row {where}: no assistant turn to learn from")


def ensure_chat_template(tokenizer: Any) -> Any:
    """Give a Gemma tokenizer the Gemma chat template when it has none (the base GGUF ships without one)."""
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = GEMMA_CHAT_TEMPLATE
    return tokenizer


def sft_example(
    tokenizer: Any, messages: Sequence[dict[str, str]], max_len: int
) -> tuple[Int[Tensor, " pos"], Int[Tensor, " pos"]]:
    """(input ids, labels) of one dialogue in its chat template: labels are ``-100`` except on assistant tokens and
    the token that closes each assistant turn (``<end_of_turn>``), so the model learns both to answer and to stop.
    Dialogues longer than ``max_len`` are cut at ``max_len`` tokens."""

    fp = format_conversation(tokenizer, list(messages), kind="chat", add_generation_prompt=False, max_tokens=10**9)
    ids = fp.tokens
    mask = fp.assistant_mask.clone()
    closing = torch.zeros_like(mask)
    closing[1:] = mask[:-1] & ~mask[1:]  # first token after each assistant span
    labels = torch.where(mask | closing, ids, torch.full_like(ids, -100))
    return ids[:max_len], labels[:max_len]


def collate(examples: Sequence[tuple[Tensor, Tensor]], pad_id: int) -> dict[str, Tensor]:
    n = max(len(x) for x, _ in examples)
    ids = torch.full((len(examples), n), pad_id, dtype=torch.long)
    lab = torch.full((len(examples), n), -100, dtype=torch.long)
    att = torch.zeros((len(examples), n), dtype=torch.long)
    for i, (x, y) in enumerate(examples):
        ids[i, : len(x)] = x
        lab[i, : len(y)] = y
        att[i, : len(x)] = 1
    return {"input_ids": ids, "labels": lab, "attention_mask": att}


def length_batches(lengths: Sequence[int], batch_size: int, seed: int) -> list[list[int]]:
    """Shuffled batches of similar-length examples (less padding), in a seeded random order."""
    rng = random.Random(seed)
    idx = list(range(len(lengths)))
    rng.shuffle(idx)
    chunks = [
        sorted(idx[i : i + batch_size * 16], key=lambda j: lengths[j]) for i in range(0, len(idx), batch_size * 16)
    ]
    batches = [c[i : i + batch_size] for c in chunks for i in range(0, len(c), batch_size)]
    rng.shuffle(batches)
    return batches
