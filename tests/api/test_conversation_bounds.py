"""An `ask` conversation is bounded at submit: earlier turns and its estimated prompt size."""

from __future__ import annotations

import json
from typing import Any

import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from shared import jobs
from shared.clock import utcnow
from shared.schemas import MAX_HISTORY_TURNS
from shared.settings import Settings
from tests.support.helpers import image_bytes, job_count, queued_messages, submit
from web.app import create_app


def answered(sessions: sessionmaker[Session], job_id: str, text: str = "It is red.") -> str:
    """Run `job_id` to success with `text` as its answer, as a worker would."""
    with sessions.begin() as session:
        assert jobs.start(session, job_id, "gpu-test", utcnow())
        assert jobs.succeed(session, job_id, {"text": text, "data": None}, "tiny", 0.1, utcnow())
    return job_id


def follow_up(client: FlaskClient, parent_id: str, prompt: str = "And then?") -> Any:
    return submit(client, None, task="ask", prompt=prompt, params=json.dumps({"parent_job_id": parent_id}))


def test_a_parent_chain_stops_at_the_turn_limit(
    client: FlaskClient, sessions: sessionmaker[Session], broker: redis.Redis
) -> None:
    job_id = answered(sessions, submit(client, image_bytes(), task="ask", prompt="What is it?").get_json()["id"])
    for _ in range(MAX_HISTORY_TURNS // 2):  # the last of these carries exactly the limit
        response = follow_up(client, job_id)
        assert response.status_code == 202, response.get_json()
        job_id = answered(sessions, response.get_json()["id"])
    before = (job_count(sessions), queued_messages(broker))
    refused = follow_up(client, job_id)
    assert refused.status_code == 400
    error = refused.get_json()["error"]
    assert error["code"] == "conversation_too_long" and str(MAX_HISTORY_TURNS) in error["message"]
    assert (job_count(sessions), queued_messages(broker)) == before


def test_long_turns_are_refused_by_their_estimated_prompt_size(
    settings: Settings, sessions: sessionmaker[Session], broker: redis.Redis
) -> None:
    app: Flask = create_app(settings.model_copy(update={"max_conversation_chars": 3000}))
    client = app.test_client()
    first = submit(client, image_bytes(), task="ask", prompt="Describe every detail.").get_json()["id"]
    parent = answered(sessions, first, text="detail " * 400)  # 2800 characters
    refused = follow_up(client, parent, prompt="x" * 300)
    assert refused.status_code == 400
    error = refused.get_json()["error"]
    assert error["code"] == "prompt_too_long" and "VLMQ_MAX_CONVERSATION_CHARS" in error["message"]
    history = [{"role": "user", "text": "q" * 1500}, {"role": "assistant", "text": "a" * 1500}]
    explicit = submit(client, image_bytes(), task="ask", prompt="and?", params=json.dumps({"history": history}))
    assert explicit.status_code == 400 and explicit.get_json()["error"]["code"] == "prompt_too_long"
    assert (job_count(sessions), queued_messages(broker)) == (1, 1)
    assert follow_up(client, parent, prompt="Short?").status_code == 202
    app.extensions["vlmq"].engine.dispose()
