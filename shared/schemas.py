"""Request schemas: what a client may ask for, with every bound spelled out.

Validation errors are turned into 400 responses by the web layer; the messages
here are written for the person reading that response.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared import safe_json
from shared.request_rules import (
    MAX_NEW_TOKENS,
    CopyChannel,
    Task,
    check_ask_prompt,
    check_history,
    check_object_schema,
)
from shared.webhooks.outbox import WebhookEventFilter

MAX_PROMPT_CHARS = 4000
MAX_METADATA_BYTES = 16 * 1024
MAX_HISTORY_TURNS = 40
MAX_NAME_CHARS = 255


class HistoryTurn(BaseModel):
    """An earlier message of an `ask` conversation, given explicitly (chat completions use this)."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant"]
    text: str = Field(max_length=MAX_PROMPT_CHARS)


class JobParams(BaseModel):
    """Per-request generation overrides and task options (all optional)."""

    model_config = ConfigDict(extra="forbid")

    # Strict: `true` or `"64"` is a mistake to report, not a number to guess (an int is fine for a float).
    max_new_tokens: int | None = Field(None, ge=1, le=MAX_NEW_TOKENS, strict=True)
    temperature: float | None = Field(None, ge=0.0, le=2.0, strict=True)
    top_p: float | None = Field(None, gt=0.0, le=1.0, strict=True)
    repetition_penalty: float | None = Field(None, ge=1.0, le=2.0, strict=True)
    channel: CopyChannel | None = None
    campaign: str | None = Field(None, max_length=1000)
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    parent_job_id: str | None = Field(None, max_length=40)
    history: list[HistoryTurn] | None = Field(None, max_length=MAX_HISTORY_TURNS)

    _valid_json_schema = field_validator("schema_")(check_object_schema)

    @field_validator("history")
    @classmethod
    def _alternating(cls, value: list[HistoryTurn] | None) -> list[HistoryTurn] | None:
        if value is not None:
            check_history([turn.role for turn in value])
        return value

    def as_stored(self) -> dict[str, Any]:
        """The params as they are kept on the job row and shown back to the client."""
        return self.model_dump(by_alias=True, exclude_none=True)


def check_metadata_size(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """Metadata is echoed in every job object and webhook, so it stays small."""
    if value is not None and len(json.dumps(value)) > MAX_METADATA_BYTES:
        raise ValueError(f"metadata must be at most {MAX_METADATA_BYTES} bytes of JSON")
    return value


class SubmissionFields(BaseModel):
    """What a job submission and a batch submission share."""

    model_config = ConfigDict(extra="forbid")

    task: Task
    prompt: str | None = Field(None, max_length=MAX_PROMPT_CHARS)
    params: JobParams = Field(default_factory=JobParams)
    metadata: dict[str, Any] = Field(default_factory=dict)
    # The URL itself is checked by the web layer (it needs the allowlist and DNS).
    webhook: str | None = None
    webhook_events: list[WebhookEventFilter] | None = Field(None, min_length=1)

    _check_metadata = field_validator("metadata")(check_metadata_size)

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        """Form fields skip the JSON body checks: NUL, lone surrogates and NaN are refused here too."""
        safe_json.check(data)
        return data

    @field_validator("webhook_events", mode="before")
    @classmethod
    def _events_from_form(cls, value: Any) -> Any:
        """A form field arrives as text: `started,completed` or a JSON list."""
        if isinstance(value, str):
            text = value.strip()
            return safe_json.loads(text) if text.startswith("[") else [part.strip() for part in text.split(",")]
        return value


class JobCreate(SubmissionFields):
    """The fields of `POST /v1/jobs` besides the image itself."""

    name: str | None = Field(
        None, max_length=MAX_NAME_CHARS, description="the photo's file name (multipart: the upload's file name)"
    )

    @model_validator(mode="after")
    def _options_fit_task(self) -> JobCreate:
        params = self.params
        check_ask_prompt(self.task, self.prompt)
        if params.channel is not None and self.task != "copy":
            raise ValueError("params.channel applies only to task 'copy'")
        if params.campaign is not None and self.task != "copy":
            raise ValueError("params.campaign applies only to task 'copy'")
        if params.schema_ is not None and self.task not in ("attributes", "ask"):
            raise ValueError("params.schema applies only to tasks 'attributes' and 'ask' (a JSON answer)")
        if params.parent_job_id is not None and self.task != "ask":
            raise ValueError("params.parent_job_id applies only to task 'ask'")
        if params.history is not None and self.task != "ask":
            raise ValueError("params.history applies only to task 'ask'")
        if params.history is not None and params.parent_job_id is not None:
            raise ValueError("give params.history or params.parent_job_id, not both")
        return self
