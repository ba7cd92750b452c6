"""OpenAI chat-completion requests, read into an `ask` job.

The conversation must carry exactly one image (an `image_url` part holding a data
URI, or an http(s) URL downloaded under the SSRF guard); the last message is the
question, earlier user/assistant messages become `params.history`, and system
messages are put in front of the question. A `response_format` asking for JSON
becomes `params.schema`, which the worker enforces with constrained decoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.request_rules import MAX_NEW_TOKENS, check_object_schema
from shared.schema_plan import ANY_OBJECT
from shared.schemas import JobCreate
from shared.settings import Settings
from web.api.job_input import DATA_URI_PATTERN, image_from_reference
from web.errors import ApiError

MAX_MESSAGES = 81


class ImageUrl(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        description="a base64 data URI or an http(s) URL",
        json_schema_extra={"anyOf": [{"pattern": DATA_URI_PATTERN}, {"pattern": r"^https?://"}]},
    )
    detail: Literal["auto", "low", "high"] | None = None


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["text", "image_url"]
    text: str | None = None
    image_url: ImageUrl | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart]
    name: str | None = None


class TextFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["text"]


class JsonObjectFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["json_object"]


class JsonSchema(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema", description="a JSON Schema of an object")
    strict: bool | None = None

    _check_schema = field_validator("schema_")(check_object_schema)


class JsonSchemaFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["json_schema"]
    json_schema: JsonSchema


ResponseFormat = Annotated[TextFormat | JsonObjectFormat | JsonSchemaFormat, Field(discriminator="type")]


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_usage: bool = False
    include_obfuscation: bool | None = Field(None, description="accepted and ignored")


class ChatRequest(BaseModel):
    """The subset of OpenAI's request vlmq serves; anything else is refused by name."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        description="any name: the call runs on the model the GPU workers serve, which the answer's `model` names"
    )
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_tokens: int | None = Field(None, ge=1, le=MAX_NEW_TOKENS)
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_NEW_TOKENS)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    n: Literal[1] = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    response_format: ResponseFormat | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    seed: int | None = None
    store: bool | None = None

    @model_validator(mode="after")
    def _one_token_limit(self) -> ChatRequest:
        if self.max_tokens is not None and self.max_completion_tokens is not None:
            raise ValueError("give max_completion_tokens or max_tokens, not both")
        if self.stream_options is not None and not self.stream:
            raise ValueError("stream_options applies only with stream: true")
        return self

    def answer_schema(self) -> dict[str, Any] | None:
        """The JSON Schema the answer must follow, or None for free text."""
        match self.response_format:
            case JsonSchemaFormat(json_schema=json_schema):
                return json_schema.schema_ or ANY_OBJECT
            case JsonObjectFormat():
                return ANY_OBJECT
        return None


@dataclass(frozen=True)
class ChatJob:
    spec: JobCreate
    image: bytes


def chat_to_job(chat: ChatRequest, settings: Settings) -> ChatJob:
    """Map the conversation onto one `ask` job, or raise `ApiError` saying what does not fit."""
    system: list[str] = []
    turns: list[dict[str, str]] = []
    images: list[str] = []
    for index, message in enumerate(chat.messages):
        text, message_images = _split(message, index)
        images += message_images
        if message.role in ("system", "developer"):
            system.append(text)
        else:
            turns.append({"role": message.role, "text": text})
    if len(images) != 1:
        raise ApiError(
            "invalid_request",
            f"the conversation must hold exactly one image (an image_url part); it holds {len(images)}",
        )
    if not turns or turns[-1]["role"] != "user" or not turns[-1]["text"].strip():
        raise ApiError("invalid_request", "the last message must be a user message with a text question")
    question = "\n\n".join([*system, turns[-1]["text"]])
    params: dict[str, Any] = {
        "max_new_tokens": chat.max_completion_tokens or chat.max_tokens,
        "temperature": chat.temperature,
        "top_p": chat.top_p,
        "history": turns[:-1] or None,
        "schema": chat.answer_schema(),
    }
    spec = JobCreate.model_validate(
        {
            "task": "ask",
            "prompt": question,
            "params": {k: v for k, v in params.items() if v is not None},
            "metadata": chat.metadata or {},
        }
    )
    return ChatJob(spec=spec, image=image_from_reference(images[0], settings))


def _split(message: ChatMessage, index: int) -> tuple[str, list[str]]:
    """The text and image URLs of one message."""
    if isinstance(message.content, str):
        return message.content, []
    texts = [part.text or "" for part in message.content if part.type == "text"]
    images = [part.image_url.url for part in message.content if part.type == "image_url" and part.image_url]
    if images and message.role != "user":
        raise ApiError("invalid_request", f"messages[{index}]: only user messages may carry images")
    return "\n".join(texts), images
