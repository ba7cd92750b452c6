"""`/v1/batches`: submission, checks before anything is stored, idempotency, results, cancel."""

from __future__ import annotations

import csv
import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from shared.after_commit import row_id_of_task
from shared.celery_app import GPU_QUEUE
from shared.models import Job, StoredImage
from shared.settings import Settings
from shared.spreadsheets import FORMULA_STARTS
from tests.support.factories import api_key, bearer
from tests.support.helpers import assert_nothing_stored, batch_rows, data_uri, image_bytes, job_count, queued_messages
from web.api import batch_results
from web.app import create_app
from worker.context import WorkerContext
from worker.runner import run_job

RED, GREEN, BLUE = (image_bytes(color=color) for color in ("red", "green", "blue"))


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"max_batch_items": 4, "image_url_allow_hosts": ("127.0.0.1",)})


def post_multipart(client: FlaskClient, images: list[bytes], **fields: Any) -> Any:
    headers = fields.pop("headers", {})
    data: dict[str, Any] = dict(fields)
    data["image"] = [(io.BytesIO(image), f"photo{index}.png") for index, image in enumerate(images)]
    return client.post("/v1/batches", data=data, content_type="multipart/form-data", headers=headers)


def queued_job_ids(broker: redis.Redis) -> list[str]:
    return [row_id_of_task(json.loads(raw)["headers"]["id"]) for raw in broker.lrange(GPU_QUEUE, 0, -1)]


def test_multipart_batch_queues_one_job_per_image_in_order(
    client: FlaskClient, sessions: sessionmaker[Session], broker: redis.Redis
) -> None:
    response = post_multipart(
        client, [RED, GREEN, RED], task="copy", params=json.dumps({"channel": "title"}), metadata='{"drop": 7}'
    )
    assert response.status_code == 202, response.get_json()
    batch = response.get_json()
    assert batch["id"].startswith("bat_") and response.headers["Location"] == batch["urls"]["self"]
    assert (batch["status"], batch["task"], batch["total"], batch["progress"]) == ("running", "copy", 3, 0.0)
    assert batch["counts"] == {"queued": 3, "running": 0, "succeeded": 0, "failed": 0, "canceled": 0}
    assert batch["metadata"] == {"drop": 7} and batch["completed_at"] is None
    assert batch["urls"]["page"].endswith(f"/batches/{batch['id']}")

    jobs = client.get(f"/v1/jobs?batch_id={batch['id']}").get_json()["data"]
    assert len(jobs) == 3
    assert {job["params"]["channel"] for job in jobs} == {"title"}
    assert all(job["metadata"] == {"drop": 7} for job in jobs)
    with sessions() as session:
        rows = session.scalars(select(Job).where(Job.batch_id == batch["id"]).order_by(Job.batch_index)).all()
        assert [row.batch_index for row in rows] == [0, 1, 2]
        assert rows[0].image_id == rows[2].image_id != rows[1].image_id  # identical photos stored once
        assert session.scalar(select(func.count()).select_from(StoredImage)) == 2
    assert sorted(queued_job_ids(broker)) == sorted(row.id for row in rows)
    assert client.get(f"/v1/batches/{batch['id']}").get_json() == batch


def test_json_items_override_the_shared_fields(client: FlaskClient) -> None:
    body = {
        "task": "ask",
        "prompt": "Is it waterproof?",
        "params": {"temperature": 0.2, "max_new_tokens": 16},
        "metadata": {"campaign": "spring"},
        "items": [
            {"image": data_uri(RED)},
            {"image": data_uri(GREEN), "prompt": "What colour?", "params": {"temperature": 0}, "metadata": {"sku": 2}},
        ],
    }
    response = client.post("/v1/batches", json=body)
    assert response.status_code == 202, response.get_json()
    batch_id = response.get_json()["id"]
    jobs = sorted(client.get(f"/v1/jobs?batch_id={batch_id}").get_json()["data"], key=lambda job: job["id"])
    by_prompt = {job["prompt"]: job for job in jobs}
    assert by_prompt["Is it waterproof?"]["params"] == {"temperature": 0.2, "max_new_tokens": 16}
    assert by_prompt["Is it waterproof?"]["metadata"] == {"campaign": "spring"}
    assert by_prompt["What colour?"]["params"] == {"temperature": 0.0, "max_new_tokens": 16}
    assert by_prompt["What colour?"]["metadata"] == {"campaign": "spring", "sku": 2}
    assert response.get_json()["metadata"] == {"campaign": "spring"}


@pytest.mark.parametrize(
    ("item", "code", "needle"),
    [
        ({"image": data_uri(b"not an image at all")}, "invalid_image", "items.2: the file is not an image"),
        ({"image": "https://example.com/x.png"}, "invalid_image", "items.2: 'image' must be a base64 data URI"),
        ({"image": data_uri(BLUE), "params": {"top_p": 5}}, "invalid_request", "items.2.params.top_p"),
        ({"image": data_uri(BLUE), "colour": "red"}, "invalid_request", "items.2.colour: unknown field"),
        ({"image": data_uri(BLUE), "prompt": ""}, "invalid_request", "items.2: task 'ask' needs a prompt"),
        ({}, "invalid_request", "items.2: each item needs exactly one of 'image'"),
    ],
)
def test_a_bad_item_refuses_the_whole_batch_and_names_it(
    client: FlaskClient,
    sessions: sessionmaker[Session],
    broker: redis.Redis,
    item: dict[str, Any],
    code: str,
    needle: str,
) -> None:
    body = {"task": "ask", "prompt": "Shared?", "items": [{"image": data_uri(RED)}, {"image": data_uri(GREEN)}, item]}
    response = client.post("/v1/batches", json=body)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == code
    assert needle in error["message"]
    assert_nothing_stored(sessions, broker)


def test_batch_level_refusals(
    client: FlaskClient, settings: Settings, sessions: sessionmaker[Session], broker: redis.Redis
) -> None:
    def error(response: Any) -> tuple[int, str]:
        return response.status_code, response.get_json()["error"]["code"]

    assert error(client.post("/v1/batches", json={"task": "describe", "items": []})) == (400, "empty_batch")
    assert error(post_multipart(client, [], task="describe")) == (400, "empty_batch")
    too_many = post_multipart(client, [RED] * (settings.max_batch_items + 1), task="describe")
    assert error(too_many) == (400, "too_many_items") and "the limit is 4" in too_many.get_json()["error"]["message"]
    unknown = client.post(
        "/v1/batches", json={"task": "describe", "colour": "red", "items": [{"image": data_uri(RED)}]}
    )
    assert (
        error(unknown) == (400, "invalid_request") and "colour: unknown field" in unknown.get_json()["error"]["message"]
    )
    assert error(client.post("/v1/batches", json={"task": "paint", "items": [{"image": data_uri(RED)}]}))[0] == 400
    bad_file = post_multipart(client, [RED, RED[: len(RED) // 2]], task="describe")
    assert error(bad_file) == (400, "invalid_image") and bad_file.get_json()["error"]["message"].startswith("items.1: ")
    assert error(client.post("/v1/batches", data="x", content_type="text/plain")) == (415, "unsupported_media_type")
    follow_up = {"task": "ask", "prompt": "And?", "items": [{"image": data_uri(RED), "params": {"parent_job_id": "j"}}]}
    assert "items.0: params.parent_job_id" in client.post("/v1/batches", json=follow_up).get_json()["error"]["message"]
    assert_nothing_stored(sessions, broker)


def test_a_body_over_the_batch_limit_is_413(
    settings: Settings, sessions: sessionmaker[Session], broker: redis.Redis
) -> None:
    big = image_bytes(size=(300, 300), color="white")
    app = create_app(settings.model_copy(update={"max_batch_bytes": 3 * len(big)}))
    client = app.test_client()
    response = post_multipart(client, [big] * 4, task="describe")
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "batch_too_large"
    # The batch route's own limit is above the app-wide one sized for a single image.
    assert settings.max_batch_bytes > app.config["MAX_CONTENT_LENGTH"]
    assert post_multipart(client, [big] * 2, task="describe").status_code == 202
    app.extensions["vlmq"].engine.dispose()


def test_idempotency_key_returns_the_first_batch(
    client: FlaskClient, sessions: sessionmaker[Session], broker: redis.Redis
) -> None:
    headers = {"Idempotency-Key": "catalogue-2026-spring"}
    first = post_multipart(client, [RED, GREEN], task="describe", headers=headers)
    retry = post_multipart(client, [RED, GREEN], task="describe", headers=headers)
    assert (first.status_code, retry.status_code) == (202, 200)
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.get_json()["id"] == first.get_json()["id"]
    assert (batch_rows(sessions), job_count(sessions), queued_messages(broker)) == (1, 2, 2)


def test_results_stream_in_submission_order_as_jsonl_and_csv(
    client: FlaskClient,
    worker_context: WorkerContext,
    broker: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(batch_results, "PAGE_SIZE", 2)  # three jobs span two pages
    body = {
        "task": "describe",
        "metadata": {"drop": "A"},
        "items": [
            {"image": data_uri(image), "metadata": {"sku": index}} for index, image in enumerate([RED, GREEN, BLUE])
        ],
    }
    batch_id = client.post("/v1/batches", json=body).get_json()["id"]
    with worker_context.sessions() as session:
        ids = session.scalars(select(Job.id).where(Job.batch_id == batch_id).order_by(Job.batch_index)).all()
    assert run_job(worker_context, ids[0]) == "succeeded"
    assert client.post(f"/v1/jobs/{ids[1]}/cancel").status_code == 200

    response = client.get(f"/v1/batches/{batch_id}/results")
    assert response.status_code == 200 and response.mimetype == "application/x-ndjson"
    assert response.is_streamed
    lines = [json.loads(line) for line in response.get_data(as_text=True).splitlines()]
    assert [(line["index"], line["job_id"], line["status"]) for line in lines] == [
        (0, ids[0], "succeeded"),
        (1, ids[1], "canceled"),
        (2, ids[2], "queued"),
    ]
    succeeded = client.get(f"/v1/jobs/{ids[0]}").get_json()
    assert lines[0]["result"] == succeeded["result"] and lines[0]["result"]["usage"]["completion_tokens"] > 0
    assert lines[1]["result"] is None and lines[2]["result"] is None and lines[2]["error"] is None
    assert [line["metadata"] for line in lines] == [{"drop": "A", "sku": index} for index in range(3)]

    as_csv = client.get(f"/v1/batches/{batch_id}/results?format=csv")
    assert as_csv.mimetype == "text/csv"
    assert as_csv.headers["Content-Disposition"] == f'attachment; filename="{batch_id}.csv"'
    raw = as_csv.get_data()
    assert raw.startswith(b"\xef\xbb\xbf")  # a BOM, so Excel reads UTF-8
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert list(rows[0]) == list(batch_results.COLUMNS)
    assert [(row["index"], row["job_id"], row["status"]) for row in rows] == [
        (str(line["index"]), line["job_id"], line["status"]) for line in lines
    ]
    text = succeeded["result"]["text"]  # the tiny model's text may start like a formula: the cell then starts with '
    inert = "'" + text if text[:1] in FORMULA_STARTS else text
    assert rows[0]["text"] == inert and rows[1]["text"] == rows[2]["text"] == ""
    assert json.loads(rows[2]["metadata"]) == {"drop": "A", "sku": 2}
    assert client.get(f"/v1/batches/{batch_id}/results?format=xml").get_json()["error"]["code"] == "invalid_format"
    assert client.get("/v1/batches/bat_nope/results").status_code == 404


def test_cancel_ends_every_unfinished_job_and_completes_the_batch(
    client: FlaskClient, worker_context: WorkerContext
) -> None:
    batch_id = post_multipart(client, [RED, GREEN, BLUE], task="describe").get_json()["id"]
    first = client.get(f"/v1/jobs?batch_id={batch_id}").get_json()["data"][-1]["id"]
    assert run_job(worker_context, first) == "succeeded"
    canceled = client.post(f"/v1/batches/{batch_id}/cancel")
    assert canceled.status_code == 200
    batch = canceled.get_json()
    assert batch["counts"] == {"queued": 0, "running": 0, "succeeded": 1, "failed": 0, "canceled": 2}
    assert (batch["status"], batch["progress"]) == ("canceled", 1.0) and batch["completed_at"] is not None
    assert batch["canceled_at"] is not None
    again = client.post(f"/v1/batches/{batch_id}/cancel")
    assert (again.status_code, again.get_json()["error"]["code"]) == (409, "batch_already_finished")


def test_list_paginates_and_tenants_see_only_their_batches(settings: Settings, sessions: sessionmaker[Session]) -> None:
    app = create_app(settings.model_copy(update={"auth_enabled": True}))
    client = app.test_client()
    shop_a, shop_b = bearer(api_key(sessions, "shop-a")), bearer(api_key(sessions, "shop-b"))
    ids = [post_multipart(client, [RED], task="ocr", headers=shop_a).get_json()["id"] for _ in range(3)]
    first = client.get("/v1/batches?limit=2", headers=shop_a).get_json()
    assert [batch["id"] for batch in first["data"]] == ids[::-1][:2] and first["has_more"]
    second = client.get(f"/v1/batches?limit=2&cursor={first['next_cursor']}", headers=shop_a).get_json()
    assert [batch["id"] for batch in second["data"]] == [ids[0]] and second["next_cursor"] is None
    assert second["data"][0]["counts"]["queued"] == 1
    assert client.get("/v1/batches", headers=shop_b).get_json()["data"] == []
    for path in (f"/v1/batches/{ids[0]}", f"/v1/batches/{ids[0]}/results"):
        hidden = client.get(path, headers=shop_b)
        assert (hidden.status_code, hidden.get_json()["error"]["code"]) == (404, "batch_not_found")
    assert client.post(f"/v1/batches/{ids[0]}/cancel", headers=shop_b).status_code == 404
    assert client.get(f"/v1/batches/{ids[0]}").status_code == 401
    app.extensions["vlmq"].engine.dispose()


@pytest.fixture
def image_host() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = GREEN if self.path == "/green.png" else b"gone"
            self.send_response(200 if self.path == "/green.png" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_items_may_be_image_urls(
    client: FlaskClient, sessions: sessionmaker[Session], broker: redis.Redis, image_host: str
) -> None:
    body = {"task": "describe", "items": [{"image": data_uri(RED)}, {"image_url": f"{image_host}/green.png"}]}
    response = client.post("/v1/batches", json=body)
    assert response.status_code == 202, response.get_json()
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(StoredImage)) == 2
    body["items"][1]["image_url"] = f"{image_host}/missing.png"
    refused = client.post("/v1/batches", json=body)
    assert refused.status_code == 400 and refused.get_json()["error"]["message"].startswith("items.1: ")
    assert (batch_rows(sessions), queued_messages(broker)) == (1, 2)
