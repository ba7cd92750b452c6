"""Downloads an image given by URL, at submit time, under the SSRF guard.

The web server fetches it (not the GPU worker), so a bad URL is a 4xx on the
request that named it and the job stores the bytes like any upload. The download
goes to the address the guard approved, follows no redirects, stops reading one byte
past the size limit, and ends at a deadline that bounds the whole exchange, so a host
that trickles its headers or body cannot hold a web thread past it.
"""

from __future__ import annotations

import threading

import urllib3
from urllib3.exceptions import HTTPError

from shared.http_deadline import Deadline, bound_by
from shared.settings import Settings
from shared.ssrf import AllowList, check_url, pinned_pool
from web.errors import ApiError

CHUNK = 64 * 1024


class ByteBudget:
    """Bytes one request may still download, shared by its concurrent downloads.

    A batch of URLs whose images are each under the image limit could still add up to
    gigabytes in the web process; every downloaded chunk is charged here first.
    `stop()` makes the other downloads give up at their next chunk.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._left = limit
        self._stopped = False
        self._lock = threading.Lock()

    def charge(self, size: int) -> None:
        with self._lock:
            if self._stopped:
                raise ApiError("download_stopped", "another item of this request failed first")
            self._left -= size
            if self._left < 0:
                self._stopped = True
                raise ApiError(
                    "batch_too_large",
                    f"the images of this request add up to more than {self.limit} bytes (VLMQ_MAX_BATCH_BYTES): "
                    "split it into several batches",
                    413,
                )

    def stop(self) -> None:
        with self._lock:
            self._stopped = True


def fetch_image(url: str, settings: Settings, budget: ByteBudget | None = None) -> bytes:
    """The bytes at `url`, or a `ServiceError` (`UnsafeUrl`, `ApiError`) saying why they could not be had."""
    target = check_url(url, AllowList.parse(settings.image_url_allow_hosts), "image", "VLMQ_IMAGE_URL_ALLOW_HOSTS")
    timeout = settings.image_fetch_timeout_s
    with Deadline(timeout) as deadline:
        pool = bound_by(pinned_pool(target, urllib3.Timeout(total=timeout)), deadline)
        try:
            response = pool.urlopen(
                "GET",
                target.path,
                headers={"Host": target.host_header, "User-Agent": "vlmq-image-fetch/1", "Accept": "image/*"},
                redirect=False,
                preload_content=False,
            )
            try:
                if response.status != 200:
                    raise ApiError(
                        "image_fetch_failed",
                        f"fetching image_url answered HTTP {response.status}; it must answer 200",
                    )
                body = _read_limited(response, settings.max_image_bytes, budget)
            finally:
                response.release_conn()
            if deadline.expired:  # a cut socket can look like a short, complete answer
                raise _too_slow(timeout)
            return body
        except (HTTPError, OSError) as exc:
            if deadline.expired:
                raise _too_slow(timeout) from None
            raise ApiError("image_fetch_failed", f"image_url could not be fetched: {type(exc).__name__}") from None
        finally:
            pool.close()


def _too_slow(timeout: float) -> ApiError:
    return ApiError("image_fetch_failed", f"image_url was not downloaded within {timeout:g} s (the deadline)")


def _read_limited(response: urllib3.BaseHTTPResponse, max_bytes: int, budget: ByteBudget | None) -> bytes:
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise ApiError("image_too_large", f"image_url holds {declared} bytes; the limit is {max_bytes} bytes", 413)
    body = bytearray()
    for chunk in response.stream(CHUNK):
        body += chunk
        if budget is not None:
            budget.charge(len(chunk))
        if len(body) > max_bytes:
            raise ApiError("image_too_large", f"image_url holds more than {max_bytes} bytes, the limit", 413)
    return bytes(body)
