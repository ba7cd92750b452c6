"""Per-tenant rate limits (in Redis, shared by every web process) and queue quotas: 429 with Retry-After."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from shared.settings import Settings
from tests.support.factories import api_key, bearer
from tests.support.helpers import data_uri, image_bytes, job_count, submit
from web.app import create_app


@pytest.fixture
def keys(sessions: sessionmaker[Session]) -> tuple[str, str]:
    return api_key(sessions, "shop-a"), api_key(sessions, "shop-b")


@pytest.fixture
def make_app(settings: Settings) -> Iterator:
    apps: list[Flask] = []

    def make(**overrides: object) -> Flask:
        apps.append(create_app(settings.model_copy(update={"auth_enabled": True, **overrides})))
        return apps[-1]

    yield make
    for app in apps:
        app.extensions["vlmq"].engine.dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_rate_limit_is_per_tenant_and_shared_by_web_processes(make_app, keys: tuple[str, str]) -> None:
    shop_a, shop_b = keys
    first, second = make_app(rate_limit="3/minute").test_client(), make_app(rate_limit="3/minute").test_client()
    for client in (first, second, first):
        assert client.get("/v1/jobs", headers=bearer(shop_a)).status_code == 200
    limited = second.get("/v1/jobs", headers=bearer(shop_a))
    assert limited.status_code == 429
    error = limited.get_json()["error"]
    assert error["code"] == "too_many_requests" and "3 per 1 minute" in error["message"]
    assert 0 < int(limited.headers["Retry-After"]) <= 60
    assert first.get("/v1/jobs", headers=bearer(shop_b)).status_code == 200, "another tenant is not limited"
    assert first.get("/healthz").status_code == 200, "health checks are not limited"


def test_queued_jobs_are_capped_per_tenant(make_app, keys: tuple[str, str], sessions: sessionmaker[Session]) -> None:
    shop_a, shop_b = keys
    client = make_app(max_queued_jobs_per_tenant=2).test_client()
    ids = [submit(client, image_bytes(), task="describe", headers=bearer(shop_a)).get_json()["id"] for _ in range(2)]
    refused = submit(client, image_bytes(), task="describe", headers=bearer(shop_a))
    assert refused.status_code == 429
    assert refused.get_json()["error"]["code"] == "queue_quota_exceeded"
    assert 25 <= int(refused.headers["Retry-After"]) <= 30
    items = [{"image": data_uri(image_bytes())}]
    assert client.post("/v1/batches", json={"task": "ocr", "items": items}, headers=bearer(shop_a)).status_code == 429
    assert submit(client, image_bytes(), task="describe", headers=bearer(shop_b)).status_code == 202
    assert client.post(f"/v1/jobs/{ids[0]}/cancel", headers=bearer(shop_a)).status_code == 200
    assert submit(client, image_bytes(), task="describe", headers=bearer(shop_a)).status_code == 202
    assert job_count(sessions) == 4


def test_queued_image_bytes_are_capped_per_tenant(make_app, keys: tuple[str, str]) -> None:
    shop_a, _ = keys
    red, blue = (image_bytes("BMP", (40, 40), color) for color in ("red", "blue"))  # 4.9 KB each, uncompressed
    client = make_app(max_queued_image_bytes_per_tenant=12_000).test_client()
    data = {"task": "describe", "image": [(io.BytesIO(red), "a.bmp"), (io.BytesIO(blue), "b.bmp")]}
    assert client.post("/v1/batches", data=data, headers=bearer(shop_a)).status_code == 202
    data = {"task": "describe", "image": [(io.BytesIO(image_bytes("BMP", (40, 41))), "c.bmp")]}
    refused = client.post("/v1/batches", data=data, headers=bearer(shop_a))
    assert refused.status_code == 429 and refused.get_json()["error"]["code"] == "image_quota_exceeded"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_accepted_requests_carry_no_retry_after(make_app, keys: tuple[str, str]) -> None:
    """Retry-After means "come back later": only refusals carry it."""
    client = make_app(rate_limit="5/minute").test_client()
    accepted = submit(client, image_bytes(), task="describe", headers=bearer(keys[0]))
    assert accepted.status_code == 202
    assert "Retry-After" not in accepted.headers
    assert "Retry-After" not in client.get("/v1/jobs", headers=bearer(keys[0])).headers


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_wrong_keys_are_rate_limited_per_client_address_in_one_log_line(
    make_app, keys: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    client = make_app(rate_limit="3/minute").test_client()
    caplog.set_level(logging.INFO)
    wrong = [client.get("/v1/jobs", headers=bearer("vlmq_sk_wrong")) for _ in range(3)]
    assert [response.status_code for response in wrong] == [401, 401, 401]
    limited = client.get("/v1/jobs", headers=bearer("vlmq_sk_wrong"))
    assert limited.status_code == 429 and limited.get_json()["error"]["code"] == "too_many_requests"
    assert 0 < int(limited.headers["Retry-After"]) <= 60
    other_address = client.get("/v1/jobs", headers=bearer("vlmq_sk_wrong"), environ_base={"REMOTE_ADDR": "10.9.9.9"})
    assert other_address.status_code == 401, "another client address has its own count"
    assert client.get("/v1/jobs", headers=bearer(keys[0])).status_code == 200, "a valid key counts for its tenant"
    assert not [record for record in caplog.records if record.exc_info], "no traceback"
    refusals = [record for record in caplog.records if "refused" in record.getMessage()]
    assert len(refusals) == 5 and all("\n" not in record.getMessage() for record in refusals)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_forwarded_addresses_count_only_behind_a_trusted_proxy(make_app) -> None:
    """A client writes X-Forwarded-For as it likes: taken only from as many proxies as VLMQ_TRUSTED_PROXIES says."""

    def refusals(client: FlaskClient) -> list[int]:
        return [
            client.get("/v1/jobs", headers=bearer("vlmq_sk_wrong") | {"X-Forwarded-For": f"203.0.113.{n}"}).status_code
            for n in range(3)
        ]

    assert refusals(make_app(rate_limit="2/minute").test_client()) == [401, 401, 429], "no proxy: one client"
    behind = make_app(rate_limit="2/minute", trusted_proxies=1).test_client()
    assert refusals(behind) == [401, 401, 401], "three clients behind the proxy"
