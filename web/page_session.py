"""How the HTML pages carry an API key: an HttpOnly cookie, accepted only by pages, plus a CSRF token.

The key is set by the server (`POST /login`) as `HttpOnly` (scripts cannot read it),
`SameSite=Strict` and, behind TLS, `Secure`. The JSON API ignores the cookie, so a page
of another origin on the same host (same-site, so SameSite does not stop it) cannot
use a visitor's key on the API. Page routes that change state require a CSRF token
derived from the key (an HMAC of it), which only a page vlmq rendered for that key holds.
"""

from __future__ import annotations

import hashlib
import hmac

from flask import Response, request

from shared.settings import Settings
from web.errors import ApiError

KEY_COOKIE = "vlmq_api_key"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
COOKIE_MAX_AGE_S = 7 * 24 * 3600


def cookie_key() -> str | None:
    """The key a page request carries in its cookie."""
    return request.cookies.get(KEY_COOKIE) or None


def csrf_token(key: str | None) -> str:
    """The token pages put in their state-changing requests; empty without a key (auth off)."""
    return hmac.new(key.encode(), b"vlmq-csrf-v1", hashlib.sha256).hexdigest() if key else ""


def check_csrf() -> None:
    """A 403 unless the request carries the token of the key in its cookie."""
    key = cookie_key()
    if key is None:
        return  # no cookie, no ambient authority to abuse: the API's own auth decides
    sent = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD) or ""
    if not hmac.compare_digest(sent, csrf_token(key)):
        raise ApiError(403, "csrf_failed", "the form's CSRF token is missing or wrong: reload the page and try again")


def set_key_cookie(response: Response, key: str, settings: Settings) -> None:
    secure = request.is_secure or (settings.public_url or "").startswith("https://")
    response.set_cookie(
        KEY_COOKIE, key, max_age=COOKIE_MAX_AGE_S, path="/", httponly=True, samesite="Strict", secure=secure
    )


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path on this site only (no open redirect)."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"
