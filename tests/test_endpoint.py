"""The endpoint evaluator: bounded concurrency, retries and timeouts, and a real local
OpenAI-compatible server (`transformers serve`) answering it."""

from __future__ import annotations

import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from servers import free_port, running

from srlm_core.engine.http import retry_after
from srlm_core.errors import SrlmError
from srlm_core.judges.evaluator import EndpointEvaluator, PairwiseTemplate
from srlm_core.params import EvaluatorParams

TEMPLATE = "srlm_core/templates/h2h_pairwise_v1.txt"


class _Scripted(BaseHTTPRequestHandler):
    """Answers [[A]] after `delay` seconds; the first `failures` requests get HTTP 503."""
    delay = 0.0
    failures = 0
    lock = threading.Lock()
    seen = 0
    in_flight = 0
    most_in_flight = 0

    def do_POST(self):  # noqa: N802
        cls = type(self)
        self.rfile.read(int(self.headers["Content-Length"]))
        with cls.lock:
            cls.seen += 1
            fail = cls.seen <= cls.failures
            cls.in_flight += 1
            cls.most_in_flight = max(cls.most_in_flight, cls.in_flight)
        threading.Event().wait(cls.delay)   # not time.sleep, which the tests stub for the client
        with cls.lock:   # done before replying, so the client cannot start its next request first
            cls.in_flight -= 1
        try:
            if fail:
                self.send_response(503)
                self.send_header("Retry-After", "0")
                self.send_header("Content-Length", "4")
                self.end_headers()
                self.wfile.write(b"busy")
                return
            data = json.dumps({"choices": [{"message": {"content": "[[A]]"}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):   # the client gave up (timeout test)
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def scripted(monkeypatch):
    monkeypatch.setenv("SRLM_TEST_KEY", "k")

    def serve(delay: float = 0.0, failures: int = 0) -> str:
        handler = type("Handler", (_Scripted,), {"delay": delay, "failures": failures, "lock": threading.Lock()})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append((server, handler))
        return f"http://127.0.0.1:{server.server_port}/v1"

    servers: list = []
    yield serve, servers
    for server, _ in servers:
        server.shutdown()


def _evaluator(url: str, **overrides) -> EndpointEvaluator:
    cfg = EvaluatorParams(kind="endpoint", base_url=url, endpoint_model="m", api_key_env="SRLM_TEST_KEY",
                          **overrides)
    return EndpointEvaluator(cfg, PairwiseTemplate.load(TEMPLATE), seed=0)


@pytest.mark.parametrize("concurrency", [1, 3])
def test_requests_in_flight_never_exceed_the_bound(scripted, concurrency):
    serve, servers = scripted
    url = serve(delay=0.2)
    verdicts = _evaluator(url, concurrency=concurrency, batch_size=6).compare([("q", "a", "b")] * 12)
    handler = servers[0][1]
    assert [v.choice for v in verdicts] == ["A"] * 12 and handler.seen == 12
    assert 1 <= handler.most_in_flight <= concurrency
    if concurrency > 1:
        assert handler.most_in_flight > 1   # the requests of a batch really overlap


def test_busy_server_is_retried_until_attempts_run_out(scripted, monkeypatch):
    serve, servers = scripted
    ok = _evaluator(serve(failures=2), attempts=3, concurrency=1).compare([("q", "a", "b")])
    assert [v.choice for v in ok] == ["A"] and servers[0][1].seen == 3
    with pytest.raises(SrlmError, match="HTTP 503 after 2 attempt"):
        _evaluator(serve(failures=2), attempts=2, concurrency=1).compare([("q", "a", "b")])


def test_a_slow_server_times_out_with_a_clear_error(scripted, monkeypatch):
    monkeypatch.setattr("srlm_core.engine.http.time.sleep", lambda s: None)
    serve, servers = scripted
    with pytest.raises(SrlmError, match="no answer after 2 attempt"):
        _evaluator(serve(delay=3.0), attempts=2, timeout_s=0.3).compare([("q", "a", "b")])
    assert servers[0][1].seen == 2


@pytest.mark.parametrize("header, expected", [(None, 4.0), ("0", 0.0), ("7", 7.0), ("1e9", 60.0),
                                              ("Wed, 21 Oct 2026 07:28:00 GMT", 4.0)])
def test_retry_after(header, expected):
    assert retry_after(header, 4.0) == expected


@pytest.fixture(scope="module")
def served_m0(real_m0, tmp_path_factory):
    """`transformers serve` (the transformers library's own OpenAI-compatible server) on the real M0."""
    port = free_port()
    argv = [str(Path(sys.executable).with_name("transformers")), "serve", str(real_m0), "--device", "cpu",
            "--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    with running(argv, port, env=env, log=tmp_path_factory.mktemp("serve") / "serve.log", timeout=180) as url:
        yield url, str(real_m0)


def test_a_real_local_server_answers_concurrently_in_order(served_m0, monkeypatch):
    url, model = served_m0
    monkeypatch.setenv("SRLM_TEST_KEY", "none")
    items = [("Name a colour.", "Blue.", "Seven."), ("What is 2 + 2?", "4", "The moon."),
             ("Say hello.", "Hello!", "Goodbye."), ("Name a fruit.", "A chair.", "An apple.")]
    cfg = dict(kind="endpoint", base_url=url, endpoint_model=model, api_key_env="SRLM_TEST_KEY", max_tokens=12)
    together = EndpointEvaluator(EvaluatorParams(concurrency=4, **cfg), PairwiseTemplate.load(TEMPLATE), 0)
    alone = EndpointEvaluator(EvaluatorParams(concurrency=1, **cfg), PairwiseTemplate.load(TEMPLATE), 0)
    concurrent, sequential = together.compare(items), alone.compare(items)
    assert all(v.raw.strip() for v in concurrent)          # the model really wrote each verdict
    assert [v.raw for v in concurrent] == [v.raw for v in sequential]   # greedy, each reply to its own item
