"""Refuses text no database can store (NUL, lone surrogates) in a request's path, query and keys.

PostgreSQL cannot compare or store a NUL character, so `GET /v1/jobs/job%00x` would be
a 500 there and a plain 404 on SQLite; the same goes for query arguments and the
`Idempotency-Key` header. One check before any route keeps both databases answering 400.
"""

from __future__ import annotations

from flask import Flask, request

from shared.safe_json import UnsafeJson, check_text
from web.errors import ApiError

CHECKED_HEADERS = ("Idempotency-Key",)


def register_request_guard(app: Flask) -> None:
    @app.before_request
    def _refuse_unstorable_text() -> None:
        try:
            check_text(request.path, "the URL path")
            for name, value in request.args.items(multi=True):
                check_text(name, "a query argument's name")
                check_text(value, f"query argument {name!r}")
            for header in CHECKED_HEADERS:
                check_text(request.headers.get(header, ""), f"the {header} header")
        except UnsafeJson as exc:
            raise ApiError("invalid_request", str(exc)) from None
