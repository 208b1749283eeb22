"""Stages: crosscoder model diff (pure): relative decoder norm + Latent Scaling (Minder et al. 2025)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import einops
import torch
from jaxtyping import Float, Int
from safetensors.torch import load_file
from torch import Tensor
from tqdm.auto import tqdm

from .constants import DictionaryMismatchError, StageMismatchError, StagesError
from .matching import cosine_histogram


def relative_decoder_norm(
    d_base: Float[Tensor, "n d"],
    d_post: Float[Tensor, "n_post d_post"],  # must equal d_base's shape: checked with a clear error
) -> Float[Tensor, " n"]:
    """r = ||d_post|| / (||d_base|| + ||d_post||) per latent (0: base-only, 0.5: equal, 1: post-only)."""
    if d_base.shape != d_post.shape:
        raise DictionaryMismatchError(f"crosscoder decoders of shape {tuple(d_base.shape)} vs {tuple(d_post.shape)}")
    nb, npost = d_base.float().norm(dim=-1), d_post.float().norm(dim=-1)
    return npost / (nb + npost).clamp(min=1e-12)


def classify_latents(
    r: Float[Tensor, " n"], base_only_max: float = 0.1, post_only_min: float = 0.9
) -> dict[str, Int[Tensor, " k"]]:
    """Split latents by relative norm: base-only (r < base_only_max), post-only (r > post_only_min), shared."""
    base_only = r < base_only_max
    post_only = r > post_only_min
    return {
        "base_only": base_only.nonzero().flatten(),
        "post_only": post_only.nonzero().flatten(),
        "shared": (~base_only & ~post_only).nonzero().flatten(),
    }


@dataclasses.dataclass
class ScalingSums:
    """Running sums for :func:`latent_scaling` (accumulate over token chunks, then call ``betas``)."""

    num_err: Float[Tensor, "2 k"]  # per model (0 = base, 1 = post)
    num_rec: Float[Tensor, "2 k"]
    den: Float[Tensor, " k"]

    def betas(self) -> dict[str, Tensor]:
        den = self.den.clamp(min=1e-30)
        b_err, b_rec = self.num_err / den, self.num_rec / den
        dead = self.den <= 0
        out = {
            "beta_error_base": b_err[0],
            "beta_error_post": b_err[1],
            "beta_recon_base": b_rec[0],
            "beta_recon_post": b_rec[1],
        }
        out = {k: torch.where(dead, torch.full_like(v, float("nan")), v) for k, v in out.items()}
        out["nu_error"] = out["beta_error_base"] / out["beta_error_post"]
        out["nu_recon"] = out["beta_recon_base"] / out["beta_recon_post"]
        return out


def latent_scaling_sums(
    f: Float[Tensor, "n k"],
    direction: Float[Tensor, "k d"],
    acts: Float[Tensor, "2 n d"],
    recon: Float[Tensor, "2 n d"],
    own_decoder: Float[Tensor, "2 k d"],
) -> ScalingSums:
    """Sufficient statistics of the Latent Scaling fits for one chunk of tokens.

    For latent j with activation f_j(x) and direction d_j (the post-trained decoder row, Minder et al.), and model m
    with activation h_m(x), crosscoder reconstruction r_m(x) and own decoder row d_j^m, the least-squares scale

        beta_m = argmin_b sum_x || b f_j(x) d_j - y_m(x) ||^2 = sum_x f_j(x) <d_j, y_m(x)> / (||d_j||^2 sum_x f_j(x)^2)

    is fitted for two targets that leave latent j's own contribution out:
    *error*: y = h_m - r_m + f_j d_j^m (what the rest of the crosscoder misses; catches Complete Shrinkage), and
    *reconstruction*: y = r_m - f_j d_j^m (what other latents already encode; catches Latent Decoupling).
    nu = beta_base / beta_post; a true post-only latent has nu ~ 0 on both."""
    f = f.float()
    D = direction.float()
    f2 = (f * f).sum(0)  # [k]
    dn2 = (D * D).sum(-1)  # [k]
    num_err = torch.zeros(2, D.shape[0])
    num_rec = torch.zeros(2, D.shape[0])
    for m in range(2):
        self_dot = (own_decoder[m].float() * D).sum(-1)  # <d_j^m, d_j>
        err_proj = (acts[m].float() - recon[m].float()) @ D.T  # [n, k]
        rec_proj = recon[m].float() @ D.T
        num_err[m] = (f * err_proj).sum(0) + f2 * self_dot
        num_rec[m] = (f * rec_proj).sum(0) - f2 * self_dot
    return ScalingSums(num_err, num_rec, dn2 * f2)


def latent_scaling(
    f: Float[Tensor, "n k"],
    direction: Float[Tensor, "k d"],
    acts: Float[Tensor, "2 n d"],
    recon: Float[Tensor, "2 n d"],
    own_decoder: Float[Tensor, "2 k d"],
) -> dict[str, Tensor]:
    """Latent Scaling betas and nu ratios in one call (see :func:`latent_scaling_sums`)."""
    return latent_scaling_sums(f, direction, acts, recon, own_decoder).betas()


@dataclasses.dataclass
class CrosscoderWeights:
    """A two-model crosscoder: model 0 = base, 1 = post-trained. ``encode`` is ReLU (optionally JumpReLU thresholds
    or per-token top-k), the architectures the two common checkpoint layouts use."""

    W_enc: Float[Tensor, "2 d n"]
    b_enc: Float[Tensor, " n"]
    W_dec: Float[Tensor, "2 n d"]
    b_dec: Float[Tensor, "2 d"]
    threshold: Float[Tensor, " n"] | None = None
    k: int | None = None
    source: str = ""

    @property
    def n_latents(self) -> int:
        return int(self.W_dec.shape[1])

    def encode(self, x: Float[Tensor, "batch 2 d"]) -> Float[Tensor, "batch n"]:
        pre = einops.einsum(x.float(), self.W_enc.float(), "b m d, m d n -> b n") + self.b_enc.float()
        f = torch.relu(pre)
        if self.threshold is not None:
            f = f * (pre > self.threshold.float())
        if self.k is not None and self.k < f.shape[-1]:
            top = f.topk(self.k, dim=-1)
            f = torch.zeros_like(f).scatter_(-1, top.indices, top.values)
        return f

    def decode(self, f: Float[Tensor, "batch n"]) -> Float[Tensor, "2 batch d"]:
        return einops.einsum(f.float(), self.W_dec.float(), "b n, m n d -> m b d") + self.b_dec.float()[:, None, :]


def load_crosscoder(path: str | Path, *, base_index: int = 0) -> CrosscoderWeights:
    """Read a two-model crosscoder from ``.safetensors`` / ``.pt``: the ``dictionary_learning`` CrossCoder layout
    (``encoder.weight [2, d, n]``, ``decoder.weight [2, n, d]``, ``encoder.bias``, ``decoder.bias``, optional
    ``threshold`` / ``k``) or the Kissane / Nanda replication layout (``W_enc [2, d, n]``, ``W_dec [n, 2, d]``,
    ``b_enc``, ``b_dec``), or a folder saved by :func:`featurescope.crosscoder.train_crosscoder` (sae-lens
    ``cfg.json`` + ``sae_weights.safetensors``, architecture ``jumprelu_crosscoder``). ``base_index`` says which of
    the two models is the base."""
    p = Path(path)
    if not p.exists():
        raise StagesError(f"no crosscoder file at {p}")
    if p.is_dir() or p.name == "sae_weights.safetensors":
        return _load_sae_lens_crosscoder(p if p.is_dir() else p.parent, base_index)
    if p.suffix == ".safetensors":
        sd = load_file(str(p))
    else:
        sd = torch.load(p, map_location="cpu", weights_only=True)
        sd = sd.get("state_dict", sd) if isinstance(sd, dict) else sd
    order = [base_index, 1 - base_index]
    if "decoder.weight" in sd:
        W_enc, W_dec = sd["encoder.weight"], sd["decoder.weight"]
        b_enc, b_dec = sd["encoder.bias"], sd["decoder.bias"]
    elif "W_dec" in sd:
        W_enc, b_enc, b_dec = sd["W_enc"], sd["b_enc"], sd["b_dec"]
        W_dec = einops.rearrange(sd["W_dec"], "n m d -> m n d")
    else:
        raise StagesError(
            f"{p}: not a crosscoder state dict I know (keys {sorted(sd)[:8]}...); expected "
            "dictionary_learning's encoder.weight/decoder.weight or W_enc/W_dec/b_enc/b_dec"
        )
    if W_dec.ndim != 3 or W_dec.shape[0] != 2 or W_enc.shape[0] != 2:
        raise StagesError(f"{p}: expected a crosscoder over 2 models, got decoder shape {tuple(W_dec.shape)}")
    k = sd.get("k")
    thr = sd.get("threshold")
    if thr is not None and thr.ndim == 0:
        thr = thr.expand(W_dec.shape[1])
    if thr is not None and bool((thr < 0).all()):
        thr = None  # dictionary_learning stores threshold = -1 until it is calibrated
    return CrosscoderWeights(
        W_enc=W_enc[order].float(),
        b_enc=b_enc.float(),
        W_dec=W_dec[order].float(),
        b_dec=b_dec[order].float(),
        threshold=None if thr is None else thr.float(),
        k=None if k is None else int(k),
        source=str(p),
    )


SAE_LENS_CROSSCODER = "jumprelu_crosscoder"


def _load_sae_lens_crosscoder(folder: Path, base_index: int) -> CrosscoderWeights:
    """An sae-lens crosscoder folder: a JumpReLU SAE over ``[h_base; h_post]`` (``W_enc [2d, n]``, ``W_dec [n, 2d]``,
    ``b_dec [2d]``, ``b_enc``, ``threshold [n]``) that subtracts ``b_dec`` from its input (folded into ``b_enc``)."""
    cfg_path, w_path = folder / "cfg.json", folder / "sae_weights.safetensors"
    if not (cfg_path.exists() and w_path.exists()):
        raise StagesError(
            f"{folder}: not an sae-lens crosscoder folder (it needs cfg.json and sae_weights.safetensors)"
        )
    cfg = json.loads(cfg_path.read_text())
    if cfg.get("architecture") != SAE_LENS_CROSSCODER:
        raise StagesError(
            f"{folder}: cfg.json says architecture {cfg.get('architecture')!r}, not a crosscoder "
            f"({SAE_LENS_CROSSCODER!r}); an SAE folder is loaded with featurescope.saes.load_sae"
        )
    if cfg.get("normalize_activations", "none") != "none":
        raise StagesError(f"{folder}: normalize_activations={cfg['normalize_activations']!r} is not supported here")
    sd = load_file(str(w_path))
    d_in, n = sd["W_enc"].shape
    W_enc = sd["W_enc"].float().reshape(2, d_in // 2, n)
    W_dec = sd["W_dec"].float().reshape(n, 2, d_in // 2).transpose(0, 1).contiguous()
    b_dec = sd["b_dec"].float().reshape(2, d_in // 2)
    b_enc = sd["b_enc"].float()
    if cfg.get("apply_b_dec_to_input", True):
        b_enc = b_enc - einops.einsum(b_dec, W_enc, "m d, m d n -> n")
    order = [base_index, 1 - base_index]
    thr = sd.get("threshold")
    return CrosscoderWeights(
        W_enc=W_enc[order],
        b_enc=b_enc,
        W_dec=W_dec[order],
        b_dec=b_dec[order],
        threshold=None if thr is None else thr.float(),
        source=str(folder),
    )


#: Latent Scaling floor on the reconstruction target (see :func:`latent_scaling_verdicts`)
RECON_FLOOR = 0.1


def latent_scaling_verdicts(
    betas: dict[str, Tensor], *, nu_max: float = 0.2, recon_floor: float = RECON_FLOOR
) -> dict[str, Tensor]:
    """Which latents Latent Scaling keeps as truly post-only, from the betas of :meth:`ScalingSums.betas`.

    Minder et al. keep a post-only latent when both ``nu_error = beta_error_base / beta_error_post`` (Complete
    Shrinkage: the base activations still carry the direction) and ``nu_recon = beta_recon_base / beta_recon_post``
    (Latent Decoupling: other latents carry it in the base reconstruction) are small. ``nu_recon`` is only a
    measurement when the post model's reconstruction carries the latent's direction at all: for a genuinely
    post-only direction that no other latent carries, both reconstruction betas are estimation noise around 0 and
    their ratio is anything (0.0216 / 0.0199 = 1.08 on a planted latent). Rule, with the latent's own post-model size
    ``beta_error_post`` as the unit:

    * ``|beta_recon_post| >= recon_floor * |beta_error_post|``: ``nu_recon`` is defined and must be ``< nu_max``
      (Minder et al.'s test, unchanged);
    * otherwise the post reconstruction has no component along the latent, ``nu_recon`` is undefined (reported,
      not used), and the reconstruction check asks instead whether the *base* reconstruction carries the direction:
      ``beta_recon_base / |beta_error_post| < nu_max`` (the same cutoff, measured against the latent's size in the
      post model). Latent Decoupling - the base reconstruction carries the direction through other latents that do
      not write it in the post model, ``beta_recon_post ~ 0`` - is still caught; two noise betas are not.

    ``nu_error`` is always used (its denominator ``beta_error_post`` is the latent's own size in the post model).
    Latents that never fire on the tokens (NaN betas) are neither kept nor flagged.
    Returns boolean masks ``true_post``, ``artefact``, ``dead``, ``nu_recon_defined``, ``error_fails``,
    ``recon_fails`` and the float ``recon_share_base`` / ``recon_share_post`` (``beta_recon_* / |beta_error_post|``).
    """
    b_err_post = betas["beta_error_post"]
    scale = b_err_post.abs().clamp(min=1e-30)
    share_base, share_post = betas["beta_recon_base"] / scale, betas["beta_recon_post"] / scale
    dead = torch.isnan(b_err_post)
    defined = share_post.abs() >= recon_floor
    error_fails = ~(betas["nu_error"] < nu_max)  # NaN (0 / 0) fails
    recon_fails = torch.where(defined, ~(betas["nu_recon"] < nu_max), ~(share_base < nu_max))
    bad = (error_fails | recon_fails) & ~dead
    return {
        "true_post": ~bad & ~dead,
        "artefact": bad,
        "dead": dead,
        "nu_recon_defined": defined & ~dead,
        "error_fails": error_fails & ~dead,
        "recon_fails": recon_fails & ~dead,
        "recon_share_base": share_base,
        "recon_share_post": share_post,
    }


def _reason(v: dict[str, Tensor], betas: dict[str, Tensor], i: int, nu_max: float, recon_floor: float) -> str:
    """One post-only latent's Latent Scaling verdict in words (:func:`latent_scaling_verdicts`)."""
    if bool(v["dead"][i]):
        return "never active on these tokens (no betas)"
    ne, nr = float(betas["nu_error"][i]), float(betas["nu_recon"][i])
    sb, sp = float(v["recon_share_base"][i]), float(v["recon_share_post"][i])
    err = (
        f"Complete Shrinkage: nu_error {ne:.3g} >= {nu_max} (the base activations carry the direction)"
        if bool(v["error_fails"][i])
        else f"nu_error {ne:.3g} < {nu_max}"
    )
    if bool(v["nu_recon_defined"][i]):
        rec = (
            f"Latent Decoupling: nu_recon {nr:.3g} >= {nu_max} (the base reconstruction carries the direction)"
            if bool(v["recon_fails"][i])
            else f"nu_recon {nr:.3g} < {nu_max}"
        )
    else:
        what = (
            f"but the base reconstruction does ({sb:.3g} x beta_error_post >= {nu_max}): Latent Decoupling"
            if bool(v["recon_fails"][i])
            else f"nor does the base one ({sb:.3g} x beta_error_post < {nu_max})"
        )
        rec = (
            f"no reconstruction component: the post reconstruction carries {sp:.3g} x beta_error_post "
            f"(|.| < {recon_floor}) of the direction, so nu_recon ({nr:.3g}) is a ratio of noise and not used, {what}"
        )
    return f"{err}; {rec}"


def crosscoder_report(
    cc: CrosscoderWeights,
    acts_base: Float[Tensor, "n d"],
    acts_post: Float[Tensor, "n d"],
    *,
    base_only_max: float = 0.1,
    post_only_min: float = 0.9,
    nu_max: float = 0.2,
    recon_floor: float = RECON_FLOOR,
    batch_size: int = 1024,
    progress: bool = False,
) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Relative-norm classes and Latent Scaling of every post-only latent (and of the shared ones, as the reference
    distribution) over paired activations of the two models on the same tokens. A post-only latent is truly
    post-only or a sparsity artefact by :func:`latent_scaling_verdicts` (``nu_max``, ``recon_floor``);
    ``post_only_latent_scaling`` gives each one's betas, verdict and reason. The activations must be in the units
    the crosscoder was trained in (:func:`featurescope.crosscoder.analyse_crosscoder` takes care of that)."""
    if acts_base.shape != acts_post.shape:
        raise StageMismatchError(f"paired activations must match: {tuple(acts_base.shape)} vs {tuple(acts_post.shape)}")
    if acts_base.shape[-1] != cc.W_dec.shape[-1]:
        raise DictionaryMismatchError(
            f"the crosscoder decodes d_model {cc.W_dec.shape[-1]}, activations have {acts_base.shape[-1]}"
        )
    r = relative_decoder_norm(cc.W_dec[0], cc.W_dec[1])
    cls = classify_latents(r, base_only_max, post_only_min)
    test = torch.cat([cls["post_only"], cls["shared"]])
    D = cc.W_dec[1][test]
    own = cc.W_dec[:, test]
    sums = ScalingSums(torch.zeros(2, len(test)), torch.zeros(2, len(test)), torch.zeros(len(test)))
    fires = torch.zeros(cc.n_latents)
    with torch.no_grad():
        for i in tqdm(range(0, len(acts_base), batch_size), desc="latent scaling", disable=not progress):
            x = torch.stack([acts_base[i : i + batch_size], acts_post[i : i + batch_size]], 1).float()
            f = cc.encode(x)
            fires += (f > 0).sum(0).float()
            rec = cc.decode(f)
            s = latent_scaling_sums(f[:, test], D, einops.rearrange(x, "b m d -> m b d"), rec, own)
            sums.num_err += s.num_err
            sums.num_rec += s.num_rec
            sums.den += s.den
    betas = sums.betas()
    n_post = len(cls["post_only"])
    nu_e, nu_r = betas["nu_error"][:n_post], betas["nu_recon"][:n_post]
    post_betas = {k: v[:n_post] for k, v in betas.items()}
    ver = latent_scaling_verdicts(post_betas, nu_max=nu_max, recon_floor=recon_floor)
    true_post, artefact, dead = ver["true_post"], ver["artefact"], ver["dead"]
    per_latent = post_only_verdicts(
        cls["post_only"], post_betas, nu_max=nu_max, recon_floor=recon_floor, limit=200, verdicts=ver
    )
    rep = {
        "n_latents": cc.n_latents,
        "source": cc.source,
        "thresholds": {
            "base_only_r_below": base_only_max,
            "post_only_r_above": post_only_min,
            "nu_max": nu_max,
            "recon_floor": recon_floor,
        },
        "counts": {k: int(len(v)) for k, v in cls.items()},
        "post_only_passing_latent_scaling": int(true_post.sum()),
        "post_only_flagged_as_artifacts": int(artefact.sum()),
        "post_only_never_active": int(dead.sum()),
        "true_post_only_latents": cls["post_only"][true_post].tolist()[:200],
        "flagged_post_only_latents": cls["post_only"][artefact].tolist()[:200],
        "post_only_nu_recon_undefined": int((~ver["nu_recon_defined"] & ~dead).sum()),
        "nu_error_median": {"post_only": _nanmedian(nu_e), "shared": _nanmedian(betas["nu_error"][n_post:])},
        "nu_recon_median": {"post_only": _nanmedian(nu_r), "shared": _nanmedian(betas["nu_recon"][n_post:])},
        "relative_norm_hist": cosine_histogram(r * 2 - 1, 20) | {"note": "edges over 2r-1; r = (edge + 1) / 2"},
        "n_tokens": int(len(acts_base)),
        "latent_scaling_rule": (
            f"truly post-only: nu_error < {nu_max} and, when the post reconstruction carries the latent's direction "
            f"(|beta_recon_post| >= {recon_floor} x |beta_error_post|), nu_recon < {nu_max}; when it does not, "
            f"nu_recon is a ratio of noise and the base reconstruction must carry < {nu_max} x beta_error_post"
        ),
        "post_only_latent_scaling": per_latent,
    }
    return rep, {"relative_norm": r, "tested_latents": test, "firing_counts": fires, **betas}


def post_only_verdicts(
    latents: Int[Tensor, " k"],
    betas: dict[str, Tensor],
    *,
    nu_max: float = 0.2,
    recon_floor: float = RECON_FLOOR,
    limit: int | None = None,
    verdicts: dict[str, Tensor] | None = None,
) -> list[dict[str, Any]]:
    """Each post-only latent's Latent Scaling record (``latent``, ``verdict``: truly post-only / artefact / never
    active, ``reason`` in words, ``nu_recon_used`` and the betas), from the betas of those latents (in the order of
    ``latents``; :func:`crosscoder_report`'s tensors hold them first, ``[:n_post]``). ``limit``: the first that
    many only; ``verdicts``: :func:`latent_scaling_verdicts` of these betas, when already computed."""
    ver = verdicts if verdicts is not None else latent_scaling_verdicts(betas, nu_max=nu_max, recon_floor=recon_floor)
    n = len(latents) if limit is None else min(len(latents), limit)

    def verdict(i: int) -> str:
        return (
            "truly post-only" if bool(ver["true_post"][i]) else "never active" if bool(ver["dead"][i]) else "artefact"
        )

    return [
        {
            "latent": int(latents[i]),
            "verdict": verdict(i),
            "reason": _reason(ver, betas, i, nu_max, recon_floor),
            "nu_recon_used": bool(ver["nu_recon_defined"][i]),
            **{k: _num(betas[k][i]) for k in _BETA_KEYS},
        }
        for i in range(n)
    ]


_BETA_KEYS = ("nu_error", "nu_recon", "beta_error_base", "beta_error_post", "beta_recon_base", "beta_recon_post")


def _num(x: Tensor) -> float | None:
    f = float(x)
    return None if f != f else f


def _nanmedian(x: Tensor) -> float | None:
    x = x[~torch.isnan(x)]
    return float(x.median()) if len(x) else None
