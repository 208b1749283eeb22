"""Sparse autoencoders: load (sae-lens registry or a local sae-lens folder), check they fit a model and hook, and
evaluate them on any model's activations.

Evaluation reports what sae-lens' ``evals.py`` reports - fraction of variance explained, L0, dead-latent fraction
and CE-loss recovered ``(CE_zero_abl - CE_sae) / (CE_zero_abl - CE_clean)`` - on featurescope captures. CE loss
comes from sae-lens' own ``get_recons_loss`` (splicing through TransformerLens hooks). As in Kissane et al., BOS /
special tokens and the top ``outlier_quantile`` of activation norms are excluded from the variance metrics (they
would otherwise dominate them), and what was excluded is reported.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float, Int
from safetensors.torch import load_file, save_file
from torch import Tensor

from .capture import capture, stop_layer
from .errors import FeaturescopeError, OfflineError, did_you_mean
from .formatting import FormattedPrompt
from .models import Model, hub_reachable
from .store import write_json


class SAEMismatchError(FeaturescopeError):
    """An SAE does not fit the model or hook it is used with."""


SHIPPED_PREFIX = "featurescope:"


def shipped_sae_roots() -> list[Path]:
    """Where featurescope's own SAEs are looked for, in order: ``$FEATURESCOPE_SAES``, the ``saes/`` folder of the
    repository checkout this package runs from (the source of truth), then the package's ``data/saes`` (in a checkout
    a symlink to that folder; in a built wheel a copy of it, so a pip-installed featurescope finds them too)."""
    roots = []
    if os.environ.get("FEATURESCOPE_SAES"):
        roots.append(Path(os.environ["FEATURESCOPE_SAES"]).expanduser())
    roots.append(Path(__file__).resolve().parent.parent / "saes")
    roots.append(Path(__file__).parent / "data" / "saes")
    return roots


def list_shipped_saes() -> list[str]:
    """Names of the shipped SAEs that can be loaded here, e.g. ``featurescope:gemma-3-270m/layer_9_resid_post``."""
    names = set()
    for root in shipped_sae_roots():
        if root.is_dir():
            names |= {f"{SHIPPED_PREFIX}{c.parent.relative_to(root).as_posix()}" for c in root.glob("*/*/cfg.json")}
    return sorted(names)


def resolve_shipped_sae(name: str) -> Path:
    """The folder of a shipped SAE named ``featurescope:MODEL/HOOK_FOLDER``; a clear error when it is not here."""
    rel = name[len(SHIPPED_PREFIX) :].strip("/")
    for root in shipped_sae_roots():
        if (root / rel / "cfg.json").exists():
            return root / rel
    have = list_shipped_saes()
    raise FeaturescopeError(
        f"no shipped SAE {name!r} here.{did_you_mean(name, have)} Available: {', '.join(have) or 'none'}. The "
        "shipped SAEs live in the repository's saes/ folder and in the wheel's featurescope/data/saes; or point "
        "FEATURESCOPE_SAES at a copy of that folder"
    )


def load_sae(
    release_or_path: str | os.PathLike, sae_id: str | None = None, *, device: str = "cpu", dtype: str = "float32"
) -> Any:
    """Load an SAE: a local sae-lens folder (``cfg.json`` + safetensors), a shipped one by name
    (``featurescope:gemma-3-270m/layer_9_resid_post``, see :func:`list_shipped_saes`), or an sae-lens release and id."""
    from sae_lens import SAE  # heavy: sae-lens (~4-6 s)

    if isinstance(release_or_path, str) and release_or_path.startswith(SHIPPED_PREFIX):
        release_or_path = resolve_shipped_sae(release_or_path)
    p = Path(release_or_path).expanduser()
    if p.is_dir():
        check_sae_folder(p)
        try:
            return SAE.load_from_disk(str(p), device=device, dtype=dtype)
        except Exception as e:  # noqa: BLE001 - sae-lens raises many types for a bad folder; say which folder
            raise FeaturescopeError(
                f"{p}: sae-lens could not load this SAE folder ({type(e).__name__}: "
                f"{str(e).splitlines()[0][:200] if str(e) else ''})"
            ) from e
    if sae_id is None:
        raise FeaturescopeError(
            f"{release_or_path!r} is not a local SAE folder; for a registry SAE pass the sae-lens "
            "release and its sae_id (e.g. 'gemma-scope-2-270m-pt-res', 'layer_9_width_16k_l0_medium')"
        )
    release = str(release_or_path)
    known = registry_releases()
    if release not in known:
        raise FeaturescopeError(f"unknown sae-lens release {release!r}.{did_you_mean(release, known)}")

    try:
        return SAE.from_pretrained(release, sae_id, device=device, dtype=dtype)
    except Exception as e:  # network errors, unknown ids
        if not hub_reachable():
            raise OfflineError(
                f"SAE {release}/{sae_id} must be downloaded from the Hugging Face hub, which cannot be "
                "reached from here; use a local SAE folder (e.g. the project's saes/)"
            ) from e
        raise


SAE_WEIGHTS = "sae_weights.safetensors"


def safetensors_shapes(path: Path) -> dict[str, list[int]]:
    """Tensor shapes from a safetensors file's header, after checking that the file is complete.

    Reads only the header (no tensor data), so a truncated or foreign file is refused in microseconds, before any
    model is loaded. Raises :class:`FeaturescopeError` naming the file and what is wrong.
    """
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise FeaturescopeError(f"{path}: not a safetensors file ({size} bytes)")
        n = int.from_bytes(head, "little")
        if n <= 0 or n > min(size - 8, 100_000_000):
            raise FeaturescopeError(f"{path}: not a safetensors file (header length {n} for a {size}-byte file)")
        try:
            header = json.loads(f.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise FeaturescopeError(f"{path}: not a safetensors file (unreadable header)") from e
    if not isinstance(header, dict):
        raise FeaturescopeError(f"{path}: not a safetensors file (header is not a table)")
    shapes, end = {}, 0
    for k, v in header.items():
        if k == "__metadata__":
            continue
        try:
            shapes[k] = [int(x) for x in v["shape"]]
            end = max(end, int(v["data_offsets"][1]))
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise FeaturescopeError(f"{path}: not a safetensors file (bad entry {k!r})") from e
    if 8 + n + end != size:
        raise FeaturescopeError(
            f"{path}: truncated or padded safetensors file ({size} bytes, header says {8 + n + end})"
        )
    return shapes


def check_sae_folder(folder: str | os.PathLike) -> dict[str, Any]:
    """Check a local SAE folder before loading it: a readable ``cfg.json`` whose ``d_in`` / ``d_sae`` agree with
    the weights file's tensor shapes, and a complete weights file. Returns the parsed config."""
    p = Path(folder)
    cfg_path = p / "cfg.json"
    if not cfg_path.exists():
        raise FeaturescopeError(f"{p} is not an sae-lens SAE folder (no cfg.json)")
    try:
        cfg = json.loads(cfg_path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FeaturescopeError(f"{cfg_path}: not valid JSON ({e})") from e
    if not isinstance(cfg, dict):
        raise FeaturescopeError(f"{cfg_path}: expected a JSON object")
    for key in ("d_in", "d_sae"):
        if not isinstance(cfg.get(key), int) or cfg[key] <= 0:
            raise FeaturescopeError(f"{cfg_path}: {key!r} must be a positive integer, got {cfg.get(key)!r}")
    w = p / SAE_WEIGHTS
    if not w.exists():
        raise FeaturescopeError(f"{p}: no {SAE_WEIGHTS}")
    shapes = safetensors_shapes(w)
    d_in, d_sae = cfg["d_in"], cfg["d_sae"]
    want = {"W_enc": [d_in, d_sae], "W_dec": [d_sae, d_in], "b_dec": [d_in], "b_enc": [d_sae]}
    for k, shape in want.items():
        if k in shapes and shapes[k] != shape:
            raise FeaturescopeError(
                f"{p}: cfg.json says d_in={d_in}, d_sae={d_sae}, but {SAE_WEIGHTS} has {k} of "
                f"shape {shapes[k]} (expected {shape})"
            )
    if "W_dec" not in shapes:
        raise FeaturescopeError(f"{w}: no W_dec tensor (tensors: {', '.join(sorted(shapes)) or 'none'})")
    return cfg


def registry_releases() -> list[str]:
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory  # heavy: sae-lens (~4-6 s)

    return sorted(get_pretrained_saes_directory().keys())


def sae_hook(sae: Any) -> str | None:
    return sae.cfg.metadata.hook_name


def check_sae(sae: Any, model: Model, hook: str | None = None, *, allow_other_model: bool = False) -> str:
    """Raise :class:`SAEMismatchError` unless ``sae`` fits ``model`` at ``hook`` (default: the SAE's own hook).
    Returns the hook. ``allow_other_model`` permits an SAE trained on another checkpoint of the same architecture
    (SAE transfer between training stages); width and hook must still match."""
    h = hook or sae_hook(sae)
    if h is None:
        raise SAEMismatchError("the SAE records no hook name; pass hook=")
    model.check_hook(h)
    d_in = int(sae.cfg.d_in)
    want = model.d_model if "resid" in h or h.endswith(("attn_out", "mlp_out")) else None
    if want is not None and d_in != want:
        raise SAEMismatchError(f"SAE d_in is {d_in} but {model.name} has d_model {want} at {h}")
    own = sae_hook(sae)
    if own is not None and hook is not None and own != hook:
        raise SAEMismatchError(f"the SAE was trained on {own!r}, not {hook!r}")
    m = sae.cfg.metadata.model_name
    if m and not allow_other_model and not _same_model(m, model):
        raise SAEMismatchError(
            f"the SAE was trained on {m!r}, not {model.name!r}; pass allow_other_model=True to evaluate transfer "
            "across checkpoints on purpose"
        )
    return h


def _same_model(sae_model: str, model: Model) -> bool:
    names = {model.name, model.info.name, getattr(model.tl.cfg, "model_name", None)}
    names |= {n.split("/")[-1] for n in list(names) if n}
    return sae_model in names or sae_model.split("/")[-1] in names


def outlier_mask(acts: Float[Tensor, "n d"], quantile: float) -> Tensor:
    """Tokens to keep: all but the top ``quantile`` of residual norms (everything when ``quantile <= 0`` or < 10 tokens)."""
    if quantile <= 0 or len(acts) < 10:
        return torch.ones(len(acts), dtype=torch.bool)
    norms = acts.norm(dim=-1)
    return norms <= torch.quantile(norms, 1 - quantile)


def reconstruction_metrics(
    sae: Any, acts: Float[Tensor, "n d"], *, outlier_quantile: float = 0.01, batch_size: int = 4096
) -> dict[str, Any]:
    """Fraction of variance explained, MSE, L0 and per-latent firing counts of ``sae`` on ``acts`` (tokens x d)."""
    keep = outlier_mask(acts, outlier_quantile)
    x_all = acts[keep]
    d_sae = int(sae.cfg.d_sae)
    fires = torch.zeros(d_sae, dtype=torch.long)
    sse = 0.0
    l0 = 0.0
    mean = x_all.float().mean(0)
    sst = float(((x_all.float() - mean) ** 2).sum())
    with torch.no_grad():
        for i in range(0, len(x_all), batch_size):
            x = x_all[i : i + batch_size].to(sae.W_dec.dtype).to(sae.W_dec.device)
            f = sae.encode(x)
            r = sae.decode(f)
            sse += float(((r.float() - x.float()) ** 2).sum())
            active = f != 0
            l0 += float(active.sum())
            fires += active.sum(0).cpu()
    n = max(len(x_all), 1)
    return {
        "fraction_variance_explained": 1 - sse / sst if sst > 0 else float("nan"),
        "mse": sse / (n * acts.shape[-1]),
        "l0": l0 / n,
        "dead_fraction": float((fires == 0).float().mean()),
        "n_tokens": int(n),
        "n_excluded_outliers": int((~keep).sum()),
        "firing_counts": fires,
    }


def ce_loss_recovered(
    sae: Any,
    model: Model,
    tokens: Int[Tensor, "batch pos"],
    hook: str | None = None,
    exclude_special: bool = True,
    mean: Float[Tensor, " d"] | None = None,
) -> dict[str, float]:
    """CE-loss recovered when the SAE's reconstruction is spliced in, via sae-lens' ``get_recons_loss``.

    sae-lens' baseline is zero ablation, which for a residual-stream hook makes the next-token distribution nearly
    uniform (CE ≈ ln |vocab|, 12.48 nats for Gemma 3): a lenient floor. With ``mean`` (the mean activation at the
    hook) the stricter **mean ablation** is measured too - every non-special position replaced by the mean, as the
    SAE splice replaces them - with ``ce_loss_recovered_vs_mean`` and the CE increase in nats."""
    from sae_lens.evals import get_recons_loss  # heavy: sae-lens (~4-6 s)
    from sae_lens.training.activation_scaler import ActivationScaler  # heavy: sae-lens (~4-6 s)

    h = hook or sae_hook(sae)
    ignore = None
    if exclude_special and model.tokenizer is not None:
        ignore = sorted(
            {
                t
                for t in (model.tokenizer.bos_token_id, model.tokenizer.pad_token_id, model.tokenizer.eos_token_id)
                if t is not None
            }
        )
    with torch.no_grad():
        m = get_recons_loss(
            sae,
            model.tl,
            ActivationScaler(),
            tokens.to(model.device),
            compute_kl=False,
            compute_ce_loss=True,
            ignore_tokens=ignore,
            hook_name=h,
        )
    clean = float(m["ce_loss_without_sae"].mean())
    spliced = float(m["ce_loss_with_sae"].mean())
    zero = float(m["ce_loss_with_ablation"].mean())
    out = {
        "ce_clean": clean,
        "ce_with_sae": spliced,
        "ce_zero_ablation": zero,
        "ce_loss_recovered": (zero - spliced) / (zero - clean) if zero != clean else float("nan"),
        "ce_increase_nats": spliced - clean,
    }
    if mean is not None:
        toks = tokens.to(model.device)
        keep = torch.ones_like(toks, dtype=torch.bool)
        for t in ignore or []:
            keep &= toks != t

        def mean_ablate(act: Tensor, hook: Any = None) -> Tensor:
            return torch.where(keep[..., None], mean.to(act.dtype).to(act.device).expand_as(act), act)

        with torch.no_grad():
            ce_mean = model.tl.run_with_hooks(
                toks, return_type="loss", loss_per_token=True, fwd_hooks=[(h, mean_ablate)]
            )
        mab = float(ce_mean.mean())
        out["ce_mean_ablation"] = mab
        out["ce_loss_recovered_vs_mean"] = (mab - spliced) / (mab - clean) if mab != clean else float("nan")
    return out


def non_special_mask(tokenizer: Any, tokens: Int[Tensor, ...]) -> Tensor:
    """True where ``tokens`` is neither BOS nor padding (the positions SAE training and evaluation use)."""
    keep = torch.ones_like(tokens, dtype=torch.bool)
    for t in {tokenizer.bos_token_id, tokenizer.pad_token_id} - {None}:
        keep &= tokens != t
    return keep


@torch.no_grad()
def activation_stats(
    model: Model, hooks: list[str], tokens: Int[Tensor, "batch pos"], batch_size: int = 16
) -> dict[str, tuple[Float[Tensor, " d"], float]]:
    """Mean activation and mean norm at each hook over ``tokens`` (BOS / pad positions excluded, as in training)."""

    sums = {h: torch.zeros(model.d_model, dtype=torch.float64) for h in hooks}
    norms = dict.fromkeys(hooks, 0.0)
    n = 0
    stop = stop_layer(hooks, model.n_layers)
    for i in range(0, len(tokens), batch_size):
        rows = tokens[i : i + batch_size].to(model.device)
        keep = non_special_mask(model.tokenizer, rows)
        _, cache = model.tl.run_with_cache(rows, names_filter=hooks, stop_at_layer=stop)
        for h in hooks:
            x = cache[h][keep].double().cpu()
            sums[h] += x.sum(0)
            norms[h] += float(x.norm(dim=-1).sum())
        n += int(keep.sum())
    return {h: ((sums[h] / max(n, 1)).float(), norms[h] / max(n, 1)) for h in hooks}


def evaluate_sae(
    sae: Any,
    model: Model,
    tokens: torch.Tensor,
    hook: str | None = None,
    *,
    batch_size: int = 16,
    outlier_quantile: float = 0.01,
    allow_other_model: bool = False,
    ce_batches: int = 8,
) -> dict[str, Any]:
    """All metrics of ``sae`` on ``model``'s activations over ``tokens`` (``[n, context]`` rows starting with BOS):
    variance explained / L0 / dead fraction (BOS excluded, top 1% norms excluded) and CE-loss recovered."""

    h = check_sae(sae, model, hook, allow_other_model=allow_other_model)
    prompts = [
        FormattedPrompt(
            text="",
            tokens=row,
            role_ids=torch.zeros(len(row), dtype=torch.long),
            last_prompt_index=len(row) - 1,
            kind="transcript",
            messages=[],
            has_response=False,
        )
        for row in tokens
    ]
    acts = capture(model, prompts, [h], reduction="all", batch_size=batch_size, progress=False)[h]
    keep = non_special_mask(model.tokenizer, tokens.reshape(-1))
    rec = reconstruction_metrics(sae, acts[keep], outlier_quantile=outlier_quantile)
    fires = rec.pop("firing_counts")
    mean_act = acts[keep].float().mean(0)
    ce = [
        ce_loss_recovered(sae, model, tokens[i : i + batch_size], h, mean=mean_act)
        for i in range(0, min(len(tokens), ce_batches * batch_size), batch_size)
    ]
    ce_mean = {k: sum(c[k] for c in ce) / len(ce) for k in ce[0]}
    ce_mean["ce_loss_recovered"] = (ce_mean["ce_zero_ablation"] - ce_mean["ce_with_sae"]) / (
        ce_mean["ce_zero_ablation"] - ce_mean["ce_clean"]
    )
    ce_mean["ce_loss_recovered_vs_mean"] = (ce_mean["ce_mean_ablation"] - ce_mean["ce_with_sae"]) / (
        ce_mean["ce_mean_ablation"] - ce_mean["ce_clean"]
    )
    ce_mean["ce_increase_nats"] = ce_mean["ce_with_sae"] - ce_mean["ce_clean"]
    return {
        "hook": h,
        "model": model.name,
        **rec,
        **ce_mean,
        "n_special_excluded": int((~keep).sum()),
        "density_hist": torch.histc(
            (fires.float() / max(rec["n_tokens"], 1)).clamp(min=1e-7).log10(), bins=20, min=-7, max=0
        ).tolist(),
    }


def compact(src: str | Path, dst: str | Path, dtype: torch.dtype = torch.float16) -> Path:
    """Copy an sae-lens folder with its weights cast to ``dtype`` (fp16 halves the size; sae-lens reads it back)."""
    src, dst = Path(src), Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    w = load_file(str(src / "sae_weights.safetensors"))
    save_file({k: v.to(dtype).contiguous() for k, v in w.items()}, str(dst / "sae_weights.safetensors"))
    cfg = json.loads((src / "cfg.json").read_text())
    cfg["dtype"] = str(dtype).replace("torch.", "")
    write_json(dst / "cfg.json", cfg, indent=2)
    if (src / "sparsity.safetensors").exists():
        shutil_copy(src / "sparsity.safetensors", dst / "sparsity.safetensors")
    return dst


def shutil_copy(a: Path, b: Path) -> None:
    shutil.copyfile(a, b)
