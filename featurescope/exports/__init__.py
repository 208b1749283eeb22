"""Exports that other tools read: self-describing vector folders (``save_pretrained`` / ``load_pretrained``),
llama.cpp control vectors (GGUF, repeng's format) and Neuronpedia-compatible feature JSON."""

from __future__ import annotations

from .gguf import GGUF_ARCHITECTURES, ControlVectorFile, export_control_vector, hint_for, read_control_vector
from .neuronpedia import cards_from_summary, export_neuronpedia, neuronpedia_feature, read_neuronpedia
from .pretrained import PRETRAINED_FORMATS, layer_conventions, load_pretrained, read_pretrained, save_pretrained

__all__ = [
    "GGUF_ARCHITECTURES",
    "PRETRAINED_FORMATS",
    "ControlVectorFile",
    "cards_from_summary",
    "export_control_vector",
    "export_neuronpedia",
    "hint_for",
    "layer_conventions",
    "load_pretrained",
    "neuronpedia_feature",
    "read_control_vector",
    "read_neuronpedia",
    "read_pretrained",
    "save_pretrained",
]
