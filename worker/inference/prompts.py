"""What the model is asked: instruction templates for every task (in one place, overridable from
settings) and the conversation the instruction ends.

`settings.prompts` maps a template name to a `str.format` template; names are the
task names plus `copy_<channel>` and `copy_campaign`. Unknown names or placeholders
are rejected when the engine loads, not when a job runs.

The image always sits in the first user turn, before that turn's text (`user → image →
text`); follow-up questions are text-only turns after the earlier answers, so the model
sees one conversation about one image.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from shared.request_rules import COPY_CHANNELS, DEFAULT_COPY_CHANNEL, check_ask_prompt, check_history
from worker.inference.engine_contract import InferenceError, InferenceRequest, Turn

DEFAULT_TEMPLATES: dict[str, str] = {
    "describe": (
        "Describe the product in this photo for an online shop listing: what it is, its "
        "color, material, shape and notable details. Answer in 3-5 plain sentences."
    ),
    "ocr": (
        "Transcribe all text visible in this image exactly as written, one line of text "
        "per line, from top to bottom. Output only the text. If there is no text, reply "
        "with an empty answer."
    ),
    "attributes": (
        "Extract the attributes of the product in this photo as one JSON object that "
        "matches this JSON schema:\n{schema}\nOutput only the JSON object."
    ),
    "copy_title": (
        "Write one product title for an online shop listing of this product, at most 60 "
        "characters. Output only the title."
    ),
    "copy_selling_points": (
        "Write 3 to 5 short selling points for this product, one per line, each starting with '- '."
    ),
    "copy_social_post": ("Write a short social media post (2-4 sentences, hashtags allowed) promoting this product."),
    "copy_livestream_script": (
        "Write a live-stream sales script of about 150 words that a host could read while "
        "showing this product to viewers."
    ),
    "copy_campaign": "Campaign context: {campaign}",
    "ask": "{question}",
    "answer_schema": "Answer only with one JSON object that matches this JSON schema:\n{schema}",
}

# Placeholders a template may use; anything else is a configuration error.
_FIELDS: dict[str, frozenset[str]] = {
    "attributes": frozenset({"schema"}),
    "copy_campaign": frozenset({"campaign"}),
    "ask": frozenset({"question"}),
    "answer_schema": frozenset({"schema"}),
}


class PromptBook:
    """Default templates merged with overrides, rendering one instruction per request."""

    def __init__(self, overrides: Mapping[str, str] | None = None) -> None:
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - set(DEFAULT_TEMPLATES))
        if unknown:
            raise ValueError(f"unknown prompt template names {unknown}; known: {sorted(DEFAULT_TEMPLATES)}")
        self.templates = {**DEFAULT_TEMPLATES, **overrides}
        for name, template in self.templates.items():
            sample = {field: "x" for field in _FIELDS.get(name, frozenset())}
            try:
                template.format(**sample)
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(f"prompt template {name!r} is invalid: {exc!r}") from exc

    def render(self, name: str, **fields: Any) -> str:
        """Fill template `name`."""
        return self.templates[name].format(**fields)

    def instruction(self, request: InferenceRequest, schema: Mapping[str, Any] | None = None) -> str:
        """The user-turn text for `request` (the image goes before it)."""
        task = request.task
        if task == "attributes":
            return self.render("attributes", schema=json.dumps(schema, ensure_ascii=False))
        if task == "copy":
            channel = request.options.get("channel", DEFAULT_COPY_CHANNEL)
            if channel not in COPY_CHANNELS:
                raise InferenceError("invalid_options", f"copy channel must be one of {COPY_CHANNELS}")
            text = self.render(f"copy_{channel}")
            campaign = request.options.get("campaign")
            if campaign:
                text += "\n" + self.render("copy_campaign", campaign=str(campaign))
            return text
        if task == "ask":
            try:
                check_ask_prompt(task, request.prompt)
            except ValueError as exc:
                raise InferenceError("invalid_request", str(exc)) from exc
            question = self.render("ask", question=(request.prompt or "").strip())
            if schema is None:
                return question
            return question + "\n" + self.render("answer_schema", schema=json.dumps(schema, ensure_ascii=False))
        if task in ("describe", "ocr"):
            return self.render(task)
        raise InferenceError("invalid_request", f"unknown task {task!r}")


def conversation(history: tuple[Turn, ...], instruction: str) -> list[Turn]:
    """Earlier turns (user/assistant pairs) followed by the new user instruction."""
    try:
        check_history([turn.role for turn in history])
    except ValueError as exc:
        raise InferenceError("invalid_history", str(exc)) from exc
    return [*history, Turn("user", instruction)]
