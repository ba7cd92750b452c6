"""Which tenant a request acts for.

With auth on, a bearer key is required; the HTML pages may carry it in their cookie
instead (`web.page_session`), which the API accepts only together with its CSRF token.
With auth off (the embedded default) every request acts for the default tenant and any
key sent is ignored, so clients that always send one (the OpenAI SDKs) work unchanged.
"""

from __future__ import annotations

import logging

from flask import g, request

from shared.audit import ANONYMOUS_ACTOR
from shared.auth import DEFAULT_TENANT_ID, KeyRefused, authenticate
from shared.clock import utcnow
from web.app_state import app_state
from web.errors import ApiError
from web.page_session import api_cookie_key, cookie_key

PAGES_BLUEPRINT = "pages"

log = logging.getLogger(__name__)


def current_tenant() -> str:
    """The tenant id for this request, or a 401 `ApiError`; looked up (and a refusal logged) once per request."""
    if "vlmq_refused" in g:
        raise g.vlmq_refused
    if "vlmq_tenant" not in g:
        try:
            g.vlmq_tenant, g.vlmq_actor = _find_tenant()
        except ApiError as exc:
            log.warning("%s %s refused from %s: %s", request.method, request.path, request.remote_addr, exc.code)
            g.vlmq_refused = exc
            raise
    return str(g.vlmq_tenant)


def current_actor() -> str:
    """Who this request acts as in the audit log: its key's id, or `anonymous` with auth off."""
    current_tenant()
    return str(g.vlmq_actor)


def _find_tenant() -> tuple[str, str]:
    state = app_state()
    if not state.settings.auth_enabled:
        return DEFAULT_TENANT_ID, ANONYMOUS_ACTOR
    key = _presented_key()
    if key is None:
        raise ApiError(
            "unauthorized", "send 'Authorization: Bearer <api key>'; create keys with `vlmq keys create`", 401
        )
    try:
        with state.sessions.begin() as session:
            row = authenticate(session, key, utcnow())
            return row.tenant_id, row.id
    except KeyRefused as exc:
        raise ApiError(exc.code, exc.message, 401) from None


def _presented_key() -> str | None:
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError("unauthorized", "the Authorization header must be 'Bearer <api key>'", 401)
        return token.strip()
    return cookie_key() if request.blueprint == PAGES_BLUEPRINT else api_cookie_key()
