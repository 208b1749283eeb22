"""Assistant axis: across stages and SAE features."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..decompose import decompose
from ..errors import FeaturescopeError
from ..evidence.axis import split_half_pc_cosines
from ..saes import sae_hook
from .constants import PAPER
from .pca import cosine, pca, percentile_rank, unit
from .vector import AssistantAxis


def compare_axes(base: AssistantAxis, post: AssistantAxis, n_pcs: int = 3) -> dict[str, Any]:
    """Cross-stage numbers for two axes of the same architecture (same hooks and width): per layer, the cosine of
    the axes, |cosine| of the matched top ``n_pcs`` principal components, per-role vector cosines (raw, and centred
    on each model's mean role vector) over the roles both have, and where each model's default Assistant falls on
    the other's axis (0 = that model's mean role vector, 1 = its own default Assistant; and its percentile among
    that model's roles)."""
    if base.vectors.shape != post.vectors.shape or base.hooks != post.hooks:
        raise FeaturescopeError(
            f"cannot compare axes of different shapes/hooks: {base.model} {tuple(base.vectors.shape)} vs "
            f"{post.model} {tuple(post.vectors.shape)}; cross-stage comparison needs two checkpoints of one architecture"
        )
    common = [r for r in base.role_names if r in post.role_names]
    if len(common) < 2:
        raise FeaturescopeError("the two axes share fewer than 2 roles")
    bi = torch.tensor([base.role_names.index(r) for r in common])
    pi = torch.tensor([post.role_names.index(r) for r in common])
    rb, rp = base.role_vectors[bi].float(), post.role_vectors[pi].float()  # [R, L, d]
    out: dict[str, Any] = {
        "hooks": base.hooks,
        "n_common_roles": len(common),
        "axis_cosine": [],
        "pc_cosines": [],
        "role_cosine_raw_mean": [],
        "role_cosine_raw_min": [],
        "role_cosine_centred_mean": [],
        "post_default_on_base_axis": [],
        "post_default_percentile_on_base": [],
        "base_default_on_post_axis": [],
    }
    for i in range(base.n_layers):
        out["axis_cosine"].append(float(cosine(base.vectors[i], post.vectors[i])))
        pb, pp = pca(rb[:, i], orient=base.vectors[i]), pca(rp[:, i], orient=post.vectors[i])
        k = min(n_pcs, len(pb.components), len(pp.components))
        out["pc_cosines"].append([abs(float(cosine(pb.components[j], pp.components[j]))) for j in range(k)])
        raw = cosine(rb[:, i], rp[:, i])
        cen = cosine(rb[:, i] - rb[:, i].mean(0), rp[:, i] - rp[:, i].mean(0))
        out["role_cosine_raw_mean"].append(float(raw.mean()))
        out["role_cosine_raw_min"].append(float(raw.min()))
        out["role_cosine_centred_mean"].append(float(cen.mean()))

        def place(axis_m: AssistantAxis, j: int, x: Tensor, roles: Tensor) -> tuple[float, float]:
            u = unit(axis_m.vectors[j])
            lo = float(roles.mean(0) @ u)
            hi = float(axis_m.default_mean[j] @ u)
            return (float(x @ u) - lo) / (hi - lo if abs(hi - lo) > 1e-9 else 1e-9), percentile_rank(
                float(x @ u), roles @ u
            )

        pos, pct = place(base, i, post.default_mean[i].float(), rb[:, i])
        out["post_default_on_base_axis"].append(pos)
        out["post_default_percentile_on_base"].append(pct)
        out["base_default_on_post_axis"].append(place(post, i, base.default_mean[i].float(), rp[:, i])[0])
    m = base.middle_layer
    out["split_half_pc_cosines"] = {
        stage: split_half_pc_cosines(r[:, m], n_pcs=n_pcs).mean(0).tolist() for stage, r in (("base", rb), ("post", rp))
    }
    out["middle"] = {
        k: out[k][m]
        for k in (
            "axis_cosine",
            "pc_cosines",
            "role_cosine_raw_mean",
            "role_cosine_centred_mean",
            "post_default_on_base_axis",
            "post_default_percentile_on_base",
            "base_default_on_post_axis",
        )
    }
    out["middle"]["hook"] = base.hooks[m]
    out["models"] = {"base": base.model, "post": post.model}
    out["paper"] = {
        "top3_pc_cosines": PAPER["base_vs_instruct_top3_pc_cosines_gemma2_27b"],
        "role_vector_cosines": PAPER["base_vs_instruct_role_vector_cosines"],
    }
    return out


def decompose_axis(axis: AssistantAxis, sae: Any, layer: int | str | None = None, k: int = 100) -> dict[str, Any]:
    """The axis at the SAE's layer in SAE features (:func:`featurescope.decompose.decompose`): decoder cosines, and
    the encode/attribution views with the default-Assistant mean as the "positive" activation and the role vectors
    as the "negative" ones (means of responses, not tokens)."""

    h = axis.hook(layer) if layer is not None else (sae_hook(sae) or axis.hook(None))
    i = axis.index(h)
    return decompose(axis.vectors[i], sae, pos_acts=axis.default_mean[i][None], neg_acts=axis.role_vectors[:, i], k=k)


def axis_features_across_stages(base: AssistantAxis, post: AssistantAxis, sae: Any, k: int = 20) -> dict[str, Any]:
    """Both axes in one SAE's features (at the SAE's hook): each one's top-``k`` features per view and their overlap
    - which features the two stages' axes share."""

    h = sae_hook(sae)
    if h not in base.hooks or h not in post.hooks:
        raise FeaturescopeError(f"the SAE reads {h}, which the axes do not both have ({base.hooks[0]} ...)")
    db, dp = decompose_axis(base, sae, layer=h, k=max(k, 1)), decompose_axis(post, sae, layer=h, k=max(k, 1))
    return {
        "hook": h,
        "base_axis": base.model,
        "post_axis": post.model,
        "base": {m: d.to_dict(k) for m, d in db.items()},
        "post": {m: d.to_dict(k) for m, d in dp.items()},
        "overlap": compare_decompositions(db, dp, k=k),
    }


def compare_decompositions(a: dict[str, Any], b: dict[str, Any], k: int = 20) -> dict[str, Any]:
    """Overlap of the top-k features of two decompositions (e.g. base and post-trained axes with one SAE)."""
    out = {}
    for m in a:
        if m in b:
            sa, sb = set(a[m].indices[:k].tolist()), set(b[m].indices[:k].tolist())
            out[m] = {"shared": sorted(sa & sb), "jaccard": len(sa & sb) / max(len(sa | sb), 1), "k": k}
    return out
