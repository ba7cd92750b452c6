"""A job's photo (full size or thumbnail) and retrying a job that ended."""

from __future__ import annotations

import io

from flask import Blueprint, Response, jsonify, request
from PIL import Image, ImageOps

from shared.job_enqueue import enqueue_job
from shared.job_view import job_to_dict
from shared.models import Job, StoredImage
from shared.states import JobStatus
from web.api.job_records import insert_retry, load_job
from web.app_state import app_state
from web.auth import current_tenant
from web.errors import ApiError
from web.urls import base_url

bp = Blueprint("job_actions_api", __name__)

THUMBNAIL_SIDE = 320
IMAGE_SIZES = ("full", "thumb")


@bp.get("/v1/jobs/<job_id>/image")
def job_image(job_id: str) -> Response:
    """The job's photo as uploaded (`size=full`, default) or a small JPEG (`size=thumb`) for pages and lists."""
    size = request.args.get("size", "full")
    if size not in IMAGE_SIZES:
        raise ApiError("invalid_size", f"size must be one of {', '.join(IMAGE_SIZES)}")
    tenant_id = current_tenant()
    with app_state().sessions() as session:
        image = session.get_one(StoredImage, load_job(session, tenant_id, job_id).image_id)
        data, content_type = image.data, image.content_type
    if size == "thumb":
        data, content_type = _thumbnail(data), "image/jpeg"
    return Response(data, content_type=content_type, headers={"Cache-Control": "private, max-age=86400"})


def _thumbnail(data: bytes) -> bytes:
    """Stored images passed the pixel limits when they were uploaded, so decoding here is bounded."""
    with Image.open(io.BytesIO(data)) as opened:
        image = ImageOps.exif_transpose(opened).convert("RGB")
    image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


@bp.post("/v1/jobs/<job_id>/retry")
def retry_job(job_id: str) -> tuple[Response, int, dict[str, str]]:
    """A new job with the ended job's photo, task, prompt, params and metadata; the old one stays as it was."""
    state = app_state()
    tenant_id = current_tenant()
    with state.sessions.begin() as session:
        job = load_job(session, tenant_id, job_id)
        if not JobStatus(job.status).is_terminal():
            raise ApiError("job_not_finished", f"job {job_id} is {job.status}; cancel it or wait for it to end", 409)
        new_id = insert_retry(session, state.settings, job).id
    enqueue_job(state.celery, state.sessions, new_id)
    with state.sessions() as session:
        retried = session.get_one(Job, new_id)
        return jsonify(job_to_dict(retried, base_url())), 202, {"Location": f"{base_url()}/v1/jobs/{new_id}"}
