"""The operations part of the OpenAPI document (`web/openapi.py` merges it in): the tenant's audit log
and default webhook settings, and, when VLMQ_ADMIN_KEY is set, the admin API for keys."""

from __future__ import annotations

from typing import Any

from shared.audit import AuditAction
from shared.key_schemas import KeyCreate, KeyRotate
from shared.key_view import IssuedKeyView, KeyView
from web.api.admin_keys import KeyList
from web.api.audit import CSV_COLUMNS, AuditPage
from web.api.webhook_settings import WebhookEndpointUpdate, WebhookSettings
from web.openapi_schema import PAGE_QUERY, Components, errors, path_id, query

ADMIN_SECURITY = [{"admin": []}]
ADMIN_SCHEME = {"type": "http", "scheme": "bearer", "description": "VLMQ_ADMIN_KEY"}
AUDIT_FILTERS = [
    query("action", {"type": "array", "items": {"type": "string", "enum": [action.value for action in AuditAction]}})
    | {"style": "form", "explode": False, "description": "one or more actions, comma-separated"},
    query("since", {"type": "string", "format": "date-time", "description": "written at or after (UTC if no offset)"}),
    query("until", {"type": "string", "format": "date-time", "description": "written before (UTC if no offset)"}),
]


def _json_body(components: Components, model: type, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": components.ref(model, "validation")}}}


def operations_paths(components: Components) -> dict[str, Any]:
    export = {
        "description": "Every matching event, oldest first: JSON Lines of audit events, or CSV (with a BOM) with "
        f"columns {', '.join(CSV_COLUMNS)} (`detail` as JSON text)",
        "content": {"application/x-ndjson": {"schema": {"type": "string"}}, "text/csv": {"schema": {"type": "string"}}},
    }
    settings = components.response(WebhookSettings, "The tenant's default endpoint and current signing secret")
    return {
        "/v1/audit": {
            "get": {
                "summary": "The tenant's audit log, newest first: who did what to which object, and when",
                "operationId": "listAuditEvents",
                "parameters": [*PAGE_QUERY, *AUDIT_FILTERS],
                "responses": {"200": components.response(AuditPage, "A page of audit events"), **errors(400)},
            }
        },
        "/v1/audit/export": {
            "get": {
                "summary": "Export the tenant's audit log as JSON Lines or CSV",
                "operationId": "exportAuditEvents",
                "parameters": [query("format", {"type": "string", "enum": ["jsonl", "csv"]}), *AUDIT_FILTERS],
                "responses": {"200": export, **errors(400)},
            }
        },
        "/v1/webhooks/default": {
            "get": {
                "summary": "The tenant's default webhook endpoint and signing secret (made on first use)",
                "operationId": "getWebhookSettings",
                "responses": {"200": settings},
            },
            "put": {
                "summary": "Set or clear the endpoint of jobs submitted without their own `webhook`",
                "operationId": "setWebhookEndpoint",
                "requestBody": _json_body(components, WebhookEndpointUpdate),
                "responses": {"200": settings, **errors(400)},
            },
        },
        "/v1/webhooks/default/secret/rotate": {
            "post": {
                "summary": "A new signing secret; the old one keeps signing for VLMQ_WEBHOOK_SECRET_ROTATION_S",
                "operationId": "rotateWebhookSecret",
                "responses": {"200": settings, **errors(409)},
            }
        },
    }


def admin_paths(components: Components) -> dict[str, Any]:
    """The admin API: its own bearer key (VLMQ_ADMIN_KEY), so every operation can answer 401."""
    key_id = path_id("key_id")
    issued = components.response(IssuedKeyView, "The new key; `key` is shown only here")
    paths = {
        "/v1/admin/keys": {
            "get": {
                "summary": "Every API key (never in clear), oldest first",
                "operationId": "adminListKeys",
                "parameters": [query("tenant", {"type": "string"})],
                "responses": {"200": components.response(KeyList, "The keys")},
            },
            "post": {
                "summary": "Create an API key for a tenant (the tenant too, if new)",
                "operationId": "adminCreateKey",
                "requestBody": _json_body(components, KeyCreate),
                "responses": {"201": issued, **errors(400)},
            },
        },
        "/v1/admin/keys/{key_id}/revoke": {
            "post": {
                "summary": "Refuse the key from now on",
                "operationId": "adminRevokeKey",
                "parameters": [key_id],
                "responses": {"200": components.response(KeyView, "The revoked key"), **errors(404, 409)},
            }
        },
        "/v1/admin/keys/{key_id}/rotate": {
            "post": {
                "summary": "A new key for the same tenant; the old one is refused after `grace_s` (at once by default)",
                "operationId": "adminRotateKey",
                "parameters": [key_id],
                "requestBody": _json_body(components, KeyRotate, required=False),
                "responses": {"201": issued, **errors(400, 404, 409)},
            }
        },
    }
    for operations in paths.values():
        for operation in operations.values():
            operation["security"] = ADMIN_SECURITY
            operation["responses"] |= errors(401, 429)
    return paths
