"""Batched, seeded generation with the same formatting as capture, returning responses with token masks.

Generation runs through TransformerLens' own ``generate`` (KV cache, left padding), so any TransformerLens hook
(steering, capping) is active while tokens are sampled. Prompts are sorted by length before batching. A response
stops at the model's end-of-turn / EOS tokens or, for base-model transcripts, where the transcript's next
``User:`` turn would start. Each result is re-formatted as a full conversation so its ``response_mask`` and
``last_prompt_index`` are ready for :func:`featurescope.capture.capture`.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from .configs import Config
from .errors import FeaturescopeError, PromptError
from .formatting import (
    DEFAULT_TRANSCRIPT,
    FormattedPrompt,
    Message,
    TranscriptFormat,
    as_conversation,
    format_conversation,
)
from .measures import degenerate_fraction
from .models import Model


@dataclasses.dataclass(frozen=True)
class GenerationConfig(Config):
    max_new_tokens: int = 64
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float | None = None
    seed: int = 0
    batch_size: int = 8


@dataclasses.dataclass
class Generation:
    """One generated response. ``formatted`` is the whole conversation including the response."""

    messages: list[Message]
    prompt: FormattedPrompt
    response: str
    formatted: FormattedPrompt | None  # None when the model produced an empty response
    new_tokens: int
    stopped: bool  # ended at an end-of-turn token / stop string (False: hit max_new_tokens)

    def __repr__(self) -> str:
        return f"Generation(response={self.response[:80]!r}{'...' if len(self.response) > 80 else ''}, new_tokens={self.new_tokens}, stopped={self.stopped})"


def stop_token_ids(model: Model) -> list[int]:
    """EOS plus end-of-turn tokens the tokenizer knows (``<end_of_turn>``, ``<|im_end|>``, ``<|eot_id|>``)."""
    tok = model.tokenizer
    ids = set()
    if tok.eos_token_id is not None:
        ids.add(int(tok.eos_token_id))
    vocab = tok.get_vocab()
    for t in ("<end_of_turn>", "<|im_end|>", "<|eot_id|>", "<|end|>", "<|endoftext|>"):
        if t in vocab:
            ids.add(int(vocab[t]))
    return sorted(ids)


def generate(
    model: Model,
    conversations: Sequence[Any],
    *,
    max_new_tokens: int = 64,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float | None = None,
    seed: int = 0,
    batch_size: int = 8,
    kind: str = "auto",
    transcript: TranscriptFormat = DEFAULT_TRANSCRIPT,
    fwd_hooks: Sequence[tuple[str, Callable]] = (),
    progress: bool = True,
    config: GenerationConfig | None = None,
) -> list[Generation]:
    """Generate one response per conversation (each must end with a user turn). Greedy unless ``do_sample``.

    Sampling is seeded per batch from ``seed`` so results do not depend on the other prompts' order.
    ``fwd_hooks`` (TransformerLens ``(name, fn)`` pairs) stay active during generation.
    """
    if config is not None:
        given = {
            "max_new_tokens": max_new_tokens,
            "do_sample": do_sample,
            "temperature": temperature,
            "top_p": top_p,
            "seed": seed,
            "batch_size": batch_size,
        }
        defaults = GenerationConfig()
        mixed = [k for k, v in given.items() if v != getattr(defaults, k)]
        if mixed:
            raise FeaturescopeError(
                f"pass either config= or keyword settings, not both (got config= and "
                f"{', '.join(mixed)}=); use dataclasses.replace(config, ...) to change a setting"
            )
        max_new_tokens, do_sample, temperature, top_p, seed, batch_size = (
            config.max_new_tokens,
            config.do_sample,
            config.temperature,
            config.top_p,
            config.seed,
            config.batch_size,
        )
    if isinstance(conversations, (str, dict)) or (conversations and isinstance(conversations[0], Message)):
        conversations = [conversations]  # type: ignore[list-item]
    if not conversations:
        raise PromptError("no prompts to generate from")
    if max_new_tokens < 1:
        raise ValueError("max_new_tokens must be >= 1")
    convs = []
    for i, c in enumerate(conversations):
        msgs = as_conversation(c)
        if msgs[-1].role != "user":
            raise PromptError(f"conversation {i} ends with an {msgs[-1].role} turn; generation needs a final user turn")
        convs.append(msgs)
    prompts = [format_conversation(model, c, kind=kind, transcript=transcript) for c in convs]  # type: ignore[arg-type]
    n_ctx = model.info.n_ctx
    for i, p in enumerate(prompts):
        if n_ctx and len(p) + max_new_tokens > n_ctx:
            raise PromptError(
                f"prompt {i} ({len(p)} tokens) + max_new_tokens ({max_new_tokens}) exceeds the context ({n_ctx})"
            )
    stops = stop_token_ids(model)
    stop_strings: tuple[str, ...] = ()
    if prompts[0].kind == "transcript":
        stop_strings = transcript.stop_strings
        # The transcript separates turns with a blank line: if that is one token, stop on it (a base model rarely
        # emits EOS, and otherwise every row runs to max_new_tokens).
        sep = model.tokenizer.encode(transcript.separator, add_special_tokens=False)
        if len(sep) == 1:
            stops = sorted(set(stops) | {int(sep[0])})
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: list[Generation | None] = [None] * len(prompts)
    bar = tqdm(
        total=len(prompts),
        desc=f"generate {model.name}",
        unit="prompt",
        disable=not progress or len(prompts) <= batch_size,
    )
    for bi in range(0, len(order), batch_size):
        idx = order[bi : bi + batch_size]
        new = generate_batch(
            model,
            [prompts[i] for i in idx],
            max_new_tokens=max_new_tokens,
            do_sample=do_sample,
            temperature=temperature,
            top_p=top_p,
            seed=seed + bi,
            stops=stops,
            fwd_hooks=fwd_hooks,
        )
        for i, toks in zip(idx, new):
            out[i] = _finish(model, convs[i], prompts[i], toks, stops, stop_strings, kind, transcript)
        bar.update(len(idx))
    bar.close()
    result = [g for g in out if g is not None]
    # only unsteered decoding says anything about the install: skip the check under hooks given here or active in a
    # caller's context (``steer``, capping), where broken text is the intervention's doing
    steered = bool(fwd_hooks) or _hooks_active(model)
    bad = degenerate_fraction([g.response for g in result]) if not steered and len(result) >= 4 else 0.0
    if bad >= 0.9:
        warnings.warn(
            f"{model.name}: {bad:.0%} of {len(result)} unsteered answers "
            f"look degenerate (e.g. {result[0].response[:40]!r}): decoding is probably broken. Check the installed "
            "versions with `python -m featurescope.versions` (known upstream breaks are listed there) and install "
            "the locked set with scripts/setup.sh.",
            RuntimeWarning,
            stacklevel=2,
        )
    return result


def generate_batch(
    model: Model,
    prompts: list[FormattedPrompt],
    *,
    max_new_tokens: int,
    do_sample: bool,
    temperature: float,
    top_p: float | None,
    seed: int,
    stops: list[int],
    fwd_hooks: Sequence[tuple[str, Callable]],
) -> list[list[int]]:
    """Left-padded batched generation; returns the new token ids of each row (pads removed)."""
    tl = model.tl
    tok = model.tokenizer
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else stops[0]
    n = max(len(p) for p in prompts)
    toks = torch.full((len(prompts), n), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), n), dtype=torch.long)
    for i, p in enumerate(prompts):
        toks[i, n - len(p) :] = p.tokens
        mask[i, n - len(p) :] = 1
    torch.manual_seed(seed)
    kw: dict[str, Any] = dict(
        max_new_tokens=max_new_tokens,
        do_sample=do_sample,
        temperature=temperature,
        top_p=top_p,
        stop_at_eos=True,
        eos_token_id=stops if len(stops) > 1 else stops[0],
        use_past_kv_cache=True,
        verbose=False,
        return_type="tokens",
    )
    device = model.device
    with torch.inference_mode(), tl.hooks(fwd_hooks=list(fwd_hooks)):
        if model.is_bridge:
            res = tl.generate(toks.to(device), attention_mask=mask.to(device), prepend_bos=False, **kw)
        else:
            old = tl.tokenizer.padding_side
            old_pad = tl.tokenizer.pad_token_id
            try:
                tl.tokenizer.padding_side = "left"
                res = tl.generate(toks.to(device), prepend_bos=False, padding_side="left", **kw)
            finally:
                tl.tokenizer.padding_side = old
                assert tl.tokenizer.pad_token_id == old_pad
    res = res.cpu()
    return [res[i, n:].tolist() for i in range(len(prompts))]


def _finish(
    model: Model,
    msgs: list[Message],
    prompt: FormattedPrompt,
    new: list[int],
    stops: list[int],
    stop_strings: Sequence[str],
    kind: str,
    transcript: TranscriptFormat,
) -> Generation:
    stopped = False
    cut = len(new)
    for j, t in enumerate(new):
        if t in stops:
            cut, stopped = j, True
            break
    text = model.tokenizer.decode(new[:cut], skip_special_tokens=True)
    for s in stop_strings:
        k = text.find(s)
        if k >= 0:
            text, stopped = text[:k], True
    response = text.strip()
    full_msgs = list(msgs) + [Message("assistant", response)]
    formatted = format_conversation(model, full_msgs, kind=prompt.kind, transcript=transcript) if response else None
    return Generation(
        messages=full_msgs, prompt=prompt, response=response, formatted=formatted, new_tokens=cut, stopped=stopped
    )


def _hooks_active(model: Model) -> bool:
    """Whether any TransformerLens forward hook is attached to the model right now."""
    try:
        return any(len(getattr(hp, "fwd_hooks", ()) or ()) > 0 for hp in model.tl.hook_dict.values())
    except AttributeError:
        return False
