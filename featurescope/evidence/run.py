"""Evidence commands (I/O edge): the massive-activation table (``featurescope inspect massive``), the side-by-side
comparison of massive-activation handlings on paired trait texts (``inspect handling``) and the nulls of a saved
vector's SAE decomposition (``inspect decomposition``, no model needed)."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..capture import as_prompts, capture
from ..errors import FeaturescopeError
from ..formatting import Message
from ..models import Model
from ..persona.extraction import conversations_from_responses, vectors_from_conversations
from ..persona.sweeps import steering_sweep
from ..persona.vector import PersonaVector
from ..runs import write_summary
from ..saes import load_sae, sae_hook
from ..stats import bootstrap
from .decomposition import decomposition_evidence, fraction_explained_interval, interval_verdicts
from .massive import (
    DIM_RATIO,
    HANDLINGS,
    OUTLIER_K,
    TOKEN_HANDLINGS,
    LayerMassive,
    handle_vector,
    layer_profile,
    massive_dims,
    robust_mean,
    vector_shares,
)
from .nulls import Evidence, Null, held_out_separation, random_directions, verdict


@dataclasses.dataclass
class TokenActs:
    """Per hook: every prompt's token activations split into BOS, prompt and response tokens."""

    bos: dict[str, Tensor]  # [n_bos, d]
    prompt: dict[str, list[Tensor]]  # per prompt [n_prompt_tokens (no BOS), d]
    response: dict[str, list[Tensor]]  # per prompt [n_response_tokens, d]


def token_acts(model: Model, convs: Sequence[Any], hooks: Sequence[str], *, batch_size: int = 8) -> TokenActs:
    """Capture every token at ``hooks`` and split it into BOS / prompt / response tokens per conversation."""
    prompts = as_prompts(model, list(convs))
    acts = capture(model, prompts, hooks, reduction="all", batch_size=batch_size, progress=False)
    assert acts.offsets is not None
    tok = model.tokenizer
    bos_id = getattr(tok, "bos_token_id", None)
    out = TokenActs({}, {}, {})
    for h in hooks:
        bos, pr, rs = [], [], []
        for i, p in enumerate(prompts):
            a = acts.per_prompt(h, i)
            first = 1 if bos_id is not None and int(p.tokens[0]) == bos_id else 0
            if first:
                bos.append(a[:1])
            resp = p.response_mask.bool()
            pos = torch.arange(len(p))
            pr.append(a[(pos >= first) & ~resp])
            rs.append(a[resp])
        out.bos[h] = torch.cat(bos) if bos else torch.zeros(0, model.d_model)
        out.prompt[h] = pr
        out.response[h] = rs
    return out


def written_conversations(rows: Sequence[dict[str, str]]) -> tuple[list[Any], list[Any], list[int]]:
    """(pos conversations, neg conversations, question index of each pair) from written pos/neg rows."""
    pos = [[Message("user", r["question"]), Message("assistant", r["pos"])] for r in rows]
    neg = [[Message("user", r["question"]), Message("assistant", r["neg"])] for r in rows]
    return pos, neg, list(range(len(rows)))


def massive_table(
    model: Model, convs: Sequence[Any], hooks: Sequence[str], *, batch_size: int = 8
) -> list[LayerMassive]:
    """The massive-activation profile of each hook over every non-BOS token of ``convs``."""
    ta = token_acts(model, convs, hooks, batch_size=batch_size)
    return [
        layer_profile(h, torch.cat(ta.prompt[h] + ta.response[h]), ta.bos[h] if len(ta.bos[h]) else None) for h in hooks
    ]


def compare_handlings(
    pos_tokens: Sequence[Tensor],
    neg_tokens: Sequence[Tensor],
    groups: Sequence[int],
    *,
    handlings: Sequence[str] = HANDLINGS,
    ratio: float = DIM_RATIO,
    k: float = OUTLIER_K,
    seed: int = 0,
    n_boot: int = 200,
    n_perm: int = 200,
) -> dict[str, Any]:
    """Each handling side by side on paired responses (token activations per response, one hook): the vector's
    share on the mean direction and the massive dimensions, and its held-out separation (vector built on half the
    questions, Cohen's d on the other half) with a shuffled-label null. Pure: no model."""
    every = torch.cat(list(pos_tokens) + list(neg_tokens))
    dims = massive_dims(every, ratio)
    mean = every.float().mean(0)
    rows: dict[str, Any] = {}
    for hd in handlings:
        pos, neg, post = _handled_means(pos_tokens, neg_tokens, hd, k=k, mean=mean, dims=dims)
        v = post(pos.mean(0) - neg.mean(0))
        ev = held_out_separation(
            pos,
            neg,
            groups,
            groups,
            seed=seed,
            n_boot=n_boot,
            n_perm=n_perm,
            post=post if hd not in TOKEN_HANDLINGS else None,
        )
        rows[hd] = {
            "held_out_d": ev.to_dict(),
            "norm": float(v.norm()),
            **vector_shares(v, mean, dims),
        }
    return {"massive_dims": dims, "rows": rows}


def _handled_means(
    pos_tokens: Sequence[Tensor], neg_tokens: Sequence[Tensor], hd: str, *, k: float, mean: Tensor, dims: Sequence[int]
) -> tuple[Tensor, Tensor, Any]:
    """Per-response means under handling ``hd`` (token handlings act here) and the vector post-processing (vector
    handlings act there)."""
    token_h = hd if hd in TOKEN_HANDLINGS else "none"
    pos = torch.stack([robust_mean(t, token_h, k=k) for t in pos_tokens])
    neg = torch.stack([robust_mean(t, token_h, k=k) for t in neg_tokens])

    def post(v: Tensor) -> Tensor:
        return handle_vector(v, hd if hd not in TOKEN_HANDLINGS else "none", mean=mean, dims=dims)

    return pos, neg, post


def handling_vectors(
    pos_tokens: Sequence[Tensor],
    neg_tokens: Sequence[Tensor],
    *,
    handlings: Sequence[str] = HANDLINGS,
    ratio: float = DIM_RATIO,
    k: float = OUTLIER_K,
) -> dict[str, Tensor]:
    """The persona vector (all responses) under each handling."""
    every = torch.cat(list(pos_tokens) + list(neg_tokens))
    dims, mean = massive_dims(every, ratio), every.float().mean(0)
    out = {}
    for hd in handlings:
        pos, neg, post = _handled_means(pos_tokens, neg_tokens, hd, k=k, mean=mean, dims=dims)
        out[hd] = post(pos.mean(0) - neg.mean(0))
    return out


def steering_per_norm(
    model: Model,
    vectors: dict[str, Tensor],
    trait: Any,
    judge: Any,
    *,
    hook: str,
    norm: float,
    seeds: Sequence[int] = (0, 1, 2),
    n_questions: int = 8,
    max_new_tokens: int = 48,
    n_random: int = 1,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Steering effect of each handling's vector rescaled to the same ``norm`` (so the effect is per unit norm):
    trait score with ``+v`` minus unsteered, per question (mean over ``seeds``), bootstrap interval over questions;
    null: ``n_random`` isotropic random directions of that norm, same questions and seeds."""

    def scores(v: Tensor | None) -> np.ndarray:
        sw = steering_sweep(
            model,
            v if v is not None else torch.zeros(model.d_model),
            trait,
            judge,
            hook=hook,
            alphas=(1.0,),
            n_questions=n_questions,
            max_new_tokens=max_new_tokens,
            seeds=seeds,
            progress=False,
        )
        return np.asarray(sw["rows"][0]["scores"], dtype=np.float64)

    base = scores(None)
    rand = random_directions(n_random, model.d_model, norm=norm, seed=seed)
    null_items = np.mean([scores(r) - base for r in rand], axis=0)
    nb = bootstrap(np.mean, null_items, seed=seed + 1)
    null = Null(nb.value, nb.lo, nb.hi, n_random, float("nan"), f"{n_random} random direction(s) of norm {norm:.3g}")
    rows = {}
    for hd, v in vectors.items():
        eff = scores(v.float() / v.float().norm().clamp(min=1e-12) * norm) - base
        est = bootstrap(np.mean, eff, seed=seed)
        rows[hd] = {
            "effect": Evidence("steering effect at equal norm", est, null, verdict(est, null)).to_dict(),
            "effect_per_unit_norm": est.value / norm,
            "per_question": eff.tolist(),
        }
        if progress:
            print(
                f"  {hd:>16}: effect {est.value:+.1f} [{est.lo:+.1f}, {est.hi:+.1f}] -> {rows[hd]['effect']['verdict']}"
            )
    return {
        "hook": hook,
        "norm": norm,
        "seeds": list(seeds),
        "unsteered_trait_score": float(base.mean()),
        "null": null.to_dict(),
        "rows": rows,
        "best": max(rows, key=lambda h: rows[h]["effect"]["estimate"]["lo"]),
    }


def choose_handling(table: dict[str, Any]) -> str:
    """The handling with the largest lower bound of held-out separation (ties: less share on massive dimensions)."""
    rows = table["rows"]
    return max(rows, key=lambda h: (round(rows[h]["held_out_d"]["estimate"]["lo"], 3), -rows[h]["share_on_massive"]))


def run_massive(
    model: Model, convs: Sequence[Any], out: str | Path | None, *, source: str, batch_size: int = 8
) -> list[LayerMassive]:
    t0 = time.time()
    hooks = [f"blocks.{L}.hook_resid_post" for L in range(model.n_layers)]
    table = massive_table(model, convs, hooks, batch_size=batch_size)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "layers.jsonl", "w") as f:
            for row in table:
                f.write(json.dumps(row.to_dict()) + "\n")
        write_summary(
            out,
            "inspect massive",
            inputs={
                "model": model.info,
                "texts": source,
                "n_texts": len(convs),
                "dim_ratio": DIM_RATIO,
                "outlier_k": OUTLIER_K,
            },
            results={"layers": [r.to_dict() for r in table]},
            timings={"total": time.time() - t0},
        )
    return table


def run_handling(
    model: Model,
    rows: Sequence[dict[str, str]],
    layers: Sequence[int],
    out: str | Path | None,
    *,
    source: str,
    trait: str,
    seed: int = 0,
    batch_size: int = 8,
    steer_layer: int | None = None,
    judge: Any = None,
    alpha: float = 8.0,
    seeds: Sequence[int] = (0, 1, 2),
    n_questions: int = 8,
) -> dict[str, Any]:
    """:func:`compare_handlings` at each layer on written pos/neg pairs; writes summary.json and per-handling rows.
    With ``steer_layer`` (one of ``layers``) and a ``judge``: :func:`steering_per_norm` there, every handling's vector
    at ``alpha`` times the plain vector's norm."""
    if len(rows) < 8:
        raise FeaturescopeError(f"{len(rows)} written pairs: need at least 8 to split questions in halves")
    t0 = time.time()
    hooks = [f"blocks.{L}.hook_resid_post" for L in layers]
    pos, neg, groups = written_conversations(rows)
    tp = token_acts(model, pos, hooks, batch_size=batch_size)
    tn = token_acts(model, neg, hooks, batch_size=batch_size)
    res: dict[str, Any] = {}
    for h in hooks:
        tab = compare_handlings(tp.response[h], tn.response[h], groups, seed=seed)
        tab["chosen"] = choose_handling(tab)
        res[h] = tab
    steering = None
    if steer_layer is not None:
        if steer_layer not in layers or judge is None:
            raise FeaturescopeError("the steering comparison needs --steer-layer among --layers, and a judge")
        h = f"blocks.{steer_layer}.hook_resid_post"
        vecs = handling_vectors(tp.response[h], tn.response[h])
        steering = steering_per_norm(
            model,
            vecs,
            trait,
            judge,
            hook=h,
            norm=alpha * float(vecs["none"].norm()),
            seeds=seeds,
            n_questions=n_questions,
            seed=seed,
        )
        steering["alpha"] = alpha
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "handlings.jsonl", "w") as f:
            for h, tab in res.items():
                for hd, r in tab["rows"].items():
                    f.write(json.dumps({"hook": h, "handling": hd, **r}) + "\n")
        write_summary(
            out,
            "inspect handling",
            inputs={
                "model": model.info,
                "trait": trait,
                "written": source,
                "n_pairs": len(rows),
                "seed": seed,
                "layers": list(layers),
            },
            results={"per_hook": res, **({"steering": steering} if steering is not None else {})},
            timings={"total": time.time() - t0},
        )
    if steering is not None:
        res = {**res, "steering": steering}
    return res


def item_conversations(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Kept pos / neg conversations and each one's question index, from a persona run's ``responses.jsonl`` rows
    (``side``, ``kept``, ``instruction``, ``question``, ``response``) or from written pairs (``question``, ``pos``,
    ``neg``): the items a vector's interval resamples."""
    if rows and all("pos" in r and "neg" in r and "question" in r for r in rows):
        pos, neg, groups = written_conversations(rows)
        return {"pos": pos, "neg": neg, "pos_groups": groups, "neg_groups": groups}
    return conversations_from_responses(rows)


def run_decomposition(
    vector: str | Path,
    sae: str | Path,
    out: str | Path | None,
    *,
    sae_id: str | None = None,
    seed: int = 0,
    model: Model | None = None,
    responses: Sequence[dict[str, Any]] | None = None,
    responses_path: str | None = None,
    n_boot: int = 200,
) -> dict[str, Any]:
    """Nulls of a saved persona vector's decomposition in an SAE's features, at the SAE's hook:
    random-direction fraction explained and the decoder bias decomposed (:func:`decomposition_evidence`; no model
    needed). With ``model`` and the vector's items (``responses``: its run's ``responses.jsonl`` rows, or written
    pairs), also the fraction explained with an interval over questions (the vector rebuilt from resampled
    questions with its own handling; :func:`fraction_explained_interval`) and its verdict against the nulls, plus
    the cosine of the rebuilt vector with the saved one. With ``out``, ``summary.json`` there. Returns the
    summary's results and the hook (``"hook"``)."""
    t0 = time.time()
    pv = PersonaVector.load(vector)
    s = load_sae(sae, sae_id)
    hook = sae_hook(s) or ""
    ev = decomposition_evidence(pv.at(hook), s, seed=seed)
    results: dict[str, Any] = {"evidence": ev, "vector_share_on_decoder_bias": ev["share_on_decoder_bias"]}
    if (model is None) != (responses is None):
        raise FeaturescopeError("the fraction-explained interval needs both the model and the vector's responses")
    if model is not None and responses is not None:
        c = item_conversations(responses)
        handling = str(pv.extra.get("handling", "none"))
        outlier_k = pv.extra.get("outlier_k")
        vecs, acts = vectors_from_conversations(
            model, c["pos"], c["neg"], [hook], trait=pv.trait, kinds=("response_mean",), handling=handling,
            outlier_k=outlier_k,
        )  # fmt: skip
        pos, neg = acts["response_mean"]["pos"][:, 0], acts["response_mean"]["neg"][:, 0]
        dims = vecs["response_mean"].extra.get("massive_dims", [[]])[0]
        mean = torch.cat([pos.float(), neg.float()]).mean(0)

        def post(v: Tensor) -> Tensor:
            return handle_vector(v, handling, mean=mean, dims=dims)

        iv = fraction_explained_interval(
            pos, neg, c["pos_groups"], c["neg_groups"], s.W_dec.detach().float(), post=post, n_boot=n_boot, seed=seed
        )
        rebuilt = iv.pop("vector")
        saved = pv.at(hook).float()
        results["fraction_explained_interval"] = {
            **iv,
            "verdicts": interval_verdicts(iv, ev["fraction_explained_null"]),
            "handling": handling,
            "outlier_k": outlier_k,
            "n_pos": len(pos),
            "n_neg": len(neg),
            "cosine_rebuilt_vs_saved": float(torch.nn.functional.cosine_similarity(rebuilt, saved, dim=0)),
            "how": "questions resampled with replacement; the vector rebuilt from their responses with the saved "
            "vector's handling; fraction of ||v||^2 explained by the top-k SAE features by decoder cosine",
        }
    if out is not None:
        write_summary(
            out,
            "inspect decomposition",
            inputs={"vector": vector, "sae": sae, "hook": hook, "seed": seed, "responses": responses_path}
            | ({"model": model.info} if model is not None else {}),
            results=results,
            timings={"total": time.time() - t0},
        )
    return {**results, "hook": hook}
