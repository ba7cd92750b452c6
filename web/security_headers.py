"""Headers that keep pages from being framed, sniffed or made to run injected script.

Every response gets `nosniff`, `frame-ancestors`/`X-Frame-Options` and a referrer policy;
HTML responses also get a Content-Security-Policy that runs only vlmq's own inline
script and style (those carrying this response's nonce).
"""

from __future__ import annotations

import secrets

from flask import Flask, Response, g


def csp_nonce() -> str:
    """This response's nonce, for the templates' `<script>` and `<style>` tags."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return str(g.csp_nonce)


def register_security_headers(app: Flask) -> None:
    app.jinja_env.globals["csp_nonce"] = csp_nonce

    @app.after_request
    def _add_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "same-origin")
        if response.mimetype == "text/html":
            nonce = csp_nonce()
            headers.setdefault(
                "Content-Security-Policy",
                f"default-src 'self'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; img-src 'self' data:; "
                "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
            )
            headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
            headers.setdefault("Cache-Control", "no-store")
        return response
