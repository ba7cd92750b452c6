"""`/v1/chat/completions` driven by the official OpenAI Python client, unchanged."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
import redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from shared.cancel_channel import CHANNEL
from shared.models import Job
from shared.placeholder_model import PLACEHOLDER_MODEL_NAME
from shared.settings import Settings
from tests.support.helpers import assert_nothing_stored, data_uri
from tests.support.services import serving
from web.app import create_app


def _image_message(png: bytes, question: str) -> dict:
    return {
        "role": "user",
        "content": [{"type": "text", "text": question}, {"type": "image_url", "image_url": {"url": data_uri(png)}}],
    }


def _only_job(sessions: sessionmaker[Session]) -> Job:
    with sessions() as session:
        (job,) = session.scalars(select(Job)).all()
        return job


@pytest.mark.usefixtures("gpu_thread")
def test_completion_answers_through_an_ask_job(
    openai_client: openai.OpenAI, sessions: sessionmaker[Session], png: bytes
) -> None:
    completion = openai_client.chat.completions.create(
        model="glm-4.6v-flash",
        messages=[{"role": "system", "content": "Answer briefly."}, _image_message(png, "What is this?")],
        max_tokens=12,
        temperature=0,
    )
    job = _only_job(sessions)
    assert completion.id == f"chatcmpl-{job.id}"
    assert completion.object == "chat.completion"
    assert completion.model == job.model == PLACEHOLDER_MODEL_NAME  # `model` is an alias: the worker's model ran
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == job.result["text"]
    assert choice.finish_reason == job.result["finish_reason"]
    assert completion.usage.completion_tokens <= 12
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    assert (job.task, job.status) == ("ask", "succeeded")
    assert job.prompt == "Answer briefly.\n\nWhat is this?"
    assert job.params == {"max_new_tokens": 12, "temperature": 0.0}


@pytest.mark.usefixtures("gpu_thread")
def test_earlier_turns_become_the_jobs_history(
    openai_client: openai.OpenAI, sessions: sessionmaker[Session], png: bytes
) -> None:
    openai_client.chat.completions.create(
        model="any",
        messages=[
            _image_message(png, "What is this?"),
            {"role": "assistant", "content": "A red square."},
            {"role": "user", "content": "Which colour exactly?"},
        ],
        max_completion_tokens=8,
    )
    job = _only_job(sessions)
    assert job.prompt == "Which colour exactly?"
    assert job.params["history"] == [
        {"role": "user", "text": "What is this?"},
        {"role": "assistant", "text": "A red square."},
    ]
    assert job.status == "succeeded"


@pytest.mark.usefixtures("gpu_thread")
def test_streaming_delivers_chunks_then_done(
    openai_client: openai.OpenAI, sessions: sessionmaker[Session], png: bytes
) -> None:
    stream = openai_client.chat.completions.create(
        model="any", messages=[_image_message(png, "Describe it.")], max_tokens=10, stream=True
    )
    chunks = list(stream)
    job = _only_job(sessions)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == job.result["text"]
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    assert all(chunk.id == f"chatcmpl-{job.id}" for chunk in chunks)


BAD_REQUESTS = {
    "no image": ({"messages": [{"role": "user", "content": "hello"}]}, "exactly one image"),
    "image at a private address": (
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is it?"},
                        {"type": "image_url", "image_url": {"url": "http://10.0.0.1/a.png"}},
                    ],
                }
            ]
        },
        "a private address",
    ),
    "n above one": ({"n": 2}, "n"),
    "tools": ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools: unknown field"),
    "last message from the assistant": (
        {"messages": "IMAGE_THEN_ASSISTANT"},
        "last message must be a user message",
    ),
    "temperature out of range": ({"temperature": 7}, "temperature"),
}


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=list(BAD_REQUESTS))
def test_bad_requests_are_refused_and_change_nothing(
    case: str, openai_client: openai.OpenAI, sessions: sessionmaker[Session], broker: redis.Redis, png: bytes
) -> None:
    changes, message = BAD_REQUESTS[case]
    request = {"model": "any", "messages": [_image_message(png, "What is it?")], **changes}
    if request["messages"] == "IMAGE_THEN_ASSISTANT":
        request["messages"] = [_image_message(png, "What is it?"), {"role": "assistant", "content": "A box."}]
    with pytest.raises(openai.BadRequestError) as refused:
        openai_client.chat.completions.create(**request)
    assert message in refused.value.body["message"]
    assert_nothing_stored(sessions, broker)


@pytest.fixture
def impatient_live_url(settings: Settings) -> Iterator[str]:
    app = create_app(settings.model_copy(update={"max_wait_s": 0.5}))
    with serving(app) as url:
        yield url
    app.extensions["vlmq"].engine.dispose()


def test_a_job_not_done_in_time_is_canceled_and_reported(
    impatient_live_url: str, sessions: sessionmaker[Session], broker: redis.Redis, png: bytes
) -> None:
    workers = broker.pubsub(ignore_subscribe_messages=True)  # where GPU workers hear pushed cancels
    workers.subscribe(CHANNEL)
    client = openai.OpenAI(base_url=f"{impatient_live_url}/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.APIStatusError) as timed_out:
        client.chat.completions.create(model="any", messages=[_image_message(png, "Still there?")])
    assert timed_out.value.status_code == 504
    job = _only_job(sessions)
    assert job.status == "canceled"
    pushed = [workers.get_message(timeout=1.0) for _ in range(2)]  # the first wait may read the subscribe reply
    assert [message["data"].decode() for message in pushed if message is not None] == [job.id]
    workers.close()
