"""`GET /openapi.json`: the API described for clients and code generators.

Request bodies come from the same pydantic models that validate requests, so the
document cannot drift from what the server accepts; a test checks that every
`/v1` route is described.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from shared.schemas import JobCreate
from shared.states import JobStatus
from web.api.chat_input import ChatRequest
from web.openapi_batches import batch_paths, batch_schemas
from web.openapi_catalogue import catalogue_paths, catalogue_schemas

bp = Blueprint("openapi", __name__)

_ERROR = {"$ref": "#/components/responses/Error"}
_JOB = {"description": "The job", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}}}
_DELIVERY = {
    "description": "One webhook delivery",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Delivery"}}},
}
_DELIVERY_LIST = {
    "description": "Deliveries, oldest first",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"data": {"type": "array", "items": {"$ref": "#/components/schemas/Delivery"}}},
            }
        }
    },
}
_JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}


def _job_schema() -> dict[str, Any]:
    nullable_time = {"type": ["string", "null"], "format": "date-time"}
    return {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "status": {"type": "string", "enum": [s.value for s in JobStatus]},
            "task": {"type": "string"},
            "name": {"type": ["string", "null"], "description": "the photo's file name"},
            "prompt": {"type": ["string", "null"]},
            "params": {"type": "object"},
            "model": {"type": "string"},
            "result": {
                "type": ["object", "null"],
                "properties": {
                    "text": {"type": "string"},
                    "data": {"type": ["object", "null"]},
                    "usage": {"type": "object"},
                    "redactions": {"type": "array"},
                },
            },
            "error": {
                "type": ["object", "null"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            },
            "attempts": {"type": "integer"},
            "batch_id": {"type": ["string", "null"]},
            "metadata": {"type": "object"},
            "webhook": {"type": ["string", "null"]},
            "webhook_events": {"type": ["array", "null"], "items": {"type": "string"}},
            "created_at": {"type": "string", "format": "date-time"},
            "started_at": nullable_time,
            "completed_at": nullable_time,
            "progress": {"type": ["object", "null"]},
            "metrics": {"type": "object"},
            "urls": {"type": "object"},
            "warnings": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["id", "status", "task", "created_at", "urls"],
    }


def _delivery_schema() -> dict[str, Any]:
    nullable_time = {"type": ["string", "null"], "format": "date-time"}
    attempt = {
        "type": "object",
        "properties": {
            "number": {"type": "integer"},
            "at": {"type": "string", "format": "date-time"},
            "status_code": {"type": ["integer", "null"]},
            "error": {"type": ["string", "null"]},
            "duration_ms": {"type": ["integer", "null"]},
            "response": {"type": ["string", "null"]},
        },
    }
    return {
        "type": "object",
        "properties": {
            "id": {"type": "string", "description": "the webhook-id header, the same on every attempt"},
            "event": {"type": "string", "enum": ["job.started", "job.completed"]},
            "url": {"type": "string"},
            "status": {"type": "string"},
            "attempts": {"type": "integer"},
            "next_attempt_at": nullable_time,
            "last_status_code": {"type": ["integer", "null"]},
            "last_error": {"type": ["string", "null"]},
            "created_at": {"type": "string", "format": "date-time"},
            "delivered_at": nullable_time,
            "log": {"type": "array", "items": attempt},
        },
        "required": ["id", "event", "url", "status", "attempts"],
    }


def _create_job_operation() -> dict[str, Any]:
    multipart = {
        "type": "object",
        "required": ["image", "task"],
        "properties": {
            "image": {"type": "string", "format": "binary"},
            "task": {"type": "string"},
            "prompt": {"type": "string"},
            "params": {"type": "string", "description": "JSON object, see JobCreate.params"},
            "metadata": {"type": "string", "description": "JSON object"},
            "webhook": {"type": "string", "format": "uri"},
            "webhook_events": {"type": "string", "description": "'started,completed' or a JSON array of them"},
        },
    }
    json_body = {
        "allOf": [
            {"$ref": "#/components/schemas/JobCreate"},
            {
                "type": "object",
                "properties": {
                    "image": {"type": "string", "description": "data:image/...;base64,"},
                    "image_url": {"type": "string", "format": "uri", "description": "downloaded at submit time"},
                },
            },
        ]
    }
    return {
        "summary": "Submit an image for a task",
        "parameters": [
            {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string", "maxLength": 255}},
            {"name": "Prefer", "in": "header", "schema": {"type": "string", "example": "wait=30"}},
        ],
        "requestBody": {
            "required": True,
            "content": {"multipart/form-data": {"schema": multipart}, "application/json": {"schema": json_body}},
        },
        "responses": {
            "200": _JOB | {"description": "Finished within Prefer: wait, or an idempotent replay"},
            "202": _JOB | {"description": "Accepted and queued"},
            "400": _ERROR,
            "401": _ERROR,
            "413": _ERROR,
            "415": _ERROR,
        },
    }


def openapi_document() -> dict[str, Any]:
    job_create = JobCreate.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
    chat_request = ChatRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    definitions = job_create.pop("$defs", {}) | chat_request.pop("$defs", {})
    list_params = [
        {"name": "status", "in": "query", "schema": {"type": "string", "enum": [s.value for s in JobStatus]}},
        {"name": "batch_id", "in": "query", "schema": {"type": "string"}},
        {"name": "task", "in": "query", "schema": {"type": "string"}},
        {"name": "q", "in": "query", "schema": {"type": "string"}, "description": "text in the file name or metadata"},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
        {"name": "cursor", "in": "query", "schema": {"type": "string"}},
    ]
    job_list = {
        "type": "object",
        "properties": {
            "data": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}},
            "has_more": {"type": "boolean"},
            "next_cursor": {"type": ["string", "null"]},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "vlmq", "version": "1", "description": "Vision-language jobs on product photos."},
        "security": [{"bearer": []}],
        "paths": {
            "/v1/jobs": {
                "post": _create_job_operation(),
                "get": {
                    "summary": "List jobs, newest first",
                    "parameters": list_params,
                    "responses": {
                        "200": {"description": "A page of jobs", "content": {"application/json": {"schema": job_list}}},
                        "400": _ERROR,
                    },
                },
            },
            "/v1/jobs/{job_id}": {
                "get": {"summary": "Get a job", "parameters": [_JOB_ID], "responses": {"200": _JOB, "404": _ERROR}},
                "delete": {
                    "summary": "Delete a finished job and its data (result, webhook deliveries, its unshared image)",
                    "parameters": [_JOB_ID],
                    "responses": {"204": {"description": "Deleted"}, "404": _ERROR, "409": _ERROR},
                },
            },
            "/v1/jobs/{job_id}/deliveries": {
                "get": {
                    "summary": "The job's webhook deliveries: attempts, status codes, next attempt",
                    "parameters": [_JOB_ID],
                    "responses": {"200": _DELIVERY_LIST, "404": _ERROR},
                }
            },
            "/v1/jobs/{job_id}/deliveries/redeliver": {
                "post": {
                    "summary": "Send a delivery again (the latest, or `delivery_id` from the body), same webhook-id",
                    "parameters": [_JOB_ID],
                    "requestBody": {
                        "required": False,
                        "content": {
                            "application/json": {
                                "schema": {"type": "object", "properties": {"delivery_id": {"type": "string"}}}
                            }
                        },
                    },
                    "responses": {"202": _DELIVERY, "400": _ERROR, "404": _ERROR, "409": _ERROR},
                }
            },
            "/v1/chat/completions": {
                "post": {
                    "summary": "OpenAI-compatible chat about one image (an `ask` job, held until it ends)",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ChatRequest"}}},
                    },
                    "responses": {
                        "200": {
                            "description": "A chat.completion object, or server-sent chat.completion.chunk events",
                            "content": {"application/json": {"schema": {"type": "object"}}, "text/event-stream": {}},
                        },
                        "400": _ERROR,
                        "401": _ERROR,
                        "500": _ERROR,
                        "504": _ERROR,
                    },
                }
            },
            "/v1/jobs/{job_id}/cancel": {
                "post": {
                    "summary": "Cancel a queued or running job",
                    "parameters": [_JOB_ID],
                    "responses": {"200": _JOB, "404": _ERROR, "409": _ERROR},
                }
            },
            **batch_paths(),
            **catalogue_paths(),
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "JobCreate": job_create,
                "ChatRequest": chat_request,
                "Job": _job_schema(),
                "Delivery": _delivery_schema(),
                **definitions,
                **batch_schemas(),
                **catalogue_schemas(),
            },
            "responses": {
                "Error": {
                    "description": "What went wrong and what is accepted",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "error": {
                                        "type": "object",
                                        "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                                    }
                                },
                            }
                        }
                    },
                }
            },
        },
    }


@bp.get("/openapi.json")
def openapi_json() -> Response:
    return jsonify(openapi_document())
