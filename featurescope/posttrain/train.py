"""Post-training: LoRA supervised fine-tuning (``peft``) of a causal LM on SFT examples.

:func:`train_adapter` builds the LoRA config (plus trainable turn-marker embedding rows), optionally adds a steering
vector at one layer during training (preventative steering), runs AdamW with linear warmup and cosine decay
(:func:`_lr_at`) on :func:`sft_loss`, and saves a compact (fp16) adapter.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Int
from safetensors.torch import load_file, save_file
from torch import Tensor
from tqdm.auto import tqdm

from ..errors import FeaturescopeError
from .config import PosttrainConfig
from .data import collate, length_batches
from .steering import AddToLayer, decoder_layers


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
    from peft import LoraConfig, get_peft_model  # heavy: peft (~3-5 s, with transformers)

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
        handle = decoder_layers(model)[layer].register_forward_hook(AddToLayer(v.to(device), cfg.steer_alpha))
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
    f = folder / "adapter_model.safetensors"
    w = load_file(str(f))
    save_file({k: v.to(torch.float16).contiguous() for k, v in w.items()}, str(f))
