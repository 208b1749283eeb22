"""Stages: texts: held-out corpus rows and packed chat rows (I/O)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import einops
import torch
from jaxtyping import Int
from torch import Tensor

from .. import corpus
from ..capture import capture
from ..formatting import FormattedPrompt, format_conversation
from ..generate import generate
from ..models import Model
from .constants import StageMismatchError, StagesError


@dataclasses.dataclass
class TokenRows:
    """``[n, context]`` token rows (each starting with BOS) with a role id per token (3 = Assistant)."""

    tokens: Int[Tensor, "n ctx"]
    role_ids: Int[Tensor, "n ctx"]
    description: str


def pack_conversations(prompts: Sequence[Any], context: int, bos_id: int | None) -> TokenRows:
    """Concatenate formatted conversations (token ids + role ids, each with its own BOS) and cut the stream into
    ``context``-token rows that each start with BOS, as :func:`featurescope.corpus.token_sequences` packs documents.
    No padding, so CE-loss over whole rows is well defined. A partial last row is dropped unless it is the only one."""
    toks = torch.cat([p.tokens for p in prompts])
    roles = torch.cat([p.role_ids for p in prompts])
    lead = 1 if bos_id is not None else 0
    body = context - lead
    n = len(toks) // body
    if n == 0:
        raise StagesError(f"the conversations hold {len(toks)} tokens, fewer than one row of {context}")
    toks = einops.rearrange(toks[: n * body], "(n p) -> n p", p=body)
    roles = einops.rearrange(roles[: n * body], "(n p) -> n p", p=body)
    if bos_id is not None:
        toks = torch.cat([torch.full((n, 1), bos_id, dtype=torch.long), toks], 1)
        roles = torch.cat([torch.zeros((n, 1), dtype=torch.long), roles], 1)
    return TokenRows(toks, roles, f"{len(prompts)} conversations packed into {n} rows of {context} tokens")


def heldout_dialogues(n: int | None = None) -> list[list[dict[str, str]]]:
    path = Path(__file__).parent.parent / "data" / "dialogues" / "heldout.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return [r["messages"] for r in rows[:n]]


def prepare_chat_rows(
    post_model: Model,
    *,
    n_dialogues: int = 60,
    max_new_tokens: int = 48,
    context: int = 128,
    conversations: Sequence[Any] | None = None,
    batch_size: int = 8,
    progress: bool = True,
) -> tuple[TokenRows, list[dict[str, Any]]]:
    """Chat-formatted rows in the post-trained model's template. ``conversations`` ending with an assistant turn are
    used as they are; otherwise the post-trained model answers the held-out prompts (greedy) first."""

    if conversations is None:
        prompts = heldout_dialogues(n_dialogues)
        gens = generate(post_model, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress)
        fps = [g.formatted for g in gens if g.formatted is not None]
        rows = [
            {"prompt": p[-1]["content"], "response": g.response, "new_tokens": g.new_tokens, "stopped": g.stopped}
            for p, g in zip(prompts, gens)
        ]
        src = (
            f"featurescope/data/dialogues/heldout.jsonl ({len(prompts)} prompts) with greedy responses of "
            f"{post_model.name} (max {max_new_tokens} new tokens)"
        )
    else:
        fps = [format_conversation(post_model, c, kind="chat") for c in conversations]
        rows = [{"messages": [dataclasses.asdict(m) for m in fp.messages]} for fp in fps]
        src = f"{len(fps)} given conversations"
    if not fps:
        raise StagesError("no chat conversations to evaluate on (every generated response was empty)")
    packed = pack_conversations(fps, context, post_model.tokenizer.bos_token_id)
    packed.description = (
        f"{src}; formatted with {post_model.name}'s chat template; {packed.description}; the base "
        "model is evaluated on these same token ids"
    )
    return packed, rows


def prepare_plain_rows(tokenizer: Any, *, n_rows: int = 48, context: int = 128, seed: int = 1) -> TokenRows:
    """Held-out rows of the offline corpus (:mod:`featurescope.corpus`)."""

    if hasattr(corpus, "sequences"):
        toks = corpus.sequences(tokenizer, "heldout", context_size=context, max_sequences=n_rows, seed=seed)
    else:
        corpus.ensure_installed()
        toks = corpus.token_sequences(
            tokenizer, corpus.documents("heldout"), context_size=context, max_sequences=n_rows, seed=seed
        )
    return TokenRows(
        toks.long(),
        torch.zeros_like(toks, dtype=torch.long),
        f"{len(toks)} held-out rows of {context} tokens of the offline corpus (python-docs, fortunes, "
        f"dialogues; seed {seed})",
    )


def check_pair(base_model: Model, post_model: Model, hook: str) -> None:
    """Both checkpoints must share the tokenizer (to evaluate on the same token ids), the width and the hook."""
    if base_model.d_model != post_model.d_model:
        raise StageMismatchError(
            f"{base_model.name} has d_model {base_model.d_model} but {post_model.name} has "
            f"{post_model.d_model}: not two checkpoints of one architecture"
        )
    if base_model.n_layers != post_model.n_layers:
        raise StageMismatchError(
            f"{base_model.name} has {base_model.n_layers} layers, {post_model.name} {post_model.n_layers}"
        )
    tb, tp = base_model.tokenizer, post_model.tokenizer
    probe = "The Assistant said: hello, world! 42 <start_of_turn>"
    if (
        len(tb) != len(tp)
        or tb(probe, add_special_tokens=False)["input_ids"] != tp(probe, add_special_tokens=False)["input_ids"]
    ):
        raise StageMismatchError(
            f"{base_model.name} and {post_model.name} tokenize differently; the stages comparison "
            "evaluates both on the same token ids and needs one tokenizer"
        )
    base_model.check_hook(hook)
    post_model.check_hook(hook)


def capture_rows(model: Model, rows: TokenRows, hook: str, batch_size: int = 16) -> tuple[Tensor, Tensor, Tensor]:
    """Activations at ``hook`` for every token of ``rows`` -> (acts [n*ctx, d], role ids, keep mask excluding BOS and
    padding, as :func:`featurescope.saes.evaluate_sae` does)."""

    prompts = [
        FormattedPrompt(
            text="",
            tokens=t,
            role_ids=r,
            last_prompt_index=len(t) - 1,
            kind="transcript",
            messages=[],
            has_response=False,
        )
        for t, r in zip(rows.tokens, rows.role_ids)
    ]
    acts = capture(model, prompts, [hook], reduction="all", batch_size=batch_size, progress=False)[hook]
    flat = rows.tokens.reshape(-1)
    keep = torch.ones(len(flat), dtype=torch.bool)
    for t in {model.tokenizer.bos_token_id, model.tokenizer.pad_token_id} - {None}:
        keep &= flat != t
    return acts, rows.role_ids.reshape(-1), keep
