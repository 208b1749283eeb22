"""One call per ``featurescope sae`` action: :func:`sae_train` (SAEs trained on the offline corpus, compacted and
evaluated, one folder per hook) and :func:`sae_eval` (any SAE on any model's held-out activations); each writes
``summary.json`` in its run folder and returns the summary's results."""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

from . import corpus
from .models import Model
from .runs import write_summary
from .sae_training import train_saes
from .saes import compact, evaluate_sae, load_sae
from .store import write_json

#: train_saes' defaults: the one home of the training settings (the CLI reads them from here too)
TRAIN_DEFAULTS: dict[str, Any] = {
    k: p.default for k, p in inspect.signature(train_saes).parameters.items() if p.default is not p.empty
}


def heldout_rows(
    model: Model, context: int = 128, n_sequences: int = 128, sources: Sequence[str] = corpus.DEFAULT_SOURCES
) -> Tensor:
    """The held-out corpus rows every ``sae`` action evaluates on (``n_sequences`` rows of ``context`` tokens)."""
    return corpus.sequences(
        model.tokenizer, "heldout", context_size=context, max_sequences=n_sequences, seed=1, sources=sources
    )


def sae_folder(hook: str) -> str:
    """The folder name of a trained SAE: ``blocks.6.hook_resid_post`` -> ``layer_6_resid_post``."""
    return hook.replace(".", "_").replace("blocks_", "layer_").replace("_hook_resid_post", "_resid_post")


def sae_train(
    model: Model,
    out: str | Path,
    *,
    layers: Sequence[int],
    training_tokens: int = TRAIN_DEFAULTS["training_tokens"],
    d_sae: int = TRAIN_DEFAULTS["d_sae"],
    k: int = TRAIN_DEFAULTS["k"],
    lr: float = TRAIN_DEFAULTS["lr"],
    seed: int = TRAIN_DEFAULTS["seed"],
    batch_size_tokens: int = TRAIN_DEFAULTS["batch_size_tokens"],
    store_batch_size_prompts: int = TRAIN_DEFAULTS["store_batch_size_prompts"],
    dead_feature_window: int = TRAIN_DEFAULTS["dead_feature_window"],
    outlier_k: float | None = TRAIN_DEFAULTS["outlier_k"],
    context: int = 128,
    eval_sequences: int = 128,
    ce_batches: int = 4,
    sources: Sequence[str] = corpus.DEFAULT_SOURCES,
    retrain: str | None = None,
    load_s: float = 0.0,
    progress: bool = True,
) -> dict[str, dict[str, Any]]:
    """``sae train``: one BatchTopK SAE per residual layer in ``layers`` (:func:`train_saes` on ``training_tokens``
    tokens of the corpus ``sources`` in rows of ``context``), each compacted to ``out/layer_L_resid_post`` with its
    ``eval.json`` (:func:`evaluate_sae` on ``eval_sequences`` held-out rows of the same sources, the training settings
    and ``retrain``, the command that reproduces it). Returns the evaluations per hook (without the density
    histograms), as in the summary."""
    t0 = time.time()
    out = Path(out)
    sources = tuple(sources)
    heldout = heldout_rows(model, context, eval_sequences, sources)
    hooks = [model.resid_hook(int(L)) for L in layers]
    n_rows = training_tokens // (context - 1) + 64
    train = corpus.sequences(
        model.tokenizer, "train", context_size=context, max_sequences=n_rows, seed=seed, sources=sources
    )
    epochs = training_tokens / max(train.numel(), 1)
    if progress:
        print(
            f"training {len(hooks)} SAE(s) on {training_tokens:,} tokens ({epochs:.1f} passes over the "
            f"{train.numel():,} corpus tokens; {model.name}, hooks {hooks})",
            flush=True,
        )
    t = time.time()
    paths = train_saes(
        model,
        hooks,
        out / "_work",
        tokens=train,
        d_sae=d_sae,
        k=k,
        training_tokens=training_tokens,
        lr=lr,
        seed=seed,
        batch_size_tokens=batch_size_tokens,
        store_batch_size_prompts=store_batch_size_prompts,
        dead_feature_window=dead_feature_window,
        outlier_k=outlier_k,
        run_info={"sources": list(sources), "context": context},
    )
    t_train = time.time() - t
    excl_file = out / "_work" / "outlier_exclusion.json"
    exclusion = json.loads(excl_file.read_text()) if outlier_k is not None and excl_file.exists() else None
    evals: dict[str, dict[str, Any]] = {}
    for h, p in paths.items():
        dst = compact(p, out / sae_folder(h))
        ev = evaluate_sae(load_sae(dst), model, heldout, h, ce_batches=ce_batches)
        ev.update(
            {
                "training_tokens": training_tokens,
                "training_seconds": round(t_train, 1),
                "d_sae": d_sae,
                "k": k,
                "architecture": "batchtopk -> jumprelu (inference)",
                "seed": seed,
                "corpus": corpus.describe_short(sources),
                "heldout_tokens": int(heldout.numel()),
                "lr": lr,
                "corpus_passes": round(epochs, 2),
                "device": str(model.device),
                "retrain": retrain,
                # training tokens left out for their norm (> outlier_k x the batch median at any trained hook)
                "training_outlier_exclusion": exclusion,
            }
        )
        write_json(dst / "eval.json", ev, indent=2)
        evals[h] = {k_: v for k_, v in ev.items() if k_ != "density_hist"}
        if progress:
            print(
                f"{h}: FVE {ev['fraction_variance_explained']:.3f}  CE recovered {ev['ce_loss_recovered']:.3f}  "
                f"L0 {ev['l0']:.1f}  dead {ev['dead_fraction']:.3f}  -> {dst}"
            )
    write_summary(
        out,
        "sae train",
        inputs={
            "model": model.info,
            "layers": ",".join(str(L) for L in layers),
            "d_sae": d_sae,
            "k": k,
            "training_tokens": training_tokens,
            "seed": seed,
            "outlier_k": outlier_k,
            "sources": list(sources),
        },
        results=evals,
        timings={"train": t_train, "total": load_s + time.time() - t0},
    )
    return evals


def sae_eval(
    model: Model,
    sae: str | Path,
    out: str | Path,
    *,
    sae_id: str | None = None,
    hook: str | None = None,
    allow_other_model: bool = False,
    context: int = 128,
    eval_sequences: int = 128,
    ce_batches: int = 4,
    load_s: float = 0.0,
) -> dict[str, Any]:
    """``sae eval``: an SAE (folder or sae-lens release with ``sae_id``) on ``eval_sequences`` held-out rows of the
    model at ``hook`` (default: the SAE's own): FVE, CE loss recovered, L0, dead latents (:func:`evaluate_sae`)."""
    t0 = time.time()
    heldout = heldout_rows(model, context, eval_sequences)
    ev = evaluate_sae(
        load_sae(sae, sae_id), model, heldout, hook, allow_other_model=allow_other_model, ce_batches=ce_batches
    )
    write_summary(
        out,
        "sae eval",
        inputs={
            "model": model.info,
            "sae": sae,
            "sae_id": sae_id,
            "hook": hook,
            "heldout_tokens": int(heldout.numel()),
        },
        results=ev,
        timings={"total": load_s + time.time() - t0},
    )
    return ev
