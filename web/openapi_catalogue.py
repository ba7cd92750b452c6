"""The catalogue-workflow routes of the OpenAPI document: feedback, a job's photo, retry, batch evaluation."""

from __future__ import annotations

from typing import Any

from shared.feedback import FeedbackCreate, FeedbackView
from shared.job_view import JobView
from web.api.listing import FeedbackList
from web.openapi_schema import Components, errors

_BATCH_ID = {"name": "batch_id", "in": "path", "required": True, "schema": {"type": "string"}}
_JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}


def catalogue_paths(components: Components) -> dict[str, Any]:
    return {
        "/v1/jobs/{job_id}/feedback": {
            "post": {
                "summary": "Score a succeeded job's output (1-5), with corrected fields and a comment",
                "operationId": "createFeedback",
                "parameters": [_JOB_ID],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": components.ref(FeedbackCreate, "validation")}},
                },
                "responses": {
                    "201": components.response(FeedbackView, "Recorded; the newest feedback is the one that counts"),
                    **errors(400, 404, 409),
                },
            },
            "get": {
                "summary": "Every feedback on the job, newest first",
                "operationId": "listFeedback",
                "parameters": [_JOB_ID],
                "responses": {
                    "200": components.response(FeedbackList, "Every feedback on the job, newest first"),
                    **errors(404),
                },
            },
        },
        "/v1/jobs/{job_id}/image": {
            "get": {
                "summary": "The job's photo as uploaded, or a JPEG thumbnail (at most 320 px a side)",
                "operationId": "getJobImage",
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
                "operationId": "evaluateBatch",
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
                "operationId": "retryJob",
                "parameters": [_JOB_ID],
                "responses": {"202": components.response(JobView, "The new job"), **errors(404, 409)},
            }
        },
    }
