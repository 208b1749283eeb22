"""Feature cards and decompositions as Neuronpedia-compatible JSON.

One file per feature in the shape of Neuronpedia's feature records (``modelId``, ``layer`` = the SAE id,
``index``, ``activations`` with ``tokens`` / ``values`` / ``maxValue`` / ``maxValueTokenIndex``, top logits as
``pos_str`` / ``pos_values`` / ``neg_str`` / ``neg_values``, ``frac_nonzero``, the activation histogram as
``freq_hist_data_bar_values`` / ``freq_hist_data_bar_heights``, ``explanations``), plus ``quick_list.json`` in
Neuronpedia's quick-list shape (``[{modelId, layer, index}]``) ranked as in the decomposition. What Neuronpedia does
not have (the card's score in the decomposition, whether the latent tracks the mean, the SAE folder) is kept under
``featurescope``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..cards import FeatureCard
from ..errors import FeaturescopeError
from ..store import write_json
from .target import MARK, atomic_folder, check_folder_target

FORMAT = "featurescope.neuronpedia/1"


def cards_from_summary(path: str | Path) -> tuple[list[FeatureCard], list[dict[str, Any]]]:
    """The cards of a ``featurescope decompose`` run (its folder or ``summary.json``) and, per card, what the
    decomposition adds (the view that selected it, whether it tracks the mean)."""
    p = Path(path)
    p = p / "summary.json" if p.is_dir() else p
    try:
        rows = json.loads(p.read_text())["results"]["cards"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise FeaturescopeError(f"{p}: not the summary of a decompose run with cards ({type(e).__name__}: {e})") from e
    names = {f.name for f in dataclasses.fields(FeatureCard)}
    cards = [FeatureCard(**{k: v for k, v in r.items() if k in names}) for r in rows]
    extras = [{k: v for k, v in r.items() if k not in names} for r in rows]
    return cards, extras


def neuronpedia_feature(
    card: FeatureCard, model_id: str, sae_id: str, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """One card as a Neuronpedia feature record (``extra`` goes under ``featurescope``)."""
    acts = []
    for c in card.contexts:
        vals = [float(v) for v in c["values"]]
        acts.append(
            {
                "tokens": list(c["tokens"]),
                "values": vals,
                "maxValue": float(c["max"]),
                "maxValueTokenIndex": int(c.get("pos", max(range(len(vals)), key=vals.__getitem__) if vals else 0)),
                "minValue": min(vals) if vals else 0.0,
                **({"source": c["source"]} if c.get("source") else {}),
            }
        )
    edges = card.hist_edges
    centers = [10 ** ((a + b) / 2) for a, b in zip(edges[:-1], edges[1:])]  # card bins are over log10 activation
    return {
        "modelId": model_id,
        "layer": sae_id,
        "index": str(card.feature),
        "activations": acts,
        "pos_str": [t for t, _ in card.promoted],
        "pos_values": [float(v) for _, v in card.promoted],
        "neg_str": [t for t, _ in card.suppressed],
        "neg_values": [float(v) for _, v in card.suppressed],
        "frac_nonzero": float(card.density),
        "freq_hist_data_bar_values": centers,
        "freq_hist_data_bar_heights": [float(h) for h in card.hist],
        "explanations": [{"description": card.label}] if card.label else [],
        "featurescope": {
            "sae_name": card.sae_name,
            "hook": card.hook,
            "model": card.model,
            "score": card.score,
            "label": card.label,
            "neuronpedia": card.neuronpedia,
            "hist_edges_log10": list(edges),
            **dict(extra or {}),
        },
    }


def export_neuronpedia(
    cards: Sequence[FeatureCard],
    folder: str | Path,
    *,
    model_id: str,
    sae_id: str,
    title: str = "",
    extras: Sequence[Mapping[str, Any]] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``folder/features/{index}.json`` per card, ``folder/quick_list.json`` (in the cards' order) and
    ``folder/config.json``, atomically."""
    if not cards:
        raise FeaturescopeError("no feature cards to export")
    folder = Path(folder)
    check_folder_target(folder, overwrite)
    with atomic_folder(folder) as tmp:
        for c in cards:
            write_json(tmp / "features" / f"{c.feature}.json", neuronpedia_feature(c, model_id, sae_id), indent=None)
        write_json(
            tmp / "quick_list.json",
            [{"modelId": model_id, "layer": sae_id, "index": str(c.feature)} for c in cards],
            indent=1,
        )
        write_json(
            tmp / "config.json",
            {
                MARK: 1,
                "format": FORMAT,
                "modelId": model_id,
                "layer": sae_id,
                "title": title,
                "features": [{"index": c.feature, "score": c.score, "label": c.label} for c in cards],
            },
            indent=1,
        )
    return folder


def read_neuronpedia(path: str | Path) -> FeatureCard:
    """A feature record (ours or Neuronpedia's own API output) back as a :class:`FeatureCard`."""
    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise FeaturescopeError(f"{path}: not a readable feature JSON ({e})") from e
    missing = {"modelId", "layer", "index", "activations"} - set(d)
    if missing:
        raise FeaturescopeError(f"{path}: not a Neuronpedia feature record (missing {sorted(missing)})")
    fs = d.get("featurescope") or {}
    edges = fs.get("hist_edges_log10")
    if edges is None:
        vals = d.get("freq_hist_data_bar_values") or []
        logs = [math.log10(v) for v in vals if v > 0]
        step = (logs[1] - logs[0]) if len(logs) > 1 else 1.0
        edges = [x - step / 2 for x in logs] + ([logs[-1] + step / 2] if logs else [])
    return FeatureCard(
        feature=int(d["index"]),
        sae_name=fs.get("sae_name", d["layer"]),
        hook=fs.get("hook", ""),
        model=fs.get("model", d["modelId"]),
        density=float(d.get("frac_nonzero") or 0.0),
        contexts=[
            {
                "tokens": a["tokens"],
                "values": a["values"],
                "max": a.get("maxValue", max(a["values"], default=0.0)),
                "pos": a.get("maxValueTokenIndex", 0),
                **({"source": a["source"]} if a.get("source") else {}),
            }
            for a in d["activations"]
        ],
        hist_edges=list(edges),
        hist=[float(h) for h in d.get("freq_hist_data_bar_heights") or []],
        promoted=list(zip(d.get("pos_str") or [], d.get("pos_values") or [])),
        suppressed=list(zip(d.get("neg_str") or [], d.get("neg_values") or [])),
        neuronpedia=fs.get("neuronpedia"),
        score=fs.get("score"),
        label=fs.get("label") or next((e.get("description", "") for e in d.get("explanations") or []), ""),
    )
