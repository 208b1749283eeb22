"""Persona: pure functions over tensors; the vector object."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from safetensors import safe_open
from safetensors.torch import load_file
from torch import Tensor

from ..errors import FeaturescopeError
from ..measures import cohens_d
from ..models import Model
from ..store import atomic_save_tensors


def mean_difference(
    pos: Float[Tensor, "n_pos layer d"], neg: Float[Tensor, "n_neg layer d"]
) -> Float[Tensor, "layer d"]:
    """mean(pos) - mean(neg), per layer. Needs at least one example on each side."""
    if pos.shape[0] == 0 or neg.shape[0] == 0:
        raise FeaturescopeError(
            f"cannot take a mean difference with {pos.shape[0]} positive and {neg.shape[0]} "
            "negative examples; loosen the judge thresholds or add questions"
        )
    return pos.float().mean(0) - neg.float().mean(0)


def project(acts: Float[Tensor, "n d"], vector: Float[Tensor, " d"]) -> Float[Tensor, " n"]:
    """Scalar projection of each activation onto the unit vector along ``vector``."""
    v = vector.float()
    return acts.float() @ (v / v.norm().clamp(min=1e-12))


def separation(
    pos: Float[Tensor, "n_pos layer d"], neg: Float[Tensor, "n_neg layer d"], vectors: Float[Tensor, "layer d"]
) -> dict[str, Any]:
    """Per layer: mean projection of each side onto that layer's vector, their gap, and Cohen's d (in sample: the
    vector was fitted to these responses; ``extract`` adds ``held_out``, measured on other questions)."""
    out: dict[str, Any] = {"pos_mean": [], "neg_mean": [], "gap": [], "cohens_d": []}
    for L in range(vectors.shape[0]):
        a, b = project(pos[:, L], vectors[L]), project(neg[:, L], vectors[L])
        out["pos_mean"].append(float(a.mean()))
        out["neg_mean"].append(float(b.mean()))
        out["gap"].append(float(a.mean() - b.mean()))
        out["cohens_d"].append(cohens_d(a, b))  # nan when undefined (< 2 per side, no spread)
    return out


def pearson(x: Sequence[float] | Tensor, y: Sequence[float] | Tensor) -> float:
    x = torch.as_tensor(x, dtype=torch.float64)
    y = torch.as_tensor(y, dtype=torch.float64)
    if len(x) < 3:
        return float("nan")
    x, y = x - x.mean(), y - y.mean()
    d = x.norm() * y.norm()
    return float((x @ y) / d) if d > 0 else float("nan")


@dataclasses.dataclass
class PersonaVector:
    """Per-layer persona vectors for one trait on one model. ``vectors[i]`` belongs to ``hooks[i]``."""

    trait: str
    vectors: Float[Tensor, "layer d"]
    hooks: list[str]
    kind: str
    model: str
    stage: str
    n_pos: int
    n_neg: int
    thresholds: dict[str, float] = dataclasses.field(default_factory=dict)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: The plain mean difference before the massive-activation handling named in ``extra["handling"]`` (None when
    #: no handling was applied: then ``vectors`` is the plain mean difference).
    raw: Float[Tensor, "layer d"] | None = None

    def at(self, hook_or_layer: str | int) -> Float[Tensor, " d"]:
        if isinstance(hook_or_layer, int):
            hook = (
                f"blocks.{hook_or_layer % len(self.hooks)}.hook_resid_post"
                if hook_or_layer < 0
                else f"blocks.{hook_or_layer}.hook_resid_post"
            )
        else:
            hook = hook_or_layer
        if hook not in self.hooks:
            raise KeyError(f"no {self.trait} vector at {hook!r}; have {self.hooks[0]} .. {self.hooks[-1]}")
        return self.vectors[self.hooks.index(hook)]

    @property
    def norms(self) -> list[float]:
        return [float(x) for x in self.vectors.norm(dim=-1)]

    @property
    def d_model(self) -> int:
        return int(self.vectors.shape[-1])

    def check_fits(self, model: Model, hook: str | None = None, *, allow_other_model: bool = False) -> None:
        """Raise :class:`FeaturescopeError` unless this vector can be used on ``model`` (at ``hook``).

        The widths must agree. A vector extracted on another checkpoint (e.g. the base model's vector read on the
        post-trained model) is refused unless ``allow_other_model``, so that a mix-up is never silent."""
        if self.d_model != model.d_model:
            raise FeaturescopeError(
                f"the {self.trait} vector was extracted on {self.model} (width {self.d_model}), but {model.name} has "
                f"d_model {model.d_model}: extract a vector on this model"
            )
        if hook is not None and hook not in self.hooks:
            raise FeaturescopeError(
                f"the {self.trait} vector has no direction at {hook!r} (it has {self.hooks[0]} .. {self.hooks[-1]})"
            )
        if not allow_other_model and self.model != model.name:
            raise FeaturescopeError(
                f"the {self.trait} vector was extracted on {self.model}, not {model.name}; pass allow_other_model "
                "(--allow-other-model) to use it on another checkpoint of the same width on purpose"
            )

    def metadata(self) -> dict[str, Any]:
        return {
            "trait": self.trait,
            "hooks": self.hooks,
            "kind": self.kind,
            "model": self.model,
            "stage": self.stage,
            "n_pos": self.n_pos,
            "n_neg": self.n_neg,
            "thresholds": self.thresholds,
            "extra": self.extra,
        }

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        tensors = {"vectors": self.vectors.float()}
        if self.raw is not None:
            tensors["raw"] = self.raw.float()
        atomic_save_tensors(path, tensors, metadata={"featurescope": json.dumps(self.metadata())})
        return path

    @classmethod
    def load(cls, path: str | Path) -> PersonaVector:
        path = Path(path)
        if not path.exists():
            raise FeaturescopeError(f"no persona vector file at {path}")
        try:
            with safe_open(str(path), "pt") as f:
                meta = json.loads((f.metadata() or {}).get("featurescope", "{}"))
            tensors = load_file(str(path))
            vectors = tensors["vectors"]
        except Exception as e:  # noqa: BLE001 - safetensors raises its own error types for a garbage file
            raise FeaturescopeError(f"{path}: not a readable persona vector file ({type(e).__name__})") from e
        if not meta:
            raise FeaturescopeError(f"{path} has no featurescope metadata: not a persona vector file")
        fields = {f.name for f in dataclasses.fields(cls)} - {"vectors", "raw"}
        unknown = set(meta) - fields
        if unknown:
            raise FeaturescopeError(f"{path}: unknown persona-vector metadata {sorted(unknown)}")
        if vectors.ndim != 2 or len(meta.get("hooks", [])) != vectors.shape[0]:
            raise FeaturescopeError(
                f"{path}: {vectors.shape[0] if vectors.ndim else 0} vectors for {len(meta.get('hooks', []))} hooks"
            )
        return cls(vectors=vectors, raw=tensors.get("raw"), **meta)

    def __repr__(self) -> str:
        return (
            f"PersonaVector({self.trait!r}, kind={self.kind}, model={self.model!r}, layers={len(self.hooks)}, "
            f"d={self.vectors.shape[-1]}, n_pos={self.n_pos}, n_neg={self.n_neg})"
        )

    def _repr_html_(self) -> str:
        norms = self.norms
        mx = max(norms) or 1.0
        bars = "".join(
            f"<tr><td>{h}</td><td><div style='background:#c0392b;height:10px;width:{200 * n / mx:.0f}px'></div></td>"
            f"<td>{n:.2f}</td></tr>"
            for h, n in zip(self.hooks, norms)
        )
        return (
            f"<div><b>persona vector: {self.trait}</b> ({self.kind}) on <code>{self.model}</code> ({self.stage}); "
            f"kept {self.n_pos} positive / {self.n_neg} negative responses"
            f"<table><tr><th>hook</th><th colspan=2>norm</th></tr>{bars}</table></div>"
        )
