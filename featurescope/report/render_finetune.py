"""Report: renderer: fine-tuning shift (`finetune-shift`) and model diffing (`finetune-diff`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..paper import NUMBERS
from .context import Ctx, Number
from .html import esc, fmt, table
from .records import Run
from .registry import inputs_table


def _paper(key: str) -> str:
    n = NUMBERS[key]
    return f"{n.paper.split(' (')[0]}: {n.text}"


def _ci(e: Mapping[str, Any], f: str = ".1f") -> str:
    def one(x: Any) -> str:  # nan is stored as null
        return "n/a" if x is None or x != x else format(x, f)

    return f"{one(e['value'])} [{one(e['lo'])}, {one(e['hi'])}]"


def finetune_numbers(run: Run) -> list[Number]:
    res, n = run.results, []
    done = res.get("finetunes_done") or {}
    for t, c in (res.get("correlation") or {}).items():
        if isinstance(c, Mapping) and "estimate" in c:
            n.append(
                Number.from_evidence(
                    f"{t}: shift along the persona vector vs trait expression (r over {c.get('n_finetunes')} "
                    f"fine-tunes)",
                    c,
                    paper=_paper("finetune_shift_r"),
                )
            )
    em = [r for r in res.get("emergent_misalignment") or [] if str(r.get("set", "")).startswith("flawed")]
    if em:
        up = [f"{r['set']}/{r['trait']}" for r in em if r.get("verdict") == "increase"]
        n.append(
            Number(
                "flawed sets raising a trait vs the neutral control (Bonferroni-corrected)",
                f"{len(up)} of {len(em)}" + (f": {', '.join(up)}" if up else ""),
                paper=_paper("emergent_misalignment"),
            )
        )
    arms = (res.get("preventative") or {}).get("arms") or {}
    if "steer" in arms and "effect_vs_plain" in arms["steer"]:
        a = arms["steer"]
        n.append(
            Number(
                "preventative steering: trait expression vs plain fine-tuning",
                _ci(a["effect_vs_plain"], "+.1f"),
                paper=_paper("preventative_steering"),
                note=f"held-out loss {fmt(a.get('heldout_loss'))} vs plain {fmt(arms.get('plain', {}).get('heldout_loss'))}",
                verdict=str(a.get("verdict", "")),
            )
        )
    if done:
        n.append(Number("fine-tunes finished", f"{done.get('done')} of {done.get('planned')}"))
    return n


def finetune_body(ctx: Ctx) -> str:
    res = ctx.run.results
    out = [ctx.figure("shift_vs_expression.png", "shift along each persona vector vs trait expression, per fine-tune")]
    rows = []
    for t, c in (res.get("correlation") or {}).items():
        if isinstance(c, Mapping) and "estimate" in c:
            pd = c.get("projection_difference_vs_shift") or {}
            rows.append([t, _ci(c["estimate"], ".2f"), c.get("verdict", ""), _ci(pd["estimate"], ".2f") if pd else "-"])
    if rows:
        out.append(
            table(rows, ["trait", "r(shift, expression) [95% CI]", "verdict", "r(data projection difference, shift)"])
        )
    em = res.get("emergent_misalignment") or []
    if em:
        out.append("<h4>Emergent misalignment: each set vs the neutral control</h4>")
        out.append(
            table(
                [
                    [
                        r["set"],
                        r["trait"],
                        fmt(r["expression"]),
                        fmt(r["neutral"]),
                        _ci(r["effect_vs_neutral"], "+.1f"),
                        r["verdict"],
                    ]  # fmt: skip
                    for r in em
                ],
                ["set", "trait", "expression", "neutral", "difference [CI]", "verdict"],
            )
        )
    arms = (res.get("preventative") or {}).get("arms") or {}
    if arms:
        out.append("<h4>Preventative steering</h4>")
        out.append(
            table(
                [
                    [
                        a,
                        fmt(v.get("expression")),
                        fmt(v.get("heldout_loss")),
                        _ci(v["effect_vs_plain"], "+.1f") if "effect_vs_plain" in v else "-",
                        v.get("verdict", ""),
                    ]  # fmt: skip
                    for a, v in arms.items()
                ],
                ["arm", "trait expression", "held-out loss", "vs plain [CI]", "verdict"],
            )
        )
    out.append(ctx.figure("emergence.png", "persona projections and Assistant-axis position over training steps"))
    out.append(inputs_table(ctx.run))
    return "".join(out)


def diff_numbers(run: Run) -> list[Number]:
    n = []
    for t, r in (run.results.get("traits") or {}).items():
        if not isinstance(r, Mapping):
            continue
        n.append(
            Number.from_evidence(
                f"{t}: latent {r.get('latent')}'s increase vs trait expression (r across fine-tunes)",
                r["increase_vs_expression"],
                paper=_paper("toxic_persona_latent"),
            )
        )
        n.append(
            Number.from_evidence(f"{t}: latent {r.get('latent')} on questionable-character passages", r["passages"])
        )
        for ev in ((r.get("edits") or {}).get("steering") or {}).values():
            n.append(Number.from_evidence(f"{t}: {ev['name']}", ev, fmt_="+.1f"))
        ab = (r.get("edits") or {}).get("ablation") or {}
        if "estimate" in ab:
            n.append(Number.from_evidence(f"{t}: ablation in {ab.get('finetune')}", ab, fmt_="+.1f"))
    return n


def diff_body(ctx: Ctx) -> str:
    res = ctx.run.results
    out = [
        f"<p>SAE at layer {esc(res.get('layer'))}, {esc(res.get('position'))} activations, "
        f"{esc(res.get('n_finetunes'))} fine-tunes.</p>",
        ctx.figure("diff.png", "the selected latent's increase vs trait expression, held-out questions"),
    ]
    for t, r in (res.get("traits") or {}).items():
        if not isinstance(r, Mapping):
            continue
        out.append(f"<h4>{esc(t)}: latent {esc(r.get('latent'))}</h4>")
        out.append(
            table(
                [[x["latent"], fmt(x["increase"]), fmt(x.get("control_increase"))] for x in r.get("top_latents", [])],
                ["latent", f"increase after {r['selected_on']['finetune']}", f"after {r['selected_on']['control']}"],
            )
        )
    out.append(inputs_table(ctx.run))
    return "".join(out)
