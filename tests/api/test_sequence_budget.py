"""A budget the workers' sequences cannot hold beside the photo is refused at submit, naming the limit, instead
of failing in the worker with `input_too_long`."""

from __future__ import annotations

import json

import redis
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from shared.sequence_budget import image_tokens
from tests.support.helpers import assert_nothing_stored, data_uri, finish_like_a_worker, image_bytes, submit

# Capped at 1,024 px a side (VLMQ_IMAGE_MAX_SIDE): 36 x 36 tokens of 28 px; 3,072 - 1,296 = 1,776 left to answer.
BIG = image_bytes(size=(2048, 2048))
LIMIT = 3072 - 1296


def test_the_estimate_follows_the_workers_image_cap() -> None:
    assert image_tokens(2048, 2048, 1024) == 1296
    assert image_tokens(1024, 768, 1024) == 36 * 27
    assert image_tokens(32, 32, 1024) == 16  # small photos are scaled up to 112 x 112 pixels


def test_a_budget_past_the_sequence_is_refused_naming_the_limit(
    client: FlaskClient, sessions: sessionmaker[Session], broker: redis.Redis
) -> None:
    params = json.dumps({"max_new_tokens": 2048})
    refused = submit(client, BIG, task="describe", params=params)
    assert refused.status_code == 400
    error = refused.get_json()["error"]
    assert error["code"] == "input_too_long"
    assert "2048x2048 photo alone takes at least 1296" in error["message"]
    assert f"ask for at most {LIMIT}" in error["message"] and "VLMQ_GPU_MAX_SEQ_TOKENS" in error["message"]
    assert_nothing_stored(sessions, broker)
    assert submit(client, BIG, task="describe", params=json.dumps({"max_new_tokens": LIMIT})).status_code == 202


def test_chat_completions_and_follow_ups_are_held_to_it_too(
    client: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    parts = [{"type": "text", "text": "What is it?"}, {"type": "image_url", "image_url": {"url": data_uri(BIG)}}]
    chat = {"model": "any", "messages": [{"role": "user", "content": parts}], "max_tokens": LIMIT + 1}
    refused = client.post("/v1/chat/completions", json=chat)
    assert refused.status_code == 400 and refused.get_json()["error"]["code"] == "input_too_long"

    parent = submit(client, BIG, task="ask", prompt="What is it?").get_json()
    finish_like_a_worker(sessions, parent["id"], {"text": "A red square.", "data": None, "usage": {}})
    follow_up = {"task": "ask", "prompt": "And its colour?", "params": {"parent_job_id": parent["id"]}}
    follow_up["params"]["max_new_tokens"] = LIMIT + 1
    refused = client.post("/v1/jobs", json=follow_up)
    assert refused.status_code == 400 and refused.get_json()["error"]["code"] == "input_too_long"
