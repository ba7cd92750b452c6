"""The command line's HTTP client: one place that turns network and API failures into one clear line."""

from __future__ import annotations

import time
from typing import Any

import requests

# Exit codes of the client commands (`vlmq submit`, `vlmq batch run`, `vlmq jobs`...).
EXIT_OK = 0
EXIT_JOB_FAILED = 1  # the job (or some of the batch's jobs) failed or was canceled
EXIT_REFUSED = 2  # the server refused the request, or the command line was wrong
EXIT_STILL_RUNNING = 3  # the deadline passed before the work ended
EXIT_UNREACHABLE = 4  # no answer from the server

# A rate-limited request (429) is sent again after the server's Retry-After, a few times.
RATE_LIMIT_RETRIES = 5
MAX_RETRY_AFTER_S = 10.0


class CliError(Exception):
    """A failure the command reports as one line (`vlmq: ...`) and an exit code, never a traceback."""

    def __init__(self, message: str, exit_code: int = EXIT_REFUSED, api_error: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.api_error = api_error  # the server's {"code", "message"} when it refused the request


class ApiClient:
    """Calls a running vlmq's `/v1` API with the user's key."""

    def __init__(self, url: str, api_key: str | None, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.session = requests.Session()
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """The response of a 2xx answer (waiting out a rate limit); anything else raises `CliError`."""
        kwargs.setdefault("timeout", self.timeout_s)
        for _ in range(RATE_LIMIT_RETRIES):
            response = self._send(method, path, kwargs)
            if response.status_code != 429:
                break
            time.sleep(min(float(response.headers.get("Retry-After") or 1), MAX_RETRY_AFTER_S))
        if response.status_code >= 400:
            error = _api_error(response)
            raise CliError(
                f"the server refused {method} {path} ({response.status_code}): {error['code']}: {error['message']}",
                api_error=error,
            )
        return response

    def _send(self, method: str, path: str, kwargs: dict[str, Any]) -> requests.Response:
        try:
            return self.session.request(method, f"{self.url}{path}", **kwargs)
        except requests.ConnectionError:
            raise CliError(
                f"cannot connect to {self.url}: is vlmq running there? (start it with `vlmq up`, or pass --url)",
                EXIT_UNREACHABLE,
            ) from None
        except requests.Timeout:
            raise CliError(f"{self.url} did not answer within {kwargs['timeout']:g} s", EXIT_UNREACHABLE) from None
        except requests.RequestException as exc:
            raise CliError(f"request to {self.url} failed: {exc}", EXIT_UNREACHABLE) from None

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()


def _api_error(response: requests.Response) -> dict[str, str]:
    try:
        error = response.json()["error"]
        return {"code": str(error["code"]), "message": str(error["message"])}
    except (ValueError, KeyError, TypeError):
        return {"code": f"http_{response.status_code}", "message": response.text[:200].strip() or response.reason}
