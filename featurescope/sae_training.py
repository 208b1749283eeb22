"""Training SAEs with sae-lens' own trainer (``MultiSAETrainingRunner``): featurescope supplies the model, the
offline corpus, the decoder-bias initialisation, the outlier-token filter and the bookkeeping; sae-lens trains."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .errors import FeaturescopeError
from .evidence.massive import OUTLIER_K, outlier_tokens
from .models import Model
from .saes import activation_stats
from .store import settings_diff, write_json

#: what identifies a training run, written beside its checkpoints: a resume with other settings is refused
RUN_FILE = "featurescope_run.json"


def newest_checkpoint(root: str | Path) -> str | None:
    """The sae-lens checkpoint folder under ``root`` with the most training samples (folders are named by it)."""
    root = Path(root)
    if not root.exists():
        return None
    cands = [p for p in root.rglob("*") if p.is_dir() and p.name.isdigit() and (p / "runner_cfg.json").exists()]
    return str(max(cands, key=lambda p: (int(p.name), p.stat().st_mtime))) if cands else None


def token_fingerprint(tokens: Tensor) -> str:
    """``"[n, context] sha256:..."`` of a token-id tensor: two runs read the same rows iff their fingerprints agree."""
    digest = hashlib.sha256(tokens.detach().to(torch.int64).cpu().contiguous().numpy().tobytes()).hexdigest()
    return f"{list(tokens.shape)} sha256:{digest[:16]}"


def train_saes(
    model: Model,
    hooks: list[str],
    out_dir: str | Path,
    *,
    tokens: torch.Tensor,
    d_sae: int = 4096,
    k: int = 64,
    training_tokens: int = 1_000_000,
    lr: float = 4e-4,
    batch_size_tokens: int = 1024,  # what the shipped SAEs used
    store_batch_size_prompts: int = 16,
    n_batches_in_buffer: int = 16,
    seed: int = 42,
    n_checkpoints: int = 4,
    resume: bool = True,
    dtype: str = "float32",
    normalize_activations: str = "expected_average_only_in",
    init_b_dec: str = "mean",
    lr_warm_up_steps: int = 100,
    decoder_init_norm: float | None = 1.0,
    dead_feature_window: int = 50,
    outlier_k: float | None = OUTLIER_K,
    run_info: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Train one BatchTopK SAE per hook, all from the same forward passes (sae-lens ``MultiSAETrainingRunner``).

    BatchTopK (Bussmann et al. 2024) is the default because it sets L0 directly (``k``) instead of through an L1
    coefficient that needs tuning per layer, keeps few dead latents thanks to its auxiliary loss, and converts to a
    JumpReLU SAE for inference - the architecture of the persona-vector paper's released SAEs. Activations are
    rescaled to an expected norm of sqrt(d_in) during training (Gemma's residual norms are in the thousands); sae-lens
    folds the scale back into the weights when saving, so the SAE reads raw activations.
    ``init_b_dec="mean"`` starts the decoder bias at the mean activation (in the rescaled space; Bricken et al. 2023
    use the geometric median): sae-lens 6 starts it at zero, and the mean is ~90% of E|x|^2 in Gemma 3's residual
    stream, so a zero-bias start spends dense latents on the mean (our first CPU run collapsed that way).
    ``decoder_init_norm=1.0`` (unit decoder rows, as in Gao et al.'s TopK SAEs; sae-lens' default 0.1 is Anthropic's
    heuristic for L1 SAEs) and a short ``dead_feature_window`` (steps without firing before the auxiliary loss
    revives a latent; sae-lens' 1,000 is longer than a whole CPU run) keep dead latents at ~0 instead of ~60-80%
    (layer-9 sweep on cached activations, 300 steps: FVE 0.874 / 0% dead vs 0.846 / 61% dead vs 0.640 / 97% dead
    without the mean bias; benchmarks/RESULTS.md).
    ``outlier_k``: tokens whose residual norm exceeds ``outlier_k`` x the median token norm of their store batch at
    any trained hook are left out of training (as BOS and padding are; Kissane et al. leave outlier-norm tokens out
    when they measure SAEs, and evaluation here does too); ``None`` keeps them. The counts are written to
    ``out_dir/outlier_exclusion.json``.
    ``tokens`` are ``[n, context]`` rows (see :func:`featurescope.corpus.token_sequences`). Checkpoints go to
    ``out_dir/checkpoints``; with ``resume`` the newest one is picked up - only when the run's settings (these
    arguments, the model, a fingerprint of ``tokens`` and ``run_info``, e.g. the corpus sources; kept in
    ``out_dir/featurescope_run.json``) are those of the checkpoint's run: otherwise it is an error naming both sides,
    raised before anything is written. Returns the saved folder of each SAE.
    """
    from datasets import Dataset  # heavy: datasets (~1 s)
    from sae_lens import BatchTopKTrainingSAEConfig, LoggingConfig  # heavy: sae-lens (~4-6 s)
    from sae_lens.multi_sae_training_runner import (  # heavy: sae-lens (~4-6 s)
        MultiSAETrainingRunner,
        MultiSAETrainingRunnerConfig,
    )
    from sae_lens.saes.sae import get_sae_training_class  # heavy: sae-lens (~4-6 s)

    out = Path(out_dir)
    names = {h: h.replace(".", "_") for h in hooks}
    ckpt_root = out / "checkpoints"
    resume_from = newest_checkpoint(ckpt_root) if resume else None
    run = {
        "model": model.info.name,
        "hooks": list(hooks),
        "tokens": token_fingerprint(tokens),
        "d_sae": d_sae,
        "k": k,
        "training_tokens": training_tokens,
        "lr": lr,
        "batch_size_tokens": batch_size_tokens,
        "store_batch_size_prompts": store_batch_size_prompts,
        "n_batches_in_buffer": n_batches_in_buffer,
        "seed": seed,
        "dtype": dtype,
        "normalize_activations": normalize_activations,
        "init_b_dec": init_b_dec,
        "lr_warm_up_steps": lr_warm_up_steps,
        "decoder_init_norm": decoder_init_norm,
        "dead_feature_window": dead_feature_window,
        "outlier_k": outlier_k,
        **dict(run_info or {}),
    }
    run_file = out / RUN_FILE
    if resume_from is not None and run_file.exists():
        diff = settings_diff(json.loads(run_file.read_text()), run)
        if diff:
            raise FeaturescopeError(
                f"cannot resume from {resume_from}: the run settings differ ({diff}). Use the checkpoint's "
                f"settings, another output folder, or delete {ckpt_root} to start over"
            )
    out.mkdir(parents=True, exist_ok=True)
    write_json(run_file, run, indent=2)
    cfg = MultiSAETrainingRunnerConfig(
        saes={
            names[h]: BatchTopKTrainingSAEConfig(
                d_in=model.d_model,
                d_sae=d_sae,
                k=k,
                dtype=dtype,
                device=str(model.device),
                normalize_activations=normalize_activations,  # pyright: ignore[reportArgumentType]
                decoder_init_norm=decoder_init_norm,
            )
            for h in hooks
        },
        hook_names={names[h]: h for h in hooks},
        model_name=model.info.name,
        dataset_path="featurescope.corpus",
        streaming=False,
        context_size=int(tokens.shape[1]),
        training_tokens=training_tokens,
        train_batch_size_tokens=batch_size_tokens,
        store_batch_size_prompts=store_batch_size_prompts,
        # sae-lens' mixing buffer holds n_batches_in_buffer x context_size tokens and must exceed a training batch
        # (a larger buffer mixes more documents per batch; on a GPU memory allows 32 batches' worth)
        n_batches_in_buffer=max(
            n_batches_in_buffer,
            (32 if str(model.device).startswith("cuda") else 4) * batch_size_tokens // int(tokens.shape[1]),
        ),
        lr=lr,
        lr_warm_up_steps=lr_warm_up_steps,
        dead_feature_window=dead_feature_window,
        feature_sampling_window=max(2000, dead_feature_window),
        lr_decay_steps=max(1, training_tokens // batch_size_tokens // 5),
        device=str(model.device),
        seed=seed,
        dtype=dtype,
        prepend_bos=False,  # rows already start with BOS
        exclude_special_tokens=True,
        logger=LoggingConfig(log_to_wandb=False),
        n_checkpoints=n_checkpoints,
        checkpoint_path=str(ckpt_root),
        output_path=str(out / "final"),
        resume_from_checkpoint=resume_from,
        n_batches_for_norm_estimate=50,
    )
    ds = Dataset.from_dict({"input_ids": tokens.tolist()})
    torch.manual_seed(seed)
    if str(model.device).startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True  # TF32 matmuls for the model's forward passes on the GPU
    saes = None
    if init_b_dec == "mean":
        stats = activation_stats(model, hooks, tokens[: min(64, len(tokens))])
        saes = {}
        for h in hooks:
            sae_cfg = cfg.saes[names[h]]
            sae = get_sae_training_class(sae_cfg.architecture())[0](sae_cfg)
            mean, mean_norm = stats[h]
            scale = (model.d_model**0.5) / mean_norm if normalize_activations == "expected_average_only_in" else 1.0
            with torch.no_grad():
                sae.b_dec.copy_((mean * scale).to(sae.b_dec.dtype))
            saes[names[h]] = sae
    elif init_b_dec != "zeros":
        raise FeaturescopeError(f"init_b_dec must be 'mean' or 'zeros', got {init_b_dec!r}")
    runner = MultiSAETrainingRunner(cfg, override_dataset=ds, override_model=model.tl, override_saes=saes)
    counts = exclude_outlier_tokens(runner.activations_store, outlier_k) if outlier_k is not None else None
    runner.run()
    if counts is not None:
        write_json(out / "outlier_exclusion.json", {"outlier_k": outlier_k, **counts}, indent=2)
    return {h: out / "final" / names[h] for h in hooks}


def exclude_outlier_tokens(store: Any, k: float = OUTLIER_K) -> dict[str, int]:
    """Make a sae-lens multi-hook ``ActivationsStore`` drop outlier-norm tokens from every batch it yields for
    training: a token goes when its norm exceeds ``k`` x the batch's median token norm at any hook (one mask for all
    hooks, as sae-lens' special-token filter). Returns the live counts ``{"seen": ..., "excluded": ...}``.

    sae-lens has no norm filter; this wraps the store's own filtered-batch method (pinned sae-lens version, checked
    here so an upgrade that renames it fails loudly instead of silently training on every token)."""
    name = "_get_filtered_multi_hook_llm_batch"
    inner = getattr(store, name, None)
    if inner is None:
        raise FeaturescopeError(
            f"this sae-lens version's ActivationsStore has no {name}: outlier-token exclusion cannot be applied "
            "(train with outlier_k=None, or use the sae-lens version in requirements/cpu.lock)"
        )
    counts = {"seen": 0, "excluded": 0}

    def filtered(raise_on_epoch_end: bool = False) -> dict[str, Tensor]:
        flat: dict[str, Tensor] = inner(raise_on_epoch_end)
        drop = torch.zeros(len(next(iter(flat.values()))), dtype=torch.bool)
        for t in flat.values():
            drop |= outlier_tokens(t, k).cpu()
        counts["seen"] += len(drop)
        counts["excluded"] += int(drop.sum())
        keep = ~drop
        return {h: t[keep.to(t.device)] for h, t in flat.items()}

    setattr(store, name, filtered)
    return counts
