"""`response_format`: a JSON answer is asked of the worker as `params.schema` on the `ask` job."""

from __future__ import annotations

import json
import threading

import openai
import pytest
from sqlalchemy.orm import Session, sessionmaker

from shared.schema_plan import ANY_OBJECT
from tests.support.helpers import data_uri, finish_like_a_worker, job_count, wait_for_only_job

SCHEMA = {"type": "object", "properties": {"color": {"type": "string"}}, "required": ["color"]}


def _messages(png: bytes) -> list[dict]:
    parts = [{"type": "text", "text": "Its colour?"}, {"type": "image_url", "image_url": {"url": data_uri(png)}}]
    return [{"role": "user", "content": parts}]


@pytest.mark.parametrize(
    ("response_format", "schema"),
    [
        ({"type": "json_schema", "json_schema": {"name": "colour", "schema": SCHEMA, "strict": True}}, SCHEMA),
        ({"type": "json_object"}, ANY_OBJECT),
    ],
    ids=["json_schema", "json_object"],
)
def test_the_schema_goes_to_the_job_and_the_json_answer_comes_back(
    response_format: dict, schema: dict, openai_client: openai.OpenAI, sessions: sessionmaker[Session], png: bytes
) -> None:
    answer = {"text": '{"color": "red"}', "data": {"color": "red"}, "usage": {}, "finish_reason": "stop"}

    def worker() -> None:
        finish_like_a_worker(sessions, wait_for_only_job(sessions).id, answer)

    thread = threading.Thread(target=worker)
    thread.start()
    completion = openai_client.chat.completions.create(
        model="any", messages=_messages(png), response_format=response_format
    )
    thread.join()
    assert json.loads(completion.choices[0].message.content) == {"color": "red"}
    assert completion.choices[0].finish_reason == "stop"
    job = wait_for_only_job(sessions)
    assert (job.task, job.params["schema"]) == ("ask", schema)


@pytest.mark.usefixtures("gpu_thread")
def test_json_mode_decodes_under_the_any_object_grammar_on_the_tiny_model(
    openai_client: openai.OpenAI, sessions: sessionmaker[Session], png: bytes
) -> None:
    """End to end on the real engine: the job is decoded under JSON mode's open grammar (which takes keys:
    tests/inference/test_budget_guard.py) and the answer parses as an object."""
    completion = openai_client.chat.completions.create(
        model="any", messages=_messages(png), response_format={"type": "json_object"}, max_tokens=48, temperature=0
    )
    answer = json.loads(completion.choices[0].message.content)
    job = wait_for_only_job(sessions)
    assert isinstance(answer, dict) and job.result["data"] == answer
    assert job.params["schema"] == ANY_OBJECT


def test_a_schema_that_is_not_an_object_is_refused(
    openai_client: openai.OpenAI, sessions: sessionmaker[Session], png: bytes
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        openai_client.chat.completions.create(
            model="any",
            messages=_messages(png),
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "array"}}},
        )
    assert 'schema must describe a JSON object ("type": "object")' in refused.value.body["message"]
    assert job_count(sessions) == 0


def test_the_finish_reason_is_the_workers_not_judged_from_web_settings(
    openai_client: openai.OpenAI, sessions: sessionmaker[Session], png: bytes
) -> None:
    """A result that reaches the web's own `max_new_tokens` (24 in tests) without a reason is not called `length`:
    only the worker knows its budget."""
    answer = {"text": "A red square.", "data": None, "usage": {"prompt_tokens": 30, "completion_tokens": 24}}

    def worker() -> None:
        finish_like_a_worker(sessions, wait_for_only_job(sessions).id, answer)

    thread = threading.Thread(target=worker)
    thread.start()
    completion = openai_client.chat.completions.create(model="any", messages=_messages(png))
    thread.join()
    assert completion.usage.completion_tokens == 24
    assert completion.choices[0].finish_reason == "stop"
