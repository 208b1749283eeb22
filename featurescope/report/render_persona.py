"""Report: renderer: persona."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .charts import svg_lines
from .context import Ctx, Number, paper
from .html import details, esc, fmt, get, table, to_number
from .records import Run
from .registry import inputs_table


def trait_of(run: Run) -> str:
    """The trait a persona-related run is about (inputs.trait, else the vector file's name 'evil.kind.safetensors')."""
    t = run.inputs.get("trait")
    if isinstance(t, str) and t:
        return Path(t).stem if t.endswith((".yaml", ".yml")) else t
    v = run.inputs.get("vector") or ""
    if v:
        return Path(str(v)).name.split(".")[0]
    return "unknown"


def _monotone(xs: Sequence[Any], ys: Sequence[Any]) -> bool | None:
    pairs = sorted((x, y) for x, y in zip(xs, ys) if to_number(x) is not None and to_number(y) is not None)
    if len(pairs) < 3:
        return None
    return all(b[1] >= a[1] for a, b in zip(pairs, pairs[1:]))


def steer_rows(steering: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [r for r in (steering.get("rows") or []) if isinstance(r, Mapping)]


def persona_numbers(run: Run) -> list[Number]:
    res, n = run.results, []
    c = res.get("counts") or {}
    if c:
        n.append(
            Number(
                "responses kept (trait / baseline)",
                f"{c.get('kept_pos', '?')} / {c.get('kept_neg', '?')}",
                note=f"of {c.get('generated_per_side', '?')} per side",
            )
        )
    d = get(res, "separation", "cohens_d")
    if d:
        best = max(range(len(d)), key=lambda i: d[i] if to_number(d[i]) is not None else -1e9)
        n.append(Number("best projection separation (Cohen's d, in sample)", d[best], note=f"at layer {best}"))
        held = get(res, "separation", "held_out")
        if isinstance(held, list) and best < len(held) and isinstance(held[best], Mapping):
            n.append(
                Number.from_evidence(
                    f"held-out Cohen's d at layer {best} (vector on half the questions, d on the other half)",
                    held[best],
                )
            )
        rr = get(res, "reread", "separation", "held_out")
        if isinstance(rr, list) and best < len(rr) and isinstance(rr[best], Mapping):
            n.append(
                Number.from_evidence(
                    f"re-read control: held-out d at layer {best}, kept answers read without the system prompt",
                    rr[best],
                )
            )
    if res.get("chosen_layer") is not None:
        n.append(Number("steering layer chosen", res["chosen_layer"], note="largest steering effect, coherent answers"))
    rows = steer_rows(res.get("steering") or (res if run.command == "persona steer" else {}))
    if rows:
        mono = _monotone([r.get("alpha") for r in rows], [r.get("trait_score") for r in rows])
        n.append(
            Number(
                "steering: trait score at lowest / highest alpha",
                f"{fmt(rows[0].get('trait_score'))} / {fmt(rows[-1].get('trait_score'))}",
                paper=paper("steering"),
                note=f"alpha {fmt(rows[0].get('alpha'))} .. {fmt(rows[-1].get('alpha'))}; monotone: {fmt(mono)}",
            )
        )
    st = res.get("steering") or (res if run.command == "persona steer" else {})
    ctl = st.get("control") if isinstance(st, Mapping) else None
    if isinstance(ctl, Mapping) and isinstance(ctl.get("evidence"), Mapping):
        n.append(Number.from_evidence(str(ctl["evidence"].get("name", "steering effect")), ctl["evidence"], fmt_=".1f"))
    mon = res.get("monitor") or (res if run.command == "persona monitor" else {})
    if isinstance(mon.get("r_samples_evidence"), Mapping):
        n.append(
            Number.from_evidence(
                f"monitoring r (per response, n = {mon.get('n', '?')})",
                mon["r_samples_evidence"],
                paper=paper("monitor_r"),
            )
        )
        n.append(Number("monitoring r (graded-level means)", mon.get("r_levels"), paper=paper("monitor_r")))
    elif mon.get("r_samples") is not None or mon.get("r_levels") is not None:
        n.append(
            Number(
                "monitoring r (per response)",
                mon.get("r_samples"),
                paper=paper("monitor_r"),
                note=f"n = {mon.get('n', '?')}",
            )
        )
        n.append(Number("monitoring r (graded-level means)", mon.get("r_levels"), paper=paper("monitor_r")))
    fl = res.get("flagging") or {}
    if isinstance(fl.get("auroc_evidence"), Mapping):
        n.append(
            Number.from_evidence(
                "data flagging AUROC (trait-laden vs neutral)",
                fl["auroc_evidence"],
                paper="Chen et al. 2025: trait-laden data ranks first",
            )
        )
    elif fl.get("auroc_trait_vs_neutral") is not None:
        n.append(
            Number(
                "data flagging AUROC (trait-laden vs neutral)",
                fl["auroc_trait_vs_neutral"],
                paper="Chen et al. 2025: trait-laden data ranks first",
            )
        )
    per = fl.get("per_dataset") or (res.get("per_dataset") if run.command == "persona flag" else None)
    if isinstance(per, Mapping) and per:
        top = max(per, key=lambda k: per[k] if to_number(per[k]) is not None else -1e18)
        n.append(Number("dataset ranked first by projection difference", top, note=f"{fmt(per[top])}"))
    return n


def _vector_profile(ctx: Ctx) -> str:
    prof = ctx.run.derived.get("vector_profile") or {}
    out = []
    norms: Mapping[str, Any] = prof.get("norm") or (
        {"response_mean": ctx.run.results.get("vector_norms")} if ctx.run.results.get("vector_norms") else {}
    )
    mark = ctx.run.results.get("chosen_layer")  # dashed line: the steering layer (run) / best separation (extract)
    if mark is None:
        mark = ctx.run.results.get("best_separation_layer")
    if norms:
        out.append(
            ctx.chart(
                svg_lines(norms, title="persona vector norm per layer", ylabel="||v_L||", mark=mark),
                "Layer profile of the persona vector: norm of mean(trait) - mean(baseline) per layer, "
                "for each vector kind (read from the run's .safetensors files)"
                + (
                    f"; dashed: layer {mark} ({'chosen for steering' if ctx.run.results.get('chosen_layer') is not None else 'best separation'})"
                    if mark is not None
                    else ""
                ),
            )
        )
    cos = prof.get("cos_with_response_mean")
    if cos:
        out.append(
            ctx.chart(
                svg_lines(cos, title="cosine with the response_mean vector", ylabel="cosine", mark=mark),
                "Agreement of the prompt-side vectors with the response-mean vector, per layer",
            )
        )
    return "".join(out)


def _layer_table(res: Mapping[str, Any]) -> str:
    sep = res.get("separation") or {}
    d = sep.get("cohens_d") or []
    eff = {r.get("layer"): r for r in (get(res, "layer_choice", "rows") or []) if isinstance(r, Mapping)}
    norms = res.get("vector_norms") or []
    rows = [
        [
            L,
            get(sep, "pos_mean", L),
            get(sep, "neg_mean", L),
            get(sep, "gap", L),
            d[L],
            norms[L] if L < len(norms) else None,
            get(eff, L, "effect"),
            get(eff, L, "coherence"),
        ]
        for L in range(len(d))
    ]
    return (
        details(
            "per-layer table",
            table(
                rows,
                [
                    "layer",
                    "pos mean proj",
                    "neg mean proj",
                    "gap",
                    "Cohen's d",
                    "||v||",
                    "steering effect",
                    "steered coherence",
                ],
            ),
        )
        if rows
        else ""
    )


def _steering_block(ctx: Ctx, st: Mapping[str, Any]) -> str:
    rows = steer_rows(st)
    if not rows:
        return ""
    out = [f"<h4>Steering at {esc(st.get('hook', '?'))}</h4>", ctx.figure("steering.png", "steering curve")]
    if "steering.png" not in ctx.run.assets:
        out.append(
            ctx.chart(
                svg_lines(
                    {
                        "trait score": [r.get("trait_score") for r in rows],
                        "coherence": [r.get("coherence") for r in rows],
                    },
                    xs=[r.get("alpha") for r in rows],
                    xlabel="alpha",
                    ylabel="score 0-100",
                    title="steering curve",
                ),
                "steering curve (from summary numbers)",
            )
        )
    out.append(
        table(
            [
                [
                    r.get("alpha"),
                    r.get("trait_score"),
                    r.get("coherence"),
                    r.get("logprob_per_token"),
                    (r.get("examples") or [""])[0],
                ]
                for r in rows
            ],
            ["alpha", "trait score", "coherence", "log-prob/token (unsteered)", "example answer"],
        )
    )
    return "".join(out)


def _monitor_block(ctx: Ctx, mon: Mapping[str, Any]) -> str:
    if not mon or (mon.get("r_samples") is None and not mon.get("per_level")):
        return ""
    per = [p for p in (mon.get("per_level") or []) if isinstance(p, Mapping)]
    out = [
        f"<h4>Monitoring at {esc(mon.get('hook', '?'))}</h4>",
        f"<p>Pearson r between the last-prompt-token projection and the judged trait score: "
        f"<b>{esc(fmt(mon.get('r_samples')))}</b> per response (n = {esc(mon.get('n', '?'))}), "
        f"<b>{esc(fmt(mon.get('r_levels')))}</b> over graded-level means. Paper ({esc(paper('monitor_r'))}).</p>",
        ctx.figure("monitor.png", "projection vs trait score per graded system prompt"),
    ]
    if per and "monitor.png" not in ctx.run.assets:
        out.append(
            ctx.chart(
                svg_lines(
                    {"projection": [p.get("projection") for p in per]},
                    xlabel="system-prompt level",
                    ylabel="projection",
                    title="last-prompt projection per level",
                ),
                "monitoring (from summary numbers)",
            )
        )
    if per:
        out.append(
            details(
                "per level",
                table(
                    [[p.get("level"), p.get("projection"), p.get("trait_score")] for p in per],
                    ["level (suppress -> elicit)", "mean projection", "mean trait score"],
                ),
            )
        )
    return "".join(out)


def _flag_block(ctx: Ctx, fl: Mapping[str, Any]) -> str:
    per = fl.get("per_dataset") if isinstance(fl, Mapping) else None
    if not per:
        return ""
    ranked = sorted(per.items(), key=lambda kv: -(to_number(kv[1]) or -1e18))
    out = [
        "<h4>Data flagging</h4>",
        ctx.figure("flagging.png", "mean projection difference per dataset"),
        table([[k, v] for k, v in ranked], ["dataset", "mean projection difference"]),
    ]
    if fl.get("auroc_trait_vs_neutral") is not None:
        out.append(f"<p>AUROC (trait-laden vs neutral rows): <b>{esc(fmt(fl['auroc_trait_vs_neutral']))}</b></p>")
    return "".join(out)


def persona_body(ctx: Ctx) -> str:
    r, res = ctx.run, ctx.run.results
    out = []
    if r.command in ("persona run", "persona extract", "persona rebuild"):
        out += [
            "<h4>Layer profile</h4>",
            _vector_profile(ctx),
            ctx.figure("separation.png", "pos-vs-neg projection separation per layer"),
            ctx.figure("layers.png", "projection separation per layer"),
            ctx.figure("layer_choice.png", "steering effect per candidate layer"),
            _layer_table(res),
        ]
    if r.command == "persona run":
        out += [
            _steering_block(ctx, res.get("steering") or {}),
            _monitor_block(ctx, res.get("monitor") or {}),
            _flag_block(ctx, res.get("flagging") or {}),
        ]
    elif r.command == "persona steer":
        out.append(_steering_block(ctx, res))
    elif r.command == "persona monitor":
        out.append(_monitor_block(ctx, res))
    elif r.command == "persona flag":
        out.append(_flag_block(ctx, res))
    out.append(inputs_table(r))
    return "".join(out)
