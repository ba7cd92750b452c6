"""`Idempotency-Key`: a chat retry attaches to the running job; a reused key with another body is 422."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import openai
import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from shared.settings import Settings
from tests.support.helpers import (
    data_uri,
    finish_like_a_worker,
    image_bytes,
    job_count,
    queued_messages,
    submit,
    wait_for_only_job,
)
from tests.support.services import serving
from web.app import create_app

RESULT = {"text": "Leather.", "data": None, "usage": {"prompt_tokens": 9, "completion_tokens": 2}}


def _messages(png: bytes, question: str = "What material is it?") -> list[dict]:
    parts = [{"type": "text", "text": question}, {"type": "image_url", "image_url": {"url": data_uri(png)}}]
    return [{"role": "user", "content": parts}]


@pytest.fixture
def short_wait_url(settings: Settings) -> Iterator[str]:
    app = create_app(settings.model_copy(update={"max_wait_s": 0.5}))
    with serving(app) as url:
        yield url
    app.extensions["vlmq"].engine.dispose()


def test_a_chat_retry_attaches_to_the_job_the_timed_out_call_left_running(
    short_wait_url: str, sessions: sessionmaker[Session], broker: redis.Redis, png: bytes
) -> None:
    client = openai.OpenAI(base_url=f"{short_wait_url}/v1", api_key="x", max_retries=0)
    key = {"Idempotency-Key": "ask-material-7"}
    with pytest.raises(openai.APIStatusError) as gave_up:
        client.chat.completions.create(model="any", messages=_messages(png), extra_headers=key)
    assert gave_up.value.status_code == 504
    assert "repeat the call with the same Idempotency-Key" in gave_up.value.body["message"]
    job = wait_for_only_job(sessions)
    assert job.status == "queued"  # not canceled: the caller said it would come back for it

    retry: dict[str, object] = {}
    thread = threading.Thread(
        target=lambda: retry.update(
            answer=client.chat.completions.with_raw_response.create(
                model="any", messages=_messages(png), extra_headers=key
            )
        )
    )
    thread.start()
    finish_like_a_worker(sessions, job.id, RESULT)
    thread.join()
    answer = retry["answer"]
    assert answer.headers["Idempotent-Replayed"] == "true"
    assert answer.parse().id == f"chatcmpl-{job.id}"
    assert answer.parse().choices[0].message.content == "Leather."
    assert (job_count(sessions), queued_messages(broker)) == (1, 1)


def test_a_reused_chat_key_with_another_question_is_422(
    openai_client: openai.OpenAI, sessions: sessionmaker[Session], png: bytes
) -> None:
    key = {"Idempotency-Key": "ask-material-8"}
    stream = openai_client.chat.completions.create(model="any", messages=_messages(png), stream=True, extra_headers=key)
    next(iter(stream))
    with pytest.raises(openai.UnprocessableEntityError) as refused:
        openai_client.chat.completions.create(model="any", messages=_messages(png, "Colour?"), extra_headers=key)
    assert refused.value.body["code"] == "idempotency_key_reused"
    assert job_count(sessions) == 1
    stream.close()


def test_a_reused_job_key_with_another_body_is_422(
    client: FlaskClient, sessions: sessionmaker[Session], broker: redis.Redis, png: bytes
) -> None:
    headers = {"Idempotency-Key": "sku-9"}
    assert submit(client, png, task="describe", headers=headers).status_code == 202
    other_image = submit(client, image_bytes(color="blue"), task="describe", headers=headers)
    other_task = submit(client, png, task="ocr", headers=headers)
    as_json = client.post("/v1/jobs", json={"task": "describe", "image": data_uri(png)}, headers=headers)
    for refused in (other_image, other_task):
        assert refused.status_code == 422
        assert refused.get_json()["error"]["code"] == "idempotency_key_reused"
    assert as_json.status_code == 422  # another route to the same job is another request
    assert (job_count(sessions), queued_messages(broker)) == (1, 1)


def test_a_reused_batch_key_with_other_items_is_422(client: FlaskClient, sessions: sessionmaker[Session]) -> None:
    headers = {"Idempotency-Key": "drop-3"}

    def post(*colors: str) -> object:
        items = [{"image": data_uri(image_bytes(color=color))} for color in colors]
        return client.post(
            "/v1/batches",
            data=json.dumps({"task": "describe", "items": items}),
            content_type="application/json",
            headers=headers,
        )

    assert post("red", "green").status_code == 202
    assert post("red", "green").status_code == 200
    refused = post("red", "blue")
    assert refused.status_code == 422
    assert refused.get_json()["error"]["code"] == "idempotency_key_reused"
    assert job_count(sessions) == 2
