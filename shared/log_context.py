"""The request id (and job id) that every log line written while serving them carries.

The web binds the id of the HTTP request; a worker binds the id stored with the job it runs
(or with the job of the webhook it sends), so one id follows a request from the web's access
line through the worker's lines to its webhook deliveries. Context variables are per thread
(and per task), so the threads of one worker process never mix their ids.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_request_id: ContextVar[str | None] = ContextVar("vlmq_request_id", default=None)
_job_id: ContextVar[str | None] = ContextVar("vlmq_job_id", default=None)


def current_request_id() -> str | None:
    return _request_id.get()


@contextmanager
def bound(request_id: str | None, job_id: str | None = None) -> Iterator[None]:
    """Log lines written inside carry `request_id` and `job_id`."""
    request_token, job_token = _request_id.set(request_id), _job_id.set(job_id)
    try:
        yield
    finally:
        _request_id.reset(request_token)
        _job_id.reset(job_token)


def bind_request_id(request_id: str) -> None:
    """Bind for the rest of this context (a web request: its teardown calls `unbind`)."""
    _request_id.set(request_id)


def unbind() -> None:
    _request_id.set(None)
    _job_id.set(None)


class ContextFilter(logging.Filter):
    """Copies the bound ids onto every record a handler formats."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get()
        record.job_id = _job_id.get()
        return True
