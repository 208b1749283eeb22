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
from ..persona.extraction import ExtractionConfig

Mode = Literal["add", "clamp"]
#: mean judged coherence (0-100) under which steered answers are not read as expressing a trait: the persona
#: pipeline's coherence filter, read from its config (the one home of that default)
COHERENCE_THRESHOLD: float = ExtractionConfig.coherence_threshold


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
    coherence_threshold: float = COHERENCE_THRESHOLD,
    n_examples: int = 3,
    progress: bool = True,
) -> dict[str, Any]:
    """For each latent: the trait effect of the edit per question (sampled answers, mean over ``seeds``) against
    ``n_random`` random latents of matched firing ``density`` given the same edit on the same questions and seeds.
    ``value`` (clamp, required) is the activation the latent is clamped to; ``alpha`` (add) the steering norm.

    The judge's coherence of every answer is kept too: an edit that breaks the text moves a trait judge's score
    without expressing the trait (measured: a latent added at norm 1,500 in Gemma 3 270M gave "shouldn shouldn ..."
    answers that the probe judge scored +11 evil). A latent whose steered answers' mean coherence is under
    ``coherence_threshold`` is marked ``coherent: False`` and its line says that its change is not read as a trait
    effect, whatever the interval. The first ``n_examples`` answers (first seed) of each arm are kept to read."""
    if mode == "clamp" and value is None:
        raise FeaturescopeError("clamp needs value= (e.g. a multiple of the latent's top activation)")
    h = hook or sae.cfg.metadata.hook_name
    convs = [[{"role": "user", "content": q}] for q in questions]

    def scores(fwd: list[tuple[str, Callable]]) -> tuple[np.ndarray, np.ndarray, list[str]]:
        per_seed, coh, examples = [], [], []
        for s in seeds:
            gens = generate(model, convs, max_new_tokens=max_new_tokens, do_sample=True, temperature=0.7, seed=s,
                            fwd_hooks=fwd, progress=False)  # fmt: skip
            sc = judge.score_many(trait, list(questions), [g.response for g in gens])
            per_seed.append([x.trait for x in sc])
            coh.append([x.coherence for x in sc])
            examples = examples or [g.response for g in gens[:n_examples]]
        return np.asarray(per_seed, np.float64).mean(0), np.asarray(coh, np.float64).mean(0), examples

    base, base_coh, base_ex = scores([])
    out: dict[str, Any] = {"hook": h, "mode": mode, "value": value, "alpha": alpha, "seeds": list(seeds),
                           "questions": list(questions), "unsteered": base.tolist(),
                           "unsteered_coherence": base_coh.tolist(), "unsteered_examples": base_ex,
                           "coherence_threshold": coherence_threshold, "latents": {}}  # fmt: skip
    for j in latents:
        seen: list[int] = []
        edit = latent_edit_hook(sae, j, mode=mode, value=value or 0.0, alpha=alpha, seen=seen)
        real, real_coh, real_ex = scores([(h, edit)])
        real = real - base
        controls = density_matched(density, j, n_random, exclude=latents, seed=j)
        arms = [scores([(h, latent_edit_hook(sae, c, mode=mode, value=value or 0.0, alpha=alpha))]) for c in controls]
        ctrl = np.stack([a[0] - base for a in arms])
        ev = control_evidence(
            f"latent {j} ({mode})", real, ctrl.mean(0), len(controls), "density-matched random latents"
        )
        coherent = bool(np.mean(real_coh) >= coherence_threshold)
        line = ev.line(".1f") + f"; coherence {np.mean(real_coh):.0f} (unsteered {np.mean(base_coh):.0f})"
        if not coherent:
            line += f" < {coherence_threshold:g}: incoherent answers, the change is not read as a trait effect"
        out["latents"][str(j)] = {
            "effect": real.tolist(),
            "coherence": real_coh.tolist(),
            "coherent": coherent,
            "examples": real_ex,
            "controls": {str(c): e.tolist() for c, e in zip(controls, ctrl)},
            "controls_coherence": {str(c): a[1].tolist() for c, a in zip(controls, arms)},
            "edited_passes": len(seen),
            "evidence": ev.to_dict(),
            "line": line,
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
        "unsteered_coherence": _mean(res.get("unsteered_coherence")),
        "coherence_threshold": res.get("coherence_threshold"),
        "latents": {
            j: {
                "evidence": r["evidence"],
                "controls": [int(c) for c in r["controls"]],
                "edited_passes": r["edited_passes"],
                # None for runs written before coherence was kept
                "coherence": _mean(r.get("coherence")),
                "coherent": r.get("coherent"),
                "controls_coherence": _mean([x for v in (r.get("controls_coherence") or {}).values() for x in v]),
            }
            for j, r in res["latents"].items()
        },
        "files": ["steering.json"],
    }


def _mean(x: Sequence[float] | None) -> float | None:
    return float(np.mean(x)) if x else None
