"""Stages: persona vectors across stages (pure); persona vectors across stages (drives the models)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from ..capture import capture, default_hooks
from ..decompose import by_cosine
from ..formatting import format_conversation
from ..models import Model
from ..persona import PersonaVector, mean_difference
from ..traits import load_trait
from .constants import DictionaryMismatchError, StagesError
from .matching import Matching


def layer_cosines(v_base: Float[Tensor, "layer d"], v_post: Float[Tensor, "layer d"]) -> Float[Tensor, " layer"]:
    if v_base.shape != v_post.shape:
        raise DictionaryMismatchError(f"persona vectors of shape {tuple(v_base.shape)} vs {tuple(v_post.shape)}")
    return torch.nn.functional.cosine_similarity(v_base.float(), v_post.float(), dim=-1)


def top_features(v: Float[Tensor, " d"], W_dec: Float[Tensor, "n d"], k: int) -> list[int]:

    return by_cosine(v, W_dec, k=k).indices[:k].tolist()


def feature_overlap(a: Sequence[int], b: Sequence[int]) -> dict[str, Any]:
    sa, sb = set(a), set(b)
    return {"jaccard": len(sa & sb) / max(len(sa | sb), 1), "shared": sorted(sa & sb), "n": max(len(sa), len(sb))}


def matched_overlap(
    top_base: Sequence[int],
    top_post: Sequence[int],
    base_to_post_idx: Int[Tensor, " n_base"],
    base_to_post_cos: Float[Tensor, " n_base"],
    threshold: float,
) -> dict[str, Any]:
    """Overlap of a base-SAE feature list and a post-SAE feature list, via the decoder matching (a base feature
    counts as its best post match when their cosine clears ``threshold``)."""
    mapped = [int(base_to_post_idx[i]) for i in top_base if float(base_to_post_cos[i]) >= threshold]
    sp = set(top_post)
    hit = sorted({m for m in mapped if m in sp})
    return {
        "fraction_of_base_top_matched": len(mapped) / max(len(top_base), 1),
        "fraction_of_post_top_hit": len(hit) / max(len(sp), 1),
        "shared_post_latents": hit,
    }


def trait_prompt_pairs(trait: Any, n_questions: int) -> tuple[list[list[dict[str, str]]], list[list[dict[str, str]]]]:
    """Every instruction pair x the first ``n_questions`` extraction questions, as (positive, negative) prompts with
    the instruction as the system prompt (no generation: a prompt-side persona vector)."""
    pos, neg = [], []
    for pair in trait.instructions:
        for q in trait.extraction_questions[:n_questions]:
            pos.append([{"role": "system", "content": pair.pos}, {"role": "user", "content": q}])
            neg.append([{"role": "system", "content": pair.neg}, {"role": "user", "content": q}])
    return pos, neg


def prompt_persona_vectors(
    base_model: Model,
    post_model: Model,
    traits: Sequence[str],
    *,
    n_questions: int = 5,
    kind: str = "prompt_mean",
    fmt: str = "own",
    batch_size: int = 16,
    progress: bool = True,
) -> dict[str, dict[str, Tensor]]:
    """Prompt-side persona vectors (mean over prompt tokens, or the last prompt token, of the positive-instruction
    prompts minus the negative ones; Chen et al.'s prompt-based variant) at every layer of both models.
    ``fmt="own"``: each model in its own format (chat template / base transcript), as ``persona extract`` does;
    ``fmt="post"``: both on the post-trained model's token ids. Returns ``{trait: {"base": [L, d], "post": [L, d]}}``."""

    out: dict[str, dict[str, Tensor]] = {}
    for name in tqdm(traits, desc="persona vectors", disable=not progress):
        tr = load_trait(name)
        pos, neg = trait_prompt_pairs(tr, n_questions)
        out[name] = {}
        for stage, model in (("base", base_model), ("post", post_model)):
            hooks = default_hooks(model)
            sides = {}
            for side, convs in (("pos", pos), ("neg", neg)):
                prompts = [format_conversation(post_model, c) for c in convs] if fmt == "post" else convs
                a = capture(model, prompts, hooks, reduction=kind, batch_size=batch_size, progress=False)
                sides[side] = einops.rearrange(a.stacked(), "layer n d -> n layer d")
            out[name][stage] = mean_difference(sides["pos"], sides["neg"])
    return out


def load_persona_vectors(
    base_dir: str | Path, post_dir: str | Path, traits: Sequence[str], kind: str = "response_mean"
) -> dict[str, dict[str, Tensor]]:
    """Persona vectors written by ``featurescope persona extract/run`` (``{trait}.{kind}.safetensors``) for both
    stages; traits missing on either side are skipped."""

    out = {}
    for t in traits:
        pb, pp = Path(base_dir) / f"{t}.{kind}.safetensors", Path(post_dir) / f"{t}.{kind}.safetensors"
        if pb.exists() and pp.exists():
            out[t] = {"base": PersonaVector.load(pb).vectors, "post": PersonaVector.load(pp).vectors}
    if not out:
        raise StagesError(f"no {kind} persona vectors found for both stages in {base_dir} and {post_dir}")
    return out


def persona_report(
    vectors: Mapping[str, Mapping[str, Tensor]],
    layer: int,
    base_W: Tensor,
    post_W: Tensor,
    matching: Matching | None,
    *,
    k: int = 20,
    threshold: float = 0.7,
) -> dict[str, Any]:
    """Per trait: cosine between stages per layer; at ``layer``, the overlap of the top-k decoder-cosine features of
    the two vectors in the base SAE, in the post SAE, and across the two SAEs through the decoder matching."""

    rep: dict[str, Any] = {}
    for t, v in vectors.items():
        cos = layer_cosines(v["base"], v["post"])
        vb, vp = v["base"][layer], v["post"][layer]
        tb_b, tp_b = top_features(vb, base_W, k), top_features(vp, base_W, k)
        tb_p, tp_p = top_features(vb, post_W, k), top_features(vp, post_W, k)
        r: dict[str, Any] = {
            "cosine_per_layer": [round(float(c), 4) for c in cos],
            "cosine_at_layer": float(cos[layer]),
            "norm_base": float(vb.norm()),
            "norm_post": float(vp.norm()),
            "top_features_base_sae": {"base_vector": tb_b, "post_vector": tp_b, **feature_overlap(tb_b, tp_b)},
            "top_features_post_sae": {"base_vector": tb_p, "post_vector": tp_p, **feature_overlap(tb_p, tp_p)},
            "k_for_50pct": {
                "base_vector_in_base_sae": by_cosine(vb, base_W, k=k).k_for(0.5),
                "post_vector_in_post_sae": by_cosine(vp, post_W, k=k).k_for(0.5),
            },
        }
        if matching is not None and matching.b_to_a_idx is not None and matching.b_to_a_cos is not None:
            r["across_saes"] = matched_overlap(tb_b, tp_p, matching.b_to_a_idx, matching.b_to_a_cos, threshold)
        rep[t] = r
    return rep
