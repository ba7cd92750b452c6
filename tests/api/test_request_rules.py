"""Each request rule is written once (`shared/request_rules.py`): the API and the engine refuse the
same requests with the same words, and the server's token defaults obey the API's ceiling."""

from __future__ import annotations

import pytest
from PIL import Image
from pydantic import ValidationError

from shared.request_rules import COPY_CHANNELS, MAX_NEW_TOKENS, TASKS
from shared.schemas import JobCreate
from shared.settings import Settings
from worker.inference.engine_contract import GenerationParams, InferenceError, InferenceRequest, Turn
from worker.inference.prompts import DEFAULT_TEMPLATES, PromptBook, conversation

PARAMS = GenerationParams(max_new_tokens=16, temperature=0.0, top_p=1.0, repetition_penalty=1.0)


def api_refusal(**fields: object) -> str:
    with pytest.raises(ValidationError) as caught:
        JobCreate.model_validate(fields)
    return caught.value.errors()[0]["msg"]


def test_ask_without_a_question_is_refused_with_one_message_on_both_sides() -> None:
    web = api_refusal(task="ask", prompt="  ")
    request = InferenceRequest(task="ask", image=Image.new("RGB", (8, 8)), generation=PARAMS, prompt="  ")
    with pytest.raises(InferenceError) as caught:
        PromptBook().instruction(request)
    assert caught.value.code == "invalid_request"
    assert web.endswith(caught.value.message)


@pytest.mark.parametrize(
    "roles", [("assistant", "user"), ("user",), ("user", "user")], ids=["starts-wrong", "odd", "no-alternation"]
)
def test_history_rule_is_the_same_on_both_sides(roles: tuple[str, ...]) -> None:
    history = [{"role": role, "text": "x"} for role in roles]
    web = api_refusal(task="ask", prompt="q", params={"history": history})
    with pytest.raises(InferenceError) as caught:
        conversation(tuple(Turn(role, "x") for role in roles), "q")  # type: ignore[arg-type]
    assert caught.value.code == "invalid_history"
    assert web.endswith(caught.value.message)


def test_every_task_and_copy_channel_has_a_prompt() -> None:
    book = PromptBook()
    for task in TASKS:
        options = {"schema": {"type": "object"}} if task == "attributes" else {}
        request = InferenceRequest(task=task, image=Image.new("RGB", (8, 8)), generation=PARAMS, prompt="q")  # type: ignore[arg-type]
        assert book.instruction(request, options.get("schema"))
    assert {f"copy_{channel}" for channel in COPY_CHANNELS} <= set(DEFAULT_TEMPLATES)


def test_server_token_defaults_obey_the_api_ceiling(tmp_path) -> None:
    assert Settings(data_dir=tmp_path, max_new_tokens=MAX_NEW_TOKENS).max_new_tokens == MAX_NEW_TOKENS
    for field in ("max_new_tokens", "attributes_max_new_tokens"):
        with pytest.raises(ValidationError, match=f"less than or equal to {MAX_NEW_TOKENS}"):
            Settings(data_dir=tmp_path, **{field: MAX_NEW_TOKENS + 1})
    assert api_refusal(task="describe", params={"max_new_tokens": MAX_NEW_TOKENS + 1}).endswith(str(MAX_NEW_TOKENS))
