"""Report: renderer: axis."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..evidence.nulls import EFFECT
from .charts import svg_lines
from .context import Ctx, Number, paper
from .html import esc, flatten, fmt, get, table, to_number
from .records import Run
from .registry import generic_body, inputs_table
from .render_persona import steer_rows


def _ci(e: Any) -> str:
    return f"[{fmt(e.get('lo'))}, {fmt(e.get('hi'))}]" if isinstance(e, Mapping) else "greedy (no interval)"


def _axis_analysis(res: Mapping[str, Any]) -> Mapping[str, Any]:
    an = res.get("analysis")
    return an if isinstance(an, Mapping) else res


def axis_numbers(run: Run) -> list[Number]:
    res, n = run.results, []
    an = _axis_analysis(res)
    ev = an.get("evidence") if isinstance(an.get("evidence"), Mapping) else None
    if ev and isinstance(ev.get("axis_pc1"), Mapping):
        n.append(
            Number.from_evidence(
                f"cos(axis, PC1) at {an.get('hook', res.get('hook', '?'))}", ev["axis_pc1"], paper=paper("axis_pc1")
            )
        )
        rf = an.get("role_filter")
        if isinstance(rf, Mapping) and rf.get("n_roles"):
            n.append(
                Number(
                    "role vectors by filter: score 3 / score >= 2 / unfiltered (too few in-role answers)",
                    f"{rf['score_3']} / {rf['score_2']} / {rf['unfiltered']} of {rf['n_roles']}",
                )
            )
        nm = ev.get("axis_pc1_without_massive")
        if isinstance(nm, Mapping) and nm.get("massive_dims"):
            n.append(Number.from_evidence(f"cos(axis, PC1) without massive dims {nm['massive_dims']}", nm))
    elif an.get("axis_pc1_cosine") is not None:
        n.append(
            Number(
                f"cos(axis, PC1) at {an.get('hook', res.get('hook', '?'))}",
                an["axis_pc1_cosine"],
                paper=paper("axis_pc1"),
            )
        )
    if an.get("pcs_for_70pct") is not None:
        n.append(Number("PCs for 70% of role-vector variance", an["pcs_for_70pct"], paper=paper("axis_pcs")))
    if an.get("default_pc1_percentile") is not None:
        n.append(
            Number(
                "default Assistant's percentile on PC1 among roles",
                an["default_pc1_percentile"],
                note="Lu et al.: the Assistant sits at one extreme",
            )
        )
    rows = steer_rows(res.get("steering") or {})
    if rows:
        nosys = [r for r in rows if not r.get("system_prompt")] or rows
        n.append(
            Number(
                "steering: identifies as AI at lowest / highest alpha",
                f"{fmt(nosys[0].get('ai_fraction'))} / {fmt(nosys[-1].get('ai_fraction'))}",
                note=f"alpha {fmt(nosys[0].get('alpha'))} .. {fmt(nosys[-1].get('alpha'))}",
            )
        )
    ctl = get(res, "steering", "control")
    if isinstance(ctl, Mapping) and isinstance(ctl.get("evidence"), Mapping):
        ev = ctl["evidence"]
        n.append(Number.from_evidence(str(ev.get("name") or "axis steering effect"), ev))
    dr = res.get("drift")
    if isinstance(dr, Mapping):
        for k in ("uncapped", "capped"):
            v = dr.get(k)
            if isinstance(v, Mapping) and v.get("first_turn_mean") is not None:
                n.append(
                    Number(
                        f"drift ({k}): mean projection first -> last turn",
                        f"{fmt(v['first_turn_mean'])} -> {fmt(v.get('last_turn_mean'))}",
                    )
                )
                cn = v.get("change_null")
                if isinstance(cn, Mapping) and cn:
                    beat = sum(1 for e in cn.values() if isinstance(e, Mapping) and e.get("verdict") == EFFECT)
                    n.append(
                        Number(
                            f"drift ({k}): scripts whose change beats random directions",
                            f"{beat} of {len(cn)}",
                            note="the others are not distinguishable from the null",
                        )
                    )
    cmp = res.get("compare")
    if isinstance(cmp, Mapping) and isinstance(cmp.get("middle"), Mapping):
        m = cmp["middle"]
        n.append(Number("base vs post axis cosine (middle layer)", m.get("axis_cosine")))
        if m.get("pc_cosines"):
            sh = cmp.get("split_half_pc_cosines")
            null = None
            if isinstance(sh, Mapping) and sh:
                null = (
                    "; ".join(f"{k}: {', '.join(f'{x:.2f}' for x in v)}" for k, v in sh.items() if isinstance(v, list))
                    + " (two random halves of one model's roles)"
                )
            n.append(
                Number(
                    "top-3 PC |cosines| base vs post",
                    m["pc_cosines"],
                    paper="Lu et al.: 0.93, 0.87, 0.83",
                    null=null,
                    verdict="compare with the split-half values" if null else "",
                )
            )
    return n


def axis_body(ctx: Ctx) -> str:
    res = ctx.run.results
    an = _axis_analysis(res)
    out = []
    if an.get("explained_variance") or "explained_variance.png" in ctx.run.assets:
        out.append(f"<h4 id='run{ctx.index}-pca'>Persona space (PCA of the role vectors)</h4>")
        fig = ctx.figure("explained_variance.png", "explained variance of the role-vector PCA")
        ev = an.get("explained_variance")
        if not fig and isinstance(ev, list) and ev:
            cum, s = [], 0.0
            for x in ev:
                s += to_number(x) or 0.0
                cum.append(s)
            fig = ctx.chart(
                svg_lines(
                    {"explained": ev, "cumulative": cum},
                    xlabel="principal component (0-based)",
                    ylabel="fraction of variance",
                    hline=0.7,
                    title="role-vector PCA",
                ),
                "explained variance (from summary numbers); dashed: 70%",
            )
        out += [
            fig,
            ctx.figure("pc1_pc2.png", "roles and the default Assistant on PC1 / PC2"),
            ctx.figure("axis_layers.png", "axis profile per layer"),
        ]
    pl = res.get("per_layer")
    if isinstance(pl, Mapping) and pl.get("axis_pc1_cosine") and "axis_layers.png" not in ctx.run.assets:
        out.append(
            ctx.chart(
                svg_lines(
                    {
                        "cos(axis, PC1)": pl["axis_pc1_cosine"],
                        "default PC1 percentile": pl.get("default_pc1_percentile") or [],
                    },
                    ylabel="",
                    title="axis per layer",
                    hline=0.71,
                ),
                "axis per layer (from summary numbers); dashed: Lu et al.'s 0.71",
            )
        )
    ranked = res.get("ranked_roles")
    if isinstance(ranked, list) and ranked:
        out.append(f"<h4 id='run{ctx.index}-roles'>Role ranking along the axis</h4>")
        out.append(ctx.figure("roles_ranked.png", "roles ranked by projection on the axis"))
        top = [r for r in ranked if isinstance(r, (list, tuple)) and len(r) >= 3]
        if top:
            rows = [[i + 1, *top[i][:3]] for i in range(min(8, len(top)))]
            if len(top) > 8:
                rows += [["...", "", "", None]] + [
                    [len(top) - j, *top[-1 - j][:3]] for j in reversed(range(min(5, len(top) - 8)))
                ]
            out.append(table(rows, ["rank", "role", "category", "projection"]))
    rows = steer_rows(res.get("steering") or {})
    if rows:
        out += [
            f"<h4 id='run{ctx.index}-steering'>Steering along the axis</h4>",
            ctx.figure("steering.png", "steering"),
            table(
                [
                    [
                        r.get("system_prompt") or "(none)",
                        r.get("alpha"),
                        r.get("ai_fraction"),
                        _ci(r.get("ai_ci")),
                        r.get("coherence"),
                        r.get("readback_projection"),
                    ]
                    for r in rows
                ],
                [
                    "system prompt",
                    "alpha",
                    "identifies as AI",
                    "95% CI (questions)",
                    "coherence",
                    "read-back projection",
                ],
            ),
        ]
    dr = res.get("drift")
    if isinstance(dr, Mapping):
        out.append(f"<h4 id='run{ctx.index}-drift'>Drift and capping</h4>")
        out += [
            ctx.figure("drift.png", "per-turn projection over multi-turn scripts"),
            ctx.figure("drift_capped.png", "uncapped vs capped"),
        ]
        series = {}
        for k in ("uncapped", "capped"):
            for name, vals in (get(dr, k, "per_script") or {}).items():
                series[f"{name} ({k})"] = vals
        if series and "drift.png" not in ctx.run.assets:
            out.append(
                ctx.chart(
                    svg_lines(
                        dict(list(series.items())[:8]), xlabel="turn", ylabel="projection", title="drift per script"
                    ),
                    "drift (from summary numbers)",
                )
            )
        out.append(
            table(
                [
                    [
                        k,
                        get(dr, k, "first_turn_mean"),
                        get(dr, k, "last_turn_mean"),
                        get(dr, k, "ai_fraction_of_replies"),
                    ]
                    for k in ("uncapped", "capped")
                    if isinstance(dr.get(k), Mapping)
                ],
                ["", "first-turn mean projection", "last-turn mean projection", "replies identifying as AI"],
            )
        )
        null_rows = []
        for k in ("uncapped", "capped"):
            for name, e in (get(dr, k, "change_null") or {}).items():
                if isinstance(e, Mapping):
                    est, nl = e.get("estimate") or {}, e.get("null") or {}
                    null_rows.append(
                        [
                            f"{name} ({k})",
                            f"{fmt(est.get('value'))} [{fmt(est.get('lo'))}, {fmt(est.get('hi'))}]",
                            f"{fmt(nl.get('mean'))} [{fmt(nl.get('lo'))}, {fmt(nl.get('hi'))}]",
                            e.get("verdict"),
                        ]
                    )
        if null_rows:
            out.append(
                table(
                    null_rows,
                    [
                        "script",
                        "change last - first turn [95% CI, conversations]",
                        "random directions [central 95%]",
                        "verdict",
                    ],
                )
            )
        if dr.get("cap_layers") is not None:
            out.append(
                f"<p>capping at layers {esc(fmt(dr.get('cap_layers')))}, tau = percentile "
                f"{esc(fmt(dr.get('cap_percentile')))} of the default Assistant's token projections</p>"
            )
    pf = res.get("prefill")
    if isinstance(pf, Mapping):
        out += [
            f"<h4 id='run{ctx.index}-prefill'>Base-model prefill test</h4>",
            ctx.figure("prefill.png", "prefill test"),
            table([[k, v] for k, v in flatten({k: v for k, v in pf.items() if k != "rows"}, max_items=20)]),
        ]
    cmp = res.get("compare")
    if isinstance(cmp, Mapping):
        out += [
            f"<h4 id='run{ctx.index}-compare'>Across stages</h4>",
            ctx.figure("compare.png", "base vs post-trained axes"),
            table([[k, v] for k, v in flatten(cmp.get("middle") or {}, max_items=20)]),
        ]
    dec = res.get("decompositions")
    if isinstance(dec, Mapping):
        out.append(f"<h4 id='run{ctx.index}-features'>SAE features of the axis</h4>")
        out.append(
            table(
                [
                    [m, ", ".join(f"{t[0]} ({fmt(t[1])})" for t in (d.get("top") or [])[:8]), d.get("k_for_50pct")]
                    for m, d in dec.items()
                    if isinstance(d, Mapping)
                ],
                ["method", "top features (score)", "k for 50%"],
            )
        )
    if not out:
        out.append(generic_body(ctx))
    else:
        out.append(inputs_table(ctx.run))
    return "".join(out)
