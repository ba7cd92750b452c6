"""The `/v1/batches` part of the OpenAPI document (`web/openapi.py` merges it in)."""

from __future__ import annotations

from typing import Any

from shared.batch_schemas import BatchCreate
from shared.states import JobStatus

_ERROR = {"$ref": "#/components/responses/Error"}
_BATCH_ID = {"name": "batch_id", "in": "path", "required": True, "schema": {"type": "string"}}
_BATCH = {
    "description": "The batch",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Batch"}}},
}


def batch_schemas() -> dict[str, Any]:
    """`BatchCreate`, `Batch` and the definitions they refer to."""
    batch_create = BatchCreate.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
    definitions = batch_create.pop("$defs", {})
    nullable_time = {"type": ["string", "null"], "format": "date-time"}
    batch = {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "status": {"type": "string", "enum": ["running", "completed", "canceled"]},
            "task": {"type": "string"},
            "total": {"type": "integer"},
            "counts": {
                "type": "object",
                "properties": {status.value: {"type": "integer"} for status in JobStatus},
            },
            "progress": {"type": "number", "minimum": 0, "maximum": 1, "description": "finished jobs / total"},
            "metadata": {"type": "object"},
            "webhook": {"type": ["string", "null"]},
            "created_at": {"type": "string", "format": "date-time"},
            "completed_at": nullable_time,
            "canceled_at": nullable_time,
            "urls": {"type": "object"},
        },
        "required": ["id", "status", "task", "total", "counts", "progress", "created_at", "urls"],
    }
    return {"BatchCreate": batch_create, "Batch": batch, **definitions}


def _create_batch_operation() -> dict[str, Any]:
    multipart = {
        "type": "object",
        "required": ["image", "task"],
        "properties": {
            "image": {"type": "array", "items": {"type": "string", "format": "binary"}, "description": "repeated"},
            "task": {"type": "string"},
            "prompt": {"type": "string"},
            "params": {"type": "string", "description": "JSON object, see JobCreate.params"},
            "metadata": {"type": "string", "description": "JSON object"},
            "webhook": {"type": "string", "format": "uri"},
            "webhook_events": {"type": "string", "description": "'started,completed' or a JSON array of them"},
        },
    }
    return {
        "summary": "Submit many images for one task; shared fields apply to every item, item fields override them",
        "parameters": [{"name": "Idempotency-Key", "in": "header", "schema": {"type": "string", "maxLength": 255}}],
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {"schema": multipart},
                "application/json": {"schema": {"$ref": "#/components/schemas/BatchCreate"}},
            },
        },
        "responses": {
            "200": _BATCH | {"description": "An idempotent replay"},
            "202": _BATCH | {"description": "Accepted: every job is queued"},
            "400": _ERROR,
            "401": _ERROR,
            "413": _ERROR,
            "415": _ERROR,
        },
    }


def batch_paths() -> dict[str, Any]:
    page = {
        "type": "object",
        "properties": {
            "data": {"type": "array", "items": {"$ref": "#/components/schemas/Batch"}},
            "has_more": {"type": "boolean"},
            "next_cursor": {"type": ["string", "null"]},
        },
    }
    page_params = [
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
        {"name": "cursor", "in": "query", "schema": {"type": "string"}},
    ]
    results = {
        "description": "One row per job in submission order: JSON Lines {index, job_id, name, status, result, metrics, "
        "error, metadata, feedback}, or CSV (with a BOM) or XLSX with columns index, job_id, name, sku, status, "
        "text, data, error_code, error_message, metadata, feedback_score, feedback_corrections, feedback_comment",
        "content": {
            "application/x-ndjson": {},
            "text/csv": {},
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {},
        },
    }
    return {
        "/v1/batches": {
            "post": _create_batch_operation(),
            "get": {
                "summary": "List batches, newest first",
                "parameters": page_params,
                "responses": {
                    "200": {"description": "A page of batches", "content": {"application/json": {"schema": page}}},
                    "400": _ERROR,
                },
            },
        },
        "/v1/batches/{batch_id}": {
            "get": {
                "summary": "Get a batch: counts per job status and progress",
                "parameters": [_BATCH_ID],
                "responses": {"200": _BATCH, "404": _ERROR},
            }
        },
        "/v1/batches/{batch_id}/results": {
            "get": {
                "summary": "The batch's results with each item's name, metadata and newest feedback",
                "parameters": [
                    _BATCH_ID,
                    {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["jsonl", "csv", "xlsx"]}},
                ],
                "responses": {"200": results, "400": _ERROR, "404": _ERROR},
            }
        },
        "/v1/batches/{batch_id}/cancel": {
            "post": {
                "summary": "Cancel every queued or running job of the batch",
                "parameters": [_BATCH_ID],
                "responses": {"200": _BATCH, "404": _ERROR, "409": _ERROR},
            }
        },
    }
