"""The jobs API against a real Redis and both databases."""

from __future__ import annotations

import json

import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from shared.celery_app import GPU_QUEUE
from shared.job_view import PLACEHOLDER_MODEL_NAME
from shared.settings import Settings
from tests.support.factories import api_key
from tests.support.helpers import data_uri, job_count, queued_messages, submit
from web.app import create_app


def test_multipart_upload_is_accepted_and_enqueued(client: FlaskClient, broker: redis.Redis, png: bytes) -> None:
    response = submit(client, png, task="describe", metadata=json.dumps({"sku": "A-1"}))
    assert response.status_code == 202
    job = response.get_json()
    assert job["id"].startswith("job_")
    assert job["status"] == "queued"
    assert job["task"] == "describe"
    assert job["metadata"] == {"sku": "A-1"}
    assert job["model"] == PLACEHOLDER_MODEL_NAME
    assert "noise" in job["warnings"][0]
    assert job["urls"]["self"].endswith(f"/v1/jobs/{job['id']}")
    assert response.headers["Location"] == job["urls"]["self"]
    message = json.loads(broker.lindex(GPU_QUEUE, 0))
    assert message["headers"]["task"] == "vlmq.run_job"
    assert message["headers"]["id"].startswith(job["id"] + "-")


def test_json_body_with_data_uri(client: FlaskClient, png: bytes) -> None:
    response = client.post(
        "/v1/jobs",
        json={"image": data_uri(png), "task": "ask", "prompt": "What colour is it?", "params": {"temperature": 0}},
    )
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    assert body["prompt"] == "What colour is it?"
    assert body["params"] == {"temperature": 0.0}


def test_get_job_and_unknown_job(client: FlaskClient, png: bytes) -> None:
    job_id = submit(client, png, task="ocr").get_json()["id"]
    fetched = client.get(f"/v1/jobs/{job_id}")
    assert fetched.status_code == 200
    assert fetched.get_json()["id"] == job_id
    missing = client.get("/v1/jobs/job_nope")
    assert missing.status_code == 404
    assert missing.get_json()["error"]["code"] == "job_not_found"


def test_list_filters_and_paginates(client: FlaskClient, png: bytes) -> None:
    ids = [submit(client, png, task="describe").get_json()["id"] for _ in range(5)]
    client.post(f"/v1/jobs/{ids[0]}/cancel")
    first = client.get("/v1/jobs?limit=2").get_json()
    assert [job["id"] for job in first["data"]] == ids[::-1][:2]
    assert first["has_more"] is True
    second = client.get(f"/v1/jobs?limit=2&cursor={first['next_cursor']}").get_json()
    assert [job["id"] for job in second["data"]] == ids[::-1][2:4]
    third = client.get(f"/v1/jobs?limit=2&cursor={second['next_cursor']}").get_json()
    assert [job["id"] for job in third["data"]] == [ids[0]]
    assert third["has_more"] is False and third["next_cursor"] is None
    canceled = client.get("/v1/jobs?status=canceled").get_json()["data"]
    assert [job["id"] for job in canceled] == [ids[0]]
    assert client.get("/v1/jobs?status=done").status_code == 400
    assert client.get("/v1/jobs?limit=0").status_code == 400


def test_cancel_queued_job_then_cancel_again_conflicts(client: FlaskClient, png: bytes) -> None:
    job_id = submit(client, png, task="describe").get_json()["id"]
    canceled = client.post(f"/v1/jobs/{job_id}/cancel")
    assert canceled.status_code == 200
    assert canceled.get_json()["status"] == "canceled"
    assert canceled.get_json()["completed_at"] is not None
    again = client.post(f"/v1/jobs/{job_id}/cancel")
    assert again.status_code == 409
    assert again.get_json()["error"]["code"] == "job_already_finished"


def test_idempotency_key_returns_the_first_job(
    client: FlaskClient, sessions: sessionmaker[Session], broker: redis.Redis, png: bytes
) -> None:
    headers = {"Idempotency-Key": "order-42-photo-1"}
    first = submit(client, png, task="describe", headers=headers)
    retry = submit(client, png, task="describe", headers=headers)
    assert first.status_code == 202
    assert retry.status_code == 200
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.get_json()["id"] == first.get_json()["id"]
    assert job_count(sessions) == 1
    assert queued_messages(broker) == 1


@pytest.mark.usefixtures("gpu_thread")
def test_prefer_wait_returns_the_finished_job(client: FlaskClient, png: bytes) -> None:
    response = submit(client, png, task="describe", headers={"Prefer": "wait=30"})
    assert response.status_code == 200, response.get_json()
    assert response.headers["Preference-Applied"] == "wait=30"
    body = response.get_json()
    assert body["status"] == "succeeded"
    assert isinstance(body["result"]["text"], str)
    assert body["metrics"]["inference_s"] > 0


def test_prefer_wait_times_out_with_202(client: FlaskClient, png: bytes) -> None:
    response = submit(client, png, task="describe", headers={"Prefer": "wait=0.3"})
    assert response.status_code == 202
    assert response.get_json()["status"] == "queued"


def test_auth_separates_tenants(settings: Settings, sessions: sessionmaker[Session], png: bytes) -> None:
    app = create_app(settings.model_copy(update={"auth_enabled": True}))
    client = app.test_client()
    shop_a, shop_b = api_key(sessions, "shop-a"), api_key(sessions, "shop-b")
    unauthenticated = submit(client, png, task="describe")
    assert unauthenticated.status_code == 401
    assert job_count(sessions) == 0
    job_id = submit(client, png, task="describe", headers={"Authorization": f"Bearer {shop_a}"}).get_json()["id"]
    assert client.get(f"/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {shop_a}"}).status_code == 200
    assert client.get(f"/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {shop_b}"}).status_code == 404
    listed = client.get("/v1/jobs", headers={"Authorization": f"Bearer {shop_b}"}).get_json()["data"]
    assert listed == []
    bad = client.get("/v1/jobs", headers={"Authorization": "Bearer vlmq_wrong"})
    assert bad.status_code == 401
    assert bad.get_json()["error"]["code"] == "invalid_api_key"
    app.extensions["vlmq"].engine.dispose()


def test_a_bare_prefer_wait_waits_the_longest_allowed(settings: Settings, png: bytes) -> None:
    app = create_app(settings.model_copy(update={"max_wait_s": 0.3}))
    response = submit(app.test_client(), png, task="describe", headers={"Prefer": "wait"})
    assert (response.status_code, response.headers["Preference-Applied"]) == (202, "wait=0.3")
    app.extensions["vlmq"].engine.dispose()


def test_a_method_not_allowed_says_which_are(client: FlaskClient) -> None:
    response = client.delete("/v1/jobs")
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "POST"}
    assert response.get_json()["error"]["code"] == "method_not_allowed"
