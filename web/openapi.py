"""`GET /openapi.json`: the API described for clients, code generators and fuzzers.

Request and response schemas come from the same pydantic models that validate
requests and render responses, so the document cannot drift from what the server
does. It describes the server as configured: bearer auth and 401s appear only when
`VLMQ_AUTH_ENABLED` is on. A test checks that every `/v1` route is described, and CI
fuzzes the live server against this document with schemathesis.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from shared.request_rules import MAX_NEW_TOKENS
from shared.sequence_budget import MIN_IMAGE_TOKENS
from shared.settings import Settings
from web.app_state import app_state
from web.errors import Error
from web.openapi_batches import batch_paths
from web.openapi_catalogue import catalogue_paths
from web.openapi_jobs import job_paths
from web.openapi_openai import openai_paths
from web.openapi_operations import ADMIN_SCHEME, admin_paths, operations_paths
from web.openapi_schema import REQUEST_ID, Components, errors

bp = Blueprint("openapi", __name__)


def openapi_document(settings: Settings) -> dict[str, Any]:
    components = Components()
    components.ref(Error, "serialization")
    paths = {
        **job_paths(components),
        **batch_paths(components),
        **openai_paths(components),
        **operations_paths(components),
    }
    for path, operations in catalogue_paths(components).items():
        paths.setdefault(path, {}).update(operations)
    for operations in paths.values():  # every /v1 route is rate-limited per tenant and takes a request id
        for operation in operations.values():
            operation["responses"] = errors(400) | operation["responses"] | errors(429)
            operation["parameters"] = [*operation.get("parameters", []), REQUEST_ID]
    _token_ceiling(components.schemas, settings)
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "vlmq", "version": "1", "description": "Vision-language jobs on product photos."},
        "paths": paths,
        "components": {"schemas": dict(sorted(components.schemas.items()))},
    }
    if settings.auth_enabled:
        document["security"] = [{"bearer": []}]
        document["components"]["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "description": "an API key from `vlmq keys create`"}
        }
        for operations in paths.values():
            for operation in operations.values():
                operation["responses"] |= errors(401)
    if settings.admin_key is not None:  # served only then (web/app.py)
        paths |= admin_paths(components)
        document["components"]["schemas"] = dict(sorted(components.schemas.items()))
        document["components"].setdefault("securitySchemes", {})["admin"] = ADMIN_SCHEME
    return document


def _token_ceiling(schemas: dict[str, Any], settings: Settings) -> None:
    """The most new tokens a request can get here: the fixed ceiling, or, on a service with short sequences, the
    sequence less the smallest photo's prompt (`shared.sequence_budget`; more is refused for any photo)."""
    ceiling = min(MAX_NEW_TOKENS, settings.gpu_max_seq_tokens - MIN_IMAGE_TOKENS)
    fields = [("JobParams", "max_new_tokens"), ("ChatRequest", "max_tokens"), ("ChatRequest", "max_completion_tokens")]
    for schema, field in fields:
        for option in schemas[schema]["properties"][field]["anyOf"]:
            if option.get("type") == "integer":
                option["maximum"] = ceiling


@bp.get("/openapi.json")
def openapi_json() -> Response:
    return jsonify(openapi_document(app_state().settings))
