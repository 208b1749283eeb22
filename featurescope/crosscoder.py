"""Train and evaluate a two-model BatchTopK crosscoder (base vs post-trained checkpoint) with sae-lens' trainer.

The architecture is :mod:`featurescope.crosscoder_sae` (sae-lens' BatchTopK training SAE over ``[h_base; h_post]``,
latents ranked by activation x the sum of per-model decoder norms, as Minder et al. 2025). featurescope supplies
only the paired activations (:func:`pair_activations`: the same token ids through both models, BOS / padding and
outlier-norm tokens dropped), a shuffling buffer, the per-model normalisation and the bookkeeping; sae-lens'
``SAETrainer`` trains, checkpoints and saves. The saved crosscoder (``out/crosscoder``: sae-lens ``cfg.json`` +
``sae_weights.safetensors``, a JumpReLU crosscoder reading raw activations) loads with sae-lens' ``SAE.load_from_disk``
and with :func:`featurescope.stages.load_crosscoder`, whose analysis (:func:`crosscoder_report`: relative decoder
norms, shared / base-only / post-only latents, Latent Scaling) :func:`analyse_crosscoder` runs.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float, Int
from safetensors.torch import save_file
from torch import Tensor

from . import corpus
from .crosscoder_cards import card_pass, crosscoder_cards, write_cards_html
from .crosscoder_data import (
    HeldOut,
    check_pair,
    held_out_pairs,
    mixed_batches,
    model_source,
    normalisation,
    pair_activations,
    tensor_source,
)
from .errors import FeaturescopeError
from .evidence.massive import OUTLIER_K
from .models import Model
from .runs import jsonable, write_summary
from .stages.crosscoder import (
    CrosscoderWeights,
    crosscoder_report,
    load_crosscoder,
)
from .store import settings_diff, write_json

__all__ = [
    "TRAIN_DEFAULTS",
    "HeldOut",
    "analyse_crosscoder",
    "check_pair",
    "crosscoder_cards",
    "crosscoder_eval",
    "crosscoder_train",
    "evaluate_crosscoder",
    "fit_crosscoder",
    "pair_activations",
    "saved_scales",
    "tensor_source",
    "training_space",
    "train_crosscoder",
    "write_cards_html",
]

RUN_FILE = "featurescope_run.json"  # in every checkpoint and the final folder: what identifies the run
FINAL = "crosscoder"


def _newest(root: Path) -> Path | None:
    cands = [p for p in root.glob("*") if p.is_dir() and p.name.isdigit() and (p / RUN_FILE).exists()]
    return max(cands, key=lambda p: int(p.name)) if cands else None


def _check_resume(ckpt: Path, run: dict[str, Any]) -> None:
    saved = json.loads((ckpt / RUN_FILE).read_text())
    if "sources" in run and "sources" not in saved:  # written before the corpus sources could be chosen
        saved["sources"] = list(corpus.DEFAULT_SOURCES)
    sides = settings_diff(saved, run)
    if sides:
        raise FeaturescopeError(
            f"cannot resume from {ckpt}: the run settings differ ({sides}). Use the checkpoint's settings, another "
            "output folder, or resume=False (--no-resume) to start over"
        )


def fit_crosscoder(
    source: Callable[[int], Iterator[Tensor]],
    stats: Float[Tensor, "n two_d"],
    out_dir: str | Path,
    *,
    run: dict[str, Any],
    d_sae: int = 4096,
    k: int = 64,
    training_tokens: int = 1_000_000,
    lr: float = 4e-4,
    batch_size_tokens: int = 1024,
    seed: int = 42,
    n_checkpoints: int = 4,
    resume: bool = True,
    lr_warm_up_steps: int = 100,
    decoder_init_norm: float | None = 1.0,
    dead_feature_window: int = 50,
    buffer_batches: int = 16,
    device: str = "cpu",
) -> dict[str, Any]:
    """Train the crosscoder with sae-lens' ``SAETrainer`` on ``source(start)`` (raw paired activations ``[n, 2d]``).
    ``stats`` (raw paired activations) give the per-model scales and the decoder-bias start (the mean, as
    :func:`featurescope.sae_training.train_saes`) and are the probe for the reconstruction error before / after. ``run``
    (model names, hook, ...) plus the training settings identify the run: a checkpoint under ``out_dir/checkpoints``
    with other settings is an error, not silently resumed. Saves to ``out_dir/crosscoder``; returns what happened."""
    from sae_lens import LoggingConfig  # heavy: sae-lens (~4-6 s)
    from sae_lens.config import SAETrainerConfig  # heavy: sae-lens (~4-6 s)
    from sae_lens.constants import SPARSITY_FILENAME  # heavy: sae-lens (~4-6 s)
    from sae_lens.training.sae_trainer import SAETrainer  # heavy: sae-lens (~4-6 s)

    from .crosscoder_sae import (  # heavy: crosscoder_sae imports sae-lens
        BatchTopKCrosscoderTrainingSAE,
        BatchTopKCrosscoderTrainingSAEConfig,
    )

    out = Path(out_dir)
    d_in = int(stats.shape[-1])
    run = {**run, "d_model": d_in // 2, "d_sae": d_sae, "k": k, "training_tokens": training_tokens, "lr": lr}
    run |= {"batch_size_tokens": batch_size_tokens, "seed": seed, "lr_warm_up_steps": lr_warm_up_steps}
    run |= {"decoder_init_norm": decoder_init_norm, "dead_feature_window": dead_feature_window}
    ckpt_root = out / "checkpoints"
    resume_from = _newest(ckpt_root) if resume and ckpt_root.exists() else None
    if resume_from is not None:
        _check_resume(resume_from, run)
    torch.manual_seed(seed)
    cfg = BatchTopKCrosscoderTrainingSAEConfig(
        d_in=d_in, d_sae=d_sae, k=k, device=device, decoder_init_norm=decoder_init_norm
    )
    sae = BatchTopKCrosscoderTrainingSAE(cfg)
    scales, mean = normalisation(stats)
    with torch.no_grad():
        sae.activation_scales.copy_(scales)
        sae.b_dec.copy_(mean)
    steps = training_tokens // batch_size_tokens
    tcfg = SAETrainerConfig(
        total_training_samples=training_tokens,
        train_batch_size_samples=batch_size_tokens,
        lr=lr,
        lr_end=lr / 10,
        lr_warm_up_steps=min(lr_warm_up_steps, steps // 5),  # a short run still reaches the full rate
        lr_decay_steps=max(1, steps // 5),
        device=device,
        dead_feature_window=dead_feature_window,
        feature_sampling_window=max(2000, dead_feature_window),
        n_checkpoints=n_checkpoints,
        checkpoint_path=str(ckpt_root),
        logger=LoggingConfig(log_to_wandb=False),
    )

    def mark(checkpoint_path: Path | None) -> None:
        if checkpoint_path is not None:
            write_json(Path(checkpoint_path) / RUN_FILE, run, indent=2)

    def scale() -> Tensor:
        return sae.activation_scales.detach().cpu().repeat_interleave(d_in // 2)  # batches are CPU tensors

    trainer = SAETrainer(cfg=tcfg, sae=sae, data_provider=iter(()), save_checkpoint_fn=mark)
    if resume_from is not None:  # weights, optimizer, schedules, firing counts and the scales from the checkpoint
        trainer.load_trainer_state(resume_from)
        sae.load_weights_from_checkpoint(resume_from)
        trainer.checkpoint_thresholds = [t for t in trainer.checkpoint_thresholds if t >= trainer.n_training_samples]
    start = trainer.n_training_samples
    trainer.data_provider = mixed_batches(
        source(start), batch_size_tokens, buffer_batches * batch_size_tokens, scale, seed + start
    )
    probe = (stats * scale()).to(device)
    mse_before = _probe_mse(sae, probe)
    t0 = time.time()
    sae = trainer.fit()
    seconds = time.time() - t0
    mse_after = _probe_mse(sae, probe)
    md = sae.cfg.metadata
    md.hook_name, md.model_name = run.get("hook"), run.get("post_model")
    md.base_model, md.post_model = run.get("base_model"), run.get("post_model")
    md.activation_scales = [float(s) for s in sae.activation_scales]
    md.activation_scales_note = "per model (base, post); folded into the saved weights, which read raw activations"
    final = out / FINAL
    sae.save_inference_model(final)
    save_file({"sparsity": trainer.log_feature_sparsity}, str(final / SPARSITY_FILENAME))
    write_json(final / RUN_FILE, run, indent=2)
    return {
        "path": final,
        "resumed_from": resume_from,
        "n_training_samples": trainer.n_training_samples,
        "steps_this_call": (trainer.n_training_samples - start) // batch_size_tokens,
        "seconds_this_call": seconds,
        "activation_scales": md.activation_scales,
        "probe_mse_before": mse_before,  # normalised space, on the ``stats`` tokens
        "probe_mse_after": mse_after,
        "dead_latents_at_end": int(trainer.dead_neurons.sum()),
    }


@torch.no_grad()
def _probe_mse(sae: Any, x: Tensor) -> float:
    sae.eval()
    f, _ = sae.encode_with_hidden_pre(x)
    return float((sae.decode(f) - x).pow(2).sum(-1).mean())


def train_crosscoder(
    base_model: Model,
    post_model: Model,
    hook: str,
    out_dir: str | Path,
    *,
    tokens: Int[Tensor, "rows pos"],
    d_sae: int = 4096,
    k: int = 64,
    training_tokens: int = 1_000_000,
    lr: float = 4e-4,
    batch_size_tokens: int = 1024,
    seed: int = 42,
    n_checkpoints: int = 4,
    resume: bool = True,
    lr_warm_up_steps: int = 100,
    decoder_init_norm: float | None = 1.0,
    dead_feature_window: int = 50,
    outlier_k: float | None = OUTLIER_K,
    forward_batch_rows: int = 16,
    buffer_batches: int = 16,
    stats_rows: int = 64,
    sources: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Train a BatchTopK crosscoder on ``base_model`` and ``post_model`` at ``hook`` over ``tokens`` (``[rows,
    context]``, e.g. :func:`featurescope.corpus.sequences`; both models read the same ids). ``sources``: the corpus
    sources ``tokens`` come from, recorded with the run settings (so resuming with other sources is refused); None
    records none. The settings follow
    :func:`featurescope.sae_training.train_saes` (unit decoder rows, decoder bias at the mean, short dead-feature window,
    outlier tokens left out); each model's half is scaled to an expected norm of sqrt(d_model) with its own scale
    (estimated on the first ``stats_rows`` rows) and the scales are folded into the saved weights. See
    :func:`fit_crosscoder` for checkpoints, resuming and the returned record (it also has the token ``counts``)."""
    check_pair(base_model, post_model, hook)
    counts: dict[str, int] = {}
    kw = {"outlier_k": outlier_k, "batch_size": forward_batch_rows}
    stats = torch.cat(list(pair_activations(base_model, post_model, tokens[:stats_rows], hook, **kw)))
    run = {"base_model": base_model.name, "post_model": post_model.name, "hook": hook, "outlier_k": outlier_k}
    run |= {"tokens_shape": list(tokens.shape)}
    if sources is not None:
        run["sources"] = list(sources)
    info = fit_crosscoder(
        model_source(base_model, post_model, tokens, hook, seed=seed, counts=counts, **kw),
        stats,
        out_dir,
        run=run,
        d_sae=d_sae,
        k=k,
        training_tokens=training_tokens,
        lr=lr,
        batch_size_tokens=batch_size_tokens,
        seed=seed,
        n_checkpoints=n_checkpoints,
        resume=resume,
        lr_warm_up_steps=lr_warm_up_steps,
        decoder_init_norm=decoder_init_norm,
        dead_feature_window=dead_feature_window,
        buffer_batches=buffer_batches,
        device=str(base_model.device),
    )
    return info | {"counts": counts}


@torch.no_grad()
def evaluate_crosscoder(
    crosscoder: CrosscoderWeights | str | Path, pairs: Tensor | Iterable[Tensor], *, batch_size: int = 4096
) -> dict[str, Any]:
    """Fraction of variance explained per model half (and overall), MSE, L0 and the dead fraction (latents that
    never fire) of a saved crosscoder on held-out raw paired activations ``[n, 2 d]`` (a tensor or chunks)."""
    cc = crosscoder if isinstance(crosscoder, CrosscoderWeights) else load_crosscoder(crosscoder)
    d = int(cc.W_dec.shape[-1])
    sse, sxx = torch.zeros(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
    sx = torch.zeros(2, d, dtype=torch.float64)
    fires = torch.zeros(cc.n_latents, dtype=torch.long)
    n, active = 0, 0
    for chunk in [pairs] if isinstance(pairs, Tensor) else pairs:
        if chunk.ndim != 2 or chunk.shape[-1] != 2 * d:
            raise FeaturescopeError(f"paired activations must be [n, {2 * d}], got {tuple(chunk.shape)}")
        for x in chunk.float().split(batch_size):
            xm = x.unflatten(-1, (2, d))
            f = cc.encode(xm)
            err = cc.decode(f) - xm.transpose(0, 1)
            sse += err.double().pow(2).sum((1, 2))
            sx += xm.double().sum(0)
            sxx += xm.double().pow(2).sum((0, 2))
            fires += (f > 0).sum(0)
            active += int((f > 0).sum())
            n += len(x)
    if n == 0:
        raise FeaturescopeError("no paired activations to evaluate the crosscoder on")
    sst = sxx - sx.pow(2).sum(-1) / n
    fve = 1 - sse / sst.clamp(min=1e-30)
    return {
        "fve_base": float(fve[0]),
        "fve_post": float(fve[1]),
        "fve": float(1 - sse.sum() / sst.sum().clamp(min=1e-30)),
        "mse_base": float(sse[0]) / (n * d),
        "mse_post": float(sse[1]) / (n * d),
        "l0": active / n,
        "dead_fraction": float((fires == 0).float().mean()),
        "n_tokens": n,
        "n_latents": cc.n_latents,
    }


def saved_scales(folder: str | Path) -> Tensor | None:
    """The per-model training scales (base, post) a saved crosscoder records in its ``cfg.json``, if any (``folder``
    may also be its ``sae_weights.safetensors``, as :func:`load_crosscoder` takes it; a file of another layout: none)."""
    p = Path(folder)
    cfg = (p.parent if p.name == "sae_weights.safetensors" else p) / "cfg.json"
    got = json.loads(cfg.read_text()).get("metadata", {}).get("activation_scales") if cfg.exists() else None
    return None if got is None else torch.tensor(got, dtype=torch.float32)


def training_space(cc: CrosscoderWeights, scales: Tensor) -> CrosscoderWeights:
    """A raw-unit crosscoder in the space it was trained in (model m's activations x ``scales[m]``): its encode
    reads scaled activations, and its decoder rows are the trained ones (up to a per-latent factor)."""
    s = scales.float()
    return dataclasses.replace(
        cc,
        W_enc=cc.W_enc / s[:, None, None],
        W_dec=cc.W_dec * s[:, None, None],
        b_dec=cc.b_dec * s[:, None],
        source=f"{cc.source} (training space)",
    )


def analyse_crosscoder(
    crosscoder: CrosscoderWeights | str | Path,
    pairs: Float[Tensor, "n two_d"],
    *,
    scales: Tensor | None = None,
    **report_kw: Any,
) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """:func:`featurescope.stages.crosscoder_report` (relative decoder norms, shared / base-only / post-only
    latents, Latent Scaling) of a crosscoder on raw paired activations ``[n, 2 d]``, read in the training space
    (each model's activations x its scale, as Minder et al. normalise each model before training): in raw units a
    post-trained model whose activations are c x the base's would move every shared latent's relative norm towards
    c / (1 + c) and its nu towards 1 / c. ``scales``: default the recorded ones of the folder the crosscoder is (or,
    for :class:`CrosscoderWeights`, was loaded from: its ``source``); none recorded (the dictionary_learning and
    Kissane layouts): raw units."""
    cc = crosscoder if isinstance(crosscoder, CrosscoderWeights) else load_crosscoder(crosscoder)
    if scales is None:
        where = cc.source if isinstance(crosscoder, CrosscoderWeights) else crosscoder
        scales = saved_scales(where) if where else None
    d = pairs.shape[-1] // 2
    if scales is not None:
        cc, pairs = training_space(cc, scales), pairs * scales.float().repeat_interleave(d)
    rep, tensors = crosscoder_report(cc, pairs[:, :d], pairs[:, d:], **report_kw)
    space = "raw activations" if scales is None else "training space (model activations x activation_scales)"
    return rep | {"space": space, "activation_scales": None if scales is None else scales.tolist()}, tensors


#: train_crosscoder's defaults: the one home of the training settings (the CLI reads them from here)
TRAIN_DEFAULTS: dict[str, Any] = {
    k: p.default for k, p in inspect.signature(train_crosscoder).parameters.items() if p.default is not p.empty
}


def _heldout(
    base: Model,
    post: Model,
    hook: str,
    context: int,
    n: int,
    outlier_k: float | None,
    sources: Sequence[str] = corpus.DEFAULT_SOURCES,
    positions: bool = False,
) -> HeldOut:
    rows = corpus.sequences(base.tokenizer, "heldout", context_size=context, max_sequences=n, seed=1, sources=sources)
    return held_out_pairs(base, post, rows, hook, outlier_k=outlier_k, positions=positions)


def _measure(path: Path, pairs: Tensor) -> dict[str, Any]:
    """``eval`` and ``report`` (written to the summary) and ``tensors`` (the report's per-latent tensors: popped)."""
    ev = evaluate_crosscoder(path, pairs)
    rep, tensors = analyse_crosscoder(path, pairs)
    return {"eval": ev, "report": rep, "tensors": tensors}


def crosscoder_train(
    base_model: Model,
    post_model: Model,
    out: str | Path,
    *,
    layer: int,
    d_sae: int = TRAIN_DEFAULTS["d_sae"],
    k: int = TRAIN_DEFAULTS["k"],
    training_tokens: int = TRAIN_DEFAULTS["training_tokens"],
    lr: float = TRAIN_DEFAULTS["lr"],
    batch_size_tokens: int = TRAIN_DEFAULTS["batch_size_tokens"],
    seed: int = TRAIN_DEFAULTS["seed"],
    resume: bool = TRAIN_DEFAULTS["resume"],
    context: int = 128,
    eval_sequences: int = 64,
    sources: Sequence[str] = corpus.DEFAULT_SOURCES,
    retrain: str | None = None,
    cards: int = 0,
    load_s: float = 0.0,
) -> dict[str, Any]:
    """``crosscoder train``: :func:`train_crosscoder` at the residual stream after ``layer`` on the offline corpus
    (rows of ``context`` tokens from the corpus ``sources``), then :func:`evaluate_crosscoder` and
    :func:`analyse_crosscoder` on ``eval_sequences`` held-out rows of the same sources; writes ``out/summary.json``
    (and ``out/crosscoder/eval.json``). ``cards`` > 0: also feature cards for up to that many post-only and
    base-only latents each on the same held-out rows (:func:`crosscoder_cards`; ``out/cards.html``)."""
    t0 = time.time()
    out = Path(out)
    sources = tuple(sources)
    hook = check_pair(base_model, post_model, base_model.resid_hook(layer))
    rows = corpus.sequences(
        base_model.tokenizer,
        "train",
        context_size=context,
        max_sequences=training_tokens // (context - 1) + 64,
        seed=seed,
        sources=sources,
    )
    info = train_crosscoder(
        base_model,
        post_model,
        hook,
        out,
        tokens=rows,
        d_sae=d_sae,
        k=k,
        training_tokens=training_tokens,
        lr=lr,
        batch_size_tokens=batch_size_tokens,
        seed=seed,
        resume=resume,
        sources=sources,
    )
    t_train = time.time() - t0
    held = _heldout(
        base_model, post_model, hook, context, eval_sequences, TRAIN_DEFAULTS["outlier_k"], sources, cards > 0
    )
    measured = _measure(info["path"], held.pairs)
    tensors = measured.pop("tensors", None)
    res = {"training": info, **measured, "retrain": retrain}
    res["corpus"] = corpus.describe_short(sources)
    figures = card_pass(out, info["path"], base_model, post_model, held, res, tensors or {}, hook, cards)
    write_json(info["path"] / "eval.json", jsonable(res), indent=2)
    write_summary(
        out,
        "crosscoder train",
        inputs={"base_model": base_model.info, "post_model": post_model.info, "hook": hook, "layer": layer}
        | {"d_sae": d_sae, "k": k, "training_tokens": training_tokens, "lr": lr, "seed": seed, "context": context}
        | {"sources": list(sources), "cards": cards},
        results=res,
        timings={"train": t_train, "total": load_s + time.time() - t0},
        figures=figures,
    )
    return res


def crosscoder_eval(
    base_model: Model,
    post_model: Model,
    crosscoder: str | Path,
    out: str | Path,
    *,
    layer: int | None = None,
    context: int = 128,
    eval_sequences: int = 64,
    outlier_k: float | None = OUTLIER_K,
    sources: Sequence[str] = corpus.DEFAULT_SOURCES,
    cards: int = 0,
    load_s: float = 0.0,
) -> dict[str, Any]:
    """``crosscoder eval``: a saved crosscoder on held-out paired activations at ``layer``'s residual stream
    (default: the hook recorded in its ``cfg.json``): FVE per model, L0, dead latents, and the relative-norm /
    Latent Scaling report, on ``eval_sequences`` held-out rows of the corpus ``sources``. Writes
    ``out/summary.json``; ``cards`` > 0: also ``out/cards.html`` (as :func:`crosscoder_train`)."""
    t0 = time.time()
    cfg_path = Path(crosscoder) / "cfg.json"
    saved_hook = json.loads(cfg_path.read_text()).get("metadata", {}).get("hook_name") if cfg_path.exists() else None
    if layer is None and saved_hook is None:
        raise FeaturescopeError(f"{crosscoder} records no hook: pass the layer to evaluate at")
    hook = check_pair(base_model, post_model, base_model.resid_hook(layer) if layer is not None else str(saved_hook))
    sources = tuple(sources)
    held = _heldout(base_model, post_model, hook, context, eval_sequences, outlier_k, sources, cards > 0)
    res = _measure(Path(crosscoder), held.pairs)
    tensors = res.pop("tensors", None)
    figures = card_pass(Path(out), crosscoder, base_model, post_model, held, res, tensors or {}, hook, cards)
    write_summary(
        out,
        "crosscoder eval",
        inputs={"base_model": base_model.info, "post_model": post_model.info, "crosscoder": str(crosscoder)}
        | {"hook": hook, "context": context, "eval_sequences": eval_sequences, "outlier_k": outlier_k}
        | {"sources": list(sources), "cards": cards},
        results=res,
        timings={"total": load_s + time.time() - t0},
        figures=figures,
    )
    return res
