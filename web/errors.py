"""JSON errors everywhere: `{"error": {"code", "message"}}` with the right status."""

from __future__ import annotations

import logging

from flask import Flask, Response, g, jsonify, render_template, request
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from shared.db import is_storage_full
from shared.errors import ServiceError

log = logging.getLogger(__name__)

# How long a client is told to wait when the database cannot be reached (a restart, a failover).
DATABASE_RETRY_AFTER_S = 5


class ApiError(ServiceError):
    """A `ServiceError` raised by the web, which may add response headers (`Retry-After`)."""

    def __init__(self, code: str, message: str, status: int = 400, headers: dict[str, str] | None = None) -> None:
        super().__init__(code, message, status)
        self.headers = headers or {}


class ErrorDetail(BaseModel):
    code: str = Field(description="stable and machine-readable, e.g. `job_not_found`")
    message: str = Field(description="what was wrong and what is accepted")


class Error(BaseModel):
    """The body of every error response."""

    # One model both renders (`error_response`) and documents (`/openapi.json`) it.
    error: ErrorDetail


def error_response(status: int, code: str, message: str) -> tuple[Response, int]:
    g.error_code = code  # counted by status and code for /metrics (web/request_ids.py)
    return jsonify(Error(error=ErrorDetail(code=code, message=message)).model_dump()), status


def describe_validation_error(exc: ValidationError) -> str:
    """One readable line per problem, naming the field, e.g. `params.top_p: ...`."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "body"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ServiceError)
    def _service_error(exc: ServiceError) -> tuple[Response | str, int, dict[str, str]]:
        """Every error of the family, whichever side raised it: pages get HTML, the rest JSON."""
        headers = exc.headers if isinstance(exc, ApiError) else {}
        if not _wants_json():
            g.error_code = exc.code
            return render_template("error.html", error=exc), exc.status, headers
        return *error_response(exc.status, exc.code, exc.message), headers

    @app.errorhandler(ValidationError)
    def _validation_error(exc: ValidationError) -> tuple[Response, int]:
        return error_response(400, "invalid_request", describe_validation_error(exc))

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[Response, int] | HTTPException:
        if not _wants_json():
            return exc
        code = (exc.name or "error").lower().replace(" ", "_")
        response, status = error_response(exc.code or 500, code, exc.description or exc.name)
        # Keep what the exception says besides its body: `Allow` on a 405, `Retry-After`...
        response.headers.extend((k, v) for k, v in exc.get_headers() if k.lower() != "content-type")
        return response, status

    @app.errorhandler(OperationalError)
    def _database_unavailable(exc: OperationalError) -> tuple[Response | str, int, dict[str, str]]:
        """The database is down or unreachable: nothing was stored, so the client may simply retry.
        A full disk is said as such: the operator, not a retry, fixes it."""
        if is_storage_full(exc):
            log.error("storage full on %s %s: %s", request.method, request.path, exc.orig or exc)
            return _service_error(
                ApiError(
                    "storage_full",
                    "the server's storage is full, so nothing was stored or changed; retry once an operator has "
                    "freed disk space",
                    507,
                )
            )
        log.warning("database unavailable on %s %s: %s", request.method, request.path, exc.orig or exc)
        return _service_error(
            ApiError(
                "database_unavailable",
                f"the database cannot be reached right now; nothing was changed; retry in {DATABASE_RETRY_AFTER_S} s",
                503,
                {"Retry-After": str(DATABASE_RETRY_AFTER_S)},
            )
        )

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[Response, int]:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "the server hit an unexpected error; it has been logged")


def _wants_json() -> bool:
    """Pages answer errors in HTML; everything else (the API, health checks) in JSON."""
    return not request.path.startswith(("/jobs/", "/batches/")) and request.path != "/"
