"""OpenAI-compatible servers that tests start on 127.0.0.1 and stop: a free port, the start, and the wait
until the server lists its models."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running(argv: list[str], port: int, *, env: dict, log: Path, timeout: float) -> Iterator[str]:
    """Start `argv` (a server listening on `port`), its output in `log`; the base URL (…/v1) once GET /v1/models
    answers; the server stopped afterwards. A server that exits or does not answer within `timeout` seconds fails
    the test with the end of its log."""
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(f"{url}/models", timeout=5).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"{Path(argv[0]).name} {' '.join(argv[1:3])} did not start:\n"
                                f"{log.read_text(errors='replace')[-3000:]}")
                time.sleep(1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
