"""The `/v1/batches` part of the OpenAPI document (`web/openapi.py` merges it in).

One route serves two shapes: vlmq's batches (`bat_...`: many images in one request)
and OpenAI's Batch API (`batch_...`: a JSON body naming an uploaded `input_file_id`).
"""

from __future__ import annotations

from typing import Any

from shared.batch_schemas import BatchCreate
from shared.batch_view import BatchView
from web.api.listing import BatchPage
from web.api.openai_objects import BatchObject
from web.openai.batches import OpenAIBatchCreate
from web.openapi_jobs import FORM_ENCODING, IMAGE_DATA_URI, IMAGE_TYPES, IMAGE_URL, form_fields
from web.openapi_schema import IDEMPOTENCY_KEY, PAGE_QUERY, Components, errors, links, path_id, query


def _either_batch(components: Components, description: str) -> dict[str, Any]:
    shapes = [components.ref(BatchView, "serialization"), components.ref(BatchObject, "serialization")]
    return {"description": description, "content": {"application/json": {"schema": {"oneOf": shapes}}}}


def _create_batch(components: Components) -> dict[str, Any]:
    no_follow_ups = {"not": {"required": ["params"], "properties": {"params": {"required": ["parent_job_id"]}}}}
    multipart = {
        "type": "object",
        "additionalProperties": False,
        "required": ["image", "task"],
        "properties": {
            "image": {"type": "array", "minItems": 1, "items": {"type": "string", "format": "binary"}},
            **form_fields(components, BatchCreate),
        },
        "description": "Every item brings its own image, so `params.parent_job_id` is refused here.",
    }
    item = components.schemas["BatchItem"]
    item["oneOf"] = [{"required": ["image"]}, {"required": ["image_url"]}]
    item["properties"]["image"] = {"anyOf": [IMAGE_DATA_URI, {"type": "null"}]}
    item["properties"]["image_url"] = {"anyOf": [IMAGE_URL, {"type": "null"}]}
    components.schemas["BatchCreate"]["allOf"] = [no_follow_ups]
    components.schemas["BatchCreate"]["required"] = ["task", "items"]
    components.schemas["BatchCreate"]["properties"]["items"]["minItems"] = 1
    return {
        "summary": "Submit many images for one task, or create an OpenAI batch from an uploaded file",
        "description": "A JSON body with `input_file_id` is OpenAI's Batch API (answered with an OpenAI batch); "
        "otherwise the shared fields apply to every item and item fields override them.",
        "operationId": "createBatch",
        "parameters": [IDEMPOTENCY_KEY],
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": multipart,
                    "encoding": FORM_ENCODING | {"image": {"contentType": IMAGE_TYPES}},
                },
                "application/json": {
                    "schema": {
                        "oneOf": [
                            components.ref(BatchCreate, "validation"),
                            components.ref(OpenAIBatchCreate, "validation"),
                        ]
                    }
                },
            },
        },
        "responses": {
            "200": _either_batch(components, "An OpenAI batch, created; or an idempotent replay of a vlmq batch")
            | {"links": links("batch_id", "getBatch", "cancelBatch")},
            "202": components.response(BatchView, "Accepted: every job is queued")
            | {"links": links("batch_id", "getBatch", "getBatchResults", "cancelBatch")},
            **errors(400, 404, 413, 415, 422),
        },
    }


def batch_paths(components: Components) -> dict[str, Any]:
    batch_id = path_id("batch_id")
    results = {
        "description": "One row per job in submission order: JSON Lines {index, job_id, name, status, result, metrics, "
        "error, metadata, feedback}, or CSV (with a BOM) or XLSX with columns index, job_id, name, sku, status, "
        "text, data, error_code, error_message, metadata, feedback_score, feedback_corrections, feedback_comment",
        "content": {
            "application/x-ndjson": {"schema": {"type": "string"}},
            "text/csv": {"schema": {"type": "string"}},
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
                "schema": {"type": "string", "format": "binary"}
            },
        },
    }
    return {
        "/v1/batches": {
            "post": _create_batch(components),
            "get": {
                "summary": "List vlmq batches, newest first",
                "operationId": "listBatches",
                "parameters": PAGE_QUERY,
                "responses": {"200": components.response(BatchPage, "A page of batches"), **errors(400)},
            },
        },
        "/v1/batches/{batch_id}": {
            "get": {
                "summary": "Get a batch: counts per job status and progress (or an OpenAI batch)",
                "operationId": "getBatch",
                "parameters": [batch_id],
                "responses": {"200": _either_batch(components, "The batch"), **errors(404)},
            }
        },
        "/v1/batches/{batch_id}/results": {
            "get": {
                "summary": "The batch's results with each item's name, metadata and newest feedback",
                "operationId": "getBatchResults",
                "parameters": [batch_id, query("format", {"type": "string", "enum": ["jsonl", "csv", "xlsx"]})],
                "responses": {"200": results, **errors(400, 404)},
            }
        },
        "/v1/batches/{batch_id}/cancel": {
            "post": {
                "summary": "Cancel every queued or running job of the batch",
                "operationId": "cancelBatch",
                "parameters": [batch_id],
                "responses": {"200": _either_batch(components, "The batch"), **errors(404, 409)},
            }
        },
    }
