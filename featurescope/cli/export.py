"""``featurescope export``: pretrained (a persona vector or an axis as a self-describing folder) | gguf (a llama.cpp
control vector) | neuronpedia (a decomposition's feature cards as Neuronpedia feature JSON)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Literal

from ..axis.vector import AssistantAxis
from ..exports import (
    cards_from_summary,
    export_control_vector,
    export_neuronpedia,
    read_control_vector,
    save_pretrained,
)
from ..persona.vector import PersonaVector
from .io import int_list, nonempty

#: The control vector's file name inside ``export gguf --out FOLDER``.
GGUF_NAME = "control_vector.gguf"


def _source(args: argparse.Namespace) -> PersonaVector | AssistantAxis:
    return PersonaVector.load(args.vector) if args.vector else AssistantAxis.load(args.axis)


def _pretrained(args: argparse.Namespace) -> int:
    out = save_pretrained(_source(args), args.out, overwrite=args.overwrite)
    print(f"wrote {out}/config.json and {out}/vectors.safetensors")
    return 0


def _gguf(args: argparse.Namespace) -> int:
    path = export_control_vector(
        _source(args),
        Path(args.out) / GGUF_NAME,
        layers=args.layers,
        scale=args.scale,
        model_hint=args.model_hint,
        n_layers=args.n_layers,
        overwrite=args.overwrite,
    )
    cv = read_control_vector(path)
    print(
        f"wrote {path}: model_hint {cv.model_hint!r}, layer_count {cv.layer_count}, directions "
        f"{sorted(cv.directions)} (use: llama-cli -m MODEL.gguf --control-vector-scaled {path}:1.0)"
    )
    return 0


def _neuronpedia(args: argparse.Namespace) -> int:
    cards, extras = cards_from_summary(args.decomposition)
    out = export_neuronpedia(
        cards,
        args.out,
        model_id=args.model_id,
        sae_id=args.sae_id,
        title=f"decomposition {args.decomposition}",
        extras=extras,
        overwrite=args.overwrite,
    )
    print(f"wrote {len(cards)} feature records under {out}/features and {out}/quick_list.json")
    return 0


def _layers(s: str) -> list[int] | Literal["all"]:
    """``--layers``: 'all' or a comma-separated list of layers (checked at parse time)."""
    return "all" if s == "all" else nonempty(int_list)(s)


def _vector_flags(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--vector", help="a persona vector file (.safetensors written by `persona extract/run`)")
    src.add_argument("--axis", help="an Assistant-axis file or folder (written by `axis collect/run`)")


def register(sub: argparse._SubParsersAction) -> None:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    g = sub.add_parser(
        "export",
        help="exports other tools read: pretrained folders, GGUF control vectors, Neuronpedia JSON",
        formatter_class=fmt,
    )
    actions = g.add_subparsers(dest="action", metavar="ACTION", required=True, help="the export format")

    p = actions.add_parser(
        "pretrained", formatter_class=fmt, help="a vector or axis as config.json + vectors.safetensors"
    )
    _vector_flags(p)
    p.add_argument("--out", required=True, help="folder to write (replaced only if it is an earlier export)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier featurescope export at --out")
    p.set_defaults(func=_pretrained)

    q = actions.add_parser("gguf", formatter_class=fmt, help="a llama.cpp control vector (repeng's GGUF format)")
    _vector_flags(q)
    q.add_argument(
        "--layers",
        type=_layers,
        required=True,
        help="comma-separated layers to export (featurescope steers one: the chosen layer), or 'all' (>= 1)",
    )
    q.add_argument("--scale", type=float, default=1.0, help="multiply the vector by this (featurescope's alpha)")
    q.add_argument(
        "--model-hint", default=None, help="the target model's GGUF architecture (None: from the vector's model name)"
    )
    q.add_argument(
        "--n-layers", type=int, default=None, help="the target model's layer count (None: the vector's layer count)"
    )
    q.add_argument("--out", required=True, help=f"folder to write {GGUF_NAME} into")
    q.add_argument("--overwrite", action="store_true", help="replace an earlier featurescope control vector in --out")
    q.set_defaults(func=_gguf)

    n = actions.add_parser(
        "neuronpedia", formatter_class=fmt, help="a decomposition's feature cards as Neuronpedia feature JSON"
    )
    n.add_argument("--decomposition", required=True, help="a `featurescope decompose` run folder (or its summary.json)")
    n.add_argument("--model-id", required=True, help="Neuronpedia modelId, e.g. gemma-3-270m")
    n.add_argument("--sae-id", required=True, help="Neuronpedia SAE id (its 'layer' field), e.g. 9-featurescope-res-4k")
    n.add_argument("--out", required=True, help="folder to write")
    n.add_argument("--overwrite", action="store_true", help="replace an earlier featurescope export at --out")
    n.set_defaults(func=_neuronpedia)
