"""The catalogue workflow's API: names and SKUs in results, exports in every format, feedback,
photos and thumbnails, retry, listing filters, and a canceled batch that says so."""

from __future__ import annotations

import csv
import io
import json

import pytest
import redis
from flask.testing import FlaskClient
from openpyxl import load_workbook
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from shared.models import Feedback
from shared.settings import Settings
from tests.support.catalogue import catalogue
from tests.support.factories import api_key, bearer
from tests.support.helpers import data_uri, finish, image_bytes, queued_messages, submit
from web.api.batch_results import COLUMNS, FORMATS
from web.app import create_app

RED, GREEN = image_bytes(color="red"), image_bytes(size=(800, 600), color="green")
TRICKY_TEXT = '=HYPERLINK("http://evil.example","click") 红色 "leather" bag'


def batch_of_two(client: FlaskClient) -> tuple[str, list[str]]:
    """A multipart batch of two named photos with SKUs; returns its id and job ids in order."""
    data = {
        "task": "attributes",
        "metadata": json.dumps({"drop": "spring"}),
        "image": [(io.BytesIO(RED), "shoes/red-shoe.png"), (io.BytesIO(GREEN), "green bag.png")],
    }
    batch_id = client.post("/v1/batches", data=data, content_type="multipart/form-data").get_json()["id"]
    jobs = client.get(f"/v1/jobs?batch_id={batch_id}").get_json()["data"]
    return batch_id, [job["id"] for job in reversed(jobs)]


def test_results_carry_names_metadata_and_feedback_in_every_format(
    client: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    batch_id, (first, _) = batch_of_two(client)
    finish(sessions, first, TRICKY_TEXT, {"category": "shoes", "color": "红色"})
    feedback = client.post(
        f"/v1/jobs/{first}/feedback", json={"score": 3, "corrections": {"color": "red"}, "comment": "wrong color"}
    )
    assert feedback.status_code == 201, feedback.get_json()
    assert feedback.get_json()["usable_without_edits"] is False

    lines = [
        json.loads(line) for line in client.get(f"/v1/batches/{batch_id}/results").get_data(as_text=True).splitlines()
    ]
    assert [(line["name"], line["status"]) for line in lines] == [
        ("red-shoe.png", "succeeded"),
        ("green bag.png", "queued"),
    ]
    assert lines[0]["feedback"]["corrections"] == {"color": "red"} and lines[1]["feedback"] is None
    assert lines[0]["metadata"] == {"drop": "spring"}

    raw_csv = client.get(f"/v1/batches/{batch_id}/results?format=csv").get_data()
    assert raw_csv.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(raw_csv.decode("utf-8-sig"))))
    assert rows[0]["name"] == "red-shoe.png" and rows[0]["text"] == "'" + TRICKY_TEXT
    assert (rows[0]["feedback_score"], rows[0]["feedback_comment"]) == ("3", "wrong color")
    assert json.loads(rows[0]["data"]) == {"category": "shoes", "color": "红色"}

    xlsx = client.get(f"/v1/batches/{batch_id}/results?format=xlsx")
    assert xlsx.mimetype.endswith("spreadsheetml.sheet")
    assert xlsx.headers["Content-Disposition"] == f'attachment; filename="{batch_id}.xlsx"'
    sheet = load_workbook(io.BytesIO(xlsx.get_data())).active
    table = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert tuple(table[0]) == COLUMNS
    cells = dict(zip(COLUMNS, table[1], strict=True))
    assert cells["text"] == TRICKY_TEXT  # stored as text: shown, never run as a formula
    assert sheet.cell(row=2, column=COLUMNS.index("text") + 1).data_type == "s"
    assert (cells["name"], cells["feedback_score"], cells["status"]) == ("red-shoe.png", 3, "succeeded")
    assert dict(zip(COLUMNS, table[2], strict=True))["name"] == "green bag.png"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_json_items_name_their_photos_and_skus_land_in_their_column(client: FlaskClient) -> None:
    items = [
        {"image": data_uri(RED), "name": "a.png", "metadata": {"sku": "SKU-1"}},
        {"image": data_uri(GREEN), "metadata": {"sku": 42}},
    ]
    batch_id = client.post("/v1/batches", json={"task": "describe", "items": items}).get_json()["id"]
    rows = list(csv.DictReader(io.StringIO(client.get(f"/v1/batches/{batch_id}/results?format=csv").text[1:])))
    assert [(row["name"], row["sku"]) for row in rows] == [("a.png", "SKU-1"), ("", "42")]
    too_long = client.post(
        "/v1/batches", json={"task": "describe", "items": [{"image": data_uri(RED), "name": "x" * 300}]}
    )
    assert too_long.status_code == 400 and "items.0.name" in too_long.get_json()["error"]["message"]


def test_feedback_is_checked_and_only_for_succeeded_jobs(
    client: FlaskClient, sessions: sessionmaker[Session], png: bytes
) -> None:
    job_id = submit(client, png, task="describe").get_json()["id"]
    early = client.post(f"/v1/jobs/{job_id}/feedback", json={"score": 5})
    assert (early.status_code, early.get_json()["error"]["code"]) == (409, "job_not_succeeded")
    finish(sessions, job_id, "a red bag")
    for body, problem in (
        ({"score": 0}, "score"),
        ({"score": 6}, "score"),
        ({"score": True}, "score: Input should be a valid integer"),
        ({"score": "4"}, "score: Input should be a valid integer"),
        ({}, "score"),
        ({"score": 4, "corrections": ["color"]}, "corrections"),
        ({"score": 4, "comment": "x" * 2001}, "comment"),
        ({"score": 4, "mood": "happy"}, "mood"),
    ):
        refused = client.post(f"/v1/jobs/{job_id}/feedback", json=body)
        assert refused.status_code == 400 and problem in refused.get_json()["error"]["message"], (body, refused.text)
    not_json = client.post(f"/v1/jobs/{job_id}/feedback", data="score=5", content_type="text/plain")
    assert not_json.get_json()["error"]["code"] == "invalid_json"
    assert client.post("/v1/jobs/job_nope/feedback", json={"score": 5}).status_code == 404
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Feedback)) == 0

    assert client.post(f"/v1/jobs/{job_id}/feedback", json={"score": 2}).status_code == 201
    accepted = client.post(f"/v1/jobs/{job_id}/feedback", json={"score": 5, "comment": "fine after all"}).get_json()
    assert accepted["usable_without_edits"] is True
    listed = client.get(f"/v1/jobs/{job_id}/feedback").get_json()["data"]
    assert [entry["score"] for entry in listed] == [5, 2]  # newest first


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_photo_and_thumbnail_are_served_to_their_tenant_only(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    app = create_app(settings.model_copy(update={"auth_enabled": True}))
    client = app.test_client()
    shop_a, shop_b = bearer(api_key(sessions, "shop-a")), bearer(api_key(sessions, "shop-b"))
    job_id = submit(client, GREEN, task="describe", headers=shop_a).get_json()["id"]
    full = client.get(f"/v1/jobs/{job_id}/image", headers=shop_a)
    assert (full.status_code, full.mimetype, full.get_data()) == (200, "image/png", GREEN)
    thumb = client.get(f"/v1/jobs/{job_id}/image?size=thumb", headers=shop_a)
    assert thumb.mimetype == "image/jpeg"
    with Image.open(io.BytesIO(thumb.get_data())) as image:
        assert image.size == (320, 240)
    hidden = client.get(f"/v1/jobs/{job_id}/image?size=thumb", headers=shop_b)
    assert (hidden.status_code, hidden.get_json()["error"]["code"]) == (404, "job_not_found")
    assert client.get(f"/v1/jobs/{job_id}/image").status_code == 401
    bad = client.get(f"/v1/jobs/{job_id}/image?size=huge", headers=shop_a)
    assert (bad.status_code, bad.get_json()["error"]["code"]) == (400, "invalid_size")
    app.extensions["vlmq"].engine.dispose()


def test_retry_queues_a_copy_of_an_ended_job(client: FlaskClient, broker: redis.Redis, png: bytes) -> None:
    fields = {"task": "copy", "params": json.dumps({"channel": "title"}), "metadata": json.dumps({"sku": "S-9"})}
    original = submit(client, png, **fields).get_json()
    busy = client.post(f"/v1/jobs/{original['id']}/retry")
    assert (busy.status_code, busy.get_json()["error"]["code"]) == (409, "job_not_finished")
    assert client.post(f"/v1/jobs/{original['id']}/cancel").status_code == 200
    before = queued_messages(broker)
    retried = client.post(f"/v1/jobs/{original['id']}/retry")
    assert retried.status_code == 202
    job = retried.get_json()
    assert job["id"] != original["id"] and job["status"] == "queued"
    kept = ("task", "params", "metadata", "name")
    assert {key: job[key] for key in kept} == {key: original[key] for key in kept}
    assert client.get(f"/v1/jobs/{job['id']}/image").get_data() == png
    assert queued_messages(broker) == before + 1
    assert client.get(f"/v1/jobs/{original['id']}").get_json()["status"] == "canceled"
    assert client.post("/v1/jobs/job_nope/retry").status_code == 404


def test_listing_filters_by_task_and_finds_skus_and_file_names(client: FlaskClient, png: bytes) -> None:
    first = submit(client, png, task="describe", metadata=json.dumps({"sku": "AB-100_x"})).get_json()["id"]
    second = submit(client, png, task="ocr", metadata=json.dumps({"sku": "AB-200"})).get_json()["id"]

    def ids(query: str) -> list[str]:
        response = client.get(f"/v1/jobs?{query}")
        assert response.status_code == 200, response.get_json()
        return [job["id"] for job in response.get_json()["data"]]

    assert ids("task=ocr") == [second]
    assert ids("q=ab-1") == [first]  # case-insensitive
    assert ids("q=AB-") == [second, first]
    assert ids("q=100_") == [first] and ids("q=%25") == []  # wildcards are literal
    assert ids("q=photo.png&task=describe") == [first]  # the uploaded file's name
    assert ids("status=succeeded&q=AB") == []
    bad = client.get("/v1/jobs?task=paint")
    assert (bad.status_code, bad.get_json()["error"]["code"]) == (400, "invalid_task")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_batch_that_finished_on_its_own_stays_completed(client: FlaskClient, sessions: sessionmaker[Session]) -> None:
    batch_id, job_ids = batch_of_two(client)
    for job_id in job_ids:
        finish(sessions, job_id, "done")
    batch = client.get(f"/v1/batches/{batch_id}").get_json()
    assert (batch["status"], batch["canceled_at"]) == ("completed", None)
    assert client.post(f"/v1/batches/{batch_id}/cancel").status_code == 409
    assert client.get(f"/v1/batches/{batch_id}").get_json()["status"] == "completed"


def test_a_batch_is_evaluated_against_uploaded_labels(client: FlaskClient, sessions: sessionmaker[Session]) -> None:
    photos = catalogue(3)  # shoes red, bag blue, mug green
    items = [{"image": data_uri(p.png()), "name": p.name, "metadata": {"sku": p.sku}} for p in photos]
    batch_id = client.post("/v1/batches", json={"task": "attributes", "items": items}).get_json()["id"]
    job_ids = [json.loads(line)["job_id"] for line in client.get(f"/v1/batches/{batch_id}/results").text.splitlines()]
    # By hand: shoes right; bag called shoes; the mug's job never ran (missing). Category 1 of 2 right,
    # color 2 of 2, material 1 of 2 (the bag's); key features 1 and 1/2 → 0.75.
    outputs = [
        {"category": "shoes", "color": "red", "material": "leather", "key_features": ["lace-up", "rubber sole"]},
        {"category": "shoes", "color": "blue", "material": "leather", "key_features": ["zip"]},
    ]
    for job_id, data in zip(job_ids, outputs, strict=False):
        finish(sessions, job_id, json.dumps(data), data)
    assert client.post(f"/v1/jobs/{job_ids[0]}/feedback", json={"score": 5}).status_code == 201
    labels = io.StringIO()
    writer = csv.DictWriter(labels, fieldnames=list(photos[0].label))
    writer.writeheader()
    writer.writerows(p.label for p in photos)

    response = client.post(f"/v1/batches/{batch_id}/evaluation", data=labels.getvalue(), content_type="text/csv")
    assert response.status_code == 200, response.get_json()
    measures = response.get_json()
    assert measures["items"] == {"labelled": 3, "with_output": 2, "missing": [photos[2].sku]}
    assert {field: value["accuracy"] for field, value in measures["accuracy"].items()} == {
        "category": 0.5,
        "color": 1.0,
        "material": 0.5,
    }
    assert measures["key_features"] == {"judged": 2, "mean_jaccard": 0.75}
    assert measures["feedback"] == {"with_feedback": 1, "usable_without_edits": 1, "share": 1.0}

    as_file = {"labels": (io.BytesIO(labels.getvalue().encode()), "labels.csv")}
    multipart = client.post(f"/v1/batches/{batch_id}/evaluation", data=as_file, content_type="multipart/form-data")
    assert multipart.get_json() == measures
    for body, content_type, status, code in (
        (b"category\nshoes\n", "text/csv", 400, "invalid_labels"),
        (b"not a workbook", FORMATS["xlsx"], 400, "invalid_labels"),
        (b"[" * 100_000 + b"\n", "application/x-ndjson", 400, "invalid_labels"),  # nested past the recursion limit
        (b"sku,category", "text/plain", 415, "unsupported_media_type"),
    ):
        refused = client.post(f"/v1/batches/{batch_id}/evaluation", data=body, content_type=content_type)
        assert (refused.status_code, refused.get_json()["error"]["code"]) == (status, code)
    assert client.post("/v1/batches/bat_nope/evaluation", data=b"sku\n", content_type="text/csv").status_code == 404
