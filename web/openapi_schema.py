"""Building blocks of the OpenAPI document: schemas taken from the pydantic models that
validate requests and render responses, error responses, and the cross-field rules of
a job submission written as JSON Schema `if`/`then`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from web.request_ids import REQUEST_ID_PATTERN

ERROR_CODES: dict[int, str] = {
    400: "The request is malformed or breaks a rule; the message names the field",
    401: "No API key, or an unknown, revoked or expired one (the admin API: not VLMQ_ADMIN_KEY)",
    404: "No such resource for this API key",
    409: "The resource is not in a state that allows this",
    413: "The body or an image is over its size limit",
    415: "The body is neither of the accepted content types",
    422: "The Idempotency-Key was already used with a different request",
    429: "Over the tenant's request rate (VLMQ_RATE_LIMIT) or queue quota; retry after Retry-After",
    500: "The job failed",
    504: "The job did not finish in time",
}
WEBHOOK_EVENTS_PATTERN = r"^\s*(started|completed)\s*(,\s*(started|completed)\s*)*$"


class Components:
    """Collects `components/schemas` while operations refer to models by `$ref`."""

    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {}

    def ref(self, model: type[BaseModel], mode: Literal["validation", "serialization"]) -> dict[str, str]:
        """Register `model` once (validation: a request; serialization: a response) and refer to it.

        A schema registered earlier is kept as it is, rules added to it included.
        """
        if model.__name__ not in self.schemas:
            schema = model.model_json_schema(mode=mode, by_alias=True, ref_template="#/components/schemas/{model}")
            for name, definition in schema.pop("$defs", {}).items():
                self.schemas.setdefault(name, definition)
            self.schemas[model.__name__] = schema
        return {"$ref": f"#/components/schemas/{model.__name__}"}

    def response(self, model: type[BaseModel], description: str) -> dict[str, Any]:
        return {
            "description": description,
            "content": {"application/json": {"schema": self.ref(model, "serialization")}},
        }


def errors(*statuses: int) -> dict[str, Any]:
    """The error responses an operation can give, each with what it means."""
    return {
        str(status): {
            "description": ERROR_CODES[status],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for status in statuses
    }


def header(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": False, "schema": schema, "description": description}


IDEMPOTENCY_KEY = header(
    "Idempotency-Key",
    {"type": "string", "minLength": 1, "maxLength": 255},
    "a retry with the same key and request returns the first result; another request with it is 422",
)


REQUEST_ID = header(
    "X-Request-ID",
    {"type": "string", "pattern": REQUEST_ID_PATTERN},
    "your id for this request (one is made when left out): answered in the X-Request-ID response header and "
    "carried by the log lines of the jobs it creates; a malformed one is 400 invalid_request_id",
)


def path_id(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


PAGE_QUERY = [query("limit", {"type": "integer", "minimum": 1, "maximum": 500}), query("cursor", {"type": "string"})]


def _when_param(name: str) -> dict[str, Any]:
    return {"required": ["params"], "properties": {"params": {"type": "object", "required": [name]}}}


def _task_is(*tasks: str) -> dict[str, Any]:
    return {"properties": {"task": {"enum": list(tasks)}}}


def job_rules(has_image: str) -> list[dict[str, Any]]:
    """`JobCreate`'s rules across fields, plus where the image must come from.

    `has_image` is a JSON Schema saying the request carries an image (a multipart file,
    or a JSON `image` or `image_url`): required unless `params.parent_job_id` reuses the
    parent's image, and forbidden with it.
    """
    return [
        {
            "if": _task_is("ask"),
            "then": {"required": ["prompt"], "properties": {"prompt": {"type": "string", "pattern": r"\S"}}},
        },
        {"if": _when_param("channel"), "then": _task_is("copy")},
        {"if": _when_param("campaign"), "then": _task_is("copy")},
        {"if": _when_param("schema"), "then": _task_is("attributes", "ask")},
        {"if": _when_param("history"), "then": _task_is("ask")},
        {
            "if": _when_param("parent_job_id"),
            "then": {"allOf": [_task_is("ask"), {"not": has_image}, {"not": _when_param("history")}]},
            "else": has_image,
        },
    ]


def links(parameter: str, *operation_ids: str) -> dict[str, Any]:
    """OpenAPI links: where the `id` a response returns can be used next (clients and fuzzers follow them)."""
    return {
        operation_id: {"operationId": operation_id, "parameters": {parameter: "$response.body#/id"}}
        for operation_id in operation_ids
    }
