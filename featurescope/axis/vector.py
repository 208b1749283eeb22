"""Assistant axis: the axis object."""

from __future__ import annotations

import dataclasses
import html
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import einops
import torch
from jaxtyping import Float, Int
from safetensors import safe_open
from safetensors.torch import load_file
from torch import Tensor

from ..errors import FeaturescopeError
from ..evidence.axis import axis_pc1_evidence, split_half_pc_cosines
from ..evidence.massive import massive_dims_of, share_on_dims, share_on_direction
from ..runs import jsonable
from ..store import atomic_save_tensors, write_json
from .constants import GROUPS
from .pca import PCAResult, axis_from_means, cosine, group_means, pca, percentile_rank, project, unit


@dataclasses.dataclass
class AssistantAxis:
    """The Assistant axis of one model, with the role vectors and default-Assistant statistics behind it.

    ``vectors[i]`` is the (unnormalised) axis at ``hooks[i]``; ``role_vectors[r, i]`` is role r's vector there;
    ``default_projections[j, i]`` is default response j's projection onto the unit axis; ``token_quantiles[i, q]`` is
    the q-th percentile (q = 0..100) of the default Assistant's per-token response projections (for capping)."""

    vectors: Float[Tensor, "layer d"]
    hooks: list[str]
    model: str
    stage: str
    role_names: list[str]
    role_categories: list[str]
    role_vectors: Float[Tensor, "role layer d"]
    role_counts: Int[Tensor, " role"]
    default_mean: Float[Tensor, "layer d"]
    default_projections: Float[Tensor, "n_default layer"]
    token_quantiles: Float[Tensor, "layer 101"] | None = None
    kind: str = "response_mean"
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    # -- construction ---------------------------------------------------------------------------------------------
    @classmethod
    def from_activations(
        cls,
        role_acts: Float[Tensor, "n layer d"],
        role_index: Int[Tensor, " n"],
        default_acts: Float[Tensor, "m layer d"],
        *,
        hooks: Sequence[str],
        role_names: Sequence[str],
        role_categories: Sequence[str],
        keep: Tensor | None = None,
        model: str = "?",
        stage: str = "?",
        kind: str = "response_mean",
        extra: dict[str, Any] | None = None,
    ) -> AssistantAxis:
        """Role vectors = per-role means over kept rows; axis = mean(default) - mean(role vectors)."""
        rv, counts = group_means(role_acts, role_index, len(role_names), keep)
        ok = counts > 0
        if not bool(ok.all()):
            missing = [n for n, c in zip(role_names, counts.tolist()) if c == 0]
            raise FeaturescopeError(f"role(s) {missing} have no kept responses")
        dm = default_acts.float().mean(0)
        ax = axis_from_means(dm, rv)
        dproj = einops.einsum(default_acts.float(), unit(ax), "m l d, l d -> m l")
        return cls(
            vectors=ax,
            hooks=list(hooks),
            model=model,
            stage=stage,
            role_names=list(role_names),
            role_categories=list(role_categories),
            role_vectors=rv,
            role_counts=counts,
            default_mean=dm,
            default_projections=dproj,
            kind=kind,
            extra=dict(extra or {}),
        )

    # -- indexing -------------------------------------------------------------------------------------------------
    @property
    def n_layers(self) -> int:
        return len(self.hooks)

    @property
    def middle_layer(self) -> int:
        """Index (into ``hooks``) of the middle layer, the paper's default."""
        return self.n_layers // 2

    def index(self, layer: int | str | None = None) -> int:
        """Position in ``hooks`` of a layer number (its ``blocks.L.hook_resid_post``) or hook name; None = middle."""
        if layer is None:
            return self.middle_layer
        if isinstance(layer, str):
            if layer not in self.hooks:
                raise FeaturescopeError(f"the axis has no {layer!r}; it has {self.hooks[0]} .. {self.hooks[-1]}")
            return self.hooks.index(layer)
        name = f"blocks.{layer % self.n_layers if layer < 0 else layer}.hook_resid_post"
        if name in self.hooks:
            return self.hooks.index(name)
        raise FeaturescopeError(f"the axis has no layer {layer}; it has {self.hooks[0]} .. {self.hooks[-1]}")

    def hook(self, layer: int | str | None = None) -> str:
        return self.hooks[self.index(layer)]

    def at(self, layer: int | str | None = None) -> Float[Tensor, " d"]:
        return self.vectors[self.index(layer)]

    def unit(self, layer: int | str | None = None) -> Float[Tensor, " d"]:
        return unit(self.at(layer))

    @property
    def norms(self) -> list[float]:
        return [float(x) for x in self.vectors.norm(dim=-1)]

    # -- analysis -------------------------------------------------------------------------------------------------
    def role_projections(self, layer: int | str | None = None) -> Float[Tensor, " role"]:
        i = self.index(layer)
        return project(self.role_vectors[:, i], self.vectors[i])

    def default_projection(self, layer: int | str | None = None) -> float:
        i = self.index(layer)
        return float(project(self.default_mean[i], self.vectors[i]))

    def ranked_roles(self, layer: int | str | None = None) -> list[tuple[str, str, float]]:
        """(role, category, projection) from most to least Assistant-like."""
        p = self.role_projections(layer).tolist()
        return sorted(zip(self.role_names, self.role_categories, p), key=lambda t: -t[2])

    def pca(self, layer: int | str | None = None) -> PCAResult:
        i = self.index(layer)
        return pca(self.role_vectors[:, i], orient=self.vectors[i])

    def tau(
        self, layer: int | str | None = None, percentile: float = 25.0, basis: Literal["tokens", "responses"] = "tokens"
    ) -> float:
        """Capping threshold: the ``percentile`` of the default Assistant's projections onto the unit axis, per
        response token (``tokens``; needs ``token_quantiles``) or per response mean (``responses``)."""
        i = self.index(layer)
        if not 0 <= percentile <= 100:
            raise ValueError("percentile must be in [0, 100]")
        if basis == "tokens":
            if self.token_quantiles is None:
                raise FeaturescopeError("this axis has no per-token default projections; use basis='responses'")
            q = self.token_quantiles[i]
            lo = int(math.floor(percentile))
            hi = min(lo + 1, 100)
            w = percentile - lo
            return float(q[lo] * (1 - w) + q[hi] * w)
        return float(torch.quantile(self.default_projections[:, i].double(), percentile / 100))

    def analysis(self, layer: int | str | None = None, *, with_evidence: bool = True) -> dict[str, Any]:
        """PCA and placement numbers at one layer; ``with_evidence`` adds :meth:`evidence` (bootstraps and nulls,
        about a second at 40 roles; the notebook display leaves it out)."""
        i = self.index(layer)
        p = self.pca(self.hooks[i])
        ax = self.vectors[i]
        d_pc = ((self.default_mean[i] - p.mean) @ p.components[: min(2, len(p.components))].T).tolist()
        pc1 = p.scores[:, 0]
        proj = self.role_projections(self.hooks[i])
        dproj = self.default_projection(self.hooks[i])
        ranked = sorted(zip(self.role_names, self.role_categories, proj.tolist()), key=lambda t: -t[2])
        group_mean = {}
        for g, cats in GROUPS.items():
            vals = [p_ for c, p_ in zip(self.role_categories, proj.tolist()) if c in cats]
            if vals:
                group_mean[g] = sum(vals) / len(vals)
        return {
            "hook": self.hooks[i],
            "axis_norm": float(ax.norm()),
            "explained_variance": [round(float(x), 5) for x in p.explained[:20]],
            "pcs_for_70pct": p.n_for(0.7),
            "axis_pc1_cosine": float(cosine(ax, p.components[0])),
            **({"evidence": self.evidence(self.hooks[i])} if with_evidence else {}),
            "massive_dims": (dims := massive_dims_of(self.default_mean[i])),
            "axis_share_on_massive": share_on_dims(ax, dims),
            "axis_share_on_mean": share_on_direction(ax, self.default_mean[i]),
            "role_filter": self.role_filter(),
            "axis_pc2_cosine": float(cosine(ax, p.components[1])) if len(p.components) > 1 else None,
            "default_pc": d_pc,
            "default_pc1_percentile": percentile_rank(d_pc[0], pc1),
            "default_pc1_z": float((d_pc[0] - pc1.mean()) / pc1.std().clamp(min=1e-9)) if len(pc1) > 1 else None,
            "default_axis_projection": dproj,
            "role_projection_range": [float(proj.min()), float(proj.max())],
            "default_axis_percentile": percentile_rank(dproj, proj),
            "group_mean_projection": group_mean,
            "top_roles": [r[0] for r in ranked[:10]],
            "bottom_roles": [r[0] for r in ranked[-10:][::-1]],
        }

    def role_filter(self) -> dict[str, int]:
        """How many role vectors used the role-adherence filter as asked (score 3), the relaxed one (>= 2), or no
        filter at all (every answer: the judge found too few in-role answers for that role)."""
        used = self.extra.get("score_threshold_used") or {}
        vals = list(used.values())
        return {
            "score_3": sum(1 for t in vals if t >= 3),
            "score_2": sum(1 for t in vals if t == 2),
            "unfiltered": sum(1 for t in vals if t < 2),
            "n_roles": len(vals),
        }

    def evidence(self, layer: int | str | None = None, *, n_boot: int = 500, seed: int = 0) -> dict[str, Any]:
        """Nulls and intervals at one layer: cos(axis, PC1) with a role-resampling CI against the "any role as
        default" null, and the split-half PC cosines (what a cross-stage PC cosine must beat)."""
        i = self.index(layer)
        rv = self.role_vectors[:, i]
        ev = axis_pc1_evidence(rv, self.default_mean[i], n_boot=n_boot, seed=seed)
        sh = split_half_pc_cosines(rv, seed=seed)
        dims = massive_dims_of(self.default_mean[i])
        keep = torch.ones(rv.shape[-1], dtype=torch.bool)
        keep[dims] = False
        ev_nm = axis_pc1_evidence(rv[:, keep], self.default_mean[i][keep], n_boot=n_boot, seed=seed)
        return {
            "axis_pc1": ev.to_dict(),
            "axis_pc1_without_massive": {**ev_nm.to_dict(), "massive_dims": dims},
            "split_half_pc_cosines": {
                "mean": [round(float(x), 4) for x in sh.mean(0)],
                "lo": [round(float(x), 4) for x in sh.quantile(0.025, dim=0)],
                "what": "|cos| of matched PCs between two random halves of this model's roles",
            },
        }

    def per_layer(self) -> dict[str, list[Any]]:
        """Per-layer profile: axis norm, cos(axis, PC1), PCs for 70%, default's percentile on PC1."""
        out: dict[str, list[Any]] = {
            "hook": [],
            "axis_norm": [],
            "axis_pc1_cosine": [],
            "pcs_for_70pct": [],
            "default_pc1_percentile": [],
            "pc1_explained": [],
        }
        for i, h in enumerate(self.hooks):
            p = self.pca(h)
            d1 = float((self.default_mean[i] - p.mean) @ p.components[0])
            out["hook"].append(h)
            out["axis_norm"].append(float(self.vectors[i].norm()))
            out["axis_pc1_cosine"].append(float(cosine(self.vectors[i], p.components[0])))
            out["pcs_for_70pct"].append(p.n_for(0.7))
            out["default_pc1_percentile"].append(percentile_rank(d1, p.scores[:, 0]))
            out["pc1_explained"].append(float(p.explained[0]))
        return out

    # -- persistence ----------------------------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        return {
            "format": "featurescope.axis/1",
            "hooks": self.hooks,
            "model": self.model,
            "stage": self.stage,
            "role_names": self.role_names,
            "role_categories": self.role_categories,
            "kind": self.kind,
            "extra": self.extra,
        }

    def save(self, path: str | Path) -> Path:
        """Write ``path`` (.safetensors, with the metadata as JSON in its header) and a readable ``.json`` beside it."""

        path = Path(path)
        if path.suffix != ".safetensors":
            path = path / "axis.safetensors" if (path.is_dir() or not path.suffix) else path.with_suffix(".safetensors")
        t = {
            "vectors": self.vectors.float(),
            "role_vectors": self.role_vectors.float(),
            "role_counts": self.role_counts.long(),
            "default_mean": self.default_mean.float(),
            "default_projections": self.default_projections.float(),
        }
        if self.token_quantiles is not None:
            t["token_quantiles"] = self.token_quantiles.float()
        meta = jsonable(self.metadata())
        atomic_save_tensors(path, t, metadata={"featurescope": json.dumps(meta)})
        write_json(
            path.with_suffix(".json"),
            {**meta, "norms": self.norms, "role_counts": self.role_counts.tolist()},
            indent=2,
        )
        return path

    @classmethod
    def load(cls, path: str | Path) -> AssistantAxis:
        path = Path(path)
        if path.is_dir():
            path = path / "axis.safetensors"
        if not path.exists():
            raise FeaturescopeError(f"no axis file at {path} (write one with `featurescope axis collect`)")
        with safe_open(str(path), "pt") as f:
            meta = json.loads((f.metadata() or {}).get("featurescope", "{}"))
        if meta.get("format") != "featurescope.axis/1":
            raise FeaturescopeError(f"{path} is not an Assistant-axis file (format {meta.get('format')!r})")
        t = load_file(str(path))
        return cls(
            vectors=t["vectors"],
            hooks=meta["hooks"],
            model=meta["model"],
            stage=meta["stage"],
            role_names=meta["role_names"],
            role_categories=meta["role_categories"],
            role_vectors=t["role_vectors"],
            role_counts=t["role_counts"],
            default_mean=t["default_mean"],
            default_projections=t["default_projections"],
            token_quantiles=t.get("token_quantiles"),
            kind=meta.get("kind", "response_mean"),
            extra=meta.get("extra", {}),
        )

    # -- display --------------------------------------------------------------------------------------------------
    def __repr__(self) -> str:
        return (
            f"AssistantAxis(model={self.model!r}, stage={self.stage}, kind={self.kind}, layers={self.n_layers}, "
            f"d={self.vectors.shape[-1]}, roles={len(self.role_names)}, default_responses="
            f"{self.default_projections.shape[0]})"
        )

    def _repr_html_(self) -> str:
        a = self.analysis(with_evidence=False)
        pl = self.per_layer()
        mx = max(pl["axis_norm"]) or 1.0
        rows = "".join(
            f"<tr><td>{h}</td><td><div style='background:#2c7fb8;height:9px;width:{150 * n / mx:.0f}px'></div></td>"
            f"<td>{n:.2f}</td><td>{c:+.2f}</td><td>{k}</td></tr>"
            for h, n, c, k in zip(pl["hook"], pl["axis_norm"], pl["axis_pc1_cosine"], pl["pcs_for_70pct"])
        )
        top = ", ".join(html.escape(x) for x in a["top_roles"][:5])
        bottom = ", ".join(html.escape(x) for x in a["bottom_roles"][:5])
        return (
            f"<div><b>Assistant axis</b> of <code>{html.escape(self.model)}</code> ({self.stage}, {self.kind}); "
            f"{len(self.role_names)} roles, {self.default_projections.shape[0]} default responses.<br/>"
            f"Middle layer {a['hook']}: cos(axis, PC1) = {a['axis_pc1_cosine']:+.2f}; {a['pcs_for_70pct']} PCs "
            f"reach 70% of the variance; default Assistant at percentile {a['default_pc1_percentile']:.2f} of the "
            f"roles on PC1.<br/>Most Assistant-like roles: {top}<br/>Least: {bottom}"
            f"<table><tr><th>hook</th><th colspan=2>axis norm</th><th>cos PC1</th><th>PCs 70%</th></tr>{rows}"
            f"</table></div>"
        )
