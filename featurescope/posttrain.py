"""Post-training: turn a base checkpoint into an Assistant with LoRA supervised fine-tuning (``peft``), evaluate it,
and optionally apply Chen et al.'s *preventative steering* (add ``alpha * v`` of a persona vector at one layer during
training, so the optimiser need not move the weights along ``v``).

The offline post-trained checkpoint ``offline:gemma-3-270m-sft`` is the real Gemma 3 270M base plus the adapter this
module trains on the project's own dialogues (``featurescope/data/dialogues``), formatted with the Gemma chat template
(the same format as the official ``google/gemma-3-270m-it``). Loss is on assistant tokens only, including the
``<end_of_turn>`` that closes each assistant turn, so the model learns to stop.

Core pieces are pure functions (``validate_dialogues``, ``sft_example``, ``assistant_format_ok``,
``calls_itself_ai``); :func:`posttrain` does the I/O (model, optimiser, adapter, summary).
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from . import plots
from .configs import Config
from .errors import DataError, FeaturescopeError
from .formatting import (
    GEMMA_CHAT_TEMPLATE,  # its home is formatting; still importable from here
    FormatKind,
    format_conversation,
)
from .measures import identifies_as_ai
from .models import OFFLINE_MODELS, OFFLINE_PREFIX, load_offline_hf
from .persona import PersonaVector
from .runs import write_summary
from .traits import load_trait

DIALOGUES = Path(__file__).parent / "data" / "dialogues"

ROLES = ("system", "user", "assistant")


@dataclasses.dataclass(frozen=True)
class PosttrainConfig(Config):
    base: str = "offline:gemma-3-270m"
    data: str = str(DIALOGUES)  # folder of sft-*.jsonl shards, or one .jsonl file
    heldout: str = str(DIALOGUES / "heldout.jsonl")
    epochs: int = 3
    lr: float = 2e-4
    batch_size: int = 8
    max_len: int = 1024
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    warmup_steps: int = 20
    seed: int = 0
    steer_vector: str | None = None  # persona vector (.safetensors) for preventative steering
    steer_layer: int | None = None  # TransformerLens block index: added to blocks.L.hook_resid_post
    steer_alpha: float = 5.0
    eval_max_new_tokens: int = 96
    max_dialogues: int | None = None  # seeded random subset of the dataset (a shorter run, e.g. on a CPU)
    # Embedding rows trained with the adapter (peft trainable tokens; tied to the unembedding in Gemma): the chat
    # template's turn markers. A base model has rarely had to *emit* <end_of_turn>; with LoRA alone a short run
    # learns the answers but not to stop (measured: 0% of answers ended their turn after 60 steps).
    train_tokens: tuple[str, ...] = ("<start_of_turn>", "<end_of_turn>")
    # With steer_vector: an adapter already trained with this same recipe but without steering (e.g. the shipped
    # offline:gemma-3-270m-sft) serves as the "without" arm instead of training it again.
    baseline_adapter: str | None = None
    base_eval: bool = True  # evaluate the base model's Assistant format / identity (slow: the base never stops)


# ----------------------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------------------
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
# Training
# ----------------------------------------------------------------------------------------------------------------
def _decoder_layers(hf: Any) -> Any:
    for path in ("model.layers", "base_model.model.model.layers", "model.model.layers", "model.language_model.layers"):
        obj = hf
        try:
            for part in path.split("."):
                obj = getattr(obj, part)
            return obj
        except AttributeError:
            continue
    raise FeaturescopeError("cannot find the decoder layers of this model for steering")


class _AddToLayer:
    """Forward hook adding ``alpha * v`` to a decoder layer's output hidden states (= TL ``blocks.L.hook_resid_post``)."""

    def __init__(self, v: Tensor, alpha: float):
        self.delta = alpha * v

    def __call__(self, module: Any, inputs: Any, output: Any) -> Any:
        if isinstance(output, tuple):
            return (output[0] + self.delta.to(output[0].dtype), *output[1:])
        return output + self.delta.to(output.dtype)


def _lr_at(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    p = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(p, 1.0)))


def train_adapter(
    hf: Any,
    tokenizer: Any,
    examples: Sequence[tuple[Tensor, Tensor]],
    cfg: PosttrainConfig,
    out_dir: Path,
    *,
    device: str,
    steer: tuple[Tensor, int] | None = None,
    progress: bool = True,
    on_step: Callable[[int, Any], None] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """LoRA SFT of ``hf`` (peft); saves the adapter (fp16) to ``out_dir``; returns the peft model and the loss curve.
    ``on_step(step, model)`` is called before the first step (step 0) and after every step (e.g. to save and measure
    checkpoints; the model is in train mode when it returns)."""
    from peft import LoraConfig, get_peft_model
    from tqdm.auto import tqdm

    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    token_ids = sorted(
        {tokenizer.convert_tokens_to_ids(t) for t in cfg.train_tokens}, key=lambda i: (i is None, i or 0)
    )
    unk = tokenizer.unk_token_id
    if any(i is None or i < 0 or (unk is not None and i == unk) for i in token_ids):
        raise FeaturescopeError(f"train_tokens {cfg.train_tokens} are not all single tokens of this tokenizer")
    extra: dict[str, Any] = {"trainable_token_indices": {_embedding_name(hf): token_ids}} if token_ids else {}
    lcfg = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=list(cfg.target_modules),
        task_type="CAUSAL_LM",
        **extra,
    )
    model = get_peft_model(hf, lcfg)
    model.to(device)
    model.train()
    handle = None
    if steer is not None:
        v, layer = steer
        handle = _decoder_layers(model)[layer].register_forward_hook(_AddToLayer(v.to(device), cfg.steer_alpha))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    lengths = [len(x) for x, _ in examples]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    steps_per_epoch = len(length_batches(lengths, cfg.batch_size, 0))
    total = steps_per_epoch * cfg.epochs
    losses: list[float] = []
    use_bf16 = device.startswith("cuda") and torch.cuda.is_bf16_supported()
    step = 0
    bar = tqdm(total=total, desc="SFT (LoRA)", disable=not progress)
    if on_step is not None:
        on_step(0, model)
        model.train()
    try:
        for epoch in range(cfg.epochs):
            for b in length_batches(lengths, cfg.batch_size, cfg.seed + epoch):
                batch = {k: t.to(device) for k, t in collate([examples[i] for i in b], pad).items()}
                for g in opt.param_groups:
                    g["lr"] = cfg.lr * _lr_at(step, total, cfg.warmup_steps)
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16):
                    loss = sft_loss(model, batch["input_ids"], batch["attention_mask"], batch["labels"])
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                opt.zero_grad(set_to_none=True)
                losses.append(float(loss.detach()))
                step += 1
                bar.update(1)
                if on_step is not None:
                    on_step(step, model)
                    model.train()
                bar.set_postfix(epoch=epoch, loss=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}")
    finally:
        bar.close()
        if handle is not None:
            handle.remove()
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir))
    _compact_adapter(out_dir)
    return model, {
        "losses": losses,
        "steps": step,
        "steps_per_epoch": steps_per_epoch,
        "trainable_parameters": int(sum(p.numel() for p in params)),
    }


def _embedding_name(hf: Any) -> str:
    """Module name of the input embedding (``embed_tokens`` in Llama / Gemma)."""
    emb = hf.get_input_embeddings()
    for name, mod in hf.named_modules():
        if mod is emb:
            return name.rsplit(".", 1)[-1]
    raise FeaturescopeError("could not find the input embedding module")


def sft_loss(
    model: Any,
    input_ids: Int[Tensor, "batch pos"],
    attention_mask: Int[Tensor, "batch pos"],
    labels: Int[Tensor, "batch pos"],
) -> Tensor:
    """Next-token cross-entropy on the supervised positions only. The unembedding is applied to those positions
    alone: with Gemma's 262k-token vocabulary it is most of a forward pass, and prompt tokens need no logits.
    Equals the mean loss ``model(..., labels=labels)`` computes."""
    causal = model.get_base_model() if hasattr(model, "get_base_model") else model
    h = causal.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    target = labels[:, 1:]
    sel = target != -100
    logits = causal.lm_head(h[:, :-1][sel])
    cap = getattr(causal.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return torch.nn.functional.cross_entropy(logits.float(), target[sel])


def _compact_adapter(folder: Path) -> None:
    from safetensors.torch import load_file, save_file

    f = folder / "adapter_model.safetensors"
    w = load_file(str(f))
    save_file({k: v.to(torch.float16).contiguous() for k, v in w.items()}, str(f))


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


def posttrain(
    cfg: PosttrainConfig,
    out_dir: str | Path,
    *,
    device: str | None = None,
    progress: bool = True,
    evaluate: bool = True,
) -> dict[str, Any]:
    """Train the adapter (and, with a steering vector, a second one trained under preventative steering), evaluate
    base vs post-trained on held-out prompts, and write ``summary.json``, the loss curve and the adapter(s)."""

    t0 = time.time()
    out = Path(out_dir)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if not cfg.base.startswith(OFFLINE_PREFIX) or cfg.base[len(OFFLINE_PREFIX) :] not in OFFLINE_MODELS:
        raise FeaturescopeError(f"posttrain works on an offline base checkpoint here; got {cfg.base!r}")
    spec = OFFLINE_MODELS[cfg.base[len(OFFLINE_PREFIX) :]]
    if cfg.baseline_adapter and not cfg.steer_vector:
        raise FeaturescopeError(
            "baseline_adapter is the unsteered arm of a preventative-steering run: give steer_vector too"
        )
    if cfg.baseline_adapter and not (Path(cfg.baseline_adapter) / "adapter_config.json").exists():
        raise FeaturescopeError(f"no peft adapter at {cfg.baseline_adapter} (adapter_config.json missing)")

    def fresh() -> tuple[Any, Any]:
        hf, tok, _ = load_offline_hf(spec, torch.float32, progress)
        return hf, ensure_chat_template(tok)

    hf, tok = fresh()
    rows = read_dialogues(cfg.data)
    validate_dialogues(rows, tok, cfg.max_len)
    n_available = len(rows)
    if cfg.max_dialogues is not None and cfg.max_dialogues < len(rows):
        keep = sorted(random.Random(cfg.seed).sample(range(len(rows)), cfg.max_dialogues))
        rows = [rows[i] for i in keep]
    held_rows = read_dialogues(cfg.heldout)
    validate_dialogues(held_rows, tok, cfg.max_len, require_assistant=False)
    heldout = [r for _, r in held_rows]
    examples = [sft_example(tok, r["messages"], cfg.max_len) for _, r in rows]
    n_tok = sum(len(x) for x, _ in examples)
    n_sup = sum(int((y != -100).sum()) for _, y in examples)
    timings: dict[str, float] = {}
    results: dict[str, Any] = {
        "dataset": {
            "dialogues": len(examples),
            "available": n_available,
            "tokens": n_tok,
            "supervised_tokens": n_sup,
            "with_system_prompt": sum(r["messages"][0]["role"] == "system" for _, r in rows),
            "multi_turn": sum(sum(m["role"] == "assistant" for m in r["messages"]) > 1 for _, r in rows),
        }
    }
    steer = None
    if cfg.steer_vector:
        if cfg.steer_layer is None:
            raise FeaturescopeError("preventative steering needs steer_layer (the block whose output gets alpha * v)")
        pv = PersonaVector.load(cfg.steer_vector)
        steer = (pv.at(f"blocks.{cfg.steer_layer}.hook_resid_post").float(), cfg.steer_layer)

    # base model evaluation first (same prompts, chat template and transcript framing)
    if evaluate and cfg.base_eval:
        t = time.time()
        hf.to(device)
        results["base_eval"] = {
            "chat": evaluate_assistant(
                hf, tok, heldout, kind="chat", device=device, max_new_tokens=cfg.eval_max_new_tokens
            ),
            "transcript": evaluate_assistant(
                hf, tok, heldout, kind="transcript", device=device, max_new_tokens=cfg.eval_max_new_tokens
            ),
        }
        timings["eval_base"] = time.time() - t
    runs = [("adapter", None)] + ([("adapter-preventative", steer)] if steer else [])
    figs = []
    for name, st in runs:
        if name != "adapter":
            hf, tok = fresh()
        t = time.time()
        if name == "adapter" and cfg.baseline_adapter:
            from peft import PeftModel

            peft_model = PeftModel.from_pretrained(hf, cfg.baseline_adapter).to(device)
            results[name] = {"reused": str(cfg.baseline_adapter)}
            prev = Path(cfg.baseline_adapter) / "posttrain_summary.json"
            if prev.exists():
                results[name]["final_loss"] = (
                    json.loads(prev.read_text()).get("results", {}).get("adapter", {}).get("final_loss")
                )
        else:
            peft_model, tr = train_adapter(
                hf, tok, examples, cfg, out / name, device=device, steer=st, progress=progress
            )
            timings[f"train_{name}"] = time.time() - t
            results[name] = {k: v for k, v in tr.items() if k != "losses"}
            results[name]["final_loss"] = sum(tr["losses"][-20:]) / len(tr["losses"][-20:])
            results[name]["size_bytes"] = sum(f.stat().st_size for f in (out / name).iterdir())
            figs.append(
                plots.layer_profile(
                    out / f"loss_{name}.png",
                    {"training loss (assistant tokens)": tr["losses"]},
                    f"LoRA SFT of {cfg.base} on {len(examples)} dialogues ({name})",
                    "loss",
                    xlabel="step",
                )
            )
        if evaluate:
            t = time.time()
            merged = peft_model.merge_and_unload()
            results[name]["eval"] = {
                "chat": evaluate_assistant(
                    merged, tok, heldout, kind="chat", device=device, max_new_tokens=cfg.eval_max_new_tokens
                )
            }
            if steer is not None:
                trait = load_trait(PersonaVector.load(str(cfg.steer_vector)).trait)
                results[name]["trait_projection"] = trait_projection(
                    merged, tok, trait.eval_questions[:20], steer[0], steer[1], device=device
                )
            timings[f"eval_{name}"] = time.time() - t
    if evaluate and steer is not None:
        base_hf, _ = fresh()
        base_hf.to(device)
        trait = load_trait(PersonaVector.load(str(cfg.steer_vector)).trait)
        results["base_trait_projection"] = trait_projection(
            base_hf, tok, trait.eval_questions[:20], steer[0], steer[1], device=device
        )
    write_summary(
        out,
        "posttrain",
        inputs={"config": cfg.to_dict(), "device": device},
        results=results,
        timings={**timings, "total": time.time() - t0},
        figures=[Path(f).name for f in figs],
    )
    return results
