"""OpenAI's Batch API (files, batches, result files) driven by the official client, unchanged."""

from __future__ import annotations

import io
import json
import time

import openai
import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from shared import jobs
from shared.clock import utcnow
from shared.models import Job, OpenAIFile
from tests.support.helpers import data_uri, finish_like_a_worker, job_count, queued_messages

ANSWER = {"text": "A red square.", "data": None, "usage": {"prompt_tokens": 20, "completion_tokens": 4}}


def _line(custom_id: str, png: bytes, question: str) -> str:
    parts = [{"type": "text", "text": question}, {"type": "image_url", "image_url": {"url": data_uri(png)}}]
    body = {"model": "any", "messages": [{"role": "user", "content": parts}], "max_tokens": 16}
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body})


def _batch_file(png: bytes) -> bytes:
    return f"{_line('sku-1', png, 'What is it?')}\n\n{_line('sku-2', png, 'Which colour?')}\n".encode()


def _jobs(sessions: sessionmaker[Session]) -> list[Job]:
    with sessions() as session:
        return list(session.scalars(select(Job).order_by(Job.batch_index)))


def test_a_batch_runs_its_requests_and_returns_output_and_error_files(
    openai_client: openai.OpenAI, sessions: sessionmaker[Session], broker: redis.Redis, png: bytes
) -> None:
    uploaded = openai_client.files.create(file=("requests.jsonl", _batch_file(png)), purpose="batch")
    assert (uploaded.purpose, uploaded.bytes, uploaded.filename) == ("batch", len(_batch_file(png)), "requests.jsonl")
    assert openai_client.files.content(uploaded.id).content == _batch_file(png)

    batch = openai_client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h", metadata={"drop": "7"}
    )
    assert (batch.status, batch.request_counts.total, batch.output_file_id, batch.metadata) == (
        "in_progress",
        2,
        None,
        {"drop": "7"},
    )
    first, second = _jobs(sessions)
    assert (first.task, first.prompt, second.prompt) == ("ask", "What is it?", "Which colour?")
    assert queued_messages(broker) == 2

    finish_like_a_worker(sessions, first.id, ANSWER)
    with sessions.begin() as session:
        jobs.start(session, second.id, "test-worker", utcnow())
    with sessions.begin() as session:
        jobs.fail(session, second.id, "image_error", "the stored image could not be read", utcnow())

    done = openai_client.batches.retrieve(batch.id)
    assert done.status == "completed" and done.completed_at is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (1, 1)
    (output,) = [json.loads(line) for line in openai_client.files.content(done.output_file_id).text.splitlines()]
    assert output["custom_id"] == "sku-1"
    assert output["response"]["status_code"] == 200
    assert output["response"]["body"]["choices"][0]["message"]["content"] == "A red square."
    assert output["response"]["body"]["id"] == f"chatcmpl-{first.id}"
    (error,) = [json.loads(line) for line in openai_client.files.content(done.error_file_id).text.splitlines()]
    assert (error["custom_id"], error["error"]["code"]) == ("sku-2", "image_error")
    described = openai_client.files.retrieve(done.output_file_id)
    assert (described.purpose, described.bytes) == (
        "batch_output",
        len(openai_client.files.content(done.output_file_id).content),
    )


def test_a_cancelled_batch_stops_its_requests(
    openai_client: openai.OpenAI, sessions: sessionmaker[Session], png: bytes
) -> None:
    uploaded = openai_client.files.create(file=("requests.jsonl", _batch_file(png)), purpose="batch")
    batch = openai_client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    cancelled = openai_client.batches.cancel(batch.id)
    assert cancelled.status == "cancelled" and cancelled.cancelling_at is not None
    assert [job.status for job in _jobs(sessions)] == ["canceled", "canceled"]
    assert cancelled.output_file_id is None
    errors = openai_client.files.content(cancelled.error_file_id).text.splitlines()
    assert [json.loads(line)["error"]["code"] for line in errors] == ["batch_cancelled"] * 2
    with pytest.raises(openai.ConflictError):
        openai_client.batches.cancel(batch.id)


BAD_FILES = {
    "not json": (b"{oops\n", "line 1: not a JSON object"),
    "wrong endpoint": (
        json.dumps({"custom_id": "a", "method": "POST", "url": "/v1/embeddings", "body": {}}).encode(),
        "line 1: url",
    ),
    "duplicate custom_id": (None, "custom_id 'sku-1' is used twice"),
    "empty": (b"\n\n", "holds no requests"),
    "nested past the recursion limit": (
        b"\n" + b"[" * 100_000 + b"]" * 100_000,
        "line 2: the JSON is nested more than 32",
    ),
    "nested past 32 levels": (b'{"custom_id": ' + b"[" * 40 + b"]" * 40 + b"}", "line 1: custom_id.0.0"),
}


@pytest.mark.parametrize("case", BAD_FILES, ids=list(BAD_FILES))
def test_a_bad_batch_file_is_refused_naming_its_line(
    case: str, openai_client: openai.OpenAI, sessions: sessionmaker[Session], png: bytes
) -> None:
    content, message = BAD_FILES[case]
    if content is None:
        content = f"{_line('sku-1', png, 'a?')}\n{_line('sku-1', png, 'b?')}\n".encode()
    with pytest.raises(openai.BadRequestError) as refused:
        openai_client.files.create(file=("requests.jsonl", content), purpose="batch")
    assert message in refused.value.body["message"]
    with sessions() as session:
        assert session.scalars(select(OpenAIFile)).all() == []


def test_a_batch_needs_a_known_file_and_the_chat_endpoint(
    openai_client: openai.OpenAI, sessions: sessionmaker[Session], png: bytes
) -> None:
    with pytest.raises(openai.NotFoundError):
        openai_client.batches.create(
            input_file_id="file_missing", endpoint="/v1/chat/completions", completion_window="24h"
        )
    uploaded = openai_client.files.create(file=("requests.jsonl", _batch_file(png)), purpose="batch")
    with pytest.raises(openai.BadRequestError) as refused:
        openai_client.batches.create(input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h")
    assert "endpoint" in refused.value.body["message"]
    assert job_count(sessions) == 0


@pytest.mark.parametrize("form", [{"purpose": "fine-tune"}, {"purpose": "batch", "expires_after": "3600"}])
def test_an_upload_with_another_purpose_or_an_unknown_field_is_refused(
    form: dict[str, str], client: FlaskClient, sessions: sessionmaker[Session], png: bytes
) -> None:
    data = {**form, "file": (io.BytesIO(_batch_file(png)), "requests.jsonl")}
    refused = client.post("/v1/files", data=data, content_type="multipart/form-data")
    assert refused.status_code == 400
    assert refused.get_json()["error"]["code"] == "invalid_request"
    with sessions() as session:
        assert session.scalars(select(OpenAIFile)).all() == []


def test_a_file_name_with_a_nul_is_refused(client: FlaskClient, sessions: sessionmaker[Session], png: bytes) -> None:
    data = {"purpose": "batch", "file": (io.BytesIO(_batch_file(png)), "requests\x00.jsonl")}
    refused = client.post("/v1/files", data=data, content_type="multipart/form-data")
    assert refused.status_code == 400, refused.get_json()
    assert "the file's name: contains a NUL character" in refused.get_json()["error"]["message"]
    with sessions() as session:
        assert session.scalars(select(OpenAIFile)).all() == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_huge_file_of_blank_lines_is_refused_quickly(client: FlaskClient) -> None:
    data = {"purpose": "batch", "file": (io.BytesIO(b"\n" * 90_000_000), "blank.jsonl")}
    started = time.monotonic()
    refused = client.post("/v1/files", data=data, content_type="multipart/form-data")
    elapsed = time.monotonic() - started
    assert refused.status_code == 400 and "holds no requests" in refused.get_json()["error"]["message"]
    assert elapsed < 4, f"{elapsed:.1f} s (8 to 18 s when every blank line was visited)"


def test_files_delete_removes_an_uploaded_file_and_keeps_what_a_batch_needs(
    openai_client: openai.OpenAI, sessions: sessionmaker[Session], png: bytes
) -> None:
    spare = openai_client.files.create(file=("spare.jsonl", _batch_file(png)), purpose="batch")
    deleted = openai_client.files.delete(spare.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (spare.id, "file", True)
    with pytest.raises(openai.NotFoundError):
        openai_client.files.retrieve(spare.id)
    with pytest.raises(openai.NotFoundError):
        openai_client.files.delete(spare.id)

    used = openai_client.files.create(file=("requests.jsonl", _batch_file(png)), purpose="batch")
    batch = openai_client.batches.create(
        input_file_id=used.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    with pytest.raises(openai.ConflictError) as in_use:
        openai_client.files.delete(used.id)
    assert in_use.value.body["code"] == "file_in_use" and batch.id in in_use.value.body["message"]
    cancelled = openai_client.batches.cancel(batch.id)
    with pytest.raises(openai.ConflictError) as rendered:
        openai_client.files.delete(cancelled.error_file_id)
    assert rendered.value.body["code"] == "file_not_deletable"
    assert [stored.id for stored in _files(sessions)] == [used.id]


def _files(sessions: sessionmaker[Session]) -> list[OpenAIFile]:
    with sessions() as session:
        return list(session.scalars(select(OpenAIFile)))
