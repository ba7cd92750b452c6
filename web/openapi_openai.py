"""The OpenAI-compatible part of the OpenAPI document: models, chat completions, files."""

from __future__ import annotations

from typing import Any

from web.api.chat_input import ChatRequest
from web.api.openai_objects import (
    ChatCompletion,
    ChatCompletionChunk,
    FileDeleted,
    FileList,
    FileObject,
    ModelList,
    ModelObject,
)
from web.openapi_schema import IDEMPOTENCY_KEY, Components, errors, links, path_id, query


def _chat(components: Components) -> dict[str, Any]:
    return {
        "summary": "OpenAI-compatible chat about one image (an `ask` job, held until it ends)",
        "description": "With an Idempotency-Key, a retry of a call that timed out or was cut off attaches to the "
        "same job (its stream is replayed from the start) instead of starting another.",
        "operationId": "createChatCompletion",
        "parameters": [IDEMPOTENCY_KEY],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": components.ref(ChatRequest, "validation")}},
        },
        "responses": {
            "200": {
                "description": "A chat.completion; with `stream: true`, server-sent `chat.completion.chunk` events "
                "ending with `data: [DONE]`",
                "content": {
                    "application/json": {"schema": components.ref(ChatCompletion, "serialization")},
                    "text/event-stream": {
                        "schema": {"type": "string"},
                        "x-event-schema": components.ref(ChatCompletionChunk, "serialization"),
                    },
                },
            },
            **errors(400, 413, 422, 500, 504),
        },
    }


def _upload(components: Components) -> dict[str, Any]:
    form = {
        "type": "object",
        "additionalProperties": False,
        "required": ["file", "purpose"],
        "properties": {
            "file": {"type": "string", "format": "binary", "description": "JSON Lines, one request per line"},
            "purpose": {"type": "string", "enum": ["batch"]},
        },
    }
    return {
        "summary": "Upload a batch input file (JSON Lines of chat completion requests)",
        "operationId": "createFile",
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {"schema": form, "encoding": {"file": {"contentType": "application/jsonl"}}}
            },
        },
        "responses": {
            "200": components.response(FileObject, "The stored file")
            | {"links": links("file_id", "getFile", "getFileContent")},
            **errors(400, 413, 415),
        },
    }


def openai_paths(components: Components) -> dict[str, Any]:
    file_id = path_id("file_id")
    return {
        "/v1/models": {
            "get": {
                "summary": "The models the live GPU workers serve",
                "operationId": "listModels",
                "responses": {"200": components.response(ModelList, "The models")},
            }
        },
        "/v1/models/{model_id}": {
            "get": {
                "summary": "One model a live GPU worker serves (its id may contain '/')",
                "operationId": "getModel",
                "parameters": [path_id("model_id")],
                "responses": {"200": components.response(ModelObject, "The model"), **errors(404)},
            }
        },
        "/v1/chat/completions": {"post": _chat(components)},
        "/v1/files": {
            "post": _upload(components),
            "get": {
                "summary": "Uploaded batch input files, newest first",
                "operationId": "listFiles",
                "parameters": [
                    query("purpose", {"type": "string", "enum": ["batch"]}),
                    query("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
                    query("after", {"type": "string"}),
                ],
                "responses": {"200": components.response(FileList, "A page of files"), **errors(400)},
            },
        },
        "/v1/files/{file_id}": {
            "get": {
                "summary": "An uploaded file, or a batch's output or error file",
                "operationId": "getFile",
                "parameters": [file_id],
                "responses": {"200": components.response(FileObject, "The file"), **errors(404)},
            },
            "delete": {
                "summary": "Delete an uploaded file (409 for a batch's input file while the batch exists, and for "
                "output and error files, which are rendered from the jobs and not stored)",
                "operationId": "deleteFile",
                "parameters": [file_id],
                "responses": {"200": components.response(FileDeleted, "Deleted"), **errors(404, 409)},
            },
        },
        "/v1/files/{file_id}/content": {
            "get": {
                "summary": "A file's content (JSON Lines)",
                "operationId": "getFileContent",
                "parameters": [file_id],
                "responses": {
                    "200": {
                        "description": "The file",
                        "content": {"application/jsonl": {"schema": {"type": "string"}}},
                    },
                    **errors(404),
                },
            }
        },
    }
