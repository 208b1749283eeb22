"""Report: renderer: decompose; renderer: SAEs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..cards import FeatureCard
from .charts import svg_bars, svg_lines
from .context import Ctx, Number
from .html import details, esc, flatten, fmt, sanitize_fragment, table
from .provenance import provenance_text
from .records import Run
from .registry import inputs_table


def decompose_numbers(run: Run) -> list[Number]:
    n = []
    for m, d in (run.results.get("decompositions") or {}).items():
        if not isinstance(d, Mapping):
            continue
        top = (d.get("top") or [[None, None]])[0]
        n.append(
            Number(
                f"{m}: top feature (score)",
                f"{top[0]} ({fmt(top[1])})" if top and top[0] is not None else "-",
                note=f"k for 50% / 90% of the vector: {fmt(d.get('k_for_50pct'))} / {fmt(d.get('k_for_90pct'))}",
            )
        )
    return n


def _cards_from_dicts(cards: Sequence[Any]) -> str:
    """Feature cards rebuilt from their summary dicts (when the run folder has no cards.html)."""
    out = []
    for c in cards:
        if not isinstance(c, Mapping):
            continue
        try:
            out.append(
                sanitize_fragment(
                    FeatureCard(**{k: c[k] for k in c if k in FeatureCard.__dataclass_fields__}).to_html()
                )
            )
        except Exception:
            out.append(table([[k, v] for k, v in flatten(c, max_items=12)]))
    return "".join(out)


def decompose_body(ctx: Ctx) -> str:
    res = ctx.run.results
    decs = {m: d for m, d in (res.get("decompositions") or {}).items() if isinstance(d, Mapping)}
    out = ["<h4>Top SAE features of the vector</h4>"]
    if decs:
        k = max(len(d.get("top") or []) for d in decs.values())
        k = min(k, 12)
        heads, cols = ["rank"], []
        for m, d in decs.items():
            heads += [f"{m} feature", f"{m} score"]
            cols.append(d.get("top") or [])
        rows = [
            [i + 1] + [x for c in cols for x in ((c[i][0], c[i][1]) if i < len(c) else (None, None))] for i in range(k)
        ]
        out.append(table(rows, heads))
        out.append(
            table(
                [
                    [m, d.get("k_for_50pct"), d.get("k_for_90pct"), (d.get("fraction_explained") or [None])[-1]]
                    for m, d in decs.items()
                ],
                ["method", "k for 50%", "k for 90%", "fraction explained by top-k"],
            )
        )
        fig = ctx.figure("fraction_explained.png", "fraction of ||v||^2 reconstructed by the top-k features")
        out.append(
            fig
            or ctx.chart(
                svg_lines(
                    {m: d.get("fraction_explained") or [] for m, d in decs.items()},
                    xs=None,
                    xlabel="k (top features, 0-based)",
                    ylabel="fraction explained",
                    title="fraction of the vector explained by its top-k features",
                ),
                "fraction explained (from summary numbers)",
            )
        )
    cards = ctx.figure("cards.html", "feature cards of the top features")
    if not cards and res.get("cards"):
        cards = (
            f"<div class='cards' id='run{ctx.index}-fig-cards'><p class='cap'>feature cards (rebuilt from summary.json)"
            f" | {esc(provenance_text(ctx.prov))}</p>{_cards_from_dicts(res['cards'][:12])}</div>"
        )
    out += [cards, inputs_table(ctx.run)]
    return "".join(out)


_SAE_METRICS = ("fraction_variance_explained", "ce_loss_recovered", "l0", "dead_fraction", "n_tokens")


def _sae_evals(run: Run) -> dict[str, Mapping[str, Any]]:
    res = run.results
    if run.command == "sae eval":
        return {str(res.get("hook") or run.inputs.get("hook") or "?"): res}
    return {k: v for k, v in res.items() if isinstance(v, Mapping) and "fraction_variance_explained" in v}


def sae_numbers(run: Run) -> list[Number]:
    n = []
    for h, ev in _sae_evals(run).items():
        n.append(
            Number(
                f"{h}: FVE / CE recovered / L0 / dead",
                f"{fmt(ev.get('fraction_variance_explained'))} / {fmt(ev.get('ce_loss_recovered'))} / "
                f"{fmt(ev.get('l0'))} / {fmt(ev.get('dead_fraction'))}",
            )
        )
    return n


def sae_body(ctx: Ctx) -> str:
    evs = _sae_evals(ctx.run)
    out = []
    if evs:
        out.append(
            table(
                [[h] + [ev.get(k) for k in _SAE_METRICS] for h, ev in evs.items()],
                ["hook", "FVE", "CE-loss recovered", "L0", "dead fraction", "tokens"],
            )
        )
        for h, ev in evs.items():
            dh = ev.get("density_hist")
            if isinstance(dh, list) and dh:
                edges = [-7 + 7 * i / len(dh) for i in range(len(dh))]
                out.append(
                    ctx.chart(
                        svg_bars([fmt(e) for e in edges], dh, title=f"latent density histogram, {h}", ylabel="latents"),
                        f"log10 firing density of the latents at {h}",
                    )
                )
        extra = [
            (f"{h}: {k}", v)
            for h, ev in evs.items()
            for k, v in ev.items()
            if k not in _SAE_METRICS and k != "density_hist" and not isinstance(v, (dict, list))
        ]
        if extra:
            out.append(details("all metrics", table(extra, ["metric", "value"])))
    out.append(inputs_table(ctx.run))
    return "".join(out)
