"""`/v1/admin/keys`: list, create, revoke and rotate any tenant's API keys.

Served only when `VLMQ_ADMIN_KEY` is set (`web.app` registers this blueprint then, so
without it every route here is a plain 404). Each request must carry that key as its
bearer token, compared in constant time.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel

from shared.audit import ADMIN_ACTOR
from shared.auth import KeyNotLive, list_api_keys
from shared.clock import utcnow
from shared.job_view import render
from shared.key_actions import create_key, revoke_key, rotate_key
from shared.key_schemas import KeyCreate, KeyRotate, expiry
from shared.key_view import KeyView, issued_key_view, key_view
from web.app_state import app_state
from web.errors import ApiError

bp = Blueprint("admin_keys_api", __name__)


class KeyList(BaseModel):
    data: list[KeyView]


@bp.before_request
def _require_admin_key() -> None:
    expected = f"Bearer {app_state().settings.admin_key}"
    if not hmac.compare_digest(request.headers.get("Authorization", "").encode(), expected.encode()):
        raise ApiError("invalid_admin_key", "the admin API needs 'Authorization: Bearer <VLMQ_ADMIN_KEY>'", 401)


@bp.get("/v1/admin/keys")
def list_keys() -> Response:
    """Every key, oldest first; `tenant` narrows to one tenant."""
    now = utcnow()
    with app_state().sessions() as session:
        rows = list_api_keys(session, request.args.get("tenant"))
        return jsonify(render(KeyList(data=[key_view(row, now) for row in rows])))


@bp.post("/v1/admin/keys")
def create() -> tuple[Response, int]:
    spec = KeyCreate.model_validate(_json_object('{"tenant": "...", "name": "...", "expires_in": seconds}'))
    now = utcnow()
    with app_state().sessions.begin() as session:
        issued = create_key(session, ADMIN_ACTOR, spec.tenant, now, spec.name, expiry(now, spec.expires_in))
        return jsonify(render(issued_key_view(issued, now))), 201


@bp.post("/v1/admin/keys/<key_id>/revoke")
def revoke(key_id: str) -> Response:
    now = utcnow()
    with app_state().sessions.begin() as session, _key_errors():
        return jsonify(render(key_view(revoke_key(session, ADMIN_ACTOR, key_id, now), now)))


@bp.post("/v1/admin/keys/<key_id>/rotate")
def rotate(key_id: str) -> tuple[Response, int]:
    """A new key for the key's tenant; the old one is refused after `grace_s` (at once by default)."""
    spec = KeyRotate.model_validate(_json_object('{"grace_s": seconds, "expires_in": seconds}', optional=True))
    now = utcnow()
    with app_state().sessions.begin() as session, _key_errors():
        issued = rotate_key(session, ADMIN_ACTOR, key_id, now, spec.grace_s, expiry(now, spec.expires_in))
        return jsonify(render(issued_key_view(issued, now))), 201


def _json_object(shape: str, optional: bool = False) -> dict[str, Any]:
    if optional and not request.content_length:
        return {}
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError("invalid_json", f"send a JSON object: {shape}")
    return body


@contextmanager
def _key_errors() -> Iterator[None]:
    """Unknown key: 404; revoked or already rotated: 409 (raised inside the transaction, so nothing changes)."""
    try:
        yield
    except LookupError as exc:
        raise ApiError("key_not_found", str(exc), 404) from None
    except KeyNotLive as exc:
        raise ApiError("key_not_live", str(exc), 409) from None
