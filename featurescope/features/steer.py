"""Feature steering (Templeton et al. 2024): steer with one SAE latent, against random latents of matched density.

Two edits at the SAE's hook, at every position (prompt and each generated token):

- ``add``: ``h + alpha * d_j`` with ``d_j`` the latent's unit decoder direction times ``scale`` (steering with its
  decoder direction);
- ``clamp``: the latent's activation set to ``value`` *keeping the SAE's error term*:
  ``h' = decode(z') + (h - decode(z))`` with ``z' = z`` except ``z'_j = value``, which for sae-lens' linear decoder is
  exactly ``h + (value - z_j) * W_dec[j]``. The error ``h - decode(z)`` is taken from the *unedited* code; a hook
  that recomputes the error after the edit (``h' - decode(encode(h'))``) would hand most of the edit back.

The effect on the trait is the judged trait score with the edit minus without, per question (mean over sampling
seeds); the null is the same effect for random latents whose firing density is close to the target's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from ..errors import FeaturescopeError
from ..evidence.nulls import control_evidence
from ..generate import generate
from ..models import Model

Mode = Literal["add", "clamp"]


def latent_edit_hook(
    sae: Any, latent: int, *, mode: Mode = "clamp", value: float = 0.0, alpha: float = 0.0,
    seen: list[int] | None = None,
) -> Callable[[Tensor, Any], Tensor]:  # fmt: skip
    """A TransformerLens hook applying the edit at every position; ``seen`` collects the number of positions of
    each forward pass it edited (to check that every generated token was edited)."""
    if mode not in ("add", "clamp"):
        raise ValueError("mode must be 'add' or 'clamp'")
    d = sae.W_dec[latent].detach().float()

    def fn(act: Tensor, hook: Any = None) -> Tensor:
        x = act.float()
        if mode == "add":
            out = x + alpha * d.to(x.device) / d.norm().clamp(min=1e-12)
        else:
            z_j = sae.encode(x.to(sae.W_dec.device))[..., latent].to(x.device)
            out = x + (value - z_j)[..., None] * d.to(x.device)
        if seen is not None:
            seen.append(int(act.shape[1]))
        return out.to(act.dtype)

    return fn


def clamp_exact(sae: Any, h: Float[Tensor, "*pos d"], latent: int, value: float) -> Float[Tensor, "*pos d"]:
    """The clamp written the long way, ``decode(z') + (h - decode(z))``: equals the hook's result (tested)."""
    z = sae.encode(h)
    err = h - sae.decode(z)
    z2 = z.clone()
    z2[..., latent] = value
    return sae.decode(z2) + err


def density_matched(
    density: Float[Tensor, " latents"], target: int, n: int, *, exclude: Sequence[int] = (), tol: float = 0.5,
    seed: int = 0,
) -> list[int]:  # fmt: skip
    """``n`` random latents whose firing density is within a factor ``10**tol`` of the target's (log-space), never
    the target or ``exclude``; widens the window when too few qualify."""
    logd = torch.log10(density.double().clamp(min=1e-7))
    ban = {target, *exclude}
    rng = np.random.default_rng(seed)
    for width in (tol, 2 * tol, 4 * tol, 99.0):
        ok = [int(i) for i in (abs(logd - logd[target]) <= width).nonzero().flatten() if int(i) not in ban]
        if len(ok) >= n:
            return sorted(rng.choice(ok, size=n, replace=False).tolist())
    raise FeaturescopeError(f"only {len(ok)} latents available as density-matched controls; {n} asked for")


def latent_steering(
    model: Model,
    sae: Any,
    latents: Sequence[int],
    trait: Any,
    judge: Any,
    questions: Sequence[str],
    density: Float[Tensor, " latents"],
    *,
    mode: Mode = "clamp",
    value: float | None = None,
    alpha: float = 0.0,
    n_random: int = 4,
    seeds: Sequence[int] = (0, 1, 2),
    max_new_tokens: int = 48,
    hook: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """For each latent: the trait effect of the edit per question (sampled answers, mean over ``seeds``) against
    ``n_random`` random latents of matched firing ``density`` given the same edit on the same questions and seeds.
    ``value`` (clamp, required) is the activation the latent is clamped to; ``alpha`` (add) the steering norm."""
    if mode == "clamp" and value is None:
        raise FeaturescopeError("clamp needs value= (e.g. a multiple of the latent's top activation)")
    h = hook or sae.cfg.metadata.hook_name
    convs = [[{"role": "user", "content": q}] for q in questions]

    def scores(fwd: list[tuple[str, Callable]]) -> np.ndarray:
        per_seed = []
        for s in seeds:
            gens = generate(model, convs, max_new_tokens=max_new_tokens, do_sample=True, temperature=0.7, seed=s,
                            fwd_hooks=fwd, progress=False)  # fmt: skip
            sc = judge.score_many(trait, list(questions), [g.response for g in gens])
            per_seed.append([x.trait for x in sc])
        return np.asarray(per_seed, dtype=np.float64).mean(0)

    base = scores([])
    out: dict[str, Any] = {"hook": h, "mode": mode, "value": value, "alpha": alpha, "seeds": list(seeds),
                           "questions": list(questions), "unsteered": base.tolist(), "latents": {}}  # fmt: skip
    for j in latents:
        seen: list[int] = []
        edit = latent_edit_hook(sae, j, mode=mode, value=value or 0.0, alpha=alpha, seen=seen)
        real = scores([(h, edit)]) - base
        controls = density_matched(density, j, n_random, exclude=latents, seed=j)
        ctrl = np.stack(
            [
                scores([(h, latent_edit_hook(sae, c, mode=mode, value=value or 0.0, alpha=alpha))]) - base
                for c in controls
            ]
        )
        ev = control_evidence(
            f"latent {j} ({mode})", real, ctrl.mean(0), len(controls), "density-matched random latents"
        )
        out["latents"][str(j)] = {
            "effect": real.tolist(),
            "controls": {str(c): e.tolist() for c, e in zip(controls, ctrl)},
            "edited_passes": len(seen),
            "evidence": ev.to_dict(),
            "line": ev.line(".1f"),
        }
    return out


def steering_summary(res: dict[str, Any]) -> dict[str, Any]:
    """The results part of ``features steer``'s ``summary.json`` from :func:`latent_steering`'s output: per latent
    its evidence, the density-matched controls and how many forward passes the edit went through (the per-question
    effects stay in ``steering.json``)."""
    base = np.asarray(res["unsteered"], dtype=np.float64)
    return {
        "hook": res["hook"],
        "mode": res["mode"],
        "value": res["value"],
        "alpha": res["alpha"],
        "seeds": list(res["seeds"]),
        "n_questions": len(res["questions"]),
        "unsteered_mean": float(base.mean()) if len(base) else float("nan"),
        "latents": {
            j: {
                "evidence": r["evidence"],
                "controls": [int(c) for c in r["controls"]],
                "edited_passes": r["edited_passes"],
            }
            for j, r in res["latents"].items()
        },
        "files": ["steering.json"],
    }
