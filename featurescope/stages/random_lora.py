"""The null for "the base SAE transfers to the post-trained model": a *random* LoRA with the same weight change.

For every LoRA module of a trained ``peft`` adapter, a random low-rank update of the same rank whose product
``B @ A`` has the same Frobenius norm as the trained one (so ``||ΔW||`` matches module by module; peft's scaling is
the same config), and random deltas of the same norm for any trainable token embeddings. Loading the base model
with this adapter gives a model that moved as far as post-training moved it, in no particular direction: if the
base SAE reconstructs it as well as the post-trained model, transfer says nothing specific about post-training.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from ..errors import FeaturescopeError

WEIGHTS = "adapter_model.safetensors"
CONFIG = "adapter_config.json"


def _pairs(t: dict[str, Tensor]) -> dict[str, tuple[str, str]]:
    out = {}
    for k in t:
        if k.endswith("lora_A.weight"):
            b = k[: -len("lora_A.weight")] + "lora_B.weight"
            if b not in t:
                raise FeaturescopeError(f"adapter has {k} without {b}")
            out[k[: -len(".lora_A.weight")]] = (k, b)
    return out


def delta_norms(tensors: dict[str, Tensor]) -> dict[str, float]:
    """Frobenius norm of ``B @ A`` per LoRA module (and of each trainable-token delta)."""
    out = {m: float((tensors[b].double() @ tensors[a].double()).norm()) for m, (a, b) in _pairs(tensors).items()}
    for k, v in tensors.items():
        if k.endswith("trainable_tokens_delta"):
            out[k] = float(v.double().norm())
    return out


def random_lora_tensors(tensors: dict[str, Tensor], seed: int = 0) -> dict[str, Tensor]:
    """Random adapter tensors with the same keys, shapes and per-module ``||B @ A||`` as ``tensors``."""
    g = torch.Generator().manual_seed(seed)
    out: dict[str, Tensor] = {}
    for _, (a, b) in _pairs(tensors).items():
        A, B = tensors[a], tensors[b]
        target = float((B.double() @ A.double()).norm())
        ra = torch.randn(A.shape, generator=g, dtype=torch.float64)
        rb = torch.randn(B.shape, generator=g, dtype=torch.float64)
        cur = float((rb @ ra).norm())
        scale = target / cur if cur > 0 else 0.0
        out[a] = ra.to(A.dtype)
        out[b] = (rb * scale).to(B.dtype)
    for k, v in tensors.items():
        if k in out:
            continue
        if k.endswith("trainable_tokens_delta"):
            r = torch.randn(v.shape, generator=g, dtype=torch.float64)
            rows = v.double().norm(dim=-1, keepdim=True)
            out[k] = (torch.nn.functional.normalize(r, dim=-1) * rows).to(v.dtype)
        else:
            raise FeaturescopeError(f"adapter tensor {k!r} is neither a LoRA factor nor a trainable-token delta")
    return out


def random_lora_like(adapter_dir: str | Path, out_dir: str | Path, seed: int = 0) -> Path:
    """Write a random adapter matching ``adapter_dir`` (same config, same per-module weight-change norms)."""
    src, dst = Path(adapter_dir), Path(out_dir)
    if not (src / WEIGHTS).exists() or not (src / CONFIG).exists():
        raise FeaturescopeError(f"{src} is not a peft adapter folder ({WEIGHTS} and {CONFIG} expected)")
    dst.mkdir(parents=True, exist_ok=True)
    t = load_file(str(src / WEIGHTS))
    save_file(
        random_lora_tensors(t, seed), str(dst / WEIGHTS), metadata={"format": "pt", "featurescope": "random LoRA null"}
    )
    shutil.copyfile(src / CONFIG, dst / CONFIG)
    return dst
