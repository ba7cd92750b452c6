"""The `/v1/jobs` part of the OpenAPI document (`web/openapi.py` merges it in)."""

from __future__ import annotations

import copy
from typing import Any

from shared.job_view import JobView
from shared.schemas import JobCreate, SubmissionFields
from shared.states import JobStatus
from shared.webhooks.delivery_log import DeliveryView
from web.api.job_input import DATA_URI_PATTERN
from web.api.listing import DeliveryList, JobPage
from web.openapi_schema import (
    IDEMPOTENCY_KEY,
    PAGE_QUERY,
    WEBHOOK_EVENTS_PATTERN,
    Components,
    errors,
    header,
    job_rules,
    links,
    path_id,
    query,
)

IMAGE_TYPES = "image/jpeg, image/png, image/webp, image/gif, image/bmp"
PREFER = header(
    "Prefer",
    {"type": "string", "examples": ["wait=30", "wait"]},
    "`wait=N` holds the request up to N seconds (capped at VLMQ_MAX_WAIT_S) for the finished job; "
    "a bare `wait` waits the maximum; other preferences are ignored. When VLMQ_MAX_WAITING_REQUESTS requests "
    "already wait on this server process, the preference is not honoured: 202 at once, no `Preference-Applied`",
)


def _non_null(prop: dict[str, Any]) -> dict[str, Any]:
    """A `X | None` property as X: a form field is either sent or absent, never null."""
    options = [option for option in prop.get("anyOf", [prop]) if option.get("type") != "null"]
    return {key: value for key, value in options[0].items() if key != "title"}


def form_fields(components: Components, model: type[SubmissionFields]) -> dict[str, Any]:
    """The submission fields as multipart parts: `params` and `metadata` are JSON parts."""
    components.ref(model, "validation")
    props = components.schemas[model.__name__]["properties"]
    return {
        "task": _non_null(props["task"]),
        "prompt": _non_null(props["prompt"]),
        "params": props["params"],
        "metadata": _non_null(props["metadata"]),
        "webhook": _non_null(props["webhook"]),
        "webhook_events": {
            "type": "string",
            "pattern": WEBHOOK_EVENTS_PATTERN,
            "description": "e.g. started,completed",
        },
    }


# The same rules as the JSON body's `allOf`; kept in prose here because schemathesis cannot
# evaluate `if`/`then` over a binary part.
FORM_RULES = (
    "Rules across fields, as for JSON bodies: `ask` needs a non-blank `prompt`; `params.channel` and "
    "`params.campaign` apply to `copy`, `params.schema` to `attributes` and `ask`, `params.history` and "
    "`params.parent_job_id` to `ask`; a follow-up (`params.parent_job_id`) sends no `image`, every other job one."
)
FORM_ENCODING = {"params": {"contentType": "application/json"}, "metadata": {"contentType": "application/json"}}


IMAGE_DATA_URI = {"type": "string", "pattern": DATA_URI_PATTERN, "description": "data:image/...;base64,..."}
IMAGE_URL = {"type": "string", "pattern": r"^https?://", "description": "downloaded at submit time"}


def _create_job(components: Components) -> dict[str, Any]:
    multipart = {
        "type": "object",
        "additionalProperties": False,
        "required": ["task"],
        "properties": {"image": {"type": "string", "format": "binary"}, **form_fields(components, JobCreate)},
        "description": FORM_RULES,
    }
    json_body = copy.deepcopy(components.schemas["JobCreate"])
    json_body["properties"] |= {
        "image": IMAGE_DATA_URI,
        "image_url": IMAGE_URL,
    }
    json_body["allOf"] = job_rules({"oneOf": [{"required": ["image"]}, {"required": ["image_url"]}]})
    components.schemas["JobSubmission"] = json_body
    job = components.ref(JobView, "serialization")
    follow = links("job_id", "getJob", "cancelJob", "listJobDeliveries", "redeliverJobDelivery")
    return {
        "summary": "Submit an image for a task",
        "operationId": "createJob",
        "parameters": [IDEMPOTENCY_KEY, PREFER],
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": multipart,
                    "encoding": FORM_ENCODING | {"image": {"contentType": IMAGE_TYPES}},
                },
                "application/json": {"schema": {"$ref": "#/components/schemas/JobSubmission"}},
            },
        },
        "responses": {
            "200": {
                "description": "Finished within Prefer: wait, or an idempotent replay",
                "content": {"application/json": {"schema": job}},
                "links": follow,
            },
            "202": {
                "description": "Accepted and queued",
                "content": {"application/json": {"schema": job}},
                "links": follow,
            },
            **errors(400, 404, 409, 413, 415, 422),
        },
    }


def job_paths(components: Components) -> dict[str, Any]:
    job = components.response(JobView, "The job")
    job_id = path_id("job_id")
    list_query = [
        query("status", {"type": "string", "enum": [s.value for s in JobStatus]}),
        query("batch_id", {"type": "string"}),
        *PAGE_QUERY,
    ]
    return {
        "/v1/jobs": {
            "post": _create_job(components),
            "get": {
                "summary": "List jobs, newest first",
                "operationId": "listJobs",
                "parameters": list_query,
                "responses": {"200": components.response(JobPage, "A page of jobs"), **errors(400)},
            },
        },
        "/v1/jobs/{job_id}": {
            "get": {
                "summary": "Get a job",
                "operationId": "getJob",
                "parameters": [job_id],
                "responses": {"200": job, **errors(404)},
            },
            "delete": {
                "summary": "Delete a finished job and its data (result, webhook deliveries, its unshared image)",
                "operationId": "deleteJob",
                "parameters": [job_id],
                "responses": {"204": {"description": "Deleted"}, **errors(404, 409)},
            },
        },
        "/v1/jobs/{job_id}/cancel": {
            "post": {
                "summary": "Cancel a queued or running job",
                "operationId": "cancelJob",
                "parameters": [job_id],
                "responses": {"200": job, **errors(404, 409)},
            }
        },
        "/v1/jobs/{job_id}/deliveries": {
            "get": {
                "summary": "The job's webhook deliveries: attempts, status codes, next attempt",
                "operationId": "listJobDeliveries",
                "parameters": [job_id],
                "responses": {"200": components.response(DeliveryList, "Deliveries, oldest first"), **errors(404)},
            }
        },
        "/v1/jobs/{job_id}/deliveries/redeliver": {
            "post": {
                "summary": "Send a delivery again (the latest, or `delivery_id` from the body), same webhook-id",
                "operationId": "redeliverJobDelivery",
                "parameters": [job_id],
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {"delivery_id": {"type": "string"}},
                            }
                        }
                    },
                },
                "responses": {
                    "202": components.response(DeliveryView, "The delivery, queued again"),
                    **errors(400, 404, 409, 413),
                },
            }
        },
    }
