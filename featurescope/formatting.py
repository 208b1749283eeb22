"""Prompt formatting per training stage, with token masks.

A post-trained checkpoint sees a conversation through its own chat template; a base checkpoint sees the same
conversation as a plain transcript ("User: ... / Assistant: ..."), with any system prompt turned into a narrator's
preface. Both return a :class:`FormattedPrompt`: the text, its tokens, a per-token role id (system / user /
assistant response / template), and the index of the last prompt token (the token just before the final
assistant response, where Chen et al. read their monitor projection).

Roles are assigned from character offsets: each message's content is located in the rendered text, and a token
belongs to a role when its character span overlaps that content. Template tokens (``<start_of_turn>``, ``User:``)
belong to no role.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from .configs import Config
from .errors import ChatTemplateError, PromptError

#: Gemma 3's chat template (text-only form of the official ``gemma-3-*-it`` template): Gemma has no system role, so a
#: system message is merged into the first user turn; the assistant role is called ``model``.
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}"
    "{%- set first_user_prefix = '' -%}"
    "{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{%- endif -%}"
    "{%- if message['role'] == 'assistant' -%}{%- set role = 'model' -%}{%- else -%}{%- set role = message['role'] -%}{%- endif -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{{ message['content'] | trim }}"
    "{{ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)


Role = Literal["system", "user", "assistant"]
ROLE_IDS: dict[str, int] = {"other": 0, "system": 1, "user": 2, "assistant": 3}
FormatKind = Literal["chat", "transcript", "auto"]


@dataclasses.dataclass(frozen=True)
class Message:
    role: Role
    content: str


Conversation = Sequence[Message]


def as_conversation(x: Any) -> list[Message]:
    """Accept a string (one user turn), a list of ``Message`` or of ``{"role", "content"}`` dicts."""
    if isinstance(x, str):
        msgs = [Message("user", x)]
    elif isinstance(x, Mapping) and "messages" in x:
        return as_conversation(x["messages"])
    elif isinstance(x, Sequence):
        msgs = []
        for i, m in enumerate(x):
            if isinstance(m, Message):
                msgs.append(m)
            elif isinstance(m, Mapping) and "role" in m and "content" in m:
                if m["role"] not in ("system", "user", "assistant"):
                    raise PromptError(f"message {i}: unknown role {m['role']!r} (system, user or assistant)")
                msgs.append(Message(m["role"], m["content"]))
            else:
                raise PromptError(f"message {i} is not a Message or a {{'role', 'content'}} dict: {m!r}")
    else:
        raise PromptError(f"cannot read a conversation from {type(x).__name__}")
    validate_conversation(msgs)
    return msgs


def validate_conversation(msgs: Sequence[Message]) -> None:
    if not msgs:
        raise PromptError("empty conversation")
    for i, m in enumerate(msgs):
        if m.role not in ("system", "user", "assistant"):
            raise PromptError(f"message {i}: unknown role {m.role!r} (system, user or assistant)")
        if not isinstance(m.content, str):
            raise PromptError(f"message {i}: content must be a string")
        if m.role == "system" and i != 0:
            raise PromptError(f"message {i}: a system message may only come first")
        if m.role != "system" and not m.content.strip():
            raise PromptError(f"message {i} ({m.role}) is empty")
    turns = [m for m in msgs if m.role != "system"]
    if not turns or turns[0].role != "user":
        raise PromptError("a conversation must start (after an optional system message) with a user turn")
    for a, b in zip(turns, turns[1:]):
        if a.role == b.role:
            raise PromptError(f"two {a.role} turns in a row; user and assistant turns must alternate")


@dataclasses.dataclass(frozen=True)
class TranscriptFormat(Config):
    """How a base checkpoint sees a conversation: a plain transcript with a narrator's preface."""

    preface: str = "The following is a conversation between a User and an AI Assistant."
    system_preface: str = (
        "The following is a conversation between a User and an AI Assistant. "
        "The Assistant's character is described as follows: {system}"
    )
    user_prefix: str = "User:"
    assistant_prefix: str = "Assistant:"
    separator: str = "\n\n"

    @property
    def stop_strings(self) -> tuple[str, ...]:
        return (self.separator + self.user_prefix, "\n" + self.user_prefix, self.separator + self.assistant_prefix)


DEFAULT_TRANSCRIPT = TranscriptFormat()


@dataclasses.dataclass
class FormattedPrompt:
    """One formatted conversation. ``role_ids`` uses :data:`ROLE_IDS`; padding is never included."""

    text: str
    tokens: Int[Tensor, " pos"]
    role_ids: Int[Tensor, " pos"]
    last_prompt_index: int
    kind: Literal["chat", "transcript"]
    messages: list[Message]
    has_response: bool

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def response_mask(self) -> Bool[Tensor, " pos"]:
        """Tokens of the *final* assistant message (the response being studied)."""
        m = torch.zeros(len(self), dtype=torch.bool)
        if self.has_response:
            m[self.last_prompt_index + 1 :] = self.role_ids[self.last_prompt_index + 1 :] == ROLE_IDS["assistant"]
        return m

    @property
    def assistant_mask(self) -> Bool[Tensor, " pos"]:
        """Tokens of every assistant message (all turns)."""
        return self.role_ids == ROLE_IDS["assistant"]

    @property
    def user_mask(self) -> Bool[Tensor, " pos"]:
        return self.role_ids == ROLE_IDS["user"]

    @property
    def system_mask(self) -> Bool[Tensor, " pos"]:
        return self.role_ids == ROLE_IDS["system"]

    @property
    def prompt_mask(self) -> Bool[Tensor, " pos"]:
        """Every token up to and including the last prompt token."""
        m = torch.zeros(len(self), dtype=torch.bool)
        m[: self.last_prompt_index + 1] = True
        return m

    def pieces(self, tokenizer: Any) -> list[tuple[str, str]]:
        """(token string, role) pairs, for eyeballing masks."""
        inv = {v: k for k, v in ROLE_IDS.items()}
        return [(tokenizer.decode([int(t)]), inv[int(r)]) for t, r in zip(self.tokens, self.role_ids)]


def _model_tokenizer(model_or_tok: Any) -> tuple[Any, str, bool, int | None]:
    """(tokenizer, stage, has_chat_template, n_ctx) from a featurescope Model or a bare tokenizer."""
    tok = getattr(model_or_tok, "tokenizer", None)
    if tok is not None and hasattr(model_or_tok, "info"):
        info = model_or_tok.info
        return tok, info.stage, info.has_chat_template, info.n_ctx or None
    tok = model_or_tok
    return (
        tok,
        "post-trained" if getattr(tok, "chat_template", None) else "base",
        bool(getattr(tok, "chat_template", None)),
        None,
    )


def format_conversation(
    model: Any,
    conversation: Any,
    *,
    kind: FormatKind = "auto",
    add_generation_prompt: bool | None = None,
    transcript: TranscriptFormat = DEFAULT_TRANSCRIPT,
    max_tokens: int | None = None,
) -> FormattedPrompt:
    """Format ``conversation`` for ``model`` (a :class:`featurescope.models.Model` or a tokenizer).

    ``kind="auto"`` uses the chat template for post-trained checkpoints and the transcript for base ones.
    If the conversation ends with a user turn a generation prompt is added (the model answers next); if it ends with
    an assistant turn, that turn is the *response* and ``last_prompt_index`` points just before it.
    """
    tok, stage, has_tpl, n_ctx = _model_tokenizer(model)
    msgs = as_conversation(conversation)
    if kind == "auto":
        kind = "chat" if stage == "post-trained" and has_tpl else "transcript"
    if kind == "chat":
        if not getattr(tok, "chat_template", None):
            raise ChatTemplateError(
                "chat formatting was asked of a model without a chat template; use kind='transcript' (the base-model "
                "framing) or load a post-trained checkpoint"
            )
        text, spans, prompt_chars = _render_chat(tok, msgs, add_generation_prompt)
        add_special = False  # the template writes its own BOS
    elif kind == "transcript":
        text, spans, prompt_chars = _render_transcript(tok, msgs, transcript, add_generation_prompt)
        add_special = False  # _render_transcript writes the BOS text itself when the tokenizer uses one
    else:
        raise PromptError(f"unknown format kind {kind!r}: chat, transcript or auto")
    enc = tok(text, add_special_tokens=add_special, return_offsets_mapping=True)
    ids = torch.tensor(enc["input_ids"], dtype=torch.long)
    offsets = enc["offset_mapping"]
    limit = max_tokens or n_ctx
    if limit and len(ids) > limit:
        raise PromptError(f"prompt is {len(ids)} tokens, longer than the context ({limit}): {text[:80]!r}...")
    role_ids = torch.zeros(len(ids), dtype=torch.long)
    last_prompt = -1
    for i, (a, b) in enumerate(offsets):
        if b <= prompt_chars:
            last_prompt = i
        if b <= a:
            continue
        for s, e, role in spans:
            if a < e and b > s:
                role_ids[i] = ROLE_IDS[role]
                break
    if last_prompt < 0:
        raise PromptError("could not locate the end of the prompt in the tokenized text")
    has_response = msgs[-1].role == "assistant"
    return FormattedPrompt(
        text=text,
        tokens=ids,
        role_ids=role_ids,
        last_prompt_index=last_prompt,
        kind=kind,
        messages=list(msgs),
        has_response=has_response,
    )


def _locate(text: str, msgs: Sequence[Message], start: int = 0) -> list[tuple[int, int, str]]:
    spans = []
    cur = start
    for m in msgs:
        c = m.content.strip()
        if not c:
            continue
        j = text.find(c, cur)
        if j < 0:
            raise PromptError(f"could not find the {m.role} message in the rendered template: {c[:60]!r}")
        spans.append((j, j + len(c), m.role))
        cur = j + len(c)
    return spans


def _render_chat(tok: Any, msgs: list[Message], add_generation_prompt: bool | None) -> tuple[str, list, int]:
    as_dicts = [{"role": m.role, "content": m.content} for m in msgs]
    ends_with_response = msgs[-1].role == "assistant"
    if add_generation_prompt is None:
        add_generation_prompt = not ends_with_response
    try:
        text = tok.apply_chat_template(as_dicts, tokenize=False, add_generation_prompt=add_generation_prompt)
        if ends_with_response:
            prompt = tok.apply_chat_template(as_dicts[:-1], tokenize=False, add_generation_prompt=True)
        else:
            prompt = text
    except Exception as e:  # jinja errors (e.g. "roles must alternate") come through here
        raise ChatTemplateError(f"the chat template rejected this conversation: {e}") from e
    if not text.startswith(prompt):
        # Some templates render the last assistant turn differently; fall back to the response's own offset.
        spans = _locate(text, msgs)
        return text, spans, spans[-1][0]
    spans = _locate(text, msgs)
    return text, spans, len(prompt)


def _bos_text(tok: Any) -> str:
    """The BOS string to write in front of a plain transcript, if this tokenizer adds one by default."""
    bos = getattr(tok, "bos_token", None)
    if not bos:
        return ""
    probe = tok("a", add_special_tokens=True)["input_ids"]
    return bos if probe and probe[0] == tok.bos_token_id else ""


def _render_transcript(
    tok: Any, msgs: list[Message], fmt: TranscriptFormat, add_generation_prompt: bool | None
) -> tuple[str, list, int]:
    spans: list[tuple[int, int, str]] = []
    text = _bos_text(tok)
    system = msgs[0].content.strip() if msgs[0].role == "system" else ""
    body = msgs[1:] if msgs[0].role == "system" else msgs
    if system:
        pre = fmt.system_preface.format(system="\x00")
        k = pre.index("\x00")
        spans.append((len(text) + k, len(text) + k + len(system), "system"))
        text += pre.replace("\x00", system)
    elif fmt.preface:
        text += fmt.preface
    prompt_chars = -1
    ends_with_response = body[-1].role == "assistant"
    for i, m in enumerate(body):
        prefix = fmt.user_prefix if m.role == "user" else fmt.assistant_prefix
        if text:
            text += fmt.separator
        text += prefix
        if ends_with_response and i == len(body) - 1:
            prompt_chars = len(text)
        text += " "
        c = m.content.strip()
        spans.append((len(text), len(text) + len(c), m.role))
        text += c
    if add_generation_prompt is None:
        add_generation_prompt = not ends_with_response
    if add_generation_prompt:
        text += fmt.separator + fmt.assistant_prefix
        prompt_chars = len(text)
    elif prompt_chars < 0:
        prompt_chars = len(text)
    return text, spans, prompt_chars


def prompts_hash(prompts: Sequence[FormattedPrompt]) -> str:
    """Stable hash of a prompt set (token ids and role ids), used by the activation store manifest."""
    h = hashlib.sha256()
    for p in prompts:
        h.update(json.dumps([p.tokens.tolist(), p.role_ids.tolist(), p.last_prompt_index]).encode())
    return h.hexdigest()


def pad_batch(
    prompts: Sequence[FormattedPrompt], pad_id: int
) -> tuple[Int[Tensor, "batch pos"], Int[Tensor, "batch pos"], Int[Tensor, " batch"]]:
    """Right-pad a batch. Causal attention means right padding never changes the real tokens' activations, so no
    attention mask is needed. Returns (tokens, role_ids with -1 on padding, lengths)."""
    n = max(len(p) for p in prompts)
    toks = torch.full((len(prompts), n), pad_id, dtype=torch.long)
    roles = torch.full((len(prompts), n), -1, dtype=torch.long)
    lens = torch.tensor([len(p) for p in prompts], dtype=torch.long)
    for i, p in enumerate(prompts):
        toks[i, : len(p)] = p.tokens
        roles[i, : len(p)] = p.role_ids
    return toks, roles, lens
