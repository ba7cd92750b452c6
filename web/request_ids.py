"""Every request gets an id: the caller's `X-Request-ID` or a fresh one, echoed in the response.

The id is bound to the request's log lines (`shared.log_context`), stored with the jobs the
request creates (so the worker's lines and the webhook deliveries for them carry it too), and
every answer of 400 or more is counted by status and error code for `/metrics`.
"""

from __future__ import annotations

import re
import uuid
from http import HTTPStatus

from flask import Flask, Response, g, request

from shared import telemetry
from shared.log_context import bind_request_id, current_request_id, unbind
from web.app_state import app_state
from web.errors import ApiError

HEADER = "X-Request-ID"
# Probes answer 503 while a dependency is down by design: that is not a client being refused.
PROBES = ("/healthz", "/readyz")
# Ids of proxies and tracers (UUIDs, hex, `Root=1-...;Parent=...`) fit; nothing that could split a log line.
REQUEST_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:;=/+-]{0,127}$"
_VALID_ID = re.compile(REQUEST_ID_PATTERN)


def register_request_ids(app: Flask) -> None:
    """Runs first: even a request refused by a later check answers with its id."""

    def _take_request_id() -> None:
        given = request.headers.get(HEADER)
        if given is None or _VALID_ID.fullmatch(given):
            bind_request_id(given or _new_id())
        else:
            bind_request_id(_new_id())
            raise ApiError(
                "invalid_request_id",
                f"{HEADER} must be 1-128 characters of letters, digits and . _ : ; = / + -, starting with a "
                "letter or digit; leave it out to get one",
            )

    app.before_request_funcs.setdefault(None, []).insert(0, _take_request_id)

    @app.after_request
    def _answer_with_id(response: Response) -> Response:
        # Always bound by `_take_request_id`, which runs before every other check.
        response.headers[HEADER] = current_request_id() or _new_id()
        if response.status_code >= 400 and request.path not in PROBES:
            code = g.get("error_code") or _status_code_name(response.status_code)
            telemetry.count(app_state().redis, telemetry.REFUSED_REQUESTS, (str(response.status_code), code))
        return response

    @app.teardown_request
    def _forget_id(_exc: BaseException | None) -> None:
        unbind()


def _new_id() -> str:
    return uuid.uuid4().hex


def _status_code_name(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"
