"""The catalogue-workflow routes of the OpenAPI document: feedback, a job's photo, retry, batch evaluation."""

from __future__ import annotations

from typing import Any

from shared.feedback import FeedbackCreate
from web.openapi_schema import errors

_BATCH_ID = {"name": "batch_id", "in": "path", "required": True, "schema": {"type": "string"}}
_JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
_JOB = {"description": "The job", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobView"}}}}


def catalogue_schemas() -> dict[str, Any]:
    feedback = {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "job_id": {"type": "string"},
            "score": {"type": "integer", "minimum": 1, "maximum": 5},
            "corrections": {"type": "object"},
            "comment": {"type": ["string", "null"]},
            "usable_without_edits": {"type": "boolean", "description": "score 4 or 5 and no corrections"},
            "created_at": {"type": "string", "format": "date-time"},
        },
    }
    return {"FeedbackCreate": FeedbackCreate.model_json_schema(), "Feedback": feedback}


def catalogue_paths() -> dict[str, Any]:
    one = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Feedback"}}}}
    many = {
        "type": "object",
        "properties": {"data": {"type": "array", "items": {"$ref": "#/components/schemas/Feedback"}}},
    }
    return {
        "/v1/jobs/{job_id}/feedback": {
            "post": {
                "summary": "Score a succeeded job's output (1-5), with corrected fields and a comment",
                "parameters": [_JOB_ID],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/FeedbackCreate"}}},
                },
                "responses": {
                    "201": one | {"description": "Recorded; the newest feedback is the one that counts"},
                    **errors(400, 404, 409),
                },
            },
            "get": {
                "summary": "Every feedback on the job, newest first",
                "parameters": [_JOB_ID],
                "responses": {
                    "200": {"description": "Feedback", "content": {"application/json": {"schema": many}}},
                    **errors(404),
                },
            },
        },
        "/v1/jobs/{job_id}/image": {
            "get": {
                "summary": "The job's photo as uploaded, or a JPEG thumbnail (at most 320 px a side)",
                "parameters": [
                    _JOB_ID,
                    {"name": "size", "in": "query", "schema": {"type": "string", "enum": ["full", "thumb"]}},
                ],
                "responses": {
                    "200": {"description": "The image", "content": {"image/*": {}}},
                    **errors(400, 404),
                },
            }
        },
        "/v1/batches/{batch_id}/evaluation": {
            "post": {
                "summary": "Measure the batch's attributes output against labels (columns sku or name, category, "
                "color, material, key_features): per-field accuracy, category precision/recall and confusion "
                "matrix, key-feature overlap, share usable without edits, latency percentiles",
                "parameters": [_BATCH_ID],
                "requestBody": {
                    "required": True,
                    "content": {
                        "text/csv": {},
                        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {},
                        "application/x-ndjson": {},
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "properties": {"labels": {"type": "string", "format": "binary"}},
                            }
                        },
                    },
                },
                "responses": {
                    "200": {
                        "description": "The measures",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    **errors(400, 404, 415),
                },
            }
        },
        "/v1/jobs/{job_id}/retry": {
            "post": {
                "summary": "Queue a new job with an ended job's photo, task, prompt, params and metadata",
                "parameters": [_JOB_ID],
                "responses": {"202": _JOB | {"description": "The new job"}, **errors(404, 409)},
            }
        },
    }
