"""The OpenAI-compatible judge against a local fake endpoint: retries with back-off, the spend cap, concurrency,
a dead endpoint, and the key never shown."""

from __future__ import annotations

import http.server
import json
import threading

import pytest

from featurescope.errors import FeaturescopeError
from featurescope.judges import OpenAIJudge
from featurescope.traits import load_trait


def _server(fail_first: int = 0):
    state = {"n": 0, "fails": fail_first}
    lock = threading.Lock()

    class H(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            with lock:
                state["n"] += 1
                fail = state["fails"] > 0
                if fail:
                    state["fails"] -= 1
            if fail:
                self.send_response(429)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            top = [{"token": "60", "logprob": 0.0}]
            data = json.dumps(
                {"choices": [{"logprobs": {"content": [{"token": "60", "logprob": 0, "top_logprobs": top}]}}]}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, state


def test_retries_then_succeeds():
    srv, state = _server(fail_first=2)
    try:
        j = OpenAIJudge(base_url=f"http://127.0.0.1:{srv.server_port}/v1", model="m", concurrency=1, max_retries=3)
        s = j.score_many(load_trait("evil"), ["q"], ["a"])
    finally:
        srv.shutdown()
    assert s[0].trait == pytest.approx(60.0)
    assert state["n"] == 4  # two 429s, then the trait and the coherence request


def test_gives_up_after_max_retries():
    srv, _ = _server(fail_first=100)
    try:
        j = OpenAIJudge(base_url=f"http://127.0.0.1:{srv.server_port}/v1", model="m", max_retries=1)
        with pytest.raises(FeaturescopeError, match="HTTP 429"):
            j.score_many(load_trait("evil"), ["q"], ["a"])
    finally:
        srv.shutdown()


def test_spend_cap_fails_before_sending():
    srv, state = _server()
    try:
        j = OpenAIJudge(base_url=f"http://127.0.0.1:{srv.server_port}/v1", model="m", max_requests=5)
        with pytest.raises(FeaturescopeError, match="spend cap: scoring needs 6 more requests"):
            j.score_many(load_trait("evil"), ["q"] * 3, ["a"] * 3)
        assert state["n"] == 0
        assert len(j.score_many(load_trait("evil"), ["q"] * 2, ["a"] * 2)) == 2
    finally:
        srv.shutdown()


def test_concurrent_scores_keep_order():
    srv, state = _server()
    try:
        j = OpenAIJudge(base_url=f"http://127.0.0.1:{srv.server_port}/v1", model="m", concurrency=4)
        s = j.score_many(load_trait("humor"), [f"q{i}" for i in range(10)], [f"a{i}" for i in range(10)])
    finally:
        srv.shutdown()
    assert len(s) == 10 and state["n"] == 20


def test_unreachable_endpoint_and_key_not_shown():
    j = OpenAIJudge(base_url="http://127.0.0.1:9/v1", model="m", api_key="sk-secret", max_retries=1, timeout=2)
    assert "sk-secret" not in repr(j) and "sk-secret" not in j.name
    with pytest.raises(FeaturescopeError, match="cannot be reached"):
        j.check()


def test_bad_env_number(monkeypatch):
    monkeypatch.setenv("FEATURESCOPE_JUDGE_MAX_REQUESTS", "lots")
    with pytest.raises(FeaturescopeError, match="FEATURESCOPE_JUDGE_MAX_REQUESTS"):
        OpenAIJudge(base_url="http://x/v1", model="m")
