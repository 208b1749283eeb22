"""Stages: the orchestrator."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .. import plots
from ..cards import cards_html, make_cards
from ..evidence.nulls import evidence_text
from ..models import Model, hook_layer
from ..runs import write_summary
from ..saes import check_sae, sae_hook
from ..stats import Estimate
from ..store import atomic_save_tensors
from ..traits import list_traits
from .config import StagesConfig
from .constants import CROSSCODER_STATUS, DictionaryMismatchError
from .crosscoder import CrosscoderWeights, load_crosscoder
from .figures import fig_crosscoder, fig_hist, fig_shift, fig_transfer
from .matching import Matching, matching_report
from .persona import persona_report, prompt_persona_vectors
from .results import StagesResult
from .shift import activation_shift, encode_stats
from .texts import TokenRows, capture_rows, check_pair, prepare_chat_rows, prepare_plain_rows
from .transfer import FVE_INTERVAL_HOW, fve_difference_evidence, random_lora_null_fve, transfer_metrics


def _sae_name(sae: Any, given: str | None) -> str:
    if given:
        return given
    m = sae.cfg.metadata
    return f"{getattr(m, 'release', None) or m.model_name or 'sae'}/{getattr(m, 'sae_id', None) or m.hook_name}"


def run_stages(
    base_model: Model,
    post_model: Model,
    base_sae: Any,
    post_sae: Any,
    hook: str | int | None,
    out_dir: str | Path,
    *,
    config: StagesConfig = StagesConfig(),
    crosscoder: Any = None,
    conversations: Sequence[Any] | None = None,
    plain_rows: TokenRows | None = None,
    persona_vectors: Mapping[str, Mapping[str, Tensor]] | None = None,
    sae_names: tuple[str | None, str | None] = (None, None),
    progress: bool = True,
    command: str = "stages",
    control_sae: Any = None,
    null_model: Model | None = None,
    null_seeds: Sequence[int] = (),
    make_null_model: Callable[[int], Model] | None = None,
) -> StagesResult:
    """Run the cross-stage analysis (module docstring) and write ``out_dir/summary.json``, figures and ``cards.html``.

    ``hook`` is a hook name or a residual layer (default: the base SAE's own hook). ``crosscoder`` is a path for
    :func:`load_crosscoder` or a :class:`CrosscoderWeights`. ``conversations`` (ending with assistant turns) replace
    the generated held-out dialogues; ``plain_rows`` replace the corpus rows; ``persona_vectors``
    (``{trait: {"base": [L, d], "post": [L, d]}}``) replace the prompt-side extraction. ``null_model`` (the base
    model with a random LoRA of the post-trained adapter's weight-change norm, :mod:`.random_lora`) adds the
    transfer null: the base SAE on a model moved as far in no particular direction; ``null_seeds`` with
    ``make_null_model(seed)`` add that null over many random LoRAs, FVE only, loaded one at a time
    (``transfer.random_lora_nulls``: draws, central 95%, rank p-value, verdict; the observed FVE enters with its
    interval over rows). Every FVE comes with ``fve_interval`` (percentile bootstrap over text rows) and its
    ``per_row`` sums; ``transfer.fve_post_minus_base`` holds the paired difference (post-trained minus base model's
    activations, same rows resampled for both) per SAE and text set as an evidence record, and
    ``out_dir/transfer_rows.jsonl`` the per-row sums (sse, sst, n_tokens) to recompute them. Returns a
    :class:`StagesResult` (read by key as the dict it used to be; ``summary.json`` holds its
    :meth:`~StagesResult.summary_results`, and ``to_dict()`` adds ``figures`` and ``timings``).
    """

    cfg = config
    t_start = time.time()
    timings: dict[str, float] = {}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    if hook is None:
        hook = sae_hook(base_sae)
    if isinstance(hook, int):
        hook = base_model.resid_hook(hook)
    assert isinstance(hook, str)
    check_pair(base_model, post_model, hook)
    for sae, m in ((base_sae, base_model), (post_sae, post_model)):
        check_sae(sae, m, hook, allow_other_model=True)
    base_W = base_sae.W_dec.detach().float().cpu()
    post_W = post_sae.W_dec.detach().float().cpu()
    if base_W.shape[1] != post_W.shape[1]:
        raise DictionaryMismatchError(f"base SAE d_in {base_W.shape[1]} vs post SAE d_in {post_W.shape[1]}")

    layer = hook_layer(hook)
    names = {"base": _sae_name(base_sae, sae_names[0]), "post": _sae_name(post_sae, sae_names[1])}
    tag = (
        f"{hook} | base {base_model.name} ({base_model.stage}), SAE {names['base']} | post {post_model.name} "
        f"({post_model.stage}), SAE {names['post']}"
    )
    results: dict[str, Any] = {"hook": hook, "layer": layer, "sae_names": names}
    figures: list[str] = []
    card_sections: list[str] = []

    # -- texts and activations (shared by transfer, shift, crosscoder) -----------------------------------------
    # texts are needed by transfer, shift and crosscoder, and by matching for ranking / carding the new latents
    need_acts = (
        bool({"transfer", "shift"} & set(cfg.parts))
        or ("crosscoder" in cfg.parts and crosscoder is not None)
        or ("matching" in cfg.parts and cfg.n_cards > 0)
    )
    rows: dict[str, TokenRows] = {}
    acts: dict[tuple[str, str], tuple[Tensor, Tensor, Tensor]] = {}
    if need_acts:
        t = time.time()
        rows["plain"] = (
            plain_rows
            if plain_rows is not None
            else prepare_plain_rows(post_model.tokenizer, n_rows=cfg.plain_rows, context=cfg.context, seed=cfg.seed + 1)
        )
        chat, responses = prepare_chat_rows(
            post_model,
            n_dialogues=cfg.chat_dialogues,
            max_new_tokens=cfg.max_new_tokens,
            context=cfg.context,
            conversations=conversations,
            progress=progress,
        )
        rows["chat"] = chat
        (out / "responses.jsonl").write_text("\n".join(json.dumps(r) for r in responses) + "\n")
        timings["texts"] = time.time() - t
        t = time.time()
        for set_k, r in rows.items():
            for stage, model in (("base", base_model), ("post", post_model)):
                acts[(stage, set_k)] = capture_rows(model, r, hook, cfg.batch_size)
        timings["capture"] = time.time() - t
        results["texts"] = {
            k: {
                "description": r.description,
                "rows": int(r.tokens.shape[0]),
                "context": int(r.tokens.shape[1]),
                "tokens": int(r.tokens.numel()),
                "assistant_tokens": int((r.role_ids == 3).sum()),
            }
            for k, r in rows.items()
        }
        results["texts"]["format"] = (  # pyright: ignore[reportArgumentType]
            "plain: corpus rows, identical token ids for both models; chat: the post-trained model's chat template, "
            "and the base model reads the same token ids (not its own transcript framing) so the texts are identical"
        )

    saes = {"base_sae": base_sae, "post_sae": post_sae}
    models = {"base_model": base_model, "post_model": post_model}

    # -- 1. SAE transfer -------------------------------------------------------------------------------------
    if "transfer" in cfg.parts:
        t = time.time()
        tr: dict[str, Any] = {}
        for sk, sae in saes.items():
            tr[sk] = {}
            for mk, model in models.items():
                stage = mk.split("_")[0]
                tr[sk][mk] = {
                    set_k: transfer_metrics(
                        sae,
                        model,
                        rows[set_k],
                        acts[(stage, set_k)][0],
                        acts[(stage, set_k)][2],
                        hook,
                        ce_rows=cfg.ce_rows,
                        ce_batch=cfg.ce_batch,
                        outlier_quantile=cfg.outlier_quantile,
                        seed=cfg.seed,
                    )
                    for set_k in rows
                }
        deltas = {
            sk: {
                set_k: {
                    "fve_other_minus_own": tr[sk]["post_model" if sk == "base_sae" else "base_model"][set_k][
                        "fraction_variance_explained"
                    ]
                    - tr[sk]["base_model" if sk == "base_sae" else "post_model"][set_k]["fraction_variance_explained"],
                    "ce_recovered_other_minus_own": tr[sk]["post_model" if sk == "base_sae" else "base_model"][
                        set_k
                    ].get("ce_loss_recovered", float("nan"))
                    - tr[sk]["base_model" if sk == "base_sae" else "post_model"][set_k].get(
                        "ce_loss_recovered", float("nan")
                    ),
                }
                for set_k in rows
            }
            for sk in saes
        }
        # the paired FVE difference per SAE and text set: the same rows read by both models, resampled together
        paired = {
            sk: {
                set_k: fve_difference_evidence(
                    f"{sk.replace('_', ' ')} FVE, post-trained minus base model ({set_k})",
                    tr[sk]["base_model"][set_k]["per_row"],
                    tr[sk]["post_model"][set_k]["per_row"],
                    seed=cfg.seed,
                )
                for set_k in rows
            }
            for sk in saes
        }
        null_entry: dict[str, Any] = {}
        if null_model is not None:
            null_tr: dict[str, Any] = {}
            for set_k, r in rows.items():
                a_null = capture_rows(null_model, r, hook, cfg.batch_size)
                null_tr[set_k] = transfer_metrics(
                    base_sae,
                    null_model,
                    r,
                    a_null[0],
                    a_null[2],
                    hook,
                    ce_rows=cfg.ce_rows,
                    ce_batch=cfg.ce_batch,
                    outlier_quantile=cfg.outlier_quantile,
                    seed=cfg.seed,
                )
            null_entry = {
                "model": getattr(null_model, "name", "?"),
                "what": "base SAE on the base model + a random LoRA with the adapter's per-module ||dW||",
                **null_tr,
            }
            if progress:
                for set_k in rows:
                    print(
                        f"[stages] base SAE FVE on {set_k}: base {tr['base_sae']['base_model'][set_k]['fraction_variance_explained']:.3f}, "
                        f"post {tr['base_sae']['post_model'][set_k]['fraction_variance_explained']:.3f}, random LoRA "
                        f"{null_tr[set_k]['fraction_variance_explained']:.3f}",
                        flush=True,
                    )
        nulls_entry: dict[str, Any] = {}
        if null_seeds and make_null_model is not None:
            nulls_entry = random_lora_null_fve(
                base_sae,
                make_null_model,
                null_seeds,
                rows,
                hook,
                {k: tr["base_sae"]["post_model"][k]["fraction_variance_explained"] for k in rows},
                observed_intervals={k: Estimate(**tr["base_sae"]["post_model"][k]["fve_interval"]) for k in rows},
                batch_size=cfg.batch_size,
                outlier_quantile=cfg.outlier_quantile,
                progress=progress,
            )
            if progress:
                for ev in nulls_entry["evidence"].values():
                    print(f"[stages] {evidence_text(ev, '.3f')} (rank p {ev['p_lower']:.3f})", flush=True)
        results["transfer"] = {
            **tr,
            **({"random_lora_null": null_entry} if null_model is not None else {}),
            **({"random_lora_nulls": nulls_entry} if nulls_entry else {}),
            "deltas": deltas,
            "fve_post_minus_base": paired,
            "fve_interval_how": FVE_INTERVAL_HOW,
            "per_row_file": "transfer_rows.jsonl",
            "note": "BOS/padding and the top 1% activation norms excluded from FVE/L0 (Kissane et "
            "al.); CE-loss recovered = (CE_zero_abl - CE_sae) / (CE_zero_abl - CE_clean) "
            f"on the first {cfg.ce_rows} rows of each set (sae-lens get_recons_loss)",
        }
        _write_transfer_rows(out / "transfer_rows.jsonl", tr, null_entry)
        if progress:
            for per_set in paired.values():
                for ev in per_set.values():
                    print(f"[stages] {evidence_text(ev, '+.4f')}", flush=True)
        figures.append(
            fig_transfer(
                out / "transfer.png",
                tr,
                f"SAE transfer across stages at {tag}; texts: held-out "
                "corpus (plain) and held-out dialogues in the post model's chat template (chat)",
            )
        )
        timings["transfer"] = time.time() - t

    # -- 2. feature matching ---------------------------------------------------------------------------------
    matching: Matching | None = None
    new_latents: list[int] = []
    if "matching" in cfg.parts or "persona" in cfg.parts:
        t = time.time()
        rep, matching, base_line = matching_report(
            post_W,
            base_W,
            threshold=cfg.reuse_threshold,
            baselines=cfg.baselines,
            seed=cfg.seed,
            bins=cfg.hist_bins,
            block_rows=cfg.block_rows,
            block_cols=cfg.block_cols,
            dtype=cfg.match_dtype,
            progress=progress,
            control_W=None if control_sae is None else control_sae.W_dec.detach().float().cpu(),
        )
        assert matching.b_to_a_cos is not None and matching.b_to_a_idx is not None
        new = (matching.a_to_b_cos < cfg.reuse_threshold).nonzero().flatten()
        # rank new latents by how often they fire in the post-trained model (dead ones are not interesting)
        if acts:
            pa = torch.cat([acts[("post", s)][0][acts[("post", s)][2]] for s in rows])
            act_post = encode_stats(lambda x: post_sae.encode(x.to(post_sae.W_dec.dtype)), pa, post_W.shape[0])
            order = act_post.frequency[new].argsort(descending=True)
            new = new[order]
            rep["new_latents_alive"] = int((act_post.frequency[new] > 0).sum())
        new_latents = new.tolist()
        rep["new_latents"] = new_latents[:500]
        rep["lost_base_latents"] = (matching.b_to_a_cos < cfg.reuse_threshold).nonzero().flatten().tolist()[:500]

        atomic_save_tensors(
            out / "matching.safetensors",
            {
                "post_to_base_cos": matching.a_to_b_cos.contiguous(),
                "post_to_base_idx": matching.a_to_b_idx.contiguous(),
                "base_to_post_cos": matching.b_to_a_cos.contiguous(),
                "base_to_post_idx": matching.b_to_a_idx.contiguous(),
                **{f"post_to_{k}_cos": v.contiguous() for k, v in base_line.items()},
            },
        )
        if "matching" in cfg.parts:
            results["matching"] = rep
            figures.append(
                fig_hist(
                    out / "matching.png",
                    {
                        "post -> base": matching.a_to_b_cos,
                        "base -> post": matching.b_to_a_cos,
                        **{f"post -> {k} baseline": v for k, v in base_line.items()},
                    },
                    cfg.reuse_threshold,
                    f"best decoder cosine between dictionaries at {tag}; reused: post {rep['fraction_post_reused']:.1%} "
                    f"vs random {rep['baselines'].get('random', {}).get('fraction_post_reused', float('nan')):.1%}",
                )
            )
        timings["matching"] = time.time() - t

    # -- 3. activation shift on Assistant tokens ---------------------------------------------------------------
    card_jobs: dict[tuple[str, str], dict[str, list[int]]] = {}  # (model, sae) -> {section: latents}
    if "shift" in cfg.parts:
        t = time.time()
        sh: dict[str, Any] = {}
        for sk, sae in saes.items():
            enc = (lambda s: lambda x: s.encode(x.to(s.W_dec.dtype)))(sae)
            n_lat = int(sae.W_dec.shape[0])
            act = {}
            for stage in ("base", "post"):
                a, roles, keep = acts[(stage, "chat")]
                sel = keep & (roles == 3)
                act[stage] = encode_stats(enc, a[sel], n_lat)
            s = activation_shift(act["base"], act["post"], k=cfg.top_k_shift, rank_by=cfg.shift_rank_by)
            sh[sk] = s

            atomic_save_tensors(
                out / f"activity_{sk}.safetensors",
                {
                    f"{k}_{stage}": getattr(act[stage], k).contiguous()
                    for stage in act
                    for k in ("frequency", "mean", "mean_when_active")
                },
            )
            figures.append(
                fig_shift(
                    out / f"shift_{sk}.png",
                    act["base"],
                    act["post"],
                    s,
                    f"latent firing frequency on Assistant-turn tokens (role 3) of the held-out "
                    f"dialogues, {names[sk.split('_')[0]]} ({sk.replace('_', ' ')}) at {hook}: "
                    f"{base_model.name} vs {post_model.name}",
                )
            )
            card_jobs.setdefault(("post", sk), {})[
                f"up-regulated ({sk.replace('_', ' ')}, cards on {post_model.name})"
            ] = [r["latent"] for r in s["up"][: cfg.n_cards]]
            card_jobs.setdefault(("base", sk), {})[
                f"down-regulated ({sk.replace('_', ' ')}, cards on {base_model.name})"
            ] = [r["latent"] for r in s["down"][: cfg.n_cards]]
        results["activation_shift"] = {
            **sh,
            "tokens": "Assistant-turn tokens (role_ids == 3) of the chat set, same token ids in both models",
        }
        timings["shift"] = time.time() - t
    if "matching" in cfg.parts and new_latents:
        card_jobs.setdefault(("post", "post_sae"), {})[
            f"new latents of the post SAE (best cosine < {cfg.reuse_threshold} with every base latent), most active "
            "first"
        ] = new_latents[: cfg.n_cards]

    # -- cards (one pass per (model, SAE) over chat rows + some corpus rows) -----------------------------------
    card_dicts: dict[str, list[dict[str, Any]]] = {}
    card_jobs = {k: v for k, v in card_jobs.items() if any(v.values())}
    if card_jobs and rows:
        t = time.time()
        card_rows = torch.cat([rows["chat"].tokens, rows["plain"].tokens[: cfg.card_plain_rows]])
        for (stage, sk), sections in card_jobs.items():
            feats = sorted({f for v in sections.values() for f in v})
            if not feats:
                continue
            model = base_model if stage == "base" else post_model
            cards = make_cards(model, saes[sk], card_rows, feats, sae_name=names[sk.split("_")[0]], hook=hook)
            by_f = {c.feature: c for c in cards}
            for title, fl in sections.items():
                cs = [by_f[f] for f in fl]
                card_dicts[title] = [c.to_dict() for c in cs]
                card_sections.append(cards_html(cs, title))
        (out / "cards.html").write_text(
            f"<html><meta charset='utf-8'><body><h2>{tag}</h2>" + "".join(card_sections) + "</body></html>"
        )
        figures.append("cards.html")
        timings["cards"] = time.time() - t
    results["cards"] = {
        k: [
            {"feature": c["feature"], "density": c["density"], "promoted": [p[0] for p in c["promoted"][:5]]} for c in v
        ]
        for k, v in card_dicts.items()
    }

    # -- 4. persona vectors across stages ----------------------------------------------------------------------
    if "persona" in cfg.parts:
        t = time.time()
        traits = list(cfg.traits) or list_traits()
        if persona_vectors is None:
            persona_vectors = prompt_persona_vectors(
                base_model,
                post_model,
                traits,
                n_questions=cfg.persona_questions,
                kind=cfg.persona_kind,
                fmt=cfg.persona_format,
                batch_size=cfg.batch_size,
                progress=progress,
            )
            how = (
                f"prompt-side vectors ({cfg.persona_kind}; {cfg.persona_questions} extraction questions x 5 "
                "instruction pairs per trait as system prompts, no generation or judge); format: "
                + (
                    "each model its own (post: chat template, base: transcript)"
                    if cfg.persona_format == "own"
                    else "the post-trained model's token ids for both"
                )
            )
        else:
            how = "given vectors"
        assert layer is not None
        pr = persona_report(
            persona_vectors, layer, base_W, post_W, matching, k=cfg.persona_top_k, threshold=cfg.reuse_threshold
        )
        results["persona"] = {"how": how, "layer": layer, "top_k": cfg.persona_top_k, "traits": pr}
        figures.append(
            _layer_fig(
                out / "persona_cosine.png",
                {t: v["cosine_per_layer"] for t, v in pr.items()},
                f"cosine between base ({base_model.name}) and post-trained ({post_model.name}) "
                f"persona vectors per layer; {how}",
                layer,
            )
        )
        timings["persona"] = time.time() - t

    # -- 5. crosscoder ----------------------------------------------------------------------------------------
    if "crosscoder" in cfg.parts:
        if crosscoder is None:
            results["crosscoder"] = {"status": "not run: no crosscoder given", "training": CROSSCODER_STATUS}
        else:
            from ..crosscoder import analyse_crosscoder  # cycle: featurescope.crosscoder imports featurescope.stages

            t = time.time()
            cc = crosscoder if isinstance(crosscoder, CrosscoderWeights) else load_crosscoder(crosscoder)
            ab = torch.cat([acts[("base", s)][0][acts[("base", s)][2]] for s in rows])
            ap = torch.cat([acts[("post", s)][0][acts[("post", s)][2]] for s in rows])
            # in the space the crosscoder was trained in: a folder saved by featurescope.crosscoder (cc.source) records
            # each model's activation scale (cfg.json metadata.activation_scales) and is read with the activations x
            # those scales; the dictionary_learning / Kissane layouts record none and are read in raw units, as before.
            # The summary records which ("space", "activation_scales").
            rep, ten = analyse_crosscoder(
                cc,
                torch.cat([ab, ap], -1),
                base_only_max=cfg.base_only_max,
                post_only_min=cfg.post_only_min,
                nu_max=cfg.nu_max,
                progress=progress,
            )
            results["crosscoder"] = {"status": "analysed", **rep, "training": CROSSCODER_STATUS}
            figures.append(
                fig_crosscoder(
                    out / "crosscoder.png",
                    ten,
                    rep["counts"]["post_only"],
                    f"crosscoder {cc.source or '(given)'} over {base_model.name} and "
                    f"{post_model.name} at {hook}, read in {rep['space']}; Latent Scaling on the chat + plain texts",
                )
            )
            timings["crosscoder"] = time.time() - t

    timings["total"] = time.time() - t_start
    result = StagesResult.from_dict({**results, "figures": figures, "timings": timings})
    write_summary(
        out,
        command,
        inputs={
            "base_model": base_model.info,
            "post_model": post_model.info,
            "hook": hook,
            "base_sae": {
                "name": names["base"],
                "d_sae": int(base_W.shape[0]),
                "d_in": int(base_W.shape[1]),
                "trained_on": base_sae.cfg.metadata.model_name,
            },
            "post_sae": {
                "name": names["post"],
                "d_sae": int(post_W.shape[0]),
                "d_in": int(post_W.shape[1]),
                "trained_on": post_sae.cfg.metadata.model_name,
            },
            "config": cfg.to_dict(),
            "crosscoder": None if crosscoder is None else str(getattr(crosscoder, "source", crosscoder)),
        },
        results=result.summary_results(),
        timings=timings,
        figures=figures,
    )
    return result


def _layer_fig(path: Path, series: dict[str, Sequence[float]], title: str, mark: int) -> str:
    return plots.layer_profile(path, series, title, "cosine(base vector, post vector)", mark=mark)


def _write_transfer_rows(path: Path, tr: Mapping[str, Any], null_entry: Mapping[str, Any]) -> None:
    """One JSON line per (SAE, model's activations, text set, row): the per-row sums the FVE and its interval are
    made of (the random-LoRA null model as ``random_lora_null`` of the base SAE)."""
    per: list[tuple[str, str, Mapping[str, Any]]] = [(sk, mk, tr[sk][mk]) for sk in tr for mk in tr[sk]]
    if null_entry:
        per.append(("base_sae", "random_lora_null", {k: v for k, v in null_entry.items() if isinstance(v, Mapping)}))
    lines = []
    for sk, mk, per_set in per:
        for set_k, m in per_set.items():
            pr = m.get("per_row")
            if not isinstance(pr, Mapping):
                continue
            for i, (e, t, n) in enumerate(zip(pr["sse"], pr["sst"], pr["n_tokens"])):
                lines.append(
                    json.dumps({"sae": sk, "model": mk, "texts": set_k, "row": i, "sse": e, "sst": t, "n_tokens": n})
                )
    path.write_text("".join(line + "\n" for line in lines))
