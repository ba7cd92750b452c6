"""`Idempotency-Key`: a chat retry attaches to the running job; a reused key with another body is 422."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import openai
import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from shared.settings import Settings
from tests.conftest import image_bytes, serving
from tests.helpers import data_uri, finish_like_a_worker, job_count, queued_messages, submit, wait_for_only_job
from web.app import create_app

MAX_WAIT_S = 3.0
RESULT = {"text": "Leather.", "data": None, "usage": {"prompt_tokens": 9, "completion_tokens": 2}}


def _messages(png: bytes, question: str = "What material is it?") -> list[dict]:
    parts = [{"type": "text", "text": question}, {"type": "image_url", "image_url": {"url": data_uri(png)}}]
    return [{"role": "user", "content": parts}]


@pytest.fixture
def short_wait_url(settings: Settings) -> Iterator[str]:
    app = create_app(settings.model_copy(update={"max_wait_s": MAX_WAIT_S}))
    with serving(app) as url:
        yield url
    app.extensions["vlmq"].engine.dispose()


def test_a_chat_retry_attaches_to_the_running_job(
    short_wait_url: str, sessions: sessionmaker[Session], broker: redis.Redis, png: bytes
) -> None:
    client = openai.OpenAI(base_url=f"{short_wait_url}/v1", api_key="x", max_retries=0)
    key = {"Idempotency-Key": "ask-material-7"}
    outcomes: dict[str, object] = {}

    def first_call() -> None:
        try:
            client.chat.completions.create(model="any", messages=_messages(png), extra_headers=key)
        except openai.APIStatusError as exc:
            outcomes["first"] = exc

    thread = threading.Thread(target=first_call)
    thread.start()
    job = wait_for_only_job(sessions)
    time.sleep(MAX_WAIT_S / 2)  # the client gave up on its side and retries; its wait ends after the first one's
    retry = threading.Thread(
        target=lambda: outcomes.update(
            retry=client.chat.completions.with_raw_response.create(
                model="any", messages=_messages(png), extra_headers=key
            )
        )
    )
    retry.start()
    thread.join()
    gave_up = outcomes["first"]
    assert isinstance(gave_up, openai.APIStatusError) and gave_up.status_code == 504
    assert "is still queued" in gave_up.body["message"]  # not canceled: the retry still waits for it
    finish_like_a_worker(sessions, job.id, RESULT)
    retry.join()
    answer = outcomes["retry"]
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
