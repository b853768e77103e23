"""JSON requests to OpenAI-compatible servers, with a timeout and retries: the one client the
endpoint evaluator and the served generation backend share.

A timeout, a refused connection or HTTP 429/5xx is retried after 1, 2, 4 ... s, or after the
server's Retry-After; any other HTTP error, or the last failure, is an SrlmError that names the
URL and `fix`, the setting to check.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from ..errors import SrlmError

RETRY_STATUS = (429, 500, 502, 503, 504)
MAX_RETRY_AFTER_S = 60.0


def headers(api_key: str | None) -> dict:
    return {"Content-Type": "application/json", **({"Authorization": f"Bearer {api_key}"} if api_key else {})}


def request_json(url: str, body: dict | None, *, headers: dict, timeout_s: float, attempts: int, fix: str) -> dict:
    """The decoded JSON reply of a POST of `body` (a GET when body is None)."""
    data = None if body is None else json.dumps(body).encode()
    for attempt in range(attempts):
        wait = 2.0 ** attempt
        request = urllib.request.Request(url, data=data, headers=headers, method="GET" if body is None else "POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                raw = response.read()
            try:
                return json.loads(raw)
            except json.JSONDecodeError:
                raise SrlmError(f"{url}: the reply is not JSON ({raw[:200]!r})") from None
        except urllib.error.HTTPError as exc:
            if exc.code not in RETRY_STATUS or attempt == attempts - 1:
                detail = exc.read()[:300].decode("utf-8", "replace")
                raise SrlmError(f"{url}: HTTP {exc.code} after {attempt + 1} attempt(s): {detail}") from None
            wait = retry_after(exc.headers.get("Retry-After"), wait)
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            if attempt == attempts - 1:
                raise SrlmError(f"{url}: no answer after {attempts} attempt(s) ({exc}); {fix}") from None
        time.sleep(wait)
    raise AssertionError("unreachable")


def retry_after(header: str | None, default: float) -> float:
    """Seconds to wait before the next try: the server's Retry-After (seconds form) when it sent one."""
    try:
        return min(max(float(header), 0.0), MAX_RETRY_AFTER_S) if header else default
    except ValueError:
        return default
