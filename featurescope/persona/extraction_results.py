"""Persona: the typed result of :func:`~featurescope.persona.extract` and :func:`~featurescope.persona.extract_written`.

:class:`PersonaExtraction` is a frozen dataclass in the pattern of :mod:`featurescope.persona.results`: ``to_dict()``
gives back exactly the dict the functions used to return (``{"vectors", "responses", "separation", "counts",
"timings"}``; ``persona extract`` writes its ``counts`` and ``separation`` into ``summary.json``), read access by key
delegates to it (``res["vectors"]["response_mean"]``), Jupyter renders the per-layer table of held-out separation
with its interval, null and verdict, ``plot()`` returns a matplotlib Figure and ``to_frame()`` one row per layer."""

from __future__ import annotations

import copy
import dataclasses
import html
import math
from collections.abc import Mapping
from typing import Any

from ..evidence.nulls import Evidence, evidence_text
from ..models import hook_layer
from ..results import DictAccess, ci_text, evidence_from_dict, new_axes, pandas_module
from .vector import PersonaVector

#: What the held-out separation and its null are (held_out_separation in featurescope.evidence.nulls).
HELD_OUT_WHAT = (
    "held-out Cohen's d: the vector built on half of the questions, the projections' d measured on the other half "
    "(mean over random splits); interval: bootstrap over questions; null: the same with the pos/neg labels shuffled"
)


def _finite(x: float) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


@dataclasses.dataclass(frozen=True, eq=False)  # identity equality: the vectors hold tensors
class PersonaExtraction(DictAccess):
    """Persona vectors extracted from trait-expressing (pos) and non-expressing (neg) responses.

    ``vectors``: one :class:`PersonaVector` per kind (``response_mean``, ``prompt_mean``, ``last_prompt``);
    ``responses``: every generated (or written) response with its scores and whether it was kept; per layer of the
    ``response_mean`` vector (``hooks``), the in-sample separation of the kept responses' projections
    (``pos_mean``, ``neg_mean``, ``gap``, ``cohens_d``: the vector was fitted to them) and, with at least four
    questions, ``held_out``: the separation on questions the vector was not built on, as
    :class:`~featurescope.evidence.nulls.Evidence` (bootstrap interval over questions, shuffled-label null,
    verdict). Counts: ``kept_pos`` / ``kept_neg`` of ``generated_per_side`` (judged extraction) or of
    ``written_pairs`` (written answers)."""

    vectors: Mapping[str, PersonaVector]
    responses: tuple[dict[str, Any], ...]
    pos_mean: tuple[float, ...]
    neg_mean: tuple[float, ...]
    gap: tuple[float, ...]
    cohens_d: tuple[float, ...]
    held_out: tuple[Evidence, ...] | None
    kept_pos: int
    kept_neg: int
    timings: Mapping[str, float]
    generated_per_side: int | None = None
    written_pairs: int | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PersonaExtraction:
        """From the dict :func:`extract` / :func:`extract_written` used to return."""
        sep, counts = d["separation"], d["counts"]
        held = sep.get("held_out")
        return cls(
            vectors=dict(d["vectors"]),
            responses=tuple(d["responses"]),
            pos_mean=tuple(sep["pos_mean"]),
            neg_mean=tuple(sep["neg_mean"]),
            gap=tuple(sep["gap"]),
            cohens_d=tuple(sep["cohens_d"]),
            held_out=None if held is None else tuple(evidence_from_dict(e) for e in held),
            kept_pos=int(counts["kept_pos"]),
            kept_neg=int(counts["kept_neg"]),
            timings=dict(d["timings"]),
            generated_per_side=counts.get("generated_per_side"),
            written_pairs=counts.get("written_pairs"),
        )

    def to_dict(self) -> dict[str, Any]:
        sep: dict[str, Any] = {
            "pos_mean": list(self.pos_mean),
            "neg_mean": list(self.neg_mean),
            "gap": list(self.gap),
            "cohens_d": list(self.cohens_d),
        }
        if self.held_out is not None:
            sep["held_out"] = [e.to_dict() for e in self.held_out]
        counts: dict[str, int] = {}
        if self.generated_per_side is not None:
            counts["generated_per_side"] = self.generated_per_side
        if self.written_pairs is not None:
            counts["written_pairs"] = self.written_pairs
        counts.update(kept_pos=self.kept_pos, kept_neg=self.kept_neg)
        return {
            "vectors": dict(self.vectors),  # the PersonaVector objects themselves (tensors are not copied)
            "responses": copy.deepcopy(list(self.responses)),
            "separation": sep,
            "counts": counts,
            "timings": dict(self.timings),
        }

    # -- views ---------------------------------------------------------------------------------------------------
    @property
    def vector(self) -> PersonaVector:
        """The ``response_mean`` vector (the paper's default)."""
        return self.vectors["response_mean"]

    @property
    def trait(self) -> str:
        return self.vector.trait

    @property
    def hooks(self) -> list[str]:
        return list(self.vector.hooks)

    @property
    def layers(self) -> list[int]:
        """The block index of each hook (its position in ``hooks`` where a hook names no block)."""
        out = []
        for i, h in enumerate(self.hooks):
            L = hook_layer(h)
            out.append(i if L is None else L)
        return out

    @property
    def chosen_layer(self) -> int | None:
        """Index (into ``hooks``) of the layer with the largest finite in-sample Cohen's d: what ``persona extract``
        writes as ``best_separation_layer`` (None when every layer's d is undefined)."""
        finite = [i for i, d in enumerate(self.cohens_d) if _finite(d)]
        return max(finite, key=lambda i: self.cohens_d[i]) if finite else None

    @property
    def best_held_out_layer(self) -> int | None:
        """Index of the layer with the largest finite held-out separation (None without ``held_out``)."""
        held = self.held_out
        if held is None:
            return None
        finite = [i for i, e in enumerate(held) if _finite(e.estimate.value)]
        return max(finite, key=lambda i: held[i].estimate.value) if finite else None

    def _counts_text(self) -> str:
        if self.written_pairs is not None:
            return f"{self.written_pairs} written answer pairs (teacher-forced: no generation, no judge)"
        return (
            f"kept {self.kept_pos} positive / {self.kept_neg} negative of {self.generated_per_side} generated "
            "responses per side (judge-filtered)"
        )

    def to_frame(self) -> Any:
        """One row per layer: hook, in-sample separation (pos / neg mean projection, gap, Cohen's d), held-out d with
        its 95% interval, the shuffled-label null (mean and 95% interval, p-value), the verdict, and whether it is
        the ``chosen_layer``."""
        rows = []
        chosen = self.chosen_layer
        for i, (L, h) in enumerate(zip(self.layers, self.hooks)):
            r: dict[str, Any] = {
                "layer": L,
                "hook": h,
                "pos_mean": self.pos_mean[i],
                "neg_mean": self.neg_mean[i],
                "gap": self.gap[i],
                "cohens_d": self.cohens_d[i],
            }
            ev = self.held_out[i] if self.held_out is not None else None
            nan = float("nan")
            r.update(
                held_out_d=ev.estimate.value if ev is not None else nan,
                held_out_lo=ev.estimate.lo if ev is not None else nan,
                held_out_hi=ev.estimate.hi if ev is not None else nan,
                null_mean=ev.null.mean if ev is not None else nan,
                null_lo=ev.null.lo if ev is not None else nan,
                null_hi=ev.null.hi if ev is not None else nan,
                p_value=ev.null.p_value if ev is not None else nan,
                verdict=ev.verdict if ev is not None else None,
                chosen=i == chosen,
            )
            rows.append(r)
        return pandas_module().DataFrame(rows)

    def plot(self, ax: Any = None) -> Any:
        """Separation per layer: the held-out Cohen's d with its 95% interval band, the shuffled-label null's 95%
        band, the in-sample d (dashed) and the chosen layer; returns the matplotlib Figure (nothing is written)."""
        fig, ax = new_axes(ax, (6.5, 3.6))
        xs = self.layers
        if self.held_out is not None:
            e = [ev.estimate for ev in self.held_out]
            n = [ev.null for ev in self.held_out]
            ax.fill_between(xs, [x.lo for x in n], [x.hi for x in n], color="grey", alpha=0.25, label="null 95%")
            ax.plot(xs, [x.mean for x in n], color="grey", lw=0.8, ls=":")
            ax.fill_between(xs, [x.lo for x in e], [x.hi for x in e], color="C0", alpha=0.25, label="held-out 95% CI")
            ax.plot(xs, [x.value for x in e], marker="o", color="C0", label="held-out Cohen's d")
        ax.plot(xs, list(self.cohens_d), marker="s", ls="--", color="C1", label="in-sample Cohen's d")
        c = self.chosen_layer
        if c is not None:
            ax.axvline(xs[c], color="C3", lw=0.8, ls="-.", label=f"chosen layer {xs[c]}")
        ax.axhline(0.0, color="black", lw=0.5)
        ax.set_xlabel("layer")
        ax.set_ylabel("Cohen's d, pos vs neg projection")
        held = "" if self.held_out is not None else " (no held-out split: fewer than 4 questions)"
        ax.set_title(
            f"{self.trait} persona vector on {self.vector.model}: separation per layer{held}\n{self._counts_text()}",
            fontsize=8,
        )
        ax.legend(fontsize=7)
        fig.tight_layout()
        return fig

    def _repr_html_(self) -> str:
        chosen = self.chosen_layer
        body = []
        for i, (L, h) in enumerate(zip(self.layers, self.hooks)):
            mark = " &#9664; chosen" if i == chosen else ""
            ev = self.held_out[i] if self.held_out is not None else None
            if ev is not None:
                e, n = ev.estimate, ev.null
                held = (
                    f"<td>{e.value:.2f} {ci_text(e, '.2f')}</td><td>{n.mean:.2f} {ci_text(n, '.2f')}</td>"
                    f"<td>{n.p_value:.3g}</td><td>{html.escape(ev.verdict)}</td>"
                )
            else:
                held = "<td colspan=4>no held-out split (fewer than 4 questions)</td>"
            b, eb = ("<b>", "</b>") if i == chosen else ("", "")
            body.append(
                f"<tr><td>{b}{L}{mark}{eb}</td><td><code>{html.escape(h)}</code></td>"
                f"<td>{self.cohens_d[i]:.2f}</td>{held}</tr>"
            )
        handling = self.vector.extra.get("handling", "?")
        line = ""
        if chosen is not None and self.held_out is not None:
            line = f"<p>at the chosen layer: {html.escape(evidence_text(self.held_out[chosen].to_dict()))}</p>"
        return (
            f"<div><b>persona extraction</b>: trait <code>{html.escape(self.trait)}</code> on "
            f"<code>{html.escape(self.vector.model)}</code> ({html.escape(self.vector.stage)}); "
            f"{html.escape(self._counts_text())}; handling {html.escape(str(handling))}; vector kinds "
            f"{', '.join(html.escape(k) for k in self.vectors)}"
            "<table><tr><th>layer</th><th>hook</th><th>Cohen's d (in sample)</th><th>held-out d [95% CI]</th>"
            f"<th>null [95%]</th><th>p</th><th>verdict</th></tr>{''.join(body)}</table>{line}"
            f"<p><small>{html.escape(HELD_OUT_WHAT)}. Chosen layer: the largest in-sample d (summary.json's "
            "best_separation_layer).</small></p></div>"
        )


__all__ = ["HELD_OUT_WHAT", "PersonaExtraction"]
