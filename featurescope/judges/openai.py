"""Judge through an OpenAI-compatible endpoint (needs network): Chen et al.'s 0-100 rubric scored as the expected
value over the judge's number-token log-probs."""

from __future__ import annotations

import json
import math
import os
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..errors import FeaturescopeError
from .base import COHERENCE_RUBRIC, Score


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
    """Judge through an OpenAI-compatible ``/chat/completions`` endpoint (needs network).

    ``concurrency`` requests run at once (threads); a request that fails with HTTP 429 / 5xx or a network error is
    retried ``max_retries`` times with exponential back-off; ``requests_per_second`` caps the rate; ``max_requests``
    is a spend cap: a ``score_many`` call that would pass it fails *before* sending anything, naming the numbers.
    Each can also be set from the environment (``FEATURESCOPE_JUDGE_CONCURRENCY``, ``..._MAX_RETRIES``, ``..._RPS``,
    ``..._MAX_REQUESTS``). The API key is read from ``FEATURESCOPE_JUDGE_API_KEY`` (or passed) and never written to
    any file, summary or repr.
    """

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        timeout: float = 60,
        concurrency: int | None = None,
        max_retries: int | None = None,
        requests_per_second: float | None = None,
        max_requests: int | None = None,
    ):
        self.base_url = (base_url or os.environ.get("FEATURESCOPE_JUDGE_URL", "")).rstrip("/")
        self.model = model or os.environ.get("FEATURESCOPE_JUDGE_MODEL", "")
        self._api_key = api_key or os.environ.get("FEATURESCOPE_JUDGE_API_KEY", "")
        if not self.base_url or not self.model:
            raise FeaturescopeError(
                "OpenAIJudge needs FEATURESCOPE_JUDGE_URL and FEATURESCOPE_JUDGE_MODEL "
                "(and FEATURESCOPE_JUDGE_API_KEY if the endpoint wants one)"
            )
        self.timeout = timeout
        self.concurrency = max(1, concurrency or _env_num("FEATURESCOPE_JUDGE_CONCURRENCY", 8, int))
        self.max_retries = max(
            0, max_retries if max_retries is not None else _env_num("FEATURESCOPE_JUDGE_MAX_RETRIES", 5, int)
        )
        rps = requests_per_second if requests_per_second is not None else _env_num("FEATURESCOPE_JUDGE_RPS", 0.0, float)
        self.min_interval = 1.0 / rps if rps and rps > 0 else 0.0
        cap = max_requests if max_requests is not None else _env_num("FEATURESCOPE_JUDGE_MAX_REQUESTS", 0, int)
        self.max_requests = cap if cap and cap > 0 else None
        self.requests_sent = 0
        self._lock = threading.Lock()
        self._next_slot = 0.0
        self.name = f"openai:{self.model}"

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAIJudge(url={self.base_url!r}, model={self.model!r}, sent={self.requests_sent})"

    def _wait_rate(self) -> None:
        if not self.min_interval:
            return
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self.min_interval
        if slot > now:
            time.sleep(slot - now)

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        req = urllib.request.Request(
            f"{self.base_url}/chat/completions",
            data=json.dumps(body).encode(),
            headers={
                "Content-Type": "application/json",
                **({"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}),
            },
        )
        delay = 0.5
        for attempt in range(self.max_retries + 1):
            self._wait_rate()
            with self._lock:
                self.requests_sent += 1
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as r:
                    return json.loads(r.read())
            except urllib.error.HTTPError as e:
                if e.code in (429, 500, 502, 503, 504) and attempt < self.max_retries:
                    time.sleep(delay + random.random() * delay)
                    delay *= 2
                    continue
                raise FeaturescopeError(f"judge endpoint {self.base_url} answered HTTP {e.code} ({e.reason})") from None
            except (urllib.error.URLError, TimeoutError, OSError) as e:
                if attempt < self.max_retries:
                    time.sleep(delay + random.random() * delay)
                    delay *= 2
                    continue
                reason = getattr(e, "reason", e)
                raise FeaturescopeError(
                    f"judge endpoint {self.base_url} cannot be reached ({reason}) after {attempt + 1} tries"
                ) from None
            except json.JSONDecodeError:
                raise FeaturescopeError(
                    f"judge endpoint {self.base_url} did not answer with JSON (not an OpenAI-compatible endpoint?)"
                ) from None
        raise AssertionError("unreachable")

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
        doc = self._post(body)
        try:
            content = (doc["choices"][0].get("logprobs") or {}).get("content") or []
            top = {t["token"]: t["logprob"] for t in content[0].get("top_logprobs", [])} if content else {}
        except (KeyError, IndexError, TypeError, AttributeError) as e:
            raise FeaturescopeError(
                f"judge endpoint {self.base_url} did not answer like an OpenAI-compatible "
                f"/chat/completions endpoint ({type(e).__name__})"
            ) from None
        return aggregate_number_logprobs(top) if top else None

    def check(self) -> None:
        """One tiny request, so that a wrong URL, model or key fails before any answer is generated."""
        self._ask("Reply with the number 0.")

    def _check_budget(self, n: int) -> None:
        if self.max_requests is not None and self.requests_sent + n > self.max_requests:
            raise FeaturescopeError(
                f"judge spend cap: scoring needs {n} more requests but {self.requests_sent} of the cap of "
                f"{self.max_requests} are used (FEATURESCOPE_JUDGE_MAX_REQUESTS); raise the cap to go on"
            )

    def score_many(self, trait: Any, questions: Sequence[str], answers: Sequence[str]) -> list[Score]:
        prompts: list[str] = []
        for q, a in zip(questions, answers):
            prompts.append(trait.judge_prompt(q, a))
            prompts.append(COHERENCE_RUBRIC.replace("{question}", q).replace("{answer}", a))
        self._check_budget(len(prompts))
        with ThreadPoolExecutor(max_workers=self.concurrency) as ex:
            vals = list(ex.map(self._ask, prompts))
        out = []
        for t, c in zip(vals[0::2], vals[1::2]):
            out.append(
                Score(trait=t if t is not None else 0.0, coherence=c if c is not None else 0.0, refusal=t is None)
            )
        return out


def _env_num(name: str, default: Any, kind: Any) -> Any:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError:
        raise FeaturescopeError(f"{name}={raw!r} is not a number") from None
