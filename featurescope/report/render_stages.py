"""Report: renderer: stages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .charts import svg_bars
from .constants import PAPER
from .context import Ctx, Number, paper
from .html import esc, fmt, get, table
from .provenance import provenance_text
from .records import Run
from .registry import inputs_table


def stages_numbers(run: Run) -> list[Number]:
    res, n = run.results, []
    tr = res.get("transfer") or {}
    for set_k in ("chat", "plain"):
        own = get(tr, "base_sae", "base_model", set_k, "fraction_variance_explained")
        other = get(tr, "base_sae", "post_model", set_k, "fraction_variance_explained")
        if own is not None and other is not None:
            iv = [get(tr, "base_sae", m, set_k, "fve_interval") for m in ("base_model", "post_model")]
            value = (
                " / ".join(f"{fmt(x['value'])} [{fmt(x['lo'])}, {fmt(x['hi'])}]" for x in iv)
                if all(isinstance(x, Mapping) for x in iv)
                else f"{fmt(own)} / {fmt(other)}"
            )
            n.append(
                Number(
                    f"base SAE FVE on base / post activations ({set_k})",
                    value,
                    paper=paper("transfer"),
                    note=f"difference {fmt(other - own)}",
                )
            )
        diff = get(tr, "fve_post_minus_base", "base_sae", set_k)
        if isinstance(diff, Mapping) and "estimate" in diff:
            n.append(
                Number.from_evidence(
                    f"base SAE FVE, post-trained minus base model, same text rows ({set_k})", diff, fmt_=".3f"
                )
            )
        null_fve = get(tr, "random_lora_null", set_k, "fraction_variance_explained")
        if own is not None and other is not None and null_fve is not None:
            n.append(
                Number(
                    f"base SAE FVE on the base model + a random LoRA of equal weight change ({set_k})",
                    fmt(null_fve),
                    note="the transfer null: post-training must change FVE more than this does to say anything",
                )
            )
        many = get(tr, "random_lora_nulls", "evidence", set_k)
        if isinstance(many, Mapping) and "estimate" in many:
            n.append(
                Number.from_evidence(
                    f"base SAE FVE on the post-trained model vs {len(get(tr, 'random_lora_nulls', 'seeds') or [])} "
                    f"random LoRAs ({set_k})",
                    many,
                    fmt_=".3f",
                )
            )
        ce_own = get(tr, "base_sae", "base_model", set_k, "ce_loss_recovered")
        ce_other = get(tr, "base_sae", "post_model", set_k, "ce_loss_recovered")
        if ce_own is not None and ce_other is not None:
            n.append(Number(f"base SAE CE-loss recovered on base / post ({set_k})", f"{fmt(ce_own)} / {fmt(ce_other)}"))
    mt = res.get("matching") or {}
    if mt.get("fraction_post_reused") is not None:
        reused = mt["fraction_post_reused"]
        n_post = mt.get("n_post_latents")
        n.append(
            Number(
                "new features (post latents with no base match)",
                f"{(1 - reused) * 100:.1f}%",
                paper=paper("new_features"),
                note=f"{fmt(mt.get('n_new'))} of {fmt(n_post)}; threshold cos {fmt(mt.get('threshold'))}",
            )
        )
        rnd = get(mt, "baselines", "random", "fraction_post_reused")
        n.append(
            Number(
                "post latents reused (best decoder cos >= threshold)",
                f"{reused * 100:.1f}%",
                note=f"random-dictionary baseline {fmt(rnd * 100 if rnd is not None else None)}%",
            )
        )
        if mt.get("fraction_base_kept") is not None:
            n.append(Number("base latents kept", f"{mt['fraction_base_kept'] * 100:.1f}%"))
    for t, v in (get(res, "persona", "traits") or {}).items():
        if isinstance(v, Mapping) and v.get("cosine_at_layer") is not None:
            n.append(
                Number(
                    f"persona '{t}': cos(base, post) at layer {get(res, 'persona', 'layer')}",
                    v["cosine_at_layer"],
                    note=f"top-feature Jaccard {fmt(get(v, 'top_features_base_sae', 'jaccard'))}",
                )
            )
    cc = res.get("crosscoder") or {}
    if cc.get("counts"):
        n.append(
            Number(
                "crosscoder latents (base-only / shared / post-only)",
                " / ".join(fmt(cc["counts"].get(k)) for k in ("base_only", "shared", "post_only")),
            )
        )
    return n


def _transfer_table(tr: Mapping[str, Any]) -> str:
    rows = []
    for sk in ("base_sae", "post_sae"):
        for mk in ("base_model", "post_model"):
            for set_k, m in (get(tr, sk, mk) or {}).items():
                if isinstance(m, Mapping):
                    rows.append(
                        [
                            sk.replace("_", " "),
                            mk.replace("_", " "),
                            set_k,
                            m.get("fraction_variance_explained"),
                            m.get("ce_loss_recovered"),
                            m.get("l0"),
                            m.get("dead_fraction"),
                        ]
                    )
    return table(rows, ["SAE", "activations of", "texts", "FVE", "CE-loss recovered", "L0", "dead"]) if rows else ""


def _shift_tables(sh: Mapping[str, Any]) -> str:
    out = []
    for sk in ("base_sae", "post_sae"):
        s = sh.get(sk)
        if not isinstance(s, Mapping):
            continue
        for direction in ("up", "down"):
            rows = [
                [r.get("latent"), r.get("freq_base"), r.get("freq_post"), r.get("delta_freq"), r.get("delta_mean")]
                for r in (s.get(direction) or [])[:10]
                if isinstance(r, Mapping)
            ]
            if rows:
                out.append(
                    f"<h5>{esc(sk.replace('_', ' '))}: most {'up' if direction == 'up' else 'down'}-regulated on "
                    f"Assistant tokens</h5>"
                    + table(rows, ["latent", "freq base", "freq post", "delta freq", "delta mean"])
                )
        if s.get("frequency_correlation") is not None:
            out.append(
                f"<p>{esc(sk.replace('_', ' '))}: firing-frequency correlation base vs post "
                f"{esc(fmt(s['frequency_correlation']))}; alive in both {esc(fmt(s.get('alive_both')))}, base only "
                f"{esc(fmt(s.get('alive_base_only')))}, post only {esc(fmt(s.get('alive_post_only')))}</p>"
            )
    return "".join(out)


def stages_body(ctx: Ctx) -> str:
    res = ctx.run.results
    out = []
    tr = res.get("transfer")
    if isinstance(tr, Mapping):
        out += [
            f"<h4 id='run{ctx.index}-transfer'>SAE transfer across stages</h4>",
            f"<p>Paper ({esc(PAPER['transfer'][0])}): {esc(PAPER['transfer'][2])}.</p>",
            _transfer_table(tr),
            ctx.figure("transfer.png", "FVE / CE-loss recovered of each SAE on each model's activations"),
        ]
        if tr.get("note"):
            out.append(f"<p class='note'>{esc(tr['note'])}</p>")
    mt = res.get("matching")
    if isinstance(mt, Mapping):
        reused = mt.get("fraction_post_reused")
        out += [
            f"<h4 id='run{ctx.index}-matching'>Feature matching between the dictionaries</h4>",
            f"<p>{esc(fmt(mt.get('n_new')))} of {esc(fmt(mt.get('n_post_latents')))} post-trained latents have no "
            f"base latent with decoder cosine >= {esc(fmt(mt.get('threshold')))}: <b>"
            f"{esc(fmt((1 - reused) * 100 if reused is not None else None))}% new</b> (paper, {esc(paper('new_features'))}).</p>",
            table(
                [
                    [k, get(v, "fraction_post_reused"), get(v, "median_best_cos"), get(v, "what")]
                    for k, v in (mt.get("baselines") or {}).items()
                ],
                ["baseline", "fraction reused", "median best cos", "what"],
            ),
        ]
        fig = ctx.figure("matching.png", "best decoder cosine histograms, with random baselines")
        hist = get(mt, "histograms", "post_to_base")
        if not fig and isinstance(hist, Mapping) and hist.get("counts"):
            edges = hist.get("edges") or []
            labels = [fmt(e) for e in edges[:-1]] or list(range(len(hist["counts"])))
            thr = mt.get("threshold")
            mark = None
            if thr is not None and len(edges) > 1:
                mark = (thr - edges[0]) / (edges[1] - edges[0])
            fig = ctx.chart(
                svg_bars(
                    labels, hist["counts"], title="best decoder cosine, post -> base", ylabel="latents", mark=mark
                ),
                "matching histogram (from summary numbers); dashed: reuse threshold",
            )
        out.append(fig)
        if mt.get("new_latents"):
            out.append(
                f"<p>New latents (most active first): {esc(', '.join(map(str, mt['new_latents'][:30])))}"
                f"{' ...' if len(mt['new_latents']) > 30 else ''}</p>"
            )
    sh = res.get("activation_shift")
    if isinstance(sh, Mapping):
        out += [
            f"<h4 id='run{ctx.index}-shift'>Activation shift on Assistant tokens</h4>",
            _shift_tables(sh),
            ctx.figure("shift_base_sae.png", "firing frequency base vs post, base SAE"),
            ctx.figure("shift_post_sae.png", "firing frequency base vs post, post SAE"),
        ]
    cards = ctx.figure("cards.html", "new and shifted features")
    if not cards and isinstance(res.get("cards"), Mapping) and res["cards"]:
        cards = (
            f"<div class='cards' id='run{ctx.index}-fig-cards'><p class='cap'>new and shifted features (from "
            f"summary.json; cards.html not found) | {esc(provenance_text(ctx.prov))}</p>"
            + "".join(
                f"<h5>{esc(t)}</h5>"
                + table(
                    [
                        [c.get("feature"), c.get("density"), ", ".join(map(str, c.get("promoted") or []))]
                        for c in cs
                        if isinstance(c, Mapping)
                    ],
                    ["feature", "density", "promotes"],
                )
                for t, cs in res["cards"].items()
            )
            + "</div>"
        )
    if cards:
        out += [f"<h4 id='run{ctx.index}-cards'>New and shifted features (cards)</h4>", cards]
    pe = res.get("persona")
    if isinstance(pe, Mapping):
        rows = [
            [
                t,
                v.get("cosine_at_layer"),
                v.get("norm_base"),
                v.get("norm_post"),
                get(v, "top_features_base_sae", "jaccard"),
                get(v, "top_features_post_sae", "jaccard"),
                get(v, "across_saes", "jaccard"),
            ]
            for t, v in (pe.get("traits") or {}).items()
            if isinstance(v, Mapping)
        ]
        out += [
            f"<h4 id='run{ctx.index}-persona'>Persona vectors across stages</h4>",
            f"<p>{esc(pe.get('how', ''))}</p>",
            table(
                rows,
                [
                    "trait",
                    f"cos(base, post) at layer {pe.get('layer')}",
                    "||v|| base",
                    "||v|| post",
                    "top-feature Jaccard (base SAE)",
                    "(post SAE)",
                    "(across SAEs)",
                ],
            ),
            ctx.figure("persona_cosine.png", "cosine between base and post-trained persona vectors per layer"),
        ]
    cc = res.get("crosscoder")
    if isinstance(cc, Mapping):
        out.append(f"<h4 id='run{ctx.index}-crosscoder'>Crosscoder</h4>")
        if cc.get("counts"):
            out.append(table([[k, v] for k, v in cc["counts"].items()], ["class", "latents"]))
            out.append(ctx.figure("crosscoder.png", "relative decoder norm and Latent Scaling"))
        else:
            out.append(f"<p class='note'>{esc(cc.get('status', ''))}</p>")
    out.append(inputs_table(ctx.run))
    return "".join(out)
