"""Report: renderer: persona features (`features shared`, `features interpret`) and crosscoders (`crosscoder train`,
`crosscoder eval`, and the seed control `crosscoder compare`, read defensively: only its ``reuse`` fractions,
``converged``, ``verdict``, ``text`` and ``notes``).

The features renderers read the runs through their typed results (:mod:`featurescope.features.results`), so the
report and a notebook give the same verdicts: the shared-latent count against the chance count (shuffled theme
labels), and per view the set z of its top latents' interpretation score against density-matched random latents,
read against the target (3 SD)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..features.results import InterpretResult, SharedLatentsResult
from .charts import svg_bars
from .context import Ctx, Number
from .html import esc, fmt, get, table
from .records import Run
from .registry import inputs_table


def _short(s: str, n: int = 140) -> str:
    s = " ".join(str(s).split())
    return s if len(s) <= n else s[: n - 3] + "..."


# -- features shared -----------------------------------------------------------------------------------------------
def shared_numbers(run: Run) -> list[Number]:
    r = SharedLatentsResult.from_dict(run.results)
    per_theme = ", ".join(f"{t.theme} {len(t.latents)}" for t in r.themes)
    return [
        Number(
            "latents shared by the Assistant and story characters (all themes)",
            r.n_shared,
            note=f"per theme: {per_theme}" if per_theme else "",
            null=r.null_text(),
            verdict=r.verdict,
        )
    ]


def shared_body(ctx: Ctx) -> str:
    r = SharedLatentsResult.from_dict(ctx.run.results)
    out = [
        f"<p>{esc(r.n_pairs)} paired contexts (the same situation once as the Assistant's reply, once as a story "
        f"character's passage) encoded with {esc(r.sae)} at {esc(r.hook)}. A latent is shared in a theme when its "
        "theme selectivity clears the Bonferroni threshold on both sides; the chance count repeats the search with "
        f"shuffled theme labels ({esc(len(r.chance_counts))} shuffles: {esc(', '.join(map(str, r.chance_counts)))})."
        "</p>",
        table(
            [
                [t.theme, t.n_pairs, t.threshold_z, len(t.latents), ", ".join(str(x.latent) for x in t.latents) or "-"]
                for t in r.themes
            ],
            ["theme", "pairs", "threshold z (both sides)", "shared", "latents"],
        ),
    ]
    if r.latents:
        out.append(
            table(
                [
                    [
                        x.theme,
                        x.latent,
                        x.z_assistant,
                        x.z_character,
                        x.mean_assistant_in_theme,
                        x.mean_character_in_theme,
                        x.mean_elsewhere,
                    ]
                    for x in r.latents
                ],
                [
                    "theme",
                    "latent",
                    "z Assistant",
                    "z character",
                    "mean, Assistant in theme",
                    "mean, character in theme",
                    "mean elsewhere",
                ],  # fmt: skip
            )
        )
    cards = ctx.figure("cards.html", "the shared latents' feature cards")
    if cards:
        out.append(cards)
    elif r.results.get("cards"):
        out.append(f"<p class='note'>feature cards: {esc(r.results['cards'])} in the run folder.</p>")
    out.append(inputs_table(ctx.run))
    return "".join(out)


def shared_title(run: Run) -> str:
    r = run.results
    return f"{run.command} - {r.get('model', '?')} - {r.get('hook', '?')}"


# -- features interpret --------------------------------------------------------------------------------------------
def interpret_numbers(run: Run) -> list[Number]:
    r = InterpretResult.from_dict(run.results)
    n = [
        Number(
            f"{v.view}: set z of its top {len(v.latents)} latents' interpretation score vs density-matched random "
            "latents",
            "n/a" if math.isnan(v.set_z) else f"{v.set_z:+.2f}",
            note=f"{r.what}: mean {fmt(v.mean_score)}; empirical p vs random sets of null latents "
            f"{fmt(v.set_p)}; {v.n_above} latent(s) >= {r.z_target:g} SD alone; "
            f"{v.n_tracking_mean} track the mean activation",
            null=v.null_text,
            verdict=v.verdict,
        )
        for v in r.views
    ]
    if r.base_rate is not None:
        n.append(Number("base rate of the measure over all texts", r.base_rate))
    return n


def interpret_body(ctx: Ctx) -> str:
    r = InterpretResult.from_dict(ctx.run.results)
    u = r.uniform_null
    out = [
        f"<p>Each latent's score is {esc(r.what)} on {esc(fmt(r.n_texts))} held-out texts ({esc(fmt(r.n_tokens))} "
        f"tokens), {esc(r.sae)} at {esc(r.hook)}. Null: random latents of matched firing density (per latent: z; "
        f"per view: the set z of the view's mean score against the mean of as many null latents); uniformly random "
        f"firing latents score {esc(fmt(u.get('mean')))} +- {esc(fmt(u.get('sd')))} (n = {esc(u.get('n', '?'))}). "
        f"Target: set z >= {esc(fmt(r.z_target))}; met: <b>{esc(fmt(r.target_met))}</b>.</p>",
        table(
            [
                [
                    v.view,
                    len(v.latents),
                    v.mean_score,
                    r.matched_null_mean(v.view),
                    v.set_z,
                    v.null_text,
                    v.n_above,
                    v.mean_z,
                    v.n_tracking_mean,
                    v.verdict,
                ]  # fmt: skip
                for v in r.views
            ],
            [
                "view",
                "latents",
                "mean score",
                "matched null's mean score",
                "set z",
                "null [central 95%]",
                f">= {r.z_target:g} SD alone",
                "mean z",
                "tracking the mean",
                "verdict",
            ],  # fmt: skip
        ),
    ]
    if r.views:
        out.append(
            ctx.chart(
                svg_bars(
                    [v.view for v in r.views],
                    [v.set_z for v in r.views],
                    title="set z per view",
                    ylabel="set z vs density-matched",
                ),  # fmt: skip
                f"set z of each view's top latents against density-matched random latents (target {r.z_target:g})",
            )
        )
    for v in r.views:
        rows = [
            [x.latent, x.score, x.z_density_matched, x.z_uniform, x.density, x.tracks_mean, _short(x.first_context)]
            for x in r.view_latents(v.view)
        ]
        if rows:
            out.append(f"<h4>{esc(v.view)}: top latents</h4>")
            out.append(
                table(
                    rows,
                    [
                        "latent",
                        "score",
                        "z (density-matched)",
                        "z (uniform)",
                        "density",
                        "tracks the mean",
                        "first top context",
                    ],
                )  # fmt: skip
            )
    out.append(inputs_table(ctx.run))
    return "".join(out)


def interpret_title(run: Run) -> str:
    r = run.results
    return f"{run.command} - {r.get('trait', '?')} - {r.get('sae', '?')}"


# -- crosscoder train / eval ---------------------------------------------------------------------------------------
_CLASSES = ("base_only", "shared", "post_only")


def crosscoder_numbers(run: Run) -> list[Number]:
    res, n = run.results, []
    ev = res.get("eval")
    if isinstance(ev, Mapping):
        n.append(
            Number(
                "crosscoder FVE (base / post / joint)",
                " / ".join(fmt(ev.get(k)) for k in ("fve_base", "fve_post", "fve")),
                note=f"L0 {fmt(ev.get('l0'))}; dead {fmt(ev.get('dead_fraction'))}; {fmt(ev.get('n_tokens'))} "
                "held-out tokens",
            )
        )
    rep = res.get("report")
    if isinstance(rep, Mapping) and isinstance(rep.get("counts"), Mapping):
        n.append(
            Number(
                "crosscoder latents by relative decoder norm (base-only / shared / post-only)",
                " / ".join(fmt(rep["counts"].get(k)) for k in _CLASSES),
            )
        )
        if rep.get("post_only_passing_latent_scaling") is not None:
            n.append(
                Number(
                    "post-only latents passing Latent Scaling (truly post-only)",
                    f"{fmt(rep.get('post_only_passing_latent_scaling'))} of {fmt(rep['counts'].get('post_only'))}",
                    note=f"flagged as artefacts {fmt(rep.get('post_only_flagged_as_artifacts'))}; never active "
                    f"{fmt(rep.get('post_only_never_active'))}",
                )
            )
    return n


def crosscoder_body(ctx: Ctx) -> str:
    res = ctx.run.results
    out = []
    ev = res.get("eval")
    if isinstance(ev, Mapping):
        keys = ("fve_base", "fve_post", "fve", "mse_base", "mse_post", "l0", "dead_fraction", "n_tokens", "n_latents")
        out.append(table([[k, ev.get(k)] for k in keys if k in ev], ["held-out evaluation", "value"]))
    rep = res.get("report")
    if isinstance(rep, Mapping):
        thr = rep.get("thresholds") or {}
        out.append(
            f"<p>Relative decoder norm r = |d_post| / (|d_base| + |d_post|): base-only below "
            f"{esc(fmt(thr.get('base_only_r_below')))}, post-only above {esc(fmt(thr.get('post_only_r_above')))}; "
            f"read in {esc(rep.get('space', 'raw activations'))} over {esc(fmt(rep.get('n_tokens')))} tokens.</p>"
        )
        counts = rep.get("counts") or {}
        if counts:
            out.append(table([[k.replace("_", "-"), counts.get(k)] for k in counts], ["class", "latents"]))
        hist = rep.get("relative_norm_hist")
        if isinstance(hist, Mapping) and hist.get("counts"):
            edges = hist.get("edges") or []
            labels = [fmt((e + 1) / 2) for e in edges[:-1]] or list(range(len(hist["counts"])))
            out.append(
                ctx.chart(
                    svg_bars(
                        labels,
                        hist["counts"],
                        title="relative decoder norm r (0: base-only, 1: post-only)",
                        ylabel="latents",
                    ),  # fmt: skip
                    "relative decoder norm histogram (from summary numbers)",
                )
            )
        ls = [
            ["post-only passing Latent Scaling", rep.get("post_only_passing_latent_scaling")],
            ["post-only flagged as artefacts", rep.get("post_only_flagged_as_artifacts")],
            ["post-only never active", rep.get("post_only_never_active")],
            ["post-only with nu_recon undefined", rep.get("post_only_nu_recon_undefined")],
            ["median nu_error (post-only / shared)",
             f"{fmt(get(rep, 'nu_error_median', 'post_only'))} / {fmt(get(rep, 'nu_error_median', 'shared'))}"],
            ["median nu_recon (post-only / shared)",
             f"{fmt(get(rep, 'nu_recon_median', 'post_only'))} / {fmt(get(rep, 'nu_recon_median', 'shared'))}"],
        ]  # fmt: skip
        out.append("<h4>Latent Scaling of the post-only latents</h4>")
        out.append(table([r for r in ls if r[1] is not None], ["", "value"]))
        if rep.get("latent_scaling_rule"):
            out.append(f"<p class='note'>{esc(rep['latent_scaling_rule'])}</p>")
    if res.get("retrain"):
        out.append(f"<p class='note'>retrain: {esc(res['retrain'])}</p>")
    out.append(inputs_table(ctx.run))
    return "".join(out)


def crosscoder_title(run: Run) -> str:
    inp: Mapping[str, Any] = run.inputs
    names = [get(inp, k, "name") or inp.get(k) for k in ("base_model", "post_model")]
    return f"{run.command} - {' vs '.join(str(x) for x in names if x) or '?'} - {inp.get('hook', '?')}"


# -- crosscoder compare (seed control) -----------------------------------------------------------------------------
def _pct(x: Any) -> str:
    return "n/a" if not isinstance(x, (int, float)) or x != x else f"{100 * x:.1f}%"


def compare_numbers(run: Run) -> list[Number]:
    res = run.results
    ru = res.get("reuse")
    if not isinstance(ru, Mapping):
        return []
    converged = res.get("converged")
    return [
        Number(
            f"crosscoder seed control: latents matched in the other run at cos >= {fmt(res.get('threshold'))} "
            "(A->B / B->A)",
            f"{_pct(ru.get('a_to_b'))} / {_pct(ru.get('b_to_a'))}",
            note=f"criterion: {_pct(res.get('converged_at'))} of each run's latents",
            null=f"{_pct(ru.get('chance'))} (the other decoder under a random rotation)",
            verdict=""
            if converged is None
            else "converged across seeds"
            if converged
            else "not converged across seeds",
        )
    ]


def compare_body(ctx: Ctx) -> str:
    res = ctx.run.results
    out = []
    if res.get("text"):
        out.append(f"<pre>{esc(res['text'])}</pre>")
    if res.get("verdict"):
        out.append(f"<p><b>verdict</b>: {esc(res['verdict'])}</p>")
    for n in res.get("notes") or []:
        out.append(f"<p class='note'>{esc(n)}</p>")
    out.append(inputs_table(ctx.run))
    return "".join(out)


def compare_title(run: Run) -> str:
    inp = run.inputs
    return f"{run.command} - {inp.get('a', '?')} vs {inp.get('b', '?')}"


# -- features steer ------------------------------------------------------------------------------------------------
def _edit_text(r: Mapping[str, Any]) -> str:
    if r.get("mode") == "clamp":
        return f"clamped to {fmt(r.get('value'))} (SAE error kept)"
    return f"added at norm {fmt(r.get('alpha'))} along its unit decoder row"


def steer_numbers(run: Run) -> list[Number]:
    r = run.results
    out = []
    for j, x in (r.get("latents") or {}).items():
        if not (isinstance(x, Mapping) and "evidence" in x):
            continue
        n = Number.from_evidence(
            f"latent {j} {_edit_text(r)}: judged trait change (0-100) vs unsteered", x["evidence"], fmt_="+.1f"
        )
        n.note = _coherence_text(r, x)
        out.append(n)
    return out


def _coherence_text(r: Mapping[str, Any], x: Mapping[str, Any]) -> str:
    if x.get("coherence") is None:
        return "coherence not recorded (run before it was kept)"
    t = f"steered answers' coherence {fmt(x['coherence'])} (unsteered {fmt(r.get('unsteered_coherence'))})"
    if x.get("coherent") is False:
        t += f" < {fmt(r.get('coherence_threshold'))}: incoherent, the change is not read as a trait effect"
    return t


def steer_body(ctx: Ctx) -> str:
    r = ctx.run.results
    rows = []
    for j, x in (r.get("latents") or {}).items():
        e, n = x["evidence"]["estimate"], x["evidence"]["null"]
        rows.append(
            [j, e["value"], f"[{fmt(e['lo'])}, {fmt(e['hi'])}]", n["mean"], f"[{fmt(n['lo'])}, {fmt(n['hi'])}]",
             ", ".join(str(c) for c in x.get("controls", [])), x.get("edited_passes"), _coherence_text(r, x),
             x["evidence"]["verdict"]]
        )  # fmt: skip
    return "".join(
        [
            f"<p>Each latent {esc(_edit_text(r))} at {esc(r.get('hook'))}, at every position (prompt and each "
            f"generated token); the trait judged on {esc(r.get('n_questions'))} evaluation questions x sampling seeds "
            f"{esc(r.get('seeds'))} (unsteered mean {esc(fmt(r.get('unsteered_mean')))}). Null: the same edit on "
            "density-matched random latents; intervals: bootstrap over questions.</p>",
            table(
                rows,
                [
                    "latent",
                    "change",
                    "95% CI",
                    "null mean",
                    "null CI",
                    "control latents",
                    "edited passes",
                    "coherence",
                    "verdict",
                ],
            ),
            inputs_table(ctx.run),
        ]
    )


def steer_title(run: Run) -> str:
    r = run.results
    return f"{run.command} - {r.get('mode', '?')} - {r.get('hook', '?')}"
