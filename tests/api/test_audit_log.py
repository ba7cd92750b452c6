"""The audit log: a row per action in the action's transaction, scoped to the tenant, paged and
filtered over `/v1/audit`, exported as JSON Lines and CSV, and removed by the sweeper after its retention."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
import redis
from celery import Celery
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from shared.audit import CLI_ACTOR, AuditAction, record
from shared.clock import utcnow
from shared.models import AuditEvent
from shared.settings import Settings
from tests.support.factories import api_key, bearer
from tests.support.helpers import data_uri, finish_like_a_worker, image_bytes, submit
from vlmq.keys_admin import run_keys_command
from web.app import create_app
from worker.sweeper import sweep

ADMIN_KEY = "admin-key-for-tests-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
DAY = timedelta(days=1)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"auth_enabled": True, "admin_key": ADMIN_KEY, "webhook_allow_hosts": ("127.0.0.1",)}
    )


@pytest.fixture
def keys(sessions: sessionmaker[Session]) -> tuple[str, str]:
    return api_key(sessions, "shop-a"), api_key(sessions, "shop-b")


def audit(client: FlaskClient, key: str, query: str = "") -> list[dict]:
    response = client.get(f"/v1/audit{query}", headers=bearer(key))
    assert response.status_code == 200, response.get_json()
    return response.get_json()["data"]


def test_every_action_leaves_an_audit_row_for_its_tenant_only(
    client: FlaskClient, sessions: sessionmaker[Session], keys: tuple[str, str]
) -> None:
    shop_a, shop_b = keys
    a = bearer(shop_a)
    hook = "http://127.0.0.1:9/hook"
    job = submit(client, image_bytes(), task="describe", webhook=hook, webhook_events="completed", headers=a)
    job_id = job.get_json()["id"]
    assert client.post(f"/v1/jobs/{job_id}/cancel", headers=a).status_code == 200
    assert client.post(f"/v1/jobs/{job_id}/deliveries/redeliver", headers=a).status_code == 202
    done = submit(client, image_bytes(color="blue"), task="describe", headers=a).get_json()["id"]
    finish_like_a_worker(sessions, done, {"text": "A blue mug.", "data": None})
    assert client.delete(f"/v1/jobs/{done}", headers=a).status_code == 204
    batch = client.post(
        "/v1/batches", json={"task": "describe", "items": [{"image": data_uri(image_bytes())}]}, headers=a
    )
    batch_id = batch.get_json()["id"]
    assert client.post(f"/v1/batches/{batch_id}/cancel", headers=a).status_code == 200
    assert client.put("/v1/webhooks/default", json={"url": hook}, headers=a).get_json()["url"] == hook
    secret = client.get("/v1/webhooks/default", headers=a).get_json()["secret"]
    rotated = client.post("/v1/webhooks/default/secret/rotate", headers=a).get_json()["secret"]
    assert rotated.startswith("whsec_") and rotated != secret
    created = client.post("/v1/admin/keys", json={"tenant": "shop-a"}, headers=ADMIN).get_json()
    new = client.post(f"/v1/admin/keys/{created['id']}/rotate", headers=ADMIN).get_json()
    assert client.post(f"/v1/admin/keys/{new['id']}/revoke", headers=ADMIN).status_code == 200
    # Refused actions leave no row: their transaction rolled back.
    assert client.post(f"/v1/jobs/{job_id}/cancel", headers=a).status_code == 409
    assert client.put("/v1/webhooks/default", json={"url": "http://10.0.0.1/x"}, headers=a).status_code == 400

    events = audit(client, shop_a)
    assert [(e["action"], e["target_id"]) for e in reversed(events)] == [
        ("job.submitted", job_id),
        ("job.canceled", job_id),
        ("webhook.redelivered", job_id),
        ("job.submitted", done),
        ("job.deleted", done),
        ("batch.submitted", batch_id),
        ("batch.canceled", batch_id),
        ("webhook.endpoint_changed", "shop-a"),
        ("webhook.secret_rotated", "shop-a"),
        ("key.created", created["id"]),
        ("key.rotated", created["id"]),
        ("key.revoked", new["id"]),
    ]
    with sessions() as session:
        key_a = session.scalar(select(AuditEvent.actor).where(AuditEvent.target_id == job_id).limit(1))
    assert key_a.startswith("key_") and {e["actor"] for e in events} == {key_a, "admin"}
    assert events[1]["detail"]["new_key_id"] == new["id"]
    assert audit(client, shop_b) == [], "another tenant sees none of it"


def test_the_command_line_is_audited_as_cli(settings: Settings, client: FlaskClient, keys: tuple[str, str]) -> None:
    assert run_keys_command(settings, "create", tenant="shop-a", expires_in="30d") == 0
    [created] = audit(client, keys[0])
    assert (created["action"], created["actor"]) == ("key.created", CLI_ACTOR)
    assert created["detail"]["expires_at"] is not None
    assert run_keys_command(settings, "revoke", key_id="key_nope") == 2
    assert run_keys_command(settings, "create", tenant="shop-a", expires_in="soon") == 2
    assert len(audit(client, keys[0])) == 1


def test_the_log_pages_by_cursor_and_filters_by_action_and_time(
    client: FlaskClient, sessions: sessionmaker[Session], keys: tuple[str, str]
) -> None:
    now = utcnow()
    with sessions.begin() as session:
        for days_ago in range(5):
            record(session, "shop-a", "cli", AuditAction.KEY_CREATED, f"key_{days_ago}", now - days_ago * DAY)
        record(session, "shop-a", "cli", AuditAction.JOB_CANCELED, "job_1", now)
        record(session, "shop-b", "cli", AuditAction.KEY_CREATED, "key_b", now)
    seen, cursor = [], ""
    while True:
        page = client.get(f"/v1/audit?limit=4{cursor}", headers=bearer(keys[0])).get_json()
        seen += [event["id"] for event in page["data"]]
        if not page["has_more"]:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert len(seen) == len(set(seen)) == 6 and seen == sorted(seen, reverse=True)
    assert [e["target_id"] for e in audit(client, keys[0], "?action=job.canceled")] == ["job_1"]
    assert len(audit(client, keys[0], "?action=job.canceled,key.created")) == 6
    since = (now - 2.5 * DAY).isoformat()
    until = (now - 0.5 * DAY).isoformat().replace("+00:00", "Z")
    window = audit(client, keys[0], f"?action=key.created&since={since.replace('+', '%2B')}&until={until}")
    assert sorted(e["target_id"] for e in window) == ["key_1", "key_2"]
    for query, code in (("?action=job.exploded", "invalid_action"), ("?since=yesterday", "invalid_since")):
        response = client.get(f"/v1/audit{query}", headers=bearer(keys[0]))
        assert response.status_code == 400 and response.get_json()["error"]["code"] == code
    assert client.get("/v1/audit").status_code == 401


def test_exports_parse_as_json_lines_and_csv(
    client: FlaskClient, sessions: sessionmaker[Session], keys: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("web.api.audit.EXPORT_PAGE", 3)  # several pages, so the streaming loop is exercised
    now = utcnow()
    with sessions.begin() as session:
        for index in range(7):
            detail = {"url": '=HYPERLINK("x")', "n": index}
            record(session, "shop-a", "cli", AuditAction.WEBHOOK_ENDPOINT_CHANGED, "shop-a", now, detail)
        record(session, "shop-b", "cli", AuditAction.KEY_CREATED, "key_b", now)
    jsonl = client.get("/v1/audit/export?format=jsonl", headers=bearer(keys[0]))
    assert jsonl.status_code == 200 and jsonl.content_type == "application/x-ndjson"
    rows = [json.loads(line) for line in jsonl.get_data(as_text=True).splitlines()]
    assert sorted(row["detail"]["n"] for row in rows) == list(range(7)), "this tenant's rows only"
    assert [row["id"] for row in rows] == sorted(row["id"] for row in rows), "in id (time) order"
    exported = client.get("/v1/audit/export?format=csv", headers=bearer(keys[0]))
    assert exported.content_type.startswith("text/csv")
    text = exported.get_data(as_text=True)
    assert text.startswith("\ufeff")
    table = list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))
    assert [row["id"] for row in table] == [row["id"] for row in rows]
    assert json.loads(table[0]["detail"]) == rows[0]["detail"]
    assert table[0]["action"] == "webhook.endpoint_changed" and table[0]["tenant_id"] == "shop-a"
    bad = client.get("/v1/audit/export?format=xml", headers=bearer(keys[0]))
    assert bad.status_code == 400 and bad.get_json()["error"]["code"] == "invalid_format"


def test_the_sweeper_removes_audit_rows_past_their_retention(
    settings: Settings, sessions: sessionmaker[Session], celery_app: Celery, broker: redis.Redis, keys: tuple[str, str]
) -> None:
    assert Settings().audit_retention_s >= 182 * 24 * 3600, "kept at least six months by default"
    now = utcnow()
    with sessions.begin() as session:
        for days_ago in (400, 200, 170, 1):
            record(session, "shop-a", "cli", AuditAction.KEY_CREATED, f"key_{days_ago}", now - days_ago * DAY)
    report = sweep(settings, sessions, celery_app, broker, now)
    assert report.purged_audit_events == 2
    report = sweep(settings, sessions, celery_app, broker, now + 20 * DAY)  # the clock moves on
    assert report.purged_audit_events == 1
    with sessions() as session:
        assert session.scalars(select(AuditEvent.target_id)).all() == ["key_1"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_with_auth_off_the_actor_is_anonymous(settings: Settings, sessions: sessionmaker[Session]) -> None:
    app: Flask = create_app(settings.model_copy(update={"auth_enabled": False}))
    client = app.test_client()
    job_id = submit(client, image_bytes(), task="describe").get_json()["id"]
    [event] = client.get("/v1/audit").get_json()["data"]
    assert (event["actor"], event["tenant_id"], event["target_id"]) == ("anonymous", "default", job_id)
    app.extensions["vlmq"].engine.dispose()
