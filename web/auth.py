"""Which tenant a request acts for.

With auth on, a bearer key is required. With auth off (the embedded default) a
request without a key acts for the default tenant; a key, when sent, is still checked.
"""

from __future__ import annotations

from flask import request

from shared.auth import DEFAULT_TENANT_ID, tenant_for_key
from web.errors import ApiError
from web.state import app_state

KEY_COOKIE = "vlmq_api_key"


def current_tenant() -> str:
    """The tenant id for this request, or a 401 `ApiError`."""
    key = _presented_key()
    state = app_state()
    if key is None:
        if state.settings.auth_enabled:
            raise ApiError(
                401, "unauthorized", "send 'Authorization: Bearer <api key>'; create keys with `vlmq keys create`"
            )
        return DEFAULT_TENANT_ID
    with state.sessions() as session:
        tenant_id = tenant_for_key(session, key)
    if tenant_id is None:
        raise ApiError(401, "invalid_api_key", "the API key is unknown or revoked")
    return tenant_id


def _presented_key() -> str | None:
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "unauthorized", "the Authorization header must be 'Bearer <api key>'")
        return token.strip()
    return request.cookies.get(KEY_COOKIE)
