"""API keys over HTTP: the admin API (off without VLMQ_ADMIN_KEY, refused without it), revocation and
rotation take effect at once, expiry is a 401 that says so, and last use moves at most once a minute."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from shared.clock import utcnow
from shared.models import ApiKey
from shared.settings import Settings
from tests.support.factories import api_key, bearer
from web.app import create_app

ADMIN_KEY = "admin-key-for-tests-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    app = create_app(settings.model_copy(update={"auth_enabled": True, "admin_key": ADMIN_KEY}))
    yield app
    app.extensions["vlmq"].engine.dispose()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[timedelta], None]:
    """Moves the time the web app sees (keys are checked against it) forward by the given amount."""
    offset = timedelta()

    def fake_now() -> datetime:
        return utcnow() + offset

    def advance(by: timedelta) -> None:
        nonlocal offset
        offset += by

    monkeypatch.setattr("web.auth.utcnow", fake_now)
    return advance


def new_key(client: FlaskClient, tenant: str = "shop-a", **fields: object) -> dict:
    response = client.post("/v1/admin/keys", json={"tenant": tenant, **fields}, headers=ADMIN)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def key_count(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(ApiKey))


def test_the_admin_api_is_not_served_without_an_admin_key(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"auth_enabled": True}))
    client = app.test_client()
    assert client.get("/v1/admin/keys", headers=ADMIN).status_code == 404
    assert client.post("/v1/admin/keys", json={"tenant": "shop-a"}, headers=ADMIN).status_code == 404
    app.extensions["vlmq"].engine.dispose()


def test_the_admin_api_refuses_a_missing_or_wrong_admin_key(
    client: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    tenant_key = api_key(sessions, "shop-a")
    refused = ({}, bearer(ADMIN_KEY + "x"), bearer(ADMIN_KEY[:-1]), bearer(tenant_key), {"Authorization": ADMIN_KEY})
    for headers in refused:
        for response in (
            client.get("/v1/admin/keys", headers=headers),
            client.post("/v1/admin/keys", json={"tenant": "shop-b"}, headers=headers),
        ):
            assert response.status_code == 401, headers
            assert response.get_json()["error"]["code"] == "invalid_admin_key"
    assert key_count(sessions) == 1, "nothing was created"
    assert [key["tenant_id"] for key in client.get("/v1/admin/keys", headers=ADMIN).get_json()["data"]] == ["shop-a"]


def test_a_revoked_key_is_refused_at_once(client: FlaskClient) -> None:
    created = new_key(client)
    assert created["status"] == "active" and created["key"].startswith("vlmq_")
    assert client.get("/v1/jobs", headers=bearer(created["key"])).status_code == 200
    revoked = client.post(f"/v1/admin/keys/{created['id']}/revoke", headers=ADMIN)
    assert revoked.status_code == 200 and revoked.get_json()["status"] == "revoked"
    assert "key" not in revoked.get_json(), "the clear key is shown only when it is made"
    refused = client.get("/v1/jobs", headers=bearer(created["key"]))
    assert refused.status_code == 401 and refused.get_json()["error"]["code"] == "invalid_api_key"
    again = client.post(f"/v1/admin/keys/{created['id']}/revoke", headers=ADMIN)
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "key_not_live"
    assert client.post("/v1/admin/keys/key_nope/revoke", headers=ADMIN).status_code == 404


def test_rotation_gives_the_tenant_a_new_key_and_refuses_the_old_one(
    client: FlaskClient, clock: Callable[[timedelta], None]
) -> None:
    old = new_key(client)
    rotated = client.post(f"/v1/admin/keys/{old['id']}/rotate", headers=ADMIN)
    assert rotated.status_code == 201
    new = rotated.get_json()
    assert new["tenant_id"] == "shop-a" and new["id"] != old["id"]
    assert client.get("/v1/jobs", headers=bearer(old["key"])).status_code == 401
    assert client.get("/v1/jobs", headers=bearer(new["key"])).status_code == 200
    assert client.post(f"/v1/admin/keys/{old['id']}/rotate", headers=ADMIN).status_code == 409

    # With a grace period the old key keeps working until it ends.
    graced = client.post(f"/v1/admin/keys/{new['id']}/rotate", json={"grace_s": 3600}, headers=ADMIN).get_json()
    assert client.get("/v1/jobs", headers=bearer(new["key"])).status_code == 200
    assert client.get("/v1/jobs", headers=bearer(graced["key"])).status_code == 200
    clock(timedelta(minutes=61))
    assert client.get("/v1/jobs", headers=bearer(new["key"])).status_code == 401
    assert client.get("/v1/jobs", headers=bearer(graced["key"])).status_code == 200


def test_an_expired_key_is_refused_with_a_message_that_says_so(
    client: FlaskClient, clock: Callable[[timedelta], None]
) -> None:
    created = new_key(client, expires_in=3600)
    assert created["expires_at"] is not None
    assert client.get("/v1/jobs", headers=bearer(created["key"])).status_code == 200
    clock(timedelta(hours=1, seconds=1))
    refused = client.get("/v1/jobs", headers=bearer(created["key"]))
    assert refused.status_code == 401
    error = refused.get_json()["error"]
    assert error["code"] == "api_key_expired" and "expired at" in error["message"]
    [listed] = client.get("/v1/admin/keys?tenant=shop-a", headers=ADMIN).get_json()["data"]
    assert listed["status"] == "active", "the admin API reads the real clock"


def test_last_use_is_written_at_most_once_a_minute(
    client: FlaskClient, sessions: sessionmaker[Session], clock: Callable[[timedelta], None]
) -> None:
    created = new_key(client)

    def last_used() -> datetime | None:
        with sessions() as session:
            return session.get_one(ApiKey, created["id"]).last_used_at

    assert last_used() is None
    client.get("/v1/jobs", headers=bearer(created["key"]))
    first = last_used()
    assert first is not None
    clock(timedelta(seconds=30))
    client.get("/v1/jobs", headers=bearer(created["key"]))
    assert last_used() == first, "within a minute the row is not written again"
    clock(timedelta(seconds=31))
    client.get("/v1/jobs", headers=bearer(created["key"]))
    assert last_used() > first + timedelta(seconds=60)
    [listed] = client.get("/v1/admin/keys", headers=ADMIN).get_json()["data"]
    assert listed["last_used_at"] is not None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "tenant"),
        ({"tenant": "shop a"}, "tenant"),
        ({"tenant": "shop-a", "expires_in": 5}, "expires_in"),
        ({"tenant": "shop-a", "colour": "red"}, "colour"),
    ],
)
def test_bad_key_requests_are_400_and_change_nothing(
    client: FlaskClient, sessions: sessionmaker[Session], body: dict, field: str
) -> None:
    response = client.post("/v1/admin/keys", json=body, headers=ADMIN)
    assert response.status_code == 400 and field in response.get_json()["error"]["message"]
    assert client.post("/v1/admin/keys", data="nope", headers=ADMIN).status_code == 400
    created = new_key(client)
    bad_rotation = client.post(f"/v1/admin/keys/{created['id']}/rotate", json={"grace_s": -1}, headers=ADMIN)
    assert bad_rotation.status_code == 400
    assert key_count(sessions) == 1
    assert client.get("/v1/jobs", headers=bearer(created["key"])).status_code == 200
