"""The one HTTP POST of a webhook attempt, hardened against hostile receivers.

The request goes to the address the SSRF check approved (with the URL's host in
`Host` and, for https, in SNI and certificate checks), never through a proxy, never
following redirects. A deadline of connect + read timeout bounds the whole attempt, so
a receiver that trickles its status line, headers or body cannot hold a sender thread
longer; at most `MAX_EXCERPT_BYTES` of the response are read, so a huge or endless
body costs nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import urllib3
from urllib3.exceptions import HTTPError

from shared.http_deadline import Deadline, bound_by
from shared.ssrf import CheckedTarget, pinned_pool

MAX_EXCERPT_BYTES = 1024
USER_AGENT = "vlmq-webhooks/1"


@dataclass(frozen=True)
class HttpOutcome:
    status_code: int | None
    error: str | None
    excerpt: str | None
    retry_after: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def post(target: CheckedTarget, headers: dict[str, str], body: bytes, connect_s: float, read_s: float) -> HttpOutcome:
    """POST `body` to `target`; network failures come back as an outcome, never as an exception."""
    started = time.monotonic()
    request_headers = {
        **headers,
        "Host": target.host_header,
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }
    total_s = connect_s + read_s
    with Deadline(total_s) as deadline:
        pool = bound_by(pinned_pool(target, urllib3.Timeout(connect=connect_s, read=read_s, total=total_s)), deadline)
        try:
            response = pool.urlopen(
                "POST",
                target.path,
                body=body,
                headers=request_headers,
                redirect=False,
                retries=False,
                preload_content=False,
                assert_same_host=False,
            )
            if deadline.expired:  # cut mid-headers: what arrived can look like a complete answer
                response.close()
                return HttpOutcome(None, _too_slow(total_s), None, None, _ms_since(started))
            try:
                excerpt = _read_excerpt(response)
            finally:
                response.close()  # drop the connection rather than drain a body we do not want
            return HttpOutcome(
                status_code=response.status,
                error=None,
                excerpt=excerpt,
                retry_after=response.headers.get("Retry-After"),
                duration_ms=_ms_since(started),
            )
        except (HTTPError, OSError) as exc:
            error = _too_slow(total_s) if deadline.expired else _describe(exc)
            return HttpOutcome(None, error, None, None, _ms_since(started))
        finally:
            pool.close()


def _too_slow(total_s: float) -> str:
    return f"timed out: the receiver did not answer within {total_s:g} s (connect + read timeout)"


def _read_excerpt(response: urllib3.BaseHTTPResponse) -> str:
    """Up to MAX_EXCERPT_BYTES of the body; the deadline cuts a receiver that drips bytes."""
    data = b""
    try:
        while len(data) < MAX_EXCERPT_BYTES:
            chunk = response.read1(MAX_EXCERPT_BYTES - len(data))
            if not chunk:
                break
            data += chunk
    except (HTTPError, OSError):
        pass  # the status line already arrived; a body cut short does not change the outcome
    return data.decode("utf-8", errors="replace")


def _describe(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    text = str(reason or exc)
    if "timed out" in text.lower():
        return f"timed out: {text}"
    return f"{type(reason or exc).__name__}: {text}"


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
