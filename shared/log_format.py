"""Log output for every vlmq process: readable text (default) or one JSON object a line.

`VLMQ_LOG_FORMAT=json` is for log shippers (Loki, Elasticsearch, CloudWatch): each line has
`time`, `level`, `logger`, `message`, and `request_id` / `job_id` when the line was written
for a request or a job (`shared.log_context`), plus `exception` with the traceback.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Literal

from shared.log_context import ContextFilter
from shared.quiet_logs import silence_known_noise

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines in messages and tracebacks are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("request_id", "job_id"):
            if value := getattr(record, key, None):
                line[key] = value
        # Gunicorn writes its access line after the request's context is gone: read the response header.
        access = record.args if record.name == "gunicorn.access" and isinstance(record.args, dict) else {}
        if request_id := access.get("{x-request-id}o"):
            line["request_id"] = request_id
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def make_formatter(log_format: LogFormat) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def configure_logging(log_format: LogFormat) -> None:
    """Root logging for a vlmq process: INFO and up on stderr in `log_format`, ids attached, known-harmless
    third-party lines left out (`shared.quiet_logs`)."""
    handler = logging.StreamHandler()
    handler.setFormatter(make_formatter(log_format))
    handler.addFilter(ContextFilter())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    silence_known_noise()


def gunicorn_logconfig(log_format: LogFormat) -> dict[str, Any] | None:
    """Gunicorn's own loggers (errors, access lines) in JSON too; None keeps its text output."""
    if log_format != "json":
        return None
    handler = {"class": "logging.StreamHandler", "formatter": "json", "filters": ["context"]}
    return {
        "formatters": {"json": {"()": JsonFormatter}},
        "filters": {"context": {"()": ContextFilter}},
        "handlers": {"console": handler | {"stream": "ext://sys.stderr"}},
        "root": {"level": "INFO", "handlers": ["console"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": [], "propagate": True},
            "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": True},
        },
    }
