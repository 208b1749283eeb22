"""Automatic interpretation score of SAE latents for a trait, with its null.

A latent's score is the trait judge's mean score of its top-activating contexts on held-out text (``n_top``
windows of ``window`` tokens ending a few tokens after the maximum). The null is the same score for random latents
of matched firing density (and for uniformly random latents); ``z = (score - null mean) / null sd``. A latent whose
decoder row points along the mean activation (cos > ``mean_cos``) is flagged as tracking the mean: such dense
latents fire everywhere and their "top contexts" say little.

Two measures score a context: ``judge`` (the trait judge's score of the window's text) and ``assistant-voice``
(for the Assistant axis): 100 when the context comes from a text the Assistant speaks (a paired context's Assistant
member, a neutral answer of the shipped fine-tuning sets), 0 when it comes from a story character (the paired
context's character member, the character passages) or general text. Its labels are the texts' provenance, so the
measure has no judge error to validate; its base rate is what the density-matched null absorbs.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from .. import corpus
from ..errors import FeaturescopeError
from ..evidence.nulls import Evidence, Null, verdict
from ..finetune.data import DATA, FLAWED_FIELDS, TRAIT_FIELDS, TRAITS, read_passages, read_rows
from ..models import Model
from ..runs import write_summary
from ..stats import bootstrap
from ..store import write_jsonl
from .pairs import load_pairs
from .steer import density_matched


@torch.no_grad()
def latent_contexts(
    model: Model,
    sae: Any,
    texts: Sequence[str],
    *,
    hook: str | None = None,
    n_top: int = 5,
    window: int = 24,
    max_tokens: int = 96,
    batch_size: int = 8,
    progress: bool = True,
) -> dict[str, Any]:
    """One pass over ``texts`` (plain text, BOS first): every latent's firing density, its ``n_top`` top
    activations with (text, position), and the mean activation vector."""
    h = hook or sae.cfg.metadata.hook_name
    tok = model.tokenizer
    seqs = []
    for t in texts:
        ids = tok(t, add_special_tokens=False)["input_ids"][: max_tokens - 1]
        if tok.bos_token_id is not None:
            ids = [tok.bos_token_id, *ids]
        seqs.append(torch.tensor(ids))
    n_lat = sae.cfg.d_sae
    top_v = torch.full((n_lat, n_top), -1.0)
    top_r = torch.zeros((n_lat, n_top), dtype=torch.long)
    top_p = torch.zeros((n_lat, n_top), dtype=torch.long)
    fires = torch.zeros(n_lat, dtype=torch.float64)
    mean = torch.zeros(sae.cfg.d_in, dtype=torch.float64)
    n_tok = 0
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    for i in tqdm(range(0, len(seqs), batch_size), desc="latent contexts", disable=not progress):
        chunk = seqs[i : i + batch_size]
        n = max(len(s) for s in chunk)
        ids = torch.full((len(chunk), n), pad, dtype=torch.long)
        valid = torch.zeros((len(chunk), n), dtype=torch.bool)
        for j, s in enumerate(chunk):
            ids[j, : len(s)] = s
            valid[j, 1 : len(s)] = True  # BOS and right padding left out
        _, cache = model.tl.run_with_cache(ids.to(model.device), names_filter=[h], stop_at_layer=None)
        x = cache[h].float().cpu()[valid]
        rows = torch.arange(len(chunk))[:, None].expand(-1, n)[valid] + i
        pos = torch.arange(n)[None].expand(len(chunk), -1)[valid]
        z = sae.encode(x.to(sae.W_dec.device)).float().cpu()
        fires += (z > 0).sum(0).double()
        mean += x.double().sum(0)
        n_tok += x.shape[0]
        k = min(n_top, z.shape[0])
        v, idx = z.T.topk(k, dim=1)  # (latents, k)
        allv = torch.cat([top_v, v], 1)
        allr = torch.cat([top_r, rows[idx]], 1)
        allp = torch.cat([top_p, pos[idx]], 1)
        best = allv.topk(n_top, dim=1).indices
        top_v, top_r, top_p = allv.gather(1, best), allr.gather(1, best), allp.gather(1, best)
    return {
        "hook": h,
        "density": (fires / max(n_tok, 1)).float(),
        "top_values": top_v,
        "top_rows": top_r,
        "top_pos": top_p,
        "mean": (mean / max(n_tok, 1)).float(),
        "n_tokens": n_tok,
        "seqs": seqs,
        "window": window,
    }


def context_texts(model: Model, ctx: dict[str, Any], latent: int) -> list[str]:
    """The decoded top-activating windows of ``latent`` (those that fired)."""
    out = []
    for v, r, p in zip(ctx["top_values"][latent], ctx["top_rows"][latent], ctx["top_pos"][latent]):
        if float(v) <= 0:
            continue
        s = ctx["seqs"][int(r)]
        lo, hi = max(1, int(p) - ctx["window"]), min(len(s), int(p) + 4)
        out.append(model.tokenizer.decode(s[lo:hi].tolist()))
    return out


def context_rows(ctx: dict[str, Any], latent: int) -> list[int]:
    """The text indices of ``latent``'s top-activating contexts (those that fired)."""
    return [int(r) for v, r in zip(ctx["top_values"][latent], ctx["top_rows"][latent]) if float(v) > 0]


def tracks_mean(
    sae: Any, mean: Float[Tensor, " d"], latents: Sequence[int], threshold: float = 0.5
) -> dict[int, float]:
    """cos(decoder row, mean activation) per latent; above ``threshold`` the latent tracks the mean."""
    W = sae.W_dec.detach().float().cpu()[list(latents)]
    m = mean.float()
    cos = (W @ m) / (W.norm(dim=1) * m.norm()).clamp(min=1e-12)
    return {int(j): float(c) for j, c in zip(latents, cos)}


def interpretation_scores(
    model: Model,
    sae: Any,
    ctx: dict[str, Any],
    latents: Sequence[int],
    trait: Any,
    judge: Any,
    *,
    n_null: int = 60,
    seed: int = 0,
    mean_cos: float = 0.5,
    labels: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Per target latent: its score, z against density-matched random latents and against uniformly random
    (firing) latents; whether it tracks the mean. Scores of the null latents are returned too.

    With ``labels`` (one score per text of ``ctx``, e.g. :func:`assistant_voice_texts`' labels x 100) a latent's
    score is the mean label of the texts its top contexts come from, and ``trait`` / ``judge`` are not used."""

    def score(j: int) -> float:
        if labels is not None:
            rows = context_rows(ctx, j)
            return float(np.mean([labels[r] for r in rows])) if rows else float("nan")
        texts = context_texts(model, ctx, j)
        if not texts:
            return float("nan")
        return float(np.mean([s.trait for s in judge.score_many(trait, [""] * len(texts), texts)]))

    rng = np.random.default_rng(seed)
    density = ctx["density"]
    alive = [int(i) for i in (density > 0).nonzero().flatten() if int(i) not in set(latents)]
    uniform = sorted(rng.choice(alive, size=min(n_null, len(alive)), replace=False).tolist())
    u_scores = np.asarray([score(j) for j in uniform])
    u_scores = u_scores[~np.isnan(u_scores)]
    cos = tracks_mean(sae, ctx["mean"], latents)
    out: dict[str, Any] = {"matched_scores": {}, "latents": {}, "uniform_null": {"mean": float(u_scores.mean()), "sd": float(u_scores.std(ddof=1)),
                                                           "n": len(u_scores)}}  # fmt: skip
    matched_cache: dict[int, float] = {}
    for j in latents:
        s = score(j)
        ctrl = density_matched(density, j, max(10, n_null // 3), exclude=latents, seed=seed + j)
        for c in ctrl:
            if c not in matched_cache:
                matched_cache[c] = score(c)
        m = np.asarray([matched_cache[c] for c in ctrl])
        m = m[~np.isnan(m)]
        z_m = (s - m.mean()) / max(m.std(ddof=1), 1e-9) if len(m) > 1 else float("nan")
        z_u = (s - u_scores.mean()) / max(u_scores.std(ddof=1), 1e-9)
        out["latents"][str(j)] = {
            "score": s,
            "density": float(density[j]),
            "z_density_matched": float(z_m),
            "z_uniform": float(z_u),
            "matched_null": {
                "mean": float(m.mean()) if len(m) else None,
                "sd": float(m.std(ddof=1)) if len(m) > 1 else None,
                "n": len(m),
            },  # fmt: skip
            "cos_mean": cos[j],
            "tracks_mean": cos[j] > mean_cos,
            "contexts": context_texts(model, ctx, j),
        }
    out["matched_scores"] = {str(c): v for c, v in matched_cache.items()}
    return out


def _random_set_means(pooled: np.ndarray, k: int, n_draws: int, seed: int) -> np.ndarray:
    """Means of ``n_draws`` random sets of ``k`` latents drawn without replacement from ``pooled`` scores."""
    rng = np.random.default_rng(seed)
    return pooled[np.argsort(rng.random((n_draws, len(pooled))), axis=1)[:, :k]].mean(1)


def _finite(x: Sequence[float] | np.ndarray) -> np.ndarray:
    return np.asarray([v for v in x if v is not None and v == v], dtype=np.float64)


def set_p_empirical(set_scores: Sequence[float] | np.ndarray, pooled: Sequence[float] | np.ndarray, n_draws: int = 20_000,
                    seed: int = 0) -> float:  # fmt: skip
    """One-sided p of a set's mean score against the means of random sets of as many latents drawn (without
    replacement) from the pooled density-matched null: ``(1 + #draws >= observed) / (1 + n_draws)``. The set z
    assumes the null scores are normal; this does not (a heavy-tailed null makes it the stricter of the two).
    nan when the set or the pool is empty, or the pool is smaller than the set."""
    s, p = _finite(set_scores), _finite(pooled)
    if len(s) == 0 or len(p) < len(s):
        return float("nan")
    means = _random_set_means(p, len(s), n_draws, seed)
    return float((1 + int((means >= s.mean()).sum())) / (1 + n_draws))


def set_interval_evidence(set_scores: Sequence[float] | np.ndarray, pooled: Sequence[float] | np.ndarray,
                          n_draws: int = 20_000, seed: int = 0) -> dict[str, Any] | None:  # fmt: skip
    """The project's interval rule for a view: its mean score with a bootstrap interval over its latents, against
    the central 95% of the means of random sets of as many pooled density-matched null latents; the verdict is
    "distinguishable" only when the two do not overlap. Stricter than the set z / empirical p, which treat the set
    as fixed: a mean carried by a few latents of ten has a wide interval. None without a usable pool."""
    s, p = _finite(set_scores), _finite(pooled)
    if len(s) == 0 or len(p) < len(s):
        return None
    est = bootstrap(np.mean, s, seed=seed)
    means = _random_set_means(p, len(s), n_draws, seed)
    lo, hi = np.quantile(means, [0.025, 0.975]).tolist()
    null = Null(float(means.mean()), lo, hi, n_draws, set_p_empirical(s, p, n_draws, seed),
                f"random sets of {len(s)} from {len(p)} pooled density-matched latents")  # fmt: skip
    return Evidence("mean score of the view's latents", est, null, verdict(est, null)).to_dict()


def heldout_texts(n_general: int = 400, seed: int = 0) -> list[tuple[str, str]]:
    """(source, text) pairs of held-out text with persona content: the corpus' held-out documents (general text,
    ``n_general`` of them, cut to paragraphs), every answer of the shipped fine-tuning sets (neutral, mild, strong;
    correct and flawed) and both members of the paired contexts. None of it built the persona vectors or SAEs."""
    out: list[tuple[str, str]] = []
    try:
        docs = corpus.documents("heldout")
    except Exception:  # noqa: BLE001 - the Debian corpus may be absent; persona texts are enough to run
        docs = []
    rng = random.Random(seed)
    paras = [p.strip() for _, d in docs for p in d.split("\n\n") if len(p.strip()) > 80]
    out += [("general", p) for p in rng.sample(paras, min(n_general, len(paras)))]
    for t in TRAITS:
        for r in read_rows(DATA / f"{t}.jsonl", TRAIT_FIELDS):
            out += [(f"{t}:{k}", r[k]) for k in ("neutral", "mild", "strong")]
    for f in ("flawed-advice", "flawed-code"):
        for r in read_rows(DATA / f"{f}.jsonl", FLAWED_FIELDS):
            out += [(f"{f}:{k}", r[k]) for k in ("correct", "flawed")]
    for p in load_pairs():
        out += [(f"pairs:{p.theme}:assistant", p.assistant), (f"pairs:{p.theme}:character", p.character)]
    return out


def assistant_voice_texts(n_general: int = 400, n_answers: int = 200, seed: int = 0) -> list[tuple[str, str, int]]:
    """(source, text, label) of held-out texts for the ``assistant-voice`` measure: label 1 for text the Assistant
    speaks (every paired context's Assistant member; ``n_answers`` neutral answers of the shipped fine-tuning sets),
    0 for story characters (every paired context's character member; both versions of every character passage) and
    for ``n_general`` paragraphs of the corpus' held-out general text. None of it built the Assistant axis."""
    rng = random.Random(seed)
    out: list[tuple[str, str, int]] = []
    for p in load_pairs():
        out += [(f"pairs:{p.theme}:assistant", p.assistant, 1), (f"pairs:{p.theme}:character", p.character, 0)]
    answers = [(f"{t}:neutral", r["neutral"]) for t in TRAITS for r in read_rows(DATA / f"{t}.jsonl", TRAIT_FIELDS)]
    out += [(src, text, 1) for src, text in rng.sample(answers, min(n_answers, len(answers)))]
    for d in read_passages():
        out += [("passages:questionable", d["questionable"], 0), ("passages:benign", d["benign"], 0)]
    out += [(src, text, 0) for src, text in heldout_texts(n_general=n_general, seed=seed) if src == "general"]
    return out


MEASURES = ("judge", "assistant-voice")


def run_interpret(
    model: Model,
    sae: Any,
    latents: dict[str, Sequence[int]],
    trait: Any,
    judge: Any,
    out_dir: Any,
    *,
    texts: Sequence[tuple[str, str]] | None = None,
    n_null: int = 60,
    z_target: float = 3.0,
    sae_name: str = "sae",
    measure: str = "judge",
    progress: bool = True,
) -> dict[str, Any]:
    """Interpretation scores of each view's latents (e.g. ``{"selectivity": [...10], "attribution": [...10]}``)
    against the nulls; writes ``summary.json`` and ``scores.jsonl`` (one row per scored latent, nulls included).

    ``measure``: ``judge`` (the trait judge scores each top context; texts: :func:`heldout_texts`) or
    ``assistant-voice`` (the share of top contexts from text the Assistant speaks; texts:
    :func:`assistant_voice_texts`; ``trait`` / ``judge`` unused)."""
    if measure not in MEASURES:
        raise FeaturescopeError(f"unknown interpretation measure {measure!r}; known: {', '.join(MEASURES)}")
    t0 = time.time()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    labels: list[float] | None = None
    if measure == "assistant-voice":
        if texts is not None:
            raise FeaturescopeError("the assistant-voice measure reads its own labelled texts; do not pass texts")
        labelled = assistant_voice_texts()
        src = [(a, b) for a, b, _ in labelled]
        labels = [100.0 * c for _, _, c in labelled]
    else:
        src = list(texts) if texts is not None else heldout_texts()
    ctx = latent_contexts(model, sae, [t for _, t in src], progress=progress)
    all_targets = sorted({j for v in latents.values() for j in v})
    res = interpretation_scores(model, sae, ctx, all_targets, trait, judge, n_null=n_null, labels=labels)
    views = {}
    for view, js in latents.items():
        rows = [res["latents"][str(j)] for j in js]
        zs = [r["z_density_matched"] for r in rows]
        # the set's mean score against the mean of as many null latents: sd / sqrt(k)
        pooled = np.asarray([v for v in res["matched_scores"].values() if v == v])
        set_z = (
            (np.nanmean([r["score"] for r in rows]) - pooled.mean()) / max(pooled.std(ddof=1), 1e-9) * len(js) ** 0.5
        )
        views[view] = {
            "latents": list(js),
            "set_z_density_matched": float(set_z),
            # the same comparison without the normal approximation: random sets of as many pooled null latents
            "set_p_empirical": set_p_empirical([r["score"] for r in rows], pooled),
            # and the project's interval rule: bootstrap over the view's latents vs the random sets' central 95%
            "interval_evidence": set_interval_evidence([r["score"] for r in rows], pooled),
            "n_above": sum(1 for z in zs if z == z and z >= z_target),
            "mean_z_density_matched": float(np.nanmean(zs)),
            "mean_score": float(np.nanmean([r["score"] for r in rows])),
            "n_tracking_mean": sum(r["tracks_mean"] for r in rows),
        }
    results = {
        "measure": measure,
        "base_rate": float(np.mean(labels)) if labels is not None else None,
        "trait": getattr(trait, "name", str(trait)) if measure == "judge" else "assistant-voice",
        "hook": ctx["hook"],
        "sae": sae_name,
        "n_texts": len(src),
        "n_tokens": ctx["n_tokens"],
        "z_target": z_target,
        "views": views,
        "uniform_null": res["uniform_null"],
        "latents": res["latents"],
        "matched_scores": res["matched_scores"],  # every density-matched null latent's score: the pooled null
        "target_met": any(v["set_z_density_matched"] >= z_target for v in views.values()),
    }
    write_jsonl(
        out / "scores.jsonl", ({"latent": int(j), **{k: v for k, v in r.items()}} for j, r in res["latents"].items())
    )
    write_summary(out, "features interpret", inputs={"sae": sae_name, "trait": results["trait"], "n_null": n_null,
                  "measure": measure,
                  "latents": {k: list(v) for k, v in latents.items()}}, results=results,
                  timings={"total": time.time() - t0})  # fmt: skip
    return results
