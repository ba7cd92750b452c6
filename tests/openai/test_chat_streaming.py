"""Streamed chat: deltas the worker publishes reach the OpenAI client before the job ends."""

from __future__ import annotations

import time
from functools import partial

import openai
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from shared import jobs
from shared.clock import utcnow
from shared.models import Job
from shared.streaming import publish_delta, publish_done
from tests.support.helpers import data_uri, submit, wait_for_only_job
from web.api.chat import finished_or_given_up
from web.api.chat_stream import relay

RESULT = {
    "text": "A red square.",
    "data": None,
    "usage": {"prompt_tokens": 30, "completion_tokens": 5},
    "finish_reason": "length",
}


def _messages(png: bytes) -> list[dict]:
    parts = [{"type": "text", "text": "What is it?"}, {"type": "image_url", "image_url": {"url": data_uri(png)}}]
    return [{"role": "user", "content": parts}]


def _status(sessions: sessionmaker[Session], job_id: str) -> str:
    with sessions() as session:
        return session.get_one(Job, job_id).status


def test_deltas_are_relayed_as_they_are_published(
    openai_client: openai.OpenAI, sessions: sessionmaker[Session], broker: redis.Redis, png: bytes
) -> None:
    stream = openai_client.chat.completions.create(
        model="any", messages=_messages(png), stream=True, stream_options={"include_usage": True}
    )
    chunks = iter(stream)
    job = wait_for_only_job(sessions)
    assert next(chunks).choices[0].delta.role == "assistant"
    with sessions.begin() as session:
        jobs.start(session, job.id, "test-worker", utcnow())
    for piece in ("A red", " square."):
        publish_delta(broker, job.id, piece)
        assert next(chunks).choices[0].delta.content == piece
        assert _status(sessions, job.id) == "running"  # the text arrived while the job still runs
    with sessions.begin() as session:
        jobs.succeed(session, job.id, RESULT, "test-model", 0.1, utcnow())
    publish_done(broker, job.id)
    rest = list(chunks)
    assert [c.choices[0].finish_reason for c in rest if c.choices] == ["length"]
    assert "".join(c.choices[0].delta.content or "" for c in rest if c.choices) == ""  # nothing sent twice
    assert rest[-1].choices == []
    assert (rest[-1].usage.prompt_tokens, rest[-1].usage.completion_tokens, rest[-1].usage.total_tokens) == (30, 5, 35)


def test_a_retry_with_the_same_key_replays_the_stream_from_its_start(
    openai_client: openai.OpenAI, sessions: sessionmaker[Session], broker: redis.Redis, png: bytes
) -> None:
    key = {"Idempotency-Key": "chat-retry-1"}
    first = iter(
        openai_client.chat.completions.create(model="any", messages=_messages(png), stream=True, extra_headers=key)
    )
    job = wait_for_only_job(sessions)
    next(first)
    publish_delta(broker, job.id, "A red")
    assert next(first).choices[0].delta.content == "A red"
    first.close()  # the client went away mid-answer

    retry = openai_client.chat.completions.with_raw_response.create(
        model="any", messages=_messages(png), stream=True, extra_headers=key
    )
    assert retry.headers["Idempotent-Replayed"] == "true"
    chunks = iter(retry.parse())
    next(chunks)
    assert next(chunks).choices[0].delta.content == "A red"  # published before the retry subscribed
    with sessions.begin() as session:
        jobs.start(session, job.id, "test-worker", utcnow())
    with sessions.begin() as session:
        jobs.succeed(session, job.id, RESULT, "test-model", 0.1, utcnow())
    rest = list(chunks)  # no `done` entry: the relay notices the job ended and sends the rest of its text
    assert "".join(c.choices[0].delta.content or "" for c in rest) == " square."
    assert rest[-1].choices[0].finish_reason == "length"
    assert all(chunk.id == f"chatcmpl-{job.id}" for chunk in rest)


def test_a_stream_its_client_abandons_cancels_the_job_unless_it_had_a_key(
    app: Flask, client: FlaskClient, sessions: sessionmaker[Session], png: bytes
) -> None:
    job_id = submit(client, png, task="ask", prompt="What is it?").get_json()["id"]
    with app.test_request_context():
        kept = relay(job_id, time.monotonic() + 30, False, lambda: finished_or_given_up(job_id, cancel=False), None)
        next(kept)
        kept.close()
        assert _status(sessions, job_id) == "queued"  # a retry with the same key may still come for it
        give_up = partial(finished_or_given_up, job_id, cancel=True)
        dropped = relay(job_id, time.monotonic() + 30, False, give_up, abandon=give_up)
        next(dropped)
        dropped.close()
    assert _status(sessions, job_id) == "canceled"
