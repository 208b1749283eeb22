"""Model diffing for the feature that moved (Wang et al. 2025, "persona features control emergent misalignment"),
as pure functions on SAE latent activations.

Wang et al. compare SAE latents before and after a misaligning fine-tune, find a "toxic persona" latent whose
increase tracks misalignment across fine-tunes, which fires on quotes of morally questionable characters in
pre-training text, and whose steering / ablation raises / lowers the behaviour. Here, per trait:

- **select** (one split): latents ranked by their activation increase after the trait's own fine-tune (selection
  seed) *minus* the increase after the neutral control fine-tune of the same seed, on the selection half of the
  evaluation questions - the control removes what any fine-tuning on chat data moves;
- **measure** (the other split): across the remaining fine-tunes, the Pearson r of the top latent's increase with
  the trait expression, on the held-out questions; the null is the same r for density-matched random latents;
- passages: the latent's standardised paired difference on questionable- vs benign-character passages, against
  the same for random latents.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from jaxtyping import Float
from numpy.typing import ArrayLike
from torch import Tensor

from ..evidence.nulls import Evidence, evidence
from ..stats import bootstrap, pearson


def latent_increase(after: Float[Tensor, "n latents"], before: Float[Tensor, "n latents"]) -> Float[Tensor, " latents"]:
    """Mean over items (paired by position: the same evaluation question) of after - before."""
    if after.shape != before.shape:
        raise ValueError(f"{tuple(after.shape)} vs {tuple(before.shape)}: the same items before and after")
    return (after.float() - before.float()).mean(0)


def moved_latents(
    target: Float[Tensor, " latents"], control: Float[Tensor, " latents"] | None = None, k: int = 10
) -> list[int]:
    """The ``k`` latents whose increase after the target fine-tune most exceeds their increase after the control
    fine-tune (or the plain increase without a control), largest first."""
    score = target.float() - (control.float() if control is not None else 0.0)
    return [int(i) for i in torch.argsort(score, descending=True)[:k]]


def split_halves(n: int) -> tuple[list[int], list[int]]:
    """(selection, measurement) item indices: even and odd positions, so both halves span every trait's list."""
    return list(range(0, n, 2)), list(range(1, n, 2))


def increase_expression_evidence(
    increases: Float[Tensor, "finetunes latents"],
    expression: ArrayLike,
    latent: int,
    controls: Sequence[int],
    *,
    seed: int = 0,
) -> Evidence:
    """Pearson r across fine-tunes of ``latent``'s increase with the trait expression (bootstrap over fine-tunes),
    against the same r for each control latent (the null: density-matched random latents)."""
    y = np.asarray(expression, dtype=np.float64)
    x = increases[:, latent].double().numpy()
    est = bootstrap(pearson, x, y, seed=seed)
    draws = [pearson(increases[:, j].double().numpy(), y) for j in controls]
    return evidence(
        "top latent's increase vs trait expression (Pearson r across fine-tunes)",
        est,
        [d for d in draws if d == d] or [float("nan")],
        f"{len(controls)} density-matched random latents",
    )


def standardised_difference(a: Float[Tensor, " pairs"], b: Float[Tensor, " pairs"], scale: float) -> np.ndarray:
    """Per pair, (a - b) / ``scale`` (the latent's own spread over all passages), so latents of different
    magnitudes compare."""
    return ((a.double() - b.double()) / max(float(scale), 1e-12)).numpy()


def passage_evidence(
    questionable: Float[Tensor, "pairs latents"],
    benign: Float[Tensor, "pairs latents"],
    latent: int,
    controls: Sequence[int],
    *,
    seed: int = 0,
) -> Evidence:
    """Does ``latent`` fire more on the questionable-character passage of each pair than on its benign twin?
    Mean standardised paired difference (bootstrap over pairs) against the same for each control latent."""
    allp = torch.cat([questionable, benign]).double()
    sd = allp.std(0)

    def effect(j: int) -> np.ndarray:
        return standardised_difference(questionable[:, j], benign[:, j], float(sd[j]))

    est = bootstrap(np.mean, effect(latent), seed=seed)
    draws = [float(np.mean(effect(j))) for j in controls]
    return evidence(
        "top latent on questionable- vs benign-character passages (standardised paired difference)",
        est,
        draws,
        f"{len(controls)} density-matched random latents",
    )


def firing_density(z: Float[Tensor, "tokens latents"]) -> Float[Tensor, " latents"]:
    """Fraction of tokens on which each latent is active (> 0)."""
    return (z > 0).float().mean(0)
