"""Webhook URL rules: what is refused at submit time, and that a refusal stores and queues nothing."""

from __future__ import annotations

import ipaddress
import json
import socket

import pytest
import redis
from flask.testing import FlaskClient
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from shared import ssrf
from shared.celery_app import WEBHOOK_QUEUE
from shared.models import Job
from shared.settings import Settings
from shared.ssrf import AllowList, UnsafeUrl, blocked_reason, check_webhook_url
from tests.support.helpers import assert_nothing_stored, data_uri, submit

FAKE_DNS = {
    "shop.example": ["93.184.216.34"],
    "internal.example": ["10.0.0.7"],
    "metadata.example": ["169.254.169.254"],
    "mixed.example": ["93.184.216.34", "192.168.1.10"],
    "v6.example": ["2606:2800:220:1:248:1893:25c8:1946"],
    "mapped.example": ["::ffff:127.0.0.1"],
    "sixtofour.example": ["2002:a00:1::1"],
    "hooks.internal": ["10.1.2.3"],
    "localhost": ["127.0.0.1"],
}


@pytest.fixture(autouse=True)
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remote names resolve from a table; unknown names do not resolve."""

    def resolve(host: str, port: int) -> list[str]:
        if host in FAKE_DNS:
            return FAKE_DNS[host]
        raise OSError(f"[Errno -2] Name or service not known: {host}")

    monkeypatch.setattr(ssrf, "resolve", resolve)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.0.1", "private"),
        ("169.254.169.254", "link-local (cloud metadata)"),
        ("fe80::1", "link-local (cloud metadata)"),
        ("fd00:ec2::254", "private"),
        ("100.100.100.200", "non-public"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("::ffff:10.0.0.1", "private"),
        ("2002:7f00:1::1", "6to4-wrapped loopback (127.0.0.1)"),
        ("2002:a9fe:a9fe::", "6to4-wrapped link-local (cloud metadata) (169.254.169.254)"),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "Teredo-wrapped loopback (127.0.0.1)"),
        ("64:ff9b::a00:1", "NAT64-wrapped private (10.0.0.1)"),
        ("64:ff9b:1:7f00:0:100::", "NAT64-wrapped loopback (127.0.0.1)"),
        ("::7f00:1", "IPv4-compatible-wrapped loopback (127.0.0.1)"),
        ("::808:808", "reserved"),
        ("93.184.216.34", None),
        ("2002:5db8:d822::1", None),  # 6to4 of a public address
        ("64:ff9b::5db8:d822", None),  # NAT64 of a public address (DNS64 networks)
    ],
)
def test_blocked_addresses(address: str, reason: str | None) -> None:
    assert blocked_reason(ipaddress.ip_address(address), AllowList()) == reason


def test_check_returns_the_address_to_connect_to() -> None:
    target = check_webhook_url("https://shop.example/hooks?x=1", AllowList())
    assert (target.address, target.port, target.path, target.host_header) == (
        "93.184.216.34",
        443,
        "/hooks?x=1",
        "shop.example",
    )
    assert check_webhook_url("http://v6.example:8080", AllowList()).host_header == "v6.example:8080"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://shop.example/hook", "must use http or https, not 'ftp'"),
        ("file:///etc/passwd", "must use http or https"),
        ("shop.example/hook", "must use http or https, not 'no scheme'"),
        ("http:///hook", "has no host"),
        ("http://user:pw@shop.example/", "must not hold credentials"),
        ("http://shop.example:99999/", "malformed"),
        ("http://nowhere.example/", "does not resolve"),
        ("http://localhost/", "resolves to 127.0.0.1, a loopback address"),
        ("http://127.0.0.1:8000/", "a loopback address"),
        ("http://[::1]/", "a loopback address"),
        ("http://internal.example/", "10.0.0.7, a private address"),
        ("http://metadata.example/latest/meta-data", "link-local (cloud metadata)"),
        ("http://mixed.example/", "192.168.1.10, a private address"),
        ("http://mapped.example/", "a loopback address"),
        ("http://[2002:7f00:1::1]/", "a 6to4-wrapped loopback (127.0.0.1) address"),
        ("http://sixtofour.example/", "a 6to4-wrapped private (10.0.0.1) address"),
        ("http://" + "a" * 2050, "longer than 2048"),
    ],
)
def test_unsafe_urls_name_the_rule(url: str, message: str) -> None:
    with pytest.raises(UnsafeUrl) as raised:
        check_webhook_url(url, AllowList())
    assert message in str(raised.value)


def test_allowlist_by_host_and_by_network() -> None:
    allow = AllowList.parse(["hooks.internal", "127.0.0.0/8", "fd00::/8"])
    assert check_webhook_url("http://hooks.internal/h", allow).address == "10.1.2.3"
    assert check_webhook_url("http://127.0.0.1:9000/h", allow).address == "127.0.0.1"
    with pytest.raises(UnsafeUrl, match="private"):
        check_webhook_url("http://internal.example/", allow)


@pytest.mark.parametrize(
    ("fields", "code", "message"),
    [
        ({"webhook": "ftp://shop.example/h"}, "invalid_webhook", "webhook: webhook URLs must use http or https"),
        ({"webhook": "not a url"}, "invalid_webhook", "must use http or https"),
        ({"webhook": "http://internal.example/h"}, "invalid_webhook", "10.0.0.7, a private address"),
        ({"webhook": "http://169.254.169.254/latest"}, "invalid_webhook", "link-local (cloud metadata)"),
        ({"webhook": "http://127.0.0.1:5000/h"}, "invalid_webhook", "VLMQ_WEBHOOK_ALLOW_HOSTS"),
        (
            {"webhook": "https://shop.example/h", "webhook_events": "started,finished"},
            "invalid_request",
            "webhook_events.1: Input should be 'started' or 'completed'",
        ),
        ({"webhook": "https://shop.example/h", "webhook_events": "[]"}, "invalid_request", "webhook_events"),
        (
            {"webhook": "https://shop.example/h", "webhook_events": "[" * 100_000},
            "invalid_request",
            "webhook_events: the JSON is nested more than 32 levels deep",
        ),
        ({"webhook_events": "completed"}, "invalid_webhook", "webhook_events needs a webhook"),
    ],
)
def test_submit_rejects_bad_webhooks_and_stores_nothing(
    client: FlaskClient,
    sessions: sessionmaker[Session],
    broker: redis.Redis,
    png: bytes,
    fields: dict[str, str],
    code: str,
    message: str,
) -> None:
    response = submit(client, png, task="describe", **fields)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == code
    assert message in error["message"]
    assert_nothing_stored(sessions, broker)
    assert broker.llen(WEBHOOK_QUEUE) == 0


def test_submit_stores_a_public_webhook_and_its_events(
    client: FlaskClient, sessions: sessionmaker[Session], png: bytes
) -> None:
    response = client.post(
        "/v1/jobs",
        json={
            "image": data_uri(png),
            "task": "describe",
            "webhook": "https://shop.example/hooks/vlmq",
            "webhook_events": ["completed"],
        },
    )
    assert response.status_code == 202, response.get_json()
    with sessions() as session:
        job = session.get_one(Job, response.get_json()["id"])
    assert job.webhook_url == "https://shop.example/hooks/vlmq"
    assert job.webhook_events == ["completed"]
    multipart = submit(client, png, task="ocr", webhook="http://shop.example/h", webhook_events=json.dumps(["started"]))
    assert multipart.status_code == 202, multipart.get_json()


def test_allow_hosts_setting_is_a_comma_separated_list_checked_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLMQ_WEBHOOK_ALLOW_HOSTS", "hooks.internal, 10.20.0.0/16")
    assert Settings().webhook_allow_hosts == ("hooks.internal", "10.20.0.0/16")
    monkeypatch.setenv("VLMQ_WEBHOOK_ALLOW_HOSTS", "10.20.0.0/33")
    with pytest.raises(ValidationError, match="does not appear to be an IPv4 or IPv6 network"):
        Settings()


WRAPPED_LOOPBACK = ["2002:7f00:1::1", "64:ff9b::7f00:1", "2001:0:4136:e378:8000:63bf:80ff:fffe", "::ffff:7f00:1"]


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[ipaddress.IPv6Address]:
    """The IPv6 addresses sockets were asked to connect to; the connection itself is refused here, so a test
    that fails never reaches the address either. Redis and the database connect over IPv4 as usual."""
    made: list[ipaddress.IPv6Address] = []
    connect = socket.socket.connect

    def guarded(sock: socket.socket, address: object) -> None:
        if sock.family == socket.AF_INET6 and isinstance(address, tuple):
            made.append(ipaddress.IPv6Address(str(address[0]).split("%")[0]))
            raise ConnectionRefusedError("the test refuses every IPv6 connection")
        connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    return made


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("address", WRAPPED_LOOPBACK)
def test_ipv6_wrapping_a_loopback_address_is_refused_everywhere_and_never_contacted(
    client: FlaskClient,
    sessions: sessionmaker[Session],
    broker: redis.Redis,
    connections: list[ipaddress.IPv6Address],
    png: bytes,
    address: str,
) -> None:
    url = f"http://[{address}]:8000/hook"
    item = {"image": data_uri(png)}
    refusals = [
        client.post("/v1/jobs", json={**item, "task": "describe", "webhook": url}),
        client.post("/v1/jobs", json={"task": "describe", "image_url": url}),
        client.post("/v1/batches", json={"task": "describe", "webhook": url, "items": [item]}),
        client.post("/v1/batches", json={"task": "describe", "items": [{"image_url": url}]}),
        client.put("/v1/webhooks/default", json={"url": url}),
    ]
    for response in refusals:
        assert response.status_code == 400, response.get_json()
        message = response.get_json()["error"]["message"]
        assert "wrapped loopback (127.0.0.1) address" in message or "a loopback address" in message, message
    assert_nothing_stored(sessions, broker)
    assert client.get("/v1/webhooks/default").get_json()["url"] is None
    assert connections == []
