import http.server
import json
import math
import threading

import pytest

from featurescope.judge import OpenAIJudge, Score, aggregate_number_logprobs, agreement, distinct_bigram_ratio, spearman
from featurescope.traits import load_trait


def test_aggregate_number_logprobs():
    top = {"80": math.log(0.5), "90": math.log(0.25), "hello": math.log(0.25)}
    assert aggregate_number_logprobs(top) == pytest.approx((0.5 * 80 + 0.25 * 90) / 0.75)
    assert aggregate_number_logprobs({"REF": math.log(0.9), "5": math.log(0.05)}) is None


def test_distinct_bigrams_detects_repetition():
    assert distinct_bigram_ratio("the cat sat on the mat today") == 1.0
    assert distinct_bigram_ratio("boil an egg: " * 10) < 0.4


def test_spearman():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)


class OracleJudge:
    name = "oracle"

    def __init__(self):
        import pathlib

        from featurescope.judge import LABELS_PATH

        self.table = {
            json.loads(line)["response"]: json.loads(line)["score"]
            for line in pathlib.Path(LABELS_PATH).read_text().splitlines()
        }

    def score_many(self, trait, questions, answers):
        return [Score(trait=float(self.table[a]), coherence=100.0) for a in answers]


def test_agreement_of_a_perfect_judge_is_one():
    r = agreement(OracleJudge())
    assert r["n"] >= 60 and r["accuracy"] == 1.0 and r["spearman"] == pytest.approx(1.0)
    assert 0.4 <= r["chance"] <= 0.6 and set(r["per_trait"]) >= {"evil", "sycophancy", "hallucination"}


def test_openai_judge_against_a_local_endpoint():
    seen = []

    class H(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.path, body, self.headers.get("Authorization")))
            top = [{"token": "70", "logprob": math.log(0.5)}, {"token": "90", "logprob": math.log(0.5)}]
            out = {
                "choices": [
                    {
                        "message": {"content": "70"},
                        "logprobs": {"content": [{"token": "70", "logprob": 0, "top_logprobs": top}]},
                    }
                ]
            }
            data = json.dumps(out).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *a):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), H)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    try:
        j = OpenAIJudge(base_url=f"http://127.0.0.1:{srv.server_port}/v1", model="judge-x", api_key="k", timeout=5)
        s = j.score_many(load_trait("evil"), ["Q?"], ["A."])
    finally:
        srv.shutdown()
    assert s[0].trait == pytest.approx(80.0) and s[0].coherence == pytest.approx(80.0)
    assert all(p == "/v1/chat/completions" and b["top_logprobs"] == 20 and a == "Bearer k" for p, b, a in seen)
    # the trait and the coherence prompts are sent concurrently: find the trait one, whatever arrived first
    contents = [b["messages"][0]["content"] for _, b, _ in seen]
    assert all("Q?" in c for c in contents) and any("evil" in c for c in contents)


def test_openai_judge_needs_configuration(monkeypatch):
    monkeypatch.delenv("FEATURESCOPE_JUDGE_URL", raising=False)
    from featurescope.errors import FeaturescopeError

    with pytest.raises(FeaturescopeError, match="FEATURESCOPE_JUDGE_URL"):
        OpenAIJudge()
