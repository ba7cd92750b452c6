"""Reads a job submission from multipart form data or a JSON body.

Both shapes end as the same `JobCreate` plus raw image bytes (or None for a
follow-up question that reuses its parent's image).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

from flask import Request

from shared.attributes_budget import budget_shortfall, job_budget
from shared.schemas import JobCreate
from shared.settings import Settings
from web.api.multipart import form_fields, refuse_other_files, upload_name
from web.api.remote_images import ByteBudget, fetch_image
from web.errors import ApiError

_DATA_URI = re.compile(
    r"^data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w-]+=[\w.-]+)*);base64,(?P<data>.*)$", re.DOTALL
)
DATA_URI_PATTERN = (
    r"^data:([\w.+-]+/[\w.+-]+)?(;[\w-]+=[\w.-]+)*;base64,"
    r"([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2}==)$"
)
"""The data URIs `decode_data_uri` takes with a non-empty payload, as the OpenAPI document states it (ECMA-262)."""


@dataclass(frozen=True)
class JobSubmission:
    spec: JobCreate
    image: bytes | None


def read_job_submission(request: Request, settings: Settings) -> JobSubmission:
    """Parse the request or raise `ApiError`/`ValidationError` naming the problem."""
    if request.mimetype == "multipart/form-data":
        return _from_multipart(request, settings)
    if request.mimetype == "application/json":
        return _from_json(request, settings)
    raise ApiError(
        "unsupported_media_type",
        "send multipart/form-data (an 'image' file plus fields) or application/json (with 'image' as a data URI)",
        415,
    )


def check_token_budget(spec: JobCreate, settings: Settings) -> None:
    """Refuse now an `attributes` job whose schema cannot finish within its budget (it would fail later)."""
    if spec.task != "attributes":
        return
    budget = job_budget(spec.task, spec.params.as_stored(), settings)
    problem = budget_shortfall(spec.params.schema_, budget)
    if problem is not None:
        raise ApiError("budget_too_small", problem)


def _from_multipart(request: Request, settings: Settings) -> JobSubmission:
    fields = form_fields(request)
    upload = request.files.get("image")
    image = upload.read() if upload is not None else None
    if upload is not None and "name" not in fields:
        fields["name"] = upload_name(upload.filename)
    refuse_other_files(request, "send the image as 'image'")
    spec = JobCreate.model_validate(fields)
    check_token_budget(spec, settings)
    return JobSubmission(spec=spec, image=image)


def _from_json(request: Request, settings: Settings) -> JobSubmission:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError("invalid_json", "the body is not a JSON object")
    image_field, url_field = body.pop("image", None), body.pop("image_url", None)
    if image_field is not None and url_field is not None:
        raise ApiError("invalid_request", "give 'image' (a data URI) or 'image_url', not both")
    spec = JobCreate.model_validate(body)  # before any download: a bad request costs no fetch
    check_token_budget(spec, settings)
    if image_field is not None:
        return JobSubmission(spec=spec, image=decode_data_uri(image_field))
    if url_field is not None:
        return JobSubmission(spec=spec, image=image_from_reference(url_field, settings))
    return JobSubmission(spec=spec, image=None)


def image_from_reference(value: Any, settings: Settings, budget: ByteBudget | None = None) -> bytes:
    """Bytes of an image given as a data URI or a URL (downloaded now; only http(s) passes the guard)."""
    if isinstance(value, str) and "://" in value.split(",", 1)[0]:
        return fetch_image(value, settings, budget)
    return decode_data_uri(value)


def decode_data_uri(value: Any) -> bytes:
    """Bytes of a `data:image/...;base64,` URI."""
    if not isinstance(value, str):
        raise ApiError("invalid_image", "'image' must be a string holding a data URI (data:image/png;base64,...)")
    match = _DATA_URI.match(value)
    if match is None:
        raise ApiError("invalid_image", "'image' must be a base64 data URI such as data:image/png;base64,iVBOR...")
    try:
        return base64.b64decode(match["data"], validate=True)
    except (binascii.Error, ValueError):
        raise ApiError("invalid_image", "the data URI's base64 payload is malformed") from None
