"""Runs the Flask app under gunicorn with threads (waiting requests hold a thread)."""

from __future__ import annotations

import re
import socket
from typing import Any

from gunicorn import glogging
from gunicorn.app.base import BaseApplication

from shared.log_format import gunicorn_logconfig
from shared.settings import Settings
from web.app import create_app
from web.page_session import CSRF_FIELD

# Gunicorn's default format logs `%(u)s`, the Basic-auth user name: a client that sends its
# API key that way would have it written to the log. This one leaves it (and cookies) out, and
# ends with the request id the app answered with (`X-Request-ID`), so a line finds the job's lines.
ACCESS_LOG_FORMAT = '%(h)s %(t)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s" rid=%({x-request-id}o)s'
# The pages' image and download links carry their CSRF token in the query (links cannot send headers).
_CSRF_VALUE = re.compile(rf"(\b{CSRF_FIELD}=)[^&\s]*")


PROBES = frozenset({"/healthz", "/readyz"})


class AccessLogger(glogging.Logger):
    """Gunicorn's logger, with the CSRF token of every logged URL blanked (the log is no place for a token), and
    without access lines for health probes that got their usual answer (200, or 503 from /readyz while not
    ready): `vlmq up` polls twice a second while it starts, balancers poll all day, and the state they read is
    reported elsewhere (`vlmq up`'s own lines, /metrics). Any other answer is logged."""

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if req.path in PROBES and resp.status_code in (200, 503):
            return
        super().access(resp, req, environ, request_time)

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
        atoms = super().atoms(resp, req, environ, request_time)
        for name in ("r", "q", "f"):
            if isinstance(atoms.get(name), str):
                atoms[name] = _CSRF_VALUE.sub(r"\1-", atoms[name])
        return atoms


class _Gunicorn(BaseApplication):
    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self._settings = settings
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return create_app(self._settings)


def listen_on(host: str, port: int) -> socket.socket:
    """Take the web port before anything starts, so a port another server holds is refused at once (OSError)
    and whatever answers on it afterwards is this service; the web server inherits it (`--fd`)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=2048)


def serve(settings: Settings, host: str, port: int, workers: int, threads: int, fd: int | None = None) -> int:
    """Serve on `host:port`, or on the listening socket inherited as file descriptor `fd`."""
    options = {
        "bind": f"fd://{fd}" if fd is not None else f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "timeout": int(settings.max_wait_s) + 60,
        "keepalive": settings.keepalive_s,
        "accesslog": "-",
        "access_log_format": ACCESS_LOG_FORMAT,
        "logger_class": AccessLogger,
    }
    if logconfig := gunicorn_logconfig(settings.log_format):
        options["logconfig_dict"] = logconfig
    _Gunicorn(settings, options).run()
    return 0
