"""Reading a multipart/form-data submission (jobs, batches): the fields, the uploads and their names.

Fields arrive as text; the ones that carry structure (`params`, `metadata`) are JSON,
parsed under the same safety rules as a JSON body (`shared.safe_json`).
"""

from __future__ import annotations

import json
from typing import Any

from flask import Request

from shared import safe_json
from shared.schemas import MAX_NAME_CHARS
from web.errors import ApiError

JSON_FIELDS = ("params", "metadata")


def form_fields(request: Request) -> dict[str, Any]:
    """Every form field by name, JSON ones parsed."""
    return {
        name: json_form_field(name, request.form[name]) if name in JSON_FIELDS else request.form[name]
        for name in request.form
    }


def refuse_other_files(request: Request, hint: str) -> None:
    """A 400 for any file field other than `image`; `hint` says how to send the image(s)."""
    extra_files = set(request.files) - {"image"}
    if extra_files:
        raise ApiError("invalid_request", f"unexpected file fields {sorted(extra_files)}; {hint}")


def upload_name(filename: str | None) -> str | None:
    """An uploaded file's name as the client sent it, without any folder, cut to the stored length."""
    if not filename:
        return None
    return filename.replace("\\", "/").rsplit("/", 1)[-1][:MAX_NAME_CHARS] or None


def json_form_field(name: str, raw: str) -> Any:
    """A form field that carries JSON (`params`, `metadata`), or a 400 saying where it breaks."""
    try:
        return safe_json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ApiError("invalid_json", f"form field '{name}' must be JSON: {exc.msg} at position {exc.pos}") from None
    except safe_json.UnsafeJson as exc:
        raise ApiError("invalid_json", f"form field '{name}': {exc}") from None
