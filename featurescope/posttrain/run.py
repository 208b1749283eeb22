"""Post-training run: :func:`posttrain` trains the adapter (and, with a steering vector, a second one under
preventative steering), evaluates base vs post-trained on held-out prompts, and writes the run folder
(``summary.json``, the loss curves, the adapter(s))."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import torch

from .. import plots
from ..errors import FeaturescopeError
from ..models import OFFLINE_MODELS, OFFLINE_PREFIX, load_offline_hf
from ..persona import PersonaVector
from ..runs import write_summary
from ..traits import load_trait
from .config import PosttrainConfig
from .data import ensure_chat_template, read_dialogues, sft_example, validate_dialogues
from .evaluate import evaluate_assistant, trait_projection
from .train import train_adapter


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
            from peft import PeftModel  # heavy: peft (~3-5 s, with transformers)

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
