"""Persona features: typed results for Jupyter and the report, read from what the commands write.

:class:`SharedLatentsResult` (``features shared``): per theme, the latents whose selectivity clears the threshold on
both the Assistant's and the story character's side, and the count against shuffled theme labels (the chance
count). :class:`InterpretResult` (``features interpret``): per view of a decomposition, its top latents'
interpretation score against random latents of matched firing density (set z against the 3 SD target) and each
latent's score, z, density, mean-tracking flag and first top context.

As in :mod:`featurescope.axis.results`, ``to_dict()`` gives back exactly what the command wrote under ``results``
in ``summary.json`` (read access by key keeps dict-style callers working: ``run_shared`` / ``run_interpret`` still
return those dicts); ``from_dict(results)`` wraps such a dict and ``load(folder)`` reads a run folder. The result
renders as a table with its null and verdict; ``plot()`` returns a matplotlib Figure (never written), ``to_frame()``
a pandas DataFrame."""

from __future__ import annotations

import copy
import dataclasses
import html
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..results import DictAccess, new_axes, num, pandas_module
from ..runs import read_summary
from ..stats import NOT_DISTINGUISHABLE

#: The central 95% of a standard normal: where a set z of random density-matched latents falls.
Z95 = 1.96
BEATS = "beats the null"
BELOW = "below the null"


def _summary(path: str | Path, command: str) -> tuple[dict[str, Any], Path]:
    p = Path(path)
    folder = p if p.is_dir() else p.parent
    s = read_summary(p)
    if s.get("command") != command:
        raise ValueError(f"{p} is a {s.get('command')!r} run, not {command!r}")
    return s, folder


def _fmt(x: float, f: str = ".2f") -> str:
    return "n/a" if math.isnan(x) else format(x, f)


def _short(s: str, n: int = 120) -> str:
    s = " ".join(s.split())
    return s if len(s) <= n else s[: n - 3] + "..."


# -- features shared -----------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class SharedLatent:
    """One latent shared by the Assistant and the story characters in ``theme``: its theme selectivity (z) on each
    side, and its mean activation in the theme (per side) and elsewhere."""

    theme: str
    latent: int
    z_assistant: float
    z_character: float
    mean_assistant_in_theme: float
    mean_character_in_theme: float
    mean_elsewhere: float

    @classmethod
    def from_dict(cls, theme: str, d: Mapping[str, Any]) -> SharedLatent:
        return cls(
            theme,
            int(d["latent"]),
            num(d.get("z_assistant")),
            num(d.get("z_character")),
            num(d.get("mean_assistant_in_theme")),
            num(d.get("mean_character_in_theme")),
            num(d.get("mean_elsewhere")),
        )


@dataclasses.dataclass(frozen=True)
class SharedTheme:
    """One theme: its pairs, the Bonferroni threshold on z both sides must clear, and the latents that do."""

    theme: str
    n_pairs: int
    threshold_z: float
    latents: tuple[SharedLatent, ...]


@dataclasses.dataclass(frozen=True)
class SharedLatentsResult(DictAccess):
    """What ``features shared`` (:func:`~featurescope.features.run_shared`) found: ``n_shared`` latents over all
    themes against ``chance_counts`` (the same count with the theme labels shuffled, one per shuffle), and the
    verdict the run gave. ``folder``: the run folder when loaded from one (its ``cards.html`` has the cards)."""

    model: str
    hook: str
    sae: str
    n_pairs: int
    themes: tuple[SharedTheme, ...]
    n_shared: int
    chance_counts: tuple[int, ...]
    verdict: str
    results: Mapping[str, Any] = dataclasses.field(repr=False)  # what to_dict() gives back
    folder: Path | None = None

    @classmethod
    def from_dict(cls, results: Mapping[str, Any], folder: str | Path | None = None) -> SharedLatentsResult:
        """From the dict :func:`~featurescope.features.run_shared` returns (or ``summary.json``'s ``results``)."""
        themes = tuple(
            SharedTheme(
                str(t),
                int(v.get("n_pairs") or 0),
                num(v.get("threshold_z")),
                tuple(SharedLatent.from_dict(str(t), d) for d in v.get("latents") or []),
            )
            for t, v in (results.get("themes") or {}).items()
            if isinstance(v, Mapping)
        )
        found = sum(len(t.latents) for t in themes)
        return cls(
            model=str(results.get("model", "")),
            hook=str(results.get("hook", "")),
            sae=str(results.get("sae", "")),
            n_pairs=int(results.get("n_pairs") or 0),
            themes=themes,
            n_shared=int(results["n_shared"]) if results.get("n_shared") is not None else found,
            chance_counts=tuple(int(c) for c in results.get("chance_counts") or []),
            verdict=str(results.get("verdict", "")),
            results=results,
            folder=None if folder is None else Path(folder),
        )

    @classmethod
    def load(cls, path: str | Path) -> SharedLatentsResult:
        """From a ``features shared`` run folder (or its ``summary.json``)."""
        s, folder = _summary(path, "features shared")
        return cls.from_dict(s["results"], folder)

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(dict(self.results))

    @property
    def latents(self) -> list[SharedLatent]:
        """Every shared latent, theme by theme."""
        return [x for t in self.themes for x in t.latents]

    @property
    def chance_max(self) -> int:
        return max(self.chance_counts, default=0)

    @property
    def chance_mean(self) -> float:
        return sum(self.chance_counts) / len(self.chance_counts) if self.chance_counts else float("nan")

    @property
    def cards(self) -> Path | None:
        """The run's feature cards of the shared latents (``cards.html``), when loaded from a folder that has them."""
        name = self.results.get("cards")
        if self.folder is None or not name:
            return None
        p = self.folder / str(name)
        return p if p.is_file() else None

    def null_text(self) -> str:
        """The chance count as a null: mean [min, max] over the shuffles."""
        if not self.chance_counts:
            return "n/a (run without shuffles)"
        return (
            f"{self.chance_mean:.1f} [{min(self.chance_counts)}, {self.chance_max}] "
            f"(shuffled theme labels, {len(self.chance_counts)} shuffles)"
        )

    def to_frame(self) -> Any:
        """One row per shared latent: theme, latent, z on each side, the theme's threshold and the mean activations."""
        recs = [
            {**dataclasses.asdict(x), "threshold_z": t.threshold_z, "n_pairs": t.n_pairs}
            for t in self.themes
            for x in t.latents
        ]
        cols = [f.name for f in dataclasses.fields(SharedLatent)] + ["threshold_z", "n_pairs"]
        return pandas_module().DataFrame.from_records(recs, columns=cols)

    def plot(self, ax: Any = None) -> Any:
        """Each shared latent's theme selectivity on the Assistant's side vs the character's, per theme, with each
        theme's threshold (dashed, grey): a shared latent sits above both."""
        fig, ax = new_axes(ax, (5.5, 4.5))
        for thr in sorted({t.threshold_z for t in self.themes if not math.isnan(t.threshold_z)}):
            ax.axvline(thr, color="0.4", ls="--", lw=0.8)
            ax.axhline(thr, color="0.4", ls="--", lw=0.8)
        for i, t in enumerate(self.themes):
            c = f"C{i % 10}"
            xs = [x.z_assistant for x in t.latents]
            ys = [x.z_character for x in t.latents]
            ax.scatter(xs, ys, color=c, label=f"{t.theme} ({len(t.latents)})")
            for x in t.latents:
                ax.annotate(str(x.latent), (x.z_assistant, x.z_character), fontsize=7, xytext=(3, 3),
                            textcoords="offset points")  # fmt: skip
        ax.margins(0.15)
        ax.set_xlabel("theme z, Assistant replies")
        ax.set_ylabel("theme z, character passages")
        ax.set_title(f"{self.n_shared} shared latents (chance: {self.chance_max} at most) at {self.hook}", fontsize=9)
        ax.legend(fontsize=7, title="theme (shared)", title_fontsize=7)
        return fig

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(t.theme)}</td><td>{t.n_pairs}</td><td>{_fmt(t.threshold_z)}</td>"
            f"<td>{len(t.latents)}</td><td>{html.escape(', '.join(str(x.latent) for x in t.latents) or '-')}</td></tr>"
            for t in self.themes
        )
        lat = "".join(
            f"<tr><td>{html.escape(x.theme)}</td><td>{x.latent}</td><td>{_fmt(x.z_assistant)}</td>"
            f"<td>{_fmt(x.z_character)}</td><td>{_fmt(x.mean_assistant_in_theme)}</td>"
            f"<td>{_fmt(x.mean_character_in_theme)}</td><td>{_fmt(x.mean_elsewhere)}</td></tr>"
            for x in self.latents
        )
        cards = f"<p>feature cards: <code>{html.escape(str(self.cards))}</code></p>" if self.cards else ""
        return (
            f"<div><b>latents shared by the Assistant and story characters</b> at <code>{html.escape(self.hook)}"
            f"</code> ({html.escape(self.sae)}; {self.n_pairs} paired contexts)"
            "<table><tr><th>estimate</th><th>value</th><th>null (chance count)</th><th>verdict</th></tr>"
            f"<tr><td>shared latents, all themes</td><td>{self.n_shared}</td><td>{html.escape(self.null_text())}</td>"
            f"<td>{html.escape(self.verdict)}</td></tr></table>"
            "<table><tr><th>theme</th><th>pairs</th><th>threshold z (both sides)</th><th>shared</th><th>latents</th>"
            f"</tr>{rows}</table>"
            + (
                "<table><tr><th>theme</th><th>latent</th><th>z Assistant</th><th>z character</th>"
                "<th>mean, Assistant in theme</th><th>mean, character in theme</th><th>mean elsewhere</th></tr>"
                f"{lat}</table>"
                if lat
                else ""
            )
            + f"{cards}</div>"
        )


# -- features interpret --------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class InterpretedLatent:
    """One scored latent: its interpretation score (mean over its top contexts), z against density-matched random
    latents (``matched_null_*``: their mean, sd and count) and against uniformly random firing latents, its firing
    density, cos(decoder row, mean activation) and whether that makes it track the mean, and its top contexts."""

    latent: int
    score: float
    density: float
    z_density_matched: float
    z_uniform: float
    matched_null_mean: float
    matched_null_sd: float
    matched_null_n: int
    cos_mean: float
    tracks_mean: bool
    contexts: tuple[str, ...]

    @classmethod
    def from_dict(cls, latent: int, d: Mapping[str, Any]) -> InterpretedLatent:
        m = d.get("matched_null") or {}
        return cls(
            latent=latent,
            score=num(d.get("score")),
            density=num(d.get("density")),
            z_density_matched=num(d.get("z_density_matched")),
            z_uniform=num(d.get("z_uniform")),
            matched_null_mean=num(m.get("mean")),
            matched_null_sd=num(m.get("sd")),
            matched_null_n=int(m.get("n") or 0),
            cos_mean=num(d.get("cos_mean")),
            tracks_mean=bool(d.get("tracks_mean")),
            contexts=tuple(str(c) for c in d.get("contexts") or []),
        )

    @property
    def first_context(self) -> str:
        return self.contexts[0] if self.contexts else ""


def set_z_verdict(set_z: float, z_target: float) -> str:
    """A set z against density-matched random latents, read against the target (``z_target`` SD): ``beats the
    null`` at or above it, ``below the null`` at or under minus it, else not distinguishable from the null."""
    if math.isnan(set_z):
        return NOT_DISTINGUISHABLE
    if set_z >= z_target:
        return BEATS
    if set_z <= -z_target:
        return BELOW
    return NOT_DISTINGUISHABLE


@dataclasses.dataclass(frozen=True)
class InterpretView:
    """One view's top latents (``latents``, in rank order) as a set: the z of their mean score against the mean of
    as many density-matched random latents (``set_z``; about 0 +- 1 for random latents), how many clear
    ``z_target`` alone, their mean z and score, and how many track the mean activation."""

    view: str
    latents: tuple[int, ...]
    set_z: float
    n_above: int
    mean_z: float
    mean_score: float
    n_tracking_mean: int
    z_target: float
    set_p: float = math.nan  # one-sided p against random sets of pooled null latents (no normal approximation)

    @property
    def verdict(self) -> str:
        return set_z_verdict(self.set_z, self.z_target)

    @property
    def null_text(self) -> str:
        return (
            f"0 [{-Z95:.2f}, {Z95:.2f}] (set z of {len(self.latents)} density-matched random latents; "
            f"target {self.z_target:g} SD)"
        )


@dataclasses.dataclass(frozen=True)
class InterpretResult(DictAccess):
    """What ``features interpret`` (:func:`~featurescope.features.interpret.run_interpret`) found: per view
    (:class:`InterpretView`) the set z against density-matched random latents and its verdict against the target,
    per scored latent an :class:`InterpretedLatent`. ``measure``: ``judge`` (the trait judge's score of each top
    context) or ``assistant-voice`` (100 x the share of top contexts from Assistant speech; ``base_rate`` is that
    share over all texts). ``uniform_null``: mean, sd and n of the score of uniformly random firing latents."""

    measure: str
    trait: str
    hook: str
    sae: str
    n_texts: int
    n_tokens: int
    z_target: float
    base_rate: float | None
    views: tuple[InterpretView, ...]
    latents: Mapping[int, InterpretedLatent] = dataclasses.field(repr=False)
    uniform_null: Mapping[str, Any]
    target_met: bool
    results: Mapping[str, Any] = dataclasses.field(repr=False)  # what to_dict() gives back
    folder: Path | None = None

    @classmethod
    def from_dict(cls, results: Mapping[str, Any], folder: str | Path | None = None) -> InterpretResult:
        """From the dict :func:`~featurescope.features.interpret.run_interpret` returns (or ``summary.json``'s
        ``results``, where nan reads back as None)."""
        z_target = num(results.get("z_target", 3.0))
        views = tuple(
            InterpretView(
                view=str(name),
                latents=tuple(int(j) for j in v.get("latents") or []),
                set_z=num(v.get("set_z_density_matched")),
                n_above=int(v.get("n_above") or 0),
                mean_z=num(v.get("mean_z_density_matched")),
                mean_score=num(v.get("mean_score")),
                n_tracking_mean=int(v.get("n_tracking_mean") or 0),
                z_target=z_target,
                set_p=num(v.get("set_p_empirical")),
            )
            for name, v in (results.get("views") or {}).items()
            if isinstance(v, Mapping)
        )
        lat = {
            int(j): InterpretedLatent.from_dict(int(j), d)
            for j, d in (results.get("latents") or {}).items()
            if isinstance(d, Mapping)
        }
        br = results.get("base_rate")
        return cls(
            measure=str(results.get("measure", "judge")),
            trait=str(results.get("trait", "")),
            hook=str(results.get("hook", "")),
            sae=str(results.get("sae", "")),
            n_texts=int(results.get("n_texts") or 0),
            n_tokens=int(results.get("n_tokens") or 0),
            z_target=z_target,
            base_rate=None if br is None else float(br),
            views=views,
            latents=lat,
            uniform_null=dict(results.get("uniform_null") or {}),
            target_met=bool(results.get("target_met")),
            results=results,
            folder=None if folder is None else Path(folder),
        )

    @classmethod
    def load(cls, path: str | Path) -> InterpretResult:
        """From a ``features interpret`` run folder (or its ``summary.json``)."""
        s, folder = _summary(path, "features interpret")
        return cls.from_dict(s["results"], folder)

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(dict(self.results))

    def view(self, name: str) -> InterpretView:
        for v in self.views:
            if v.view == name:
                return v
        raise KeyError(f"no view {name!r}; the run has {', '.join(v.view for v in self.views)}")

    def view_latents(self, name: str) -> list[InterpretedLatent]:
        """A view's latents in rank order (those the run scored)."""
        return [self.latents[j] for j in self.view(name).latents if j in self.latents]

    def matched_null_mean(self, name: str) -> float:
        """The mean of a view's latents' density-matched null means: the score a set of random latents of the
        same densities gets."""
        xs = [x.matched_null_mean for x in self.view_latents(name) if not math.isnan(x.matched_null_mean)]
        return sum(xs) / len(xs) if xs else float("nan")

    @property
    def what(self) -> str:
        """What the score measures, in words."""
        if self.measure == "assistant-voice":
            br = f"; base rate {self.base_rate:.1f}" if self.base_rate is not None else ""
            return f"share of top contexts from Assistant speech (x 100{br})"
        return f"the {self.trait} judge's score of the top contexts"

    def to_frame(self) -> Any:
        """One row per view and latent (rank order): score, z against density-matched and uniformly random latents,
        the matched null's mean, density, cos with the mean activation and the tracks-mean flag, first context."""
        recs = []
        for v in self.views:
            for rank, x in enumerate(self.view_latents(v.view)):
                recs.append(
                    {
                        "view": v.view,
                        "rank": rank,
                        "latent": x.latent,
                        "score": x.score,
                        "z_density_matched": x.z_density_matched,
                        "z_uniform": x.z_uniform,
                        "matched_null_mean": x.matched_null_mean,
                        "density": x.density,
                        "cos_mean": x.cos_mean,
                        "tracks_mean": x.tracks_mean,
                        "first_context": x.first_context,
                    }
                )
        return pandas_module().DataFrame.from_records(recs)

    def plot(self, ax: Any = None) -> Any:
        """Per view: each latent's z against density-matched random latents (dots; hollow: tracks the mean) and the
        set z (a bar), with the target (dashed) and the random latents' central 95% (grey band)."""
        fig, ax = new_axes(ax, (max(4.0, 1.6 * len(self.views) + 2), 4.0))
        ax.axhspan(-Z95, Z95, color="0.9", zorder=0, label="random latents, central 95% (set z)")
        ax.axhline(self.z_target, color="0.3", ls="--", lw=0.9, label=f"target {self.z_target:g} SD")
        for i, v in enumerate(self.views):
            c = f"C{i % 10}"
            if not math.isnan(v.set_z):
                ax.bar(i, v.set_z, width=0.6, color=c, alpha=0.35)
            xs = self.view_latents(v.view)
            if xs:
                off = [(k - (len(xs) - 1) / 2) * 0.4 / max(len(xs), 1) for k in range(len(xs))]
                ax.scatter([i + o for o in off], [x.z_density_matched for x in xs], s=14,
                           facecolors=["none" if x.tracks_mean else c for x in xs], edgecolors=c)  # fmt: skip
        ax.set_xticks(range(len(self.views)), [v.view for v in self.views])
        ax.set_ylabel("z against density-matched random latents")
        ax.set_title(f"{self.trait} at {self.hook}: bars set z, dots single latents", fontsize=9)
        ax.legend(fontsize=7)
        return fig

    def _repr_html_(self) -> str:
        u = self.uniform_null
        un = f"{num(u.get('mean')):.1f} +- {num(u.get('sd')):.1f} (n = {u.get('n', '?')})" if u else "n/a"
        vrows = "".join(
            f"<tr><td>{html.escape(v.view)}</td><td>{len(v.latents)}</td><td>{_fmt(v.mean_score, '.1f')}</td>"
            f"<td>{_fmt(self.matched_null_mean(v.view), '.1f')}</td><td><b>{_fmt(v.set_z)}</b></td>"
            f"<td>{html.escape(v.null_text)}</td><td>{v.n_above}</td><td>{v.n_tracking_mean}</td>"
            f"<td>{html.escape(v.verdict)}</td></tr>"
            for v in self.views
        )
        lrows = "".join(
            f"<tr><td>{html.escape(v.view)}</td><td>{x.latent}</td><td>{_fmt(x.score, '.1f')}</td>"
            f"<td>{_fmt(x.z_density_matched)}</td><td>{x.density:.2e}</td><td>{'yes' if x.tracks_mean else ''}</td>"
            f"<td><small>{html.escape(_short(x.first_context))}</small></td></tr>"
            for v in self.views
            for x in self.view_latents(v.view)
        )
        return (
            f"<div><b>interpretation scores</b> ({html.escape(self.what)}) of <code>{html.escape(self.sae)}</code> "
            f"latents at <code>{html.escape(self.hook)}</code>: {self.n_texts} held-out texts, {self.n_tokens} tokens;"
            f" uniformly random firing latents score {html.escape(un)}"
            "<table><tr><th>view</th><th>latents</th><th>mean score</th><th>matched null's mean score</th>"
            "<th>set z</th><th>null [central 95%]</th><th>latents &ge; target</th><th>tracking the mean</th>"
            f"<th>verdict</th></tr>{vrows}</table>"
            "<table><tr><th>view</th><th>latent</th><th>score</th><th>z (density-matched)</th><th>density</th>"
            f"<th>tracks the mean</th><th>first top context</th></tr>{lrows}</table></div>"
        )


def load_result(path: str | Path) -> SharedLatentsResult | InterpretResult:
    """The typed result of a ``features shared`` or ``features interpret`` run folder."""
    cmd = read_summary(path).get("command")
    if cmd == "features shared":
        return SharedLatentsResult.load(path)
    if cmd == "features interpret":
        return InterpretResult.load(path)
    raise ValueError(f"{path} is a {cmd!r} run, not features shared / features interpret")
