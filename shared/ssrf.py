"""Keeps outbound requests (webhooks, image downloads) away from the service's own network (SSRF).

A URL must be http(s) and every address its host resolves to must be a public one:
loopback, private, link-local (cloud metadata lives there), CGNAT, multicast and
reserved ranges are refused unless an allowlist (`VLMQ_WEBHOOK_ALLOW_HOSTS`,
`VLMQ_IMAGE_URL_ALLOW_HOSTS`) names the host or a network holding the address.
An IPv6 address that carries an IPv4 one (IPv4-mapped and -compatible, 6to4, Teredo,
NAT64) is judged by that IPv4 address too, since the network may deliver it there.
Callers then connect to the very address that was checked (`pinned_pool`), not to
the name, which could resolve elsewhere a second time (DNS rebinding).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

import certifi
import urllib3

from shared.errors import ServiceError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_URL_LENGTH = 2048


# The code a client sees for a refused URL, by what the URL was for.
ERROR_CODES = {"webhook": "invalid_webhook", "image": "invalid_image_url"}


class UnsafeUrl(ServiceError):
    """A URL vlmq will not call; the message names the rule, the code what the URL was for."""

    def __init__(self, purpose: str, message: str) -> None:
        super().__init__(ERROR_CODES[purpose], message)


@dataclass(frozen=True)
class AllowList:
    """Exceptions to the address rules, for in-house endpoints."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowList:
        """Entries are host names or IP networks/addresses (`hooks.internal`, `10.1.0.0/16`, `127.0.0.1`)."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry.lower().rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def allows_address(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)


@dataclass(frozen=True)
class CheckedTarget:
    """A checked URL and the address to connect to."""

    scheme: str
    host: str
    port: int
    address: str
    path: str

    @property
    def host_header(self) -> str:
        default_port = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default_port else f"{host}:{self.port}"


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (tests replace this to fake remote DNS)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _split_url(url: str, purpose: str) -> SplitResult:
    """The URL's parts, or `UnsafeUrl` for a malformed or non-http(s) URL."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrl(purpose, f"the {purpose} URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl(purpose, f"the {purpose} URL is malformed: {exc}") from None
    if port == 0:
        raise UnsafeUrl(purpose, f"the {purpose} URL's port must be 1 to 65535")
    if parts.scheme not in ("http", "https"):
        raise UnsafeUrl(purpose, f"{purpose} URLs must use http or https, not {parts.scheme or 'no scheme'!r}")
    if not parts.hostname:
        raise UnsafeUrl(purpose, f"the {purpose} URL has no host")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl(purpose, f"the {purpose} URL must not hold credentials")
    if parts.fragment:
        raise UnsafeUrl(purpose, f"the {purpose} URL must not have a #fragment")
    return parts


def check_webhook_url(url: str, allow: AllowList) -> CheckedTarget:
    """`check_url` for a webhook endpoint."""
    return check_url(url, allow, "webhook", "VLMQ_WEBHOOK_ALLOW_HOSTS")


def check_url(url: str, allow: AllowList, purpose: str, allow_setting: str) -> CheckedTarget:
    """Resolve `url` once and check every address; raises `UnsafeUrl` naming the rule.

    `purpose` ("webhook", "image") picks the error code (`ERROR_CODES`); it and `allow_setting` shape the messages.
    """
    parts = _split_url(url, purpose)
    host = (parts.hostname or "").rstrip(".")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = _addresses(host, port)
    except (OSError, UnicodeError) as exc:
        raise UnsafeUrl(purpose, f"the {purpose} host {host!r} does not resolve: {exc}") from None
    if not addresses:
        raise UnsafeUrl(purpose, f"the {purpose} host {host!r} does not resolve")
    if host.lower() not in allow.hosts:
        for text in addresses:
            if (reason := blocked_reason(ipaddress.ip_address(text.split("%", 1)[0]), allow)) is not None:
                raise UnsafeUrl(
                    purpose,
                    f"the {purpose} host {host!r} resolves to {text}, a {reason} address; {purpose} URLs must "
                    f"reach a public address (operators can allow in-house hosts with {allow_setting})",
                )
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return CheckedTarget(scheme=parts.scheme, host=host, port=port, address=addresses[0], path=path)


def _addresses(host: str, port: int) -> list[str]:
    """An IP literal as is; a name through DNS."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        return resolve(host, port)


NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052: the IPv4 address is the last 32 bits
NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215: bits 48-63 and 72-87 (RFC 6052's /48 layout)
IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # RFC 4291 (deprecated): the last 32 bits


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[tuple[str, ipaddress.IPv4Address]]:
    """The IPv4 addresses an IPv6 address carries, each with the name of the scheme that carries it."""
    if address.ipv4_mapped is not None:
        return [("IPv4-mapped", address.ipv4_mapped)]
    if address.sixtofour is not None:
        return [("6to4", address.sixtofour)]
    if address.teredo is not None:
        server, client = address.teredo
        return [("Teredo", client), ("Teredo", server)]
    value = int(address)
    if address in NAT64_WELL_KNOWN:
        return [("NAT64", ipaddress.IPv4Address(value & 0xFFFFFFFF))]
    if address in NAT64_LOCAL:
        return [("NAT64", ipaddress.IPv4Address(((value >> 64) & 0xFFFF) << 16 | (value >> 40) & 0xFFFF))]
    if address in IPV4_COMPATIBLE and value > 1:  # :: and ::1 are the unspecified and loopback addresses
        return [("IPv4-compatible", ipaddress.IPv4Address(value))]
    return []


def blocked_reason(address: IPAddress, allow: AllowList) -> str | None:
    """Why vlmq must not connect to `address`, or None when it may."""
    if allow.allows_address(address):
        return None
    if isinstance(address, ipaddress.IPv6Address):
        for scheme, ipv4 in embedded_ipv4(address):
            if (reason := blocked_reason(ipv4, allow)) is not None:
                return reason if scheme == "IPv4-mapped" else f"{scheme}-wrapped {reason} ({ipv4})"
        if address.ipv4_mapped is not None or address in NAT64_WELL_KNOWN:
            return None  # the connection goes to the IPv4 address, just checked
    for reason, test in (
        ("loopback", address.is_loopback),
        ("link-local (cloud metadata)", address.is_link_local),
        ("unspecified", address.is_unspecified),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("non-public", not address.is_global),
    ):
        if test:
            return reason
    return None


def pinned_pool(target: CheckedTarget, timeout: urllib3.Timeout) -> urllib3.HTTPConnectionPool:
    """A one-connection pool to the checked address, with the URL's host for SNI and certificates."""
    if target.scheme == "https":
        return urllib3.HTTPSConnectionPool(
            target.address,
            target.port,
            timeout=timeout,
            retries=False,
            maxsize=1,
            server_hostname=target.host,
            assert_hostname=target.host,
            cert_reqs="CERT_REQUIRED",
            ca_certs=certifi.where(),
        )
    return urllib3.HTTPConnectionPool(target.address, target.port, timeout=timeout, retries=False, maxsize=1)
