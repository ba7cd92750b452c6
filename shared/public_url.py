"""The one rule for where absolute links point: API responses and webhook bodies alike.

`VLMQ_PUBLIC_URL` wins when set (behind a proxy it is the only right answer). Without
it, a response links to the host its request came in on when that host is trusted
(`link_host_trusted`: the client writes `Host`, so an untrusted one would put its links
in our answers); a webhook body, built on the worker with no request, and a response to an
untrusted host link to what `vlmq up` serves on (`VLMQ_SERVED_URL`, which it sets for the
processes it starts), else to the local default.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from shared.settings import Settings

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
_HOST = re.compile(r"(?:\[(?P<address>[0-9A-Fa-f:.]+)\]|(?P<name>[A-Za-z0-9.-]+))(?::[0-9]{1,5})?")


def host_name(host: str) -> str | None:
    """The name in a `Host` header value (`Shop.Example:8000` → `shop.example`), or None unless it is only a
    name or address and a port (no user, path or other characters that would change a link built from it)."""
    if (match := _HOST.fullmatch(host)) is None:
        return None
    return (match["address"] or match["name"]).lower().rstrip(".")


def allowed_hosts(settings: Settings) -> tuple[str, ...]:
    """`VLMQ_ALLOWED_HOSTS` when set, else loopback and the hosts of `VLMQ_PUBLIC_URL` and `VLMQ_SERVED_URL`."""
    if settings.allowed_hosts:
        return tuple(host.lower() for host in settings.allowed_hosts)
    configured = (urlsplit(url).hostname for url in (settings.public_url, settings.served_url) if url)
    return (*LOOPBACK_HOSTS, *(host for host in configured if host))


def link_host_trusted(settings: Settings, host: str) -> bool:
    """Whether links may name `host`, the request's `Host` header."""
    return host_name(host) in allowed_hosts(settings)


def base_url(settings: Settings, request_url: str | None = None) -> str:
    """The base of absolute links, without a trailing slash; `request_url` is the request's own, if any."""
    return (settings.public_url or request_url or settings.served_url or DEFAULT_BASE_URL).rstrip("/")
