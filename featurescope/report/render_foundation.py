"""Report: renderer: posttrain; renderer: foundation."""

from __future__ import annotations

from collections.abc import Mapping

from .charts import svg_lines
from .context import Ctx, Number, paper
from .html import esc, fmt, get, table
from .provenance import provenance
from .records import Run
from .registry import generic_body, inputs_table
from .render_persona import trait_of


def posttrain_numbers(run: Run) -> list[Number]:
    res, n = run.results, []
    for name, v in res.items():
        e = get(v, "eval", "chat")
        if isinstance(e, Mapping):
            n.append(
                Number(
                    f"{name}: assistant format / calls itself an AI",
                    f"{fmt(e.get('assistant_format_fraction'))} / {fmt(e.get('identity_ai_fraction'))}",
                    note=f"final loss {fmt(get(v, 'final_loss'))}",
                )
            )
    b = get(res, "base_eval", "chat")
    if isinstance(b, Mapping):
        n.append(
            Number(
                "base model: assistant format / calls itself an AI",
                f"{fmt(b.get('assistant_format_fraction'))} / {fmt(b.get('identity_ai_fraction'))}",
            )
        )
    return n


def posttrain_body(ctx: Ctx) -> str:
    return generic_body(ctx)


def demo_numbers(run: Run) -> list[Number]:
    n = []
    for name, v in run.results.items():
        if isinstance(v, Mapping) and "capture_tokens_per_s" in v:
            n.append(Number(f"{name}: capture tokens/s", v["capture_tokens_per_s"], note=f"format {v.get('format')}"))
    pe = run.results.get("persona-evil")
    if isinstance(pe, Mapping):
        n.append(
            Number(
                "persona 'evil': chosen layer / monitor r",
                f"{fmt(pe.get('chosen_layer'))} / {fmt(pe.get('monitor_r'))}",
                paper=paper("monitor_r"),
            )
        )
    if run.command == "capture":
        n.append(
            Number(
                "tokens captured (tokens/s)",
                f"{fmt(run.results.get('n_tokens'))} ({fmt(run.results.get('tokens_per_s'))})",
            )
        )
    return n


def demo_body(ctx: Ctx) -> str:
    out = []
    for name, v in ctx.run.results.items():
        if not (isinstance(v, Mapping) and "responses" in v):
            continue
        out.append(
            f"<h4>{esc(name)}</h4><p>{esc(get(v, 'info', 'backend') or '')}, stage "
            f"{esc(get(v, 'info', 'stage') or '?')}, prompt format {esc(v.get('format'))}</p>"
        )
        out.append(
            table(
                [[r.get("question"), r.get("response")] for r in v["responses"] if isinstance(r, Mapping)],
                ["question", "greedy response"],
            )
        )
        norms = v.get("response_mean_norm_per_layer")
        cos = v.get("cos_response_vs_last_prompt_per_layer")
        if isinstance(norms, Mapping) and norms:
            out.append(
                ctx.chart(
                    svg_lines(
                        {"mean response norm": list(norms.values())},
                        ylabel="norm",
                        title=f"{name}: response-mean activation norm per layer",
                    ),
                    f"{name}: response-mean norm per layer",
                )
            )
        if isinstance(cos, Mapping) and cos:
            out.append(
                ctx.chart(
                    svg_lines(
                        {"cos": list(cos.values())},
                        ylabel="cosine",
                        title=f"{name}: cos(response mean, last prompt token) per layer",
                    ),
                    f"{name}: response vs last-prompt-token cosine per layer",
                )
            )
    if ctx.run.command == "capture" or not out:
        out.append(generic_body(ctx))
    else:
        out.append(inputs_table(ctx.run))
    return "".join(out)


def title_default(run: Run) -> str:
    p = provenance(run)
    return f"{run.command} - {p['model'].split(';')[0]}"


def title_persona(run: Run) -> str:
    return f"{run.command} - trait '{trait_of(run)}' - {provenance(run)['model']}"
