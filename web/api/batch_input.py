"""Reads a batch submission from multipart form data or a JSON body, and checks every item.

Multipart: repeated `image` file fields plus the shared fields. JSON: the shared fields
plus `items`, each with its own `image` data URI (or `image_url`) and optional overrides.
Every problem is an `ApiError` (or a `ValidationError`) naming the item by its index,
`items.<k>`, raised before anything is stored: all fields are checked before any image
is decoded or downloaded, and image contents are checked as the jobs are inserted, in
one transaction that a bad image rolls back. `image_url` items are downloaded a few at a
time (`VLMQ_IMAGE_FETCH_CONCURRENCY`), and together with the body they may not exceed
`VLMQ_MAX_BATCH_BYTES`: the first download past it stops them all.
"""

from __future__ import annotations

from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from flask import Request
from pydantic import ValidationError

from shared.batch_schemas import BatchCreate, BatchItem
from shared.errors import ServiceError
from shared.schemas import JobCreate
from shared.settings import Settings
from web.api.job_input import (
    JobSubmission,
    check_token_budget,
    decode_data_uri,
    image_from_reference,
)
from web.api.multipart import form_fields, refuse_other_files, upload_name
from web.api.remote_images import ByteBudget
from web.errors import ApiError, describe_validation_error

# Form parts besides the images: the shared fields, with room to spare so a few extra
# images still get the clear `too_many_items` error rather than werkzeug's 413.
_SPARE_FORM_PARTS = 32


@dataclass(frozen=True)
class BatchSubmission:
    shared: BatchCreate
    items: list[JobSubmission]


def open_batch_body(request: Request, settings: Settings) -> None:
    """Refuse a body over the batch limit, and let the body be read up to it.

    The app-wide limit is sized for one image; a batch has its own. Call before anything
    reads the body.
    """
    limit = settings.max_batch_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(
            "batch_too_large",
            f"the request body is {request.content_length} bytes; a batch may be at most {limit} bytes: "
            "split it into several batches",
            413,
        )
    request.max_content_length = limit
    request.max_form_parts = 2 * settings.max_batch_items + _SPARE_FORM_PARTS


def read_batch_submission(request: Request, settings: Settings) -> BatchSubmission:
    """Parse and check the request against the batch limits; raises naming the rule (and the item)."""
    open_batch_body(request, settings)
    entries: list[tuple[BatchItem | None, bytes | None]]
    names: list[str | None]
    if request.mimetype == "multipart/form-data":
        shared, uploads = _from_multipart(request)
        entries, names = [(None, image) for _, image in uploads], [name for name, _ in uploads]
    elif request.mimetype == "application/json":
        shared = _from_json(request)
        entries, names = [(item, None) for item in shared.items], [None] * len(shared.items)
    else:
        raise ApiError(
            "unsupported_media_type",
            "send multipart/form-data (repeated 'image' files plus shared fields) or application/json "
            "(shared fields plus 'items', each with an 'image' data URI or an 'image_url')",
            415,
        )
    count = len(entries)
    if count == 0:
        raise ApiError("empty_batch", "a batch needs at least one image: 'image' files or JSON 'items'")
    if count > settings.max_batch_items:
        raise ApiError(
            "too_many_items",
            f"the batch has {count} items; the limit is {settings.max_batch_items} (VLMQ_MAX_BATCH_ITEMS)",
        )
    specs = [
        _item_spec(shared, index, item, name, settings)
        for index, ((item, _), name) in enumerate(zip(entries, names, strict=True))
    ]
    budget = ByteBudget(settings.max_batch_bytes - (request.content_length or 0))
    images = _item_images(entries, settings, budget)
    return BatchSubmission(
        shared=shared, items=[JobSubmission(spec, image) for spec, image in zip(specs, images, strict=True)]
    )


def _item_spec(
    shared: BatchCreate, index: int, item: BatchItem | None, name: str | None, settings: Settings
) -> JobCreate:
    try:
        spec = shared.job_spec(item, name)
    except ValidationError as exc:
        # Field errors were caught with their paths already; what is left are rules across fields.
        message = describe_validation_error(exc).removeprefix("body: ")
        raise ApiError("invalid_request", f"items.{index}: {message}") from None
    if spec.params.parent_job_id is not None:
        raise ApiError(
            "invalid_request",
            f"items.{index}: params.parent_job_id is not available in batches: "
            "each item brings its own image; ask follow-up questions with POST /v1/jobs",
        )
    try:
        check_token_budget(spec, settings)
    except ServiceError as exc:
        raise exc.at(f"items.{index}") from None
    return spec


def _item_images(
    entries: list[tuple[BatchItem | None, bytes | None]], settings: Settings, budget: ByteBudget
) -> list[bytes | None]:
    """Every item's bytes, in order; the first failure (lowest index among those seen) stops the rest."""
    with ThreadPoolExecutor(max_workers=settings.image_fetch_concurrency, thread_name_prefix="image-fetch") as pool:
        futures = [
            pool.submit(_item_image, index, item, image, settings, budget)
            for index, (item, image) in enumerate(entries)
        ]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [future for future in futures if future in done and future.exception() is not None]
        if failed:
            budget.stop()
            pool.shutdown(wait=True, cancel_futures=True)
            raise _first_error(failed)
    return [future.result() for future in futures]


def _first_error(failed: list[Future[bytes | None]]) -> BaseException:
    """The error to report: a real problem before the `download_stopped` of items cut short by it."""
    errors = [future.exception() for future in failed]
    real = [error for error in errors if not (isinstance(error, ServiceError) and error.code == "download_stopped")]
    error = (real or errors)[0]
    assert error is not None
    return error


def _item_image(
    index: int, item: BatchItem | None, image: bytes | None, settings: Settings, budget: ByteBudget
) -> bytes | None:
    """A multipart item's bytes as uploaded; a JSON item's decoded or downloaded now."""
    if item is None:
        return image
    try:
        if item.image_url is not None:
            return image_from_reference(item.image_url, settings, budget)
        return decode_data_uri(item.image)
    except ServiceError as exc:
        raise exc.at(f"items.{index}") from None


def _from_multipart(request: Request) -> tuple[BatchCreate, list[tuple[str | None, bytes]]]:
    """The shared fields, and each uploaded image with its file name."""
    refuse_other_files(request, "send each image as 'image'")
    fields = form_fields(request)
    if "items" in fields:
        raise ApiError("invalid_request", "items: only JSON bodies have 'items'; send each image as 'image'")
    shared = BatchCreate.model_validate(fields)
    return shared, [(upload_name(upload.filename), upload.read()) for upload in request.files.getlist("image")]


def _from_json(request: Request) -> BatchCreate:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError("invalid_json", "the body is not a JSON object")
    return BatchCreate.model_validate(body)
