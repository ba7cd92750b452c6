"""How the HTML pages carry an API key: an HttpOnly cookie, accepted only by pages, plus a CSRF token.

The key is set by the server (`POST /login`) as `HttpOnly` (scripts cannot read it),
`SameSite=Strict` and, behind TLS, `Secure`. The JSON API accepts the cookie only with
the CSRF token derived from the key (an HMAC of it), which only a page vlmq rendered for
that key holds: a page of another origin on the same host (same-site, so SameSite does
not stop it) can make the browser send the cookie but cannot know the token. Pages send
it as a header from scripts, or as a query argument in the links of their images.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

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


def _sent_token() -> str:
    """The CSRF token the request carries: a header, a form field, or (reads only) a query argument."""
    token = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD)
    if token is None and request.method == "GET":
        token = request.args.get(CSRF_FIELD)
    return token or ""


def check_csrf() -> None:
    """A 403 unless the request carries the token of the key in its cookie."""
    key = cookie_key()
    if key is None:
        return  # no cookie, no ambient authority to abuse: the API's own auth decides
    if not hmac.compare_digest(_sent_token(), csrf_token(key)):
        raise ApiError("csrf_failed", "the form's CSRF token is missing or wrong: reload the page and try again", 403)


def api_cookie_key() -> str | None:
    """The cookie's key for a `/v1` request, only when the request also carries its CSRF token."""
    key = cookie_key()
    if key is None or not hmac.compare_digest(_sent_token(), csrf_token(key)):
        return None
    return key


def set_key_cookie(response: Response, key: str, settings: Settings) -> None:
    secure = request.is_secure or (settings.public_url or "").startswith("https://")
    response.set_cookie(
        KEY_COOKIE, key, max_age=COOKIE_MAX_AGE_S, path="/", httponly=True, samesite="Strict", secure=secure
    )


def clear_key_cookie(response: Response) -> None:
    response.delete_cookie(KEY_COOKIE, path="/", httponly=True, samesite="Strict")


def with_token(url: str, token: str) -> str:
    """A page link to a `/v1` read (an image, a download, the JSON) with the CSRF token it needs with auth on;
    links cannot send headers. Access logs blank the token (`vlmq.web_server`)."""
    if not token:
        return url
    return f"{url}{'&' if '?' in url else '?'}{CSRF_FIELD}={token}"


def check_login_origin(settings: Settings) -> None:
    """A 403 for a login posted by a page of another origin (login CSRF: it could sign the browser in with the
    attacker's key, and the victim's uploads would land in the attacker's tenant). There is no key yet to derive
    a token from, so the browser's own word is used: `Sec-Fetch-Site`, and `Origin`, which browsers send with
    every form POST; a client that sends neither (a script) is no browser to forge a login in."""
    site = request.headers.get("Sec-Fetch-Site")
    origin = request.headers.get("Origin")
    own = {request.host.lower()} | ({urlsplit(settings.public_url).netloc.lower()} if settings.public_url else set())
    if (site is not None and site not in ("same-origin", "none")) or (
        origin is not None and urlsplit(origin).netloc.lower() not in own
    ):
        raise ApiError("csrf_failed", "sign in from this site's own page: a login sent by another site is refused", 403)


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path on this site only (no open redirect). Browsers drop tabs and line
    breaks from URLs (`/\t/evil.example` is `//evil.example` to them), so any control character refuses it."""
    if not target or any(ord(char) < 0x20 or char in "\\\x7f" for char in target):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target
