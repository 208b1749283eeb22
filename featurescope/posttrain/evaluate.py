"""Post-training evaluation: a model's answers to held-out prompts, the Assistant-format and AI-identity measures,
and the mean projection of its own answers on a trait vector.

The measures on one answer (:func:`assistant_format_ok`, :func:`calls_itself_ai`, :func:`mean_projection`) are
pure; :func:`generate_answers`, :func:`evaluate_assistant` and :func:`trait_projection` drive a model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from ..formatting import FormatKind, format_conversation
from ..measures import identifies_as_ai


# ----------------------------------------------------------------------------------------------------------------
# Evaluation measures (pure)
# ----------------------------------------------------------------------------------------------------------------
def assistant_format_ok(new_tokens: Sequence[int], end_of_turn_id: int, start_of_turn_id: int | None) -> bool:
    """An answer in the Assistant format: non-empty, ends its turn with ``<end_of_turn>``, and does not run on into
    another turn marker before that."""
    toks = list(new_tokens)
    if end_of_turn_id not in toks:
        return False
    k = toks.index(end_of_turn_id)
    return k > 0 and (start_of_turn_id is None or start_of_turn_id not in toks[:k])


def calls_itself_ai(text: str) -> bool:
    """Does a self-description say it is an AI / assistant / language model? (Negation-aware: "I'm not an AI" is
    no; the one definition is :func:`featurescope.measures.identifies_as_ai`, shared with the Assistant axis.)"""
    return identifies_as_ai(text)


def mean_projection(h: Float[Tensor, "n d"], v: Float[Tensor, " d"]) -> float:
    return float((h.float() @ (v.float() / v.float().norm())).mean())


# ----------------------------------------------------------------------------------------------------------------
# Generation and evaluation of a model
# ----------------------------------------------------------------------------------------------------------------
def generate_answers(
    hf: Any,
    tokenizer: Any,
    conversations: Sequence[Sequence[dict[str, str]]],
    *,
    kind: FormatKind,
    device: str,
    max_new_tokens: int,
    batch_size: int = 16,
    sample_seed: int | None = None,
    temperature: float = 1.0,
) -> list[dict[str, Any]]:
    """Answers of ``hf`` to each conversation (chat template or plain transcript), with their new tokens: greedy,
    or sampled at ``temperature`` with ``torch.manual_seed(sample_seed)`` when ``sample_seed`` is given."""

    prompts = [format_conversation(tokenizer, list(c), kind=kind, add_generation_prompt=True) for c in conversations]
    eot = tokenizer.convert_tokens_to_ids("<end_of_turn>")
    stops = [t for t in (tokenizer.eos_token_id, eot if isinstance(eot, int) and eot >= 0 else None) if t is not None]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out = []
    hf.eval()
    sampling: dict[str, Any] = {"do_sample": False}
    if sample_seed is not None:
        torch.manual_seed(sample_seed)
        sampling = {"do_sample": True, "temperature": temperature, "top_p": 1.0, "top_k": 0}
    for i in range(0, len(prompts), batch_size):
        chunk = prompts[i : i + batch_size]
        n = max(len(p) for p in chunk)
        ids = torch.full((len(chunk), n), pad, dtype=torch.long)
        att = torch.zeros((len(chunk), n), dtype=torch.long)
        for j, p in enumerate(chunk):  # left padding for generation
            ids[j, n - len(p) :] = p.tokens
            att[j, n - len(p) :] = 1
        with torch.no_grad():
            gen = hf.generate(
                input_ids=ids.to(device),
                attention_mask=att.to(device),
                max_new_tokens=max_new_tokens,
                **sampling,
                eos_token_id=stops,
                pad_token_id=pad,
            )
        for j, p in enumerate(chunk):
            new = gen[j, n:].tolist()
            text = tokenizer.decode(new, skip_special_tokens=True)
            if kind == "transcript":  # a base model's turn ends at a blank line or the next speaker tag
                text = re.split(r"\n\n|\nUser:", text)[0]
            out.append({"prompt": p.messages[-1].content, "new_tokens": new, "text": text.strip()})
    return out


def evaluate_assistant(
    hf: Any, tokenizer: Any, heldout: Sequence[dict[str, Any]], *, kind: FormatKind, device: str, max_new_tokens: int
) -> dict[str, Any]:
    """Fraction of held-out prompts answered in the Assistant format (stop at end of turn) and fraction of identity
    prompts answered with 'I am an AI / assistant / language model'."""
    eot = tokenizer.convert_tokens_to_ids("<end_of_turn>")
    sot = tokenizer.convert_tokens_to_ids("<start_of_turn>")
    answers = generate_answers(
        hf, tokenizer, [r["messages"] for r in heldout], kind=kind, device=device, max_new_tokens=max_new_tokens
    )
    for r, a in zip(heldout, answers):
        a["id"], a["kind"] = r.get("id"), r.get("kind", "general")
        a["format_ok"] = assistant_format_ok(a["new_tokens"], eot, sot) if kind == "chat" else None
        a["calls_itself_ai"] = calls_itself_ai(a["text"])
        del a["new_tokens"]
    ident = [a for a in answers if a["kind"] == "identity"]
    res: dict[str, Any] = {
        "format": kind,
        "n": len(answers),
        "n_identity": len(ident),
        "identity_ai_fraction": sum(a["calls_itself_ai"] for a in ident) / max(len(ident), 1),
    }
    if kind == "chat":
        res["assistant_format_fraction"] = sum(a["format_ok"] for a in answers) / max(len(answers), 1)
    res["answers"] = answers
    return res


def trait_projection(
    hf: Any, tokenizer: Any, questions: Sequence[str], v: Tensor, layer: int, *, device: str, max_new_tokens: int = 48
) -> dict[str, float]:
    """Mean projection on unit ``v`` (at ``blocks.layer.hook_resid_post`` = HF ``hidden_states[layer+1]``) of the
    model's own chat answers to ``questions``: over response tokens and at the last prompt token."""

    answers = generate_answers(
        hf,
        tokenizer,
        [[{"role": "user", "content": q}] for q in questions],
        kind="chat",
        device=device,
        max_new_tokens=max_new_tokens,
    )
    resp, last = [], []
    for q, a in zip(questions, answers):
        msgs = [{"role": "user", "content": q}, {"role": "assistant", "content": a["text"] or "..."}]
        fp = format_conversation(tokenizer, msgs, kind="chat")
        with torch.no_grad():
            hs = (
                hf(input_ids=fp.tokens[None].to(device), output_hidden_states=True)
                .hidden_states[layer + 1][0]
                .float()
                .cpu()
            )
        m = fp.response_mask
        if m.any():
            resp.append(hs[m].mean(0))
        last.append(hs[fp.last_prompt_index])
    return {
        "response_mean": mean_projection(torch.stack(resp), v) if resp else float("nan"),
        "last_prompt": mean_projection(torch.stack(last), v),
        "n": len(questions),
    }
