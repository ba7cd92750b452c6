"""`/metrics` is protected by a token and never shows one tenant another tenant's numbers."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session, sessionmaker

from shared.settings import Settings
from tests.support.factories import api_key
from tests.support.helpers import submit
from web.app import create_app

TOKEN = "scrape-token-0123456789"


def samples(text: str) -> dict[tuple[str, str], float]:
    """`{(name, status or queue label), value}` of a Prometheus exposition."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, sample.labels.get("status") or sample.labels.get("queue") or "")] = sample.value
    return found


def test_tenants_see_only_their_own_jobs_and_operators_use_the_token(
    settings: Settings, sessions: sessionmaker[Session], png: bytes
) -> None:
    app = create_app(settings.model_copy(update={"auth_enabled": True, "metrics_token": TOKEN}))
    client: FlaskClient = app.test_client()
    shop_a, shop_b = api_key(sessions, "shop-a"), api_key(sessions, "shop-b")
    for key, count in ((shop_a, 1), (shop_b, 3)):
        for _ in range(count):
            assert submit(client, png, task="describe", headers={"Authorization": f"Bearer {key}"}).status_code == 202

    assert client.get("/metrics").status_code == 401
    seen_by_a = samples(client.get("/metrics", headers={"Authorization": f"Bearer {shop_a}"}).get_data(as_text=True))
    assert seen_by_a[("vlmq_jobs", "queued")] == 1
    assert not any(name == "vlmq_broker_queue_length" for name, _ in seen_by_a), "queue lengths mix tenants"
    service_wide = ("vlmq_job_", "vlmq_webhook_", "vlmq_refused_", "vlmq_worker_")
    assert not any(name.startswith(service_wide) for name, _ in seen_by_a), "histograms and counters mix tenants"
    operator = samples(client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).get_data(as_text=True))
    assert operator[("vlmq_jobs", "queued")] == 4
    assert operator[("vlmq_broker_queue_length", "gpu")] == 4
    assert ("vlmq_job_queue_wait_seconds_count", "") in operator
    app.extensions["vlmq"].engine.dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_token_protects_metrics_with_auth_off(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"metrics_token": TOKEN}))
    client = app.test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong-token-0123456789"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    app.extensions["vlmq"].engine.dispose()
