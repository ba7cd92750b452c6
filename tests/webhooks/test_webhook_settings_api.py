"""`/v1/webhooks/default`: a tenant sets its default endpoint and rotates its signing secret with its API key."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from shared.clock import utcnow
from shared.models import Tenant
from shared.settings import Settings
from shared.webhooks.tenant_secrets import generate_secret
from tests.support.helpers import submit
from web.app import create_app
from worker.webhooks.signing import signing_secrets

HOOK = "http://127.0.0.1:9/hook"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"webhook_allow_hosts": ("127.0.0.1",)})


def test_the_default_endpoint_is_set_used_and_cleared(client: FlaskClient, png: bytes) -> None:
    assert submit(client, png, task="describe", webhook_events="completed").status_code == 400
    assert client.get("/v1/webhooks/default").get_json()["url"] is None
    assert client.put("/v1/webhooks/default", json={"url": HOOK}).get_json()["url"] == HOOK
    assert client.get("/v1/webhooks/default").get_json()["url"] == HOOK
    assert submit(client, png, task="describe", webhook_events="completed").status_code == 202, "the endpoint applies"
    assert client.put("/v1/webhooks/default", json={"url": None}).get_json()["url"] is None
    assert submit(client, png, task="describe", webhook_events="completed").status_code == 400


def test_a_rotated_secret_keeps_the_old_one_signing_for_the_window(
    client: FlaskClient, settings: Settings, sessions: sessionmaker[Session]
) -> None:
    old = client.get("/v1/webhooks/default").get_json()["secret"]
    assert client.get("/v1/webhooks/default").get_json()["secret"] == old, "made once, then the same"
    rotated = client.post("/v1/webhooks/default/secret/rotate")
    assert rotated.status_code == 200
    new = rotated.get_json()["secret"]
    assert new != old
    with sessions.begin() as session:
        assert signing_secrets(session, settings, "default", utcnow()) == [new, old]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "body", [None, {"url": 5}, {"url": "ftp://127.0.0.1/x"}, {"url": "http://10.1.2.3/x"}, {"url": HOOK, "x": 1}]
)
def test_bad_endpoints_are_400_and_change_nothing(client: FlaskClient, body: dict | None) -> None:
    client.put("/v1/webhooks/default", json={"url": HOOK})
    response = client.put("/v1/webhooks/default", json=body) if body else client.put("/v1/webhooks/default", data="x")
    assert response.status_code == 400, response.get_json()
    assert client.get("/v1/webhooks/default").get_json()["url"] == HOOK


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_configured_secret_is_not_rotated_over_the_api(settings: Settings, sessions: sessionmaker[Session]) -> None:
    configured = generate_secret()
    app: Flask = create_app(settings.model_copy(update={"webhook_secret": configured}))
    client = app.test_client()
    refused = client.post("/v1/webhooks/default/secret/rotate")
    assert refused.status_code == 409 and "VLMQ_WEBHOOK_SECRET" in refused.get_json()["error"]["message"]
    assert client.get("/v1/webhooks/default").get_json()["secret"] == configured
    with sessions() as session:
        assert session.get_one(Tenant, "default").webhook_secret == configured
    assert client.get("/v1/audit?action=webhook.secret_rotated").get_json()["data"] == []
    app.extensions["vlmq"].engine.dispose()
