"""Stages: the typed result of :func:`~featurescope.stages.run_stages`.

:class:`StagesResult` follows :mod:`featurescope.persona.results`: a frozen dataclass whose fields carry the keys of
the dict ``run_stages`` used to return; ``to_dict()`` gives that dict back exactly, read access by key delegates to
it (``res["transfer"]["base_sae"]``, ``res.get("matching")``), Jupyter renders the headline numbers (SAE transfer
with the random-LoRA null, reuse against the baselines, persona-vector cosines across stages), ``plot()`` returns a
matplotlib Figure (never written to a file) and ``to_frame()`` a pandas DataFrame.

``summary.json`` holds :meth:`StagesResult.summary_results` (``to_dict()`` less ``figures`` and ``timings``, which
the summary keeps in its own ``figures`` and ``timings_s``)."""

from __future__ import annotations

import copy
import dataclasses
import html
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from ..results import EVIDENCE_HEAD_HTML, DictAccess, ci_text, evidence_from_dict, evidence_row_html, num, pandas_module
from ..runs import read_summary
from ..stats import Estimate

Part = Literal["transfer", "matching", "persona", "shift"]
_SETS = ("chat", "plain")
_SAES = ("base_sae", "post_sae")
_MODELS = ("base_model", "post_model")
#: The parts of the record, in the order run_stages writes them (summary.json keeps that order).
_PARTS = ("texts", "transfer", "matching", "activation_shift", "cards", "persona", "crosscoder")
_NO_INTERVAL = "one value per text set, no interval and so no verdict"
#: What the FVE intervals are (when the run recorded them: ``fve_interval`` per SAE, model and text set).
_FVE_INTERVAL = "FVE with its 95% interval over text rows (percentile bootstrap, rows resampled, not tokens)"


def _f(x: Any, fmt: str = ".3f") -> str:
    """A number for the tables ('n/a' for None / nan / a non-number)."""
    if isinstance(x, bool) or not isinstance(x, int | float) or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return format(x, fmt)


def _pct(x: Any) -> str:
    return "n/a" if not isinstance(x, int | float) or x != x else f"{100 * x:.1f}%"


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, Mapping) or k not in d:
            return None
        d = d[k]
    return d


def _fve_text(m: Any, fmt: str = ".3f") -> str:
    """A metrics record's FVE, with its interval over rows when the run recorded one."""
    ci = _get(m, "fve_interval")
    return _value_ci(_get(m, "fraction_variance_explained"), _get(ci, "lo"), _get(ci, "hi"), fmt)


def _value_ci(v: Any, lo: Any, hi: Any, fmt: str = ".3f") -> str:
    """``value [lo, hi]``, or the value alone when there is no (finite) interval."""
    if not all(isinstance(x, int | float) and math.isfinite(x) for x in (v, lo, hi)):
        return _f(v, fmt)
    return f"{_f(v, fmt)} {ci_text(Estimate(float(v), float(lo), float(hi), 0), fmt)}"


@dataclasses.dataclass(frozen=True)
class StagesResult(DictAccess):
    """What :func:`~featurescope.stages.run_stages` measured at ``hook`` (block ``layer``) between a base and a
    post-trained checkpoint. Each part is the record ``run_stages`` wrote (None when the part did not run):

    - ``texts``: the held-out corpus (``plain``) and chat rows both models read (rows, tokens, Assistant tokens);
    - ``transfer``: per SAE (``base_sae``, ``post_sae``), per model's activations (``base_model``, ``post_model``),
      per text set: fraction of variance explained (``fve_interval``: its interval over text rows, ``per_row``: the
      sums it is made of), CE-loss recovered, L0; ``deltas``; ``fve_post_minus_base`` (per SAE and text set, the
      paired FVE difference with its interval, an evidence record); ``random_lora_null`` when a null model was
      given (the base SAE on the base model plus a random LoRA of the adapter's weight change);
    - ``matching``: the fraction of post latents reused (best decoder cosine >= ``threshold``) against random /
      rotated (/ second-seed) ``baselines``, new and lost latents, histograms;
    - ``activation_shift``: per SAE, the most up- and down-regulated latents on Assistant tokens;
    - ``cards``: the feature cards' latents per section;
    - ``persona``: per trait, the cosine between the base and the post-trained persona vector per layer and the
      overlap of their top SAE features;
    - ``crosscoder``: the crosscoder analysis, or why none ran.

    ``figures`` (file names in the run folder) and ``timings`` (seconds per part) are what ``run_stages`` added to
    its returned dict after writing ``summary.json``."""

    hook: str
    layer: int | None
    sae_names: Mapping[str, str]
    texts: Mapping[str, Any] | None = None
    transfer: Mapping[str, Any] | None = None
    matching: Mapping[str, Any] | None = None
    activation_shift: Mapping[str, Any] | None = None
    cards: Mapping[str, Any] | None = None
    persona: Mapping[str, Any] | None = None
    crosscoder: Mapping[str, Any] | None = None
    figures: tuple[str, ...] | None = None
    timings: Mapping[str, float] | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StagesResult:
        """From the dict ``run_stages`` used to return (or ``summary.json``'s ``results``, without figures and
        timings)."""
        known = {"hook", "layer", "sae_names", *_PARTS, "figures", "timings"}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"not a stages result: unknown keys {sorted(unknown)}")
        figs = d.get("figures")
        return cls(
            hook=d["hook"],
            layer=d.get("layer"),
            sae_names=dict(d.get("sae_names") or {}),
            **{k: copy.deepcopy(d[k]) if k in d else None for k in _PARTS},
            figures=None if figs is None else tuple(figs),
            timings=None if d.get("timings") is None else dict(d["timings"]),
        )

    @classmethod
    def from_summary(cls, path: str | Path) -> StagesResult:
        """From a run folder's ``summary.json`` (or its path): its results, figures and timings (nan reads back as
        None there)."""
        s = read_summary(path)
        return cls.from_dict({**s["results"], "figures": s.get("figures", []), "timings": s.get("timings_s", {})})

    def summary_results(self) -> dict[str, Any]:
        """What ``summary.json`` holds under ``results``: :meth:`to_dict` less ``figures`` and ``timings``."""
        d: dict[str, Any] = {"hook": self.hook, "layer": self.layer, "sae_names": dict(self.sae_names)}
        for k in _PARTS:
            v = getattr(self, k)
            if v is not None:
                d[k] = copy.deepcopy(v)
        return d

    def to_dict(self) -> dict[str, Any]:
        d = self.summary_results()
        if self.figures is not None:
            d["figures"] = list(self.figures)
        if self.timings is not None:
            d["timings"] = dict(self.timings)
        return d

    # -- views ---------------------------------------------------------------------------------------------------
    @property
    def text_sets(self) -> list[str]:
        """The text sets the transfer was measured on (``chat``, ``plain``)."""
        per = _get(self.transfer, "base_sae", "base_model")
        if not isinstance(per, Mapping):
            return []
        return [k for k in _SETS if k in per] + [k for k in per if k not in _SETS]

    def transfer_rows(self) -> list[dict[str, Any]]:
        """One record per (SAE, model's activations, text set), the random-LoRA null as ``base_sae`` on
        ``random_lora_null``: FVE, CE-loss recovered, L0, dead fraction, tokens, and the FVE's interval over text
        rows (``fve_lo``, ``fve_hi``; None for runs without one)."""
        tr = self.transfer or {}
        out = []
        pairs = [(sk, mk) for sk in _SAES for mk in _MODELS] + [("base_sae", "random_lora_null")]
        for sk, mk in pairs:
            per = tr.get(mk) if mk == "random_lora_null" else _get(tr, sk, mk)
            if not isinstance(per, Mapping):
                continue
            for set_k in self.text_sets:
                m = per.get(set_k)
                if isinstance(m, Mapping):
                    out.append(
                        {
                            "sae": sk,
                            "activations_of": mk,
                            "texts": set_k,
                            "fve": m.get("fraction_variance_explained"),
                            "ce_loss_recovered": m.get("ce_loss_recovered"),
                            "l0": m.get("l0"),
                            "dead_fraction": m.get("dead_fraction"),
                            "n_tokens": m.get("n_tokens"),
                            "fve_lo": _get(m, "fve_interval", "lo"),
                            "fve_hi": _get(m, "fve_interval", "hi"),
                        }
                    )
        return out

    def to_frame(self, part: Part = "transfer") -> Any:
        """A table of one part: ``"transfer"`` (one row per SAE, model and text set, the random-LoRA null included),
        ``"matching"`` (the post dictionary's reuse and each baseline's), ``"persona"`` (one row per trait and
        layer: cosine between the stages' vectors) or ``"shift"`` (the most up- / down-regulated latents)."""
        pd = pandas_module()
        if part == "transfer":
            return pd.DataFrame(self.transfer_rows())
        if part == "matching":
            mt = self.matching or {}
            rows = []
            if mt:
                rows.append(
                    {
                        "dictionary": "post SAE -> base SAE",
                        "fraction_post_reused": mt.get("fraction_post_reused"),
                        "median_best_cos": mt.get("median_best_cos_post_to_base"),
                        "what": "the post-trained model's SAE matched against the base model's",
                    }
                )
            for k, v in (mt.get("baselines") or {}).items():
                rows.append(
                    {
                        "dictionary": f"{k} baseline",
                        "fraction_post_reused": v.get("fraction_post_reused"),
                        "median_best_cos": v.get("median_best_cos"),
                        "what": v.get("what"),
                    }
                )
            return pd.DataFrame(rows)
        if part == "persona":
            traits = _get(self.persona, "traits") or {}
            return pd.DataFrame(
                [
                    {"trait": t, "layer": L, "cosine": c, "chosen": L == self.layer}
                    for t, v in traits.items()
                    for L, c in enumerate(v.get("cosine_per_layer") or [])
                ]
            )
        if part == "shift":
            sh = self.activation_shift or {}
            return pd.DataFrame(
                [
                    {"sae": sk, "direction": direction, **r}
                    for sk in _SAES
                    for direction in ("up", "down")
                    for r in (_get(sh, sk, direction) or [])
                ]
            )
        raise ValueError(f"to_frame: part {part!r}; one of transfer, matching, persona, shift")

    # -- figure ----------------------------------------------------------------------------------------------------
    def _parts_present(self) -> list[str]:
        out = []
        if self.transfer_rows():
            out.append("transfer")
        if self.matching:
            out.append("matching")
        if _get(self.persona, "traits"):
            out.append("persona")
        return out

    def plot(self, ax: Any = None, part: Part | None = None) -> Any:
        """The headline numbers as a matplotlib Figure (nothing is written): ``"transfer"`` (FVE of the base SAE on
        the base model, the post-trained model and the random-LoRA null, and of the post SAE, per text set),
        ``"matching"`` (fraction of post latents reused vs the baselines) and ``"persona"`` (cosine between the
        stages' persona vectors per layer). Without ``part``: one panel per part present (with ``ax``: the first)."""
        parts = [part] if part is not None else self._parts_present()
        if not parts:
            raise ValueError("nothing to plot: no transfer, matching or persona results")
        if ax is not None:
            fig = ax.figure
            axes = [ax]
            parts = parts[:1]
        else:
            from matplotlib.backends.backend_agg import FigureCanvasAgg  # heavy: matplotlib (~0.5 s)
            from matplotlib.figure import Figure  # heavy: matplotlib (~0.5 s)

            fig = Figure(figsize=(4.6 * len(parts), 3.6))
            FigureCanvasAgg(fig)
            axes = [fig.add_subplot(1, len(parts), i + 1) for i in range(len(parts))]
        for a, p in zip(axes, parts):
            {"transfer": self._plot_transfer, "matching": self._plot_matching, "persona": self._plot_persona}.get(
                p, self._plot_unknown
            )(a)
        fig.tight_layout()
        return fig

    def _plot_unknown(self, ax: Any) -> None:
        raise ValueError("plot: part must be transfer, matching or persona")

    def _plot_transfer(self, ax: Any) -> None:
        rows = self.transfer_rows()
        series = [
            ("base_sae", "base_model", "base SAE on base"),
            ("base_sae", "post_model", "base SAE on post"),
            ("base_sae", "random_lora_null", "base SAE on base + random LoRA (null)"),
            ("post_sae", "post_model", "post SAE on post"),
            ("post_sae", "base_model", "post SAE on base"),
        ]
        series = [s for s in series if any(r["sae"] == s[0] and r["activations_of"] == s[1] for r in rows)]
        sets = self.text_sets
        w = 0.8 / max(len(series), 1)
        any_ci = False
        for j, (sk, mk, label) in enumerate(series):
            ys, lo, hi = [], [], []
            for set_k in sets:
                r = next((r for r in rows if (r["sae"], r["activations_of"], r["texts"]) == (sk, mk, set_k)), None)
                y = num(r["fve"]) if r is not None else float("nan")
                ys.append(y)
                lo.append(y - num(r["fve_lo"]) if r is not None else float("nan"))
                hi.append(num(r["fve_hi"]) - y if r is not None else float("nan"))
            kw: dict[str, Any] = {"color": "grey", "hatch": "//"} if mk == "random_lora_null" else {}
            if any(x == x for x in lo + hi):
                any_ci = True
                kw.update(yerr=[[max(x, 0.0) for x in lo], [max(x, 0.0) for x in hi]], capsize=2)
            ax.bar([i + (j - (len(series) - 1) / 2) * w for i in range(len(sets))], ys, w, label=label, **kw)
        ax.set_xticks(range(len(sets)), sets)
        ax.set_ylabel("fraction of variance explained")
        what = "bars: 95% interval over text rows" if any_ci else _NO_INTERVAL
        ax.set_title(f"SAE transfer at {self.hook}\n({what})", fontsize=8)
        ax.legend(fontsize=6)

    def _plot_matching(self, ax: Any) -> None:
        mt = self.matching or {}
        labels = ["post -> base"] + [f"{k} baseline" for k in (mt.get("baselines") or {})]
        ys = [mt.get("fraction_post_reused")] + [
            v.get("fraction_post_reused") for v in (mt.get("baselines") or {}).values()
        ]
        ax.bar(range(len(ys)), [float("nan") if y is None else y for y in ys], color=["C0"] + ["grey"] * (len(ys) - 1))
        ax.set_xticks(range(len(ys)), labels, rotation=20, fontsize=7)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel(f"fraction of post latents reused\n(best decoder cos >= {mt.get('threshold')})")
        ax.set_title(f"feature matching: {mt.get('n_new')} of {mt.get('n_post_latents')} post latents new", fontsize=8)

    def _plot_persona(self, ax: Any) -> None:
        traits = _get(self.persona, "traits") or {}
        for t, v in traits.items():
            cos = v.get("cosine_per_layer") or []
            ax.plot(range(len(cos)), [float("nan") if c is None else c for c in cos], marker=".", label=t)
        if self.layer is not None:
            ax.axvline(self.layer, color="grey", lw=0.8, ls="--", label=f"SAE layer {self.layer}")
        ax.axhline(0.0, color="black", lw=0.5)
        ax.set_xlabel("layer")
        ax.set_ylabel("cos(base vector, post vector)")
        ax.set_title("persona vectors across stages", fontsize=8)
        ax.legend(fontsize=6)

    # -- Jupyter -----------------------------------------------------------------------------------------------------
    def _transfer_html(self) -> str:
        tr = self.transfer
        if not tr:
            return ""
        null = tr.get("random_lora_null")
        head = "<tr><th>texts</th><th>base SAE FVE on base</th><th>on post-trained</th><th>post - base</th>"
        if null:
            head += "<th>on base + random LoRA (null)</th><th>null - base</th>"
        head += "<th>CE-loss recovered base / post</th></tr>"
        body = []
        has_ci = any(r["fve_lo"] is not None for r in self.transfer_rows())
        for set_k in self.text_sets:
            own = _get(tr, "base_sae", "base_model", set_k) or {}
            other = _get(tr, "base_sae", "post_model", set_k) or {}
            a, b = own.get("fraction_variance_explained"), other.get("fraction_variance_explained")
            diff = b - a if isinstance(a, int | float) and isinstance(b, int | float) else None
            pe = _get(tr, "fve_post_minus_base", "base_sae", set_k, "estimate")
            diff_t = _value_ci(diff, _get(pe, "lo"), _get(pe, "hi"), "+.3f")
            row = (
                f"<tr><td>{html.escape(set_k)}</td><td>{_fve_text(own)}</td><td>{_fve_text(other)}</td>"
                f"<td>{diff_t}</td>"
            )
            if null:
                n = _get(null, set_k, "fraction_variance_explained")
                nd = n - a if isinstance(a, int | float) and isinstance(n, int | float) else None
                row += f"<td>{_fve_text(_get(null, set_k))}</td><td>{_f(nd, '+.3f')}</td>"
            row += f"<td>{_f(own.get('ce_loss_recovered'))} / {_f(other.get('ce_loss_recovered'))}</td></tr>"
            body.append(row)
        full = "".join(
            f"<tr><td>{r['sae'].replace('_', ' ')}</td><td>{r['activations_of'].replace('_', ' ')}</td>"
            f"<td>{html.escape(r['texts'])}</td><td>{_value_ci(r['fve'], r['fve_lo'], r['fve_hi'])}</td>"
            f"<td>{_f(r['ce_loss_recovered'])}</td>"
            f"<td>{_f(r['l0'], '.1f')}</td><td>{_f(r['dead_fraction'])}</td></tr>"
            for r in self.transfer_rows()
        )
        what = (
            f"null: {html.escape(str(null.get('what', 'random LoRA')))} ({html.escape(str(null.get('model', '?')))})"
            if null
            else "no random-LoRA null in this run (run_stages(null_model=...) / --random-lora-null)"
        )
        if has_ci:
            bare = "CE-loss recovered" + (" and null - base" if null else "")
            what += f"; {_FVE_INTERVAL}; post - base: paired over the same rows; {bare}: {_NO_INTERVAL}"
        else:
            what += f"; {_NO_INTERVAL}"
        return (
            f"<h4>SAE transfer</h4><table>{head}{''.join(body)}</table><p><small>{what}.</small></p>"
            f"{self._transfer_evidence_html()}"
            "<details><summary>every SAE on every model</summary><table><tr><th>SAE</th><th>activations of</th>"
            f"<th>texts</th><th>FVE</th><th>CE-loss recovered</th><th>L0</th><th>dead</th></tr>{full}</table>"
            "</details>"
        )

    def _transfer_evidence_html(self) -> str:
        """The transfer's evidence records, where the run has them: the paired FVE difference (post-trained minus
        base model) per SAE and text set against 0, and the base SAE's FVE on the post-trained model against the
        random LoRAs."""
        tr = self.transfer or {}
        rows = [
            evidence_row_html(evidence_from_dict(ev), "+.4f")
            for sk in _SAES
            for set_k in self.text_sets
            if isinstance(ev := _get(tr, "fve_post_minus_base", sk, set_k), Mapping)
        ] + [
            evidence_row_html(evidence_from_dict(ev), ".4f")
            for set_k in self.text_sets
            if isinstance(ev := _get(tr, "random_lora_nulls", "evidence", set_k), Mapping)
        ]
        return f"<table>{EVIDENCE_HEAD_HTML}{''.join(rows)}</table>" if rows else ""

    def _matching_html(self) -> str:
        mt = self.matching
        if not mt:
            return ""
        rows = [
            f"<tr><td><b>post SAE -> base SAE</b></td><td><b>{_pct(mt.get('fraction_post_reused'))}</b></td>"
            f"<td>{_f(mt.get('median_best_cos_post_to_base'))}</td><td>the post-trained model's SAE</td></tr>"
        ]
        for k, v in (mt.get("baselines") or {}).items():
            rows.append(
                f"<tr><td>{html.escape(k)} baseline</td><td>{_pct(v.get('fraction_post_reused'))}</td>"
                f"<td>{_f(v.get('median_best_cos'))}</td><td>{html.escape(str(v.get('what', '')))}</td></tr>"
            )
        reused = mt.get("fraction_post_reused")
        new = 1 - reused if isinstance(reused, int | float) else None
        rel = mt.get("fraction_post_reused_relative_to_seed_ceiling")
        rel_t = f"; relative to the second-seed ceiling {_f(rel, '.2f')}" if rel is not None else ""
        return (
            f"<h4>feature matching</h4><p>{mt.get('n_new')} of {mt.get('n_post_latents')} post latents have no base "
            f"latent with decoder cosine >= {mt.get('threshold')} ({_pct(new)} new); "
            f"base latents kept {_pct(mt.get('fraction_base_kept'))}{rel_t}</p>"
            "<table><tr><th>dictionary</th><th>post latents reused</th><th>median best cos</th><th>what</th></tr>"
            f"{''.join(rows)}</table><p><small>fractions over the whole dictionary: no interval.</small></p>"
        )

    def _persona_html(self) -> str:
        traits = _get(self.persona, "traits")
        if not traits:
            return ""
        layer = _get(self.persona, "layer")
        rows = []
        for t, v in traits.items():
            cos = v.get("cosine_per_layer") or []
            prof = ", ".join(_f(c, ".2f") for c in cos)
            across = _get(v, "across_saes", "fraction_of_base_top_matched")
            rows.append(
                f"<tr><td>{html.escape(t)}</td><td>{_f(v.get('cosine_at_layer'))}</td>"
                f"<td>{_f(_get(v, 'top_features_base_sae', 'jaccard'), '.2f')}</td>"
                f"<td>{_f(_get(v, 'top_features_post_sae', 'jaccard'), '.2f')}</td><td>{_f(across, '.2f')}</td>"
                f"<td><small>{prof}</small></td></tr>"
            )
        return (
            f"<h4>persona vectors across stages</h4><p><small>{html.escape(str(_get(self.persona, 'how')))}; top "
            f"{_get(self.persona, 'top_k')} features</small></p><table><tr><th>trait</th><th>cos(base, post) at layer "
            f"{layer}</th><th>top-feature Jaccard, base SAE</th><th>... post SAE</th><th>base top matched across "
            f"SAEs</th><th>cosine per layer</th></tr>{''.join(rows)}</table>"
        )

    def _shift_html(self) -> str:
        sh = self.activation_shift
        if not sh:
            return ""
        rows = "".join(
            f"<tr><td>{sk.replace('_', ' ')}</td><td>{len(s.get('up') or [])}</td><td>{len(s.get('down') or [])}</td>"
            f"<td>{_f(s.get('frequency_correlation'), '.3f')}</td><td>{s.get('alive_both')}</td>"
            f"<td>{s.get('alive_base_only')}</td><td>{s.get('alive_post_only')}</td></tr>"
            for sk in _SAES
            if isinstance(s := sh.get(sk), Mapping)
        )
        return (
            "<h4>activation shift on Assistant tokens</h4><table><tr><th>SAE</th><th>up-regulated</th>"
            "<th>down-regulated</th><th>frequency r base vs post</th><th>alive in both</th><th>base only</th>"
            f"<th>post only</th></tr>{rows}</table>"
        )

    def _crosscoder_html(self) -> str:
        cc = self.crosscoder
        if not cc:
            return ""
        counts = cc.get("counts")
        what = (
            " / ".join(f"{k.replace('_', '-')} {counts.get(k)}" for k in ("base_only", "shared", "post_only"))
            if isinstance(counts, Mapping)
            else ""
        )
        return f"<h4>crosscoder</h4><p>{html.escape(str(cc.get('status', '')))}{'; ' + what if what else ''}</p>"

    def _repr_html_(self) -> str:
        names = self.sae_names or {}
        total = _get(self.timings, "total")
        tail = f"<p><small>{len(self.figures or ())} figures; {_f(total, '.0f')} s</small></p>" if self.timings else ""
        return (
            f"<div><b>training stages</b> at <code>{html.escape(self.hook)}</code> (layer {self.layer}): base SAE "
            f"<code>{html.escape(str(names.get('base', '?')))}</code>, post SAE "
            f"<code>{html.escape(str(names.get('post', '?')))}</code>"
            f"{self._transfer_html()}{self._matching_html()}{self._persona_html()}{self._shift_html()}"
            f"{self._crosscoder_html()}{tail}</div>"
        )


__all__ = ["StagesResult"]
