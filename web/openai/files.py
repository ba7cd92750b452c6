"""`/v1/files`: OpenAI's file API, for batch input files and batch results.

Uploaded files (purpose `batch`) are stored in the database, so any web process can
read them. A batch's output and error files are not stored: they are rendered from
its jobs whenever they are read (`web.openai.batch_files`).
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import select

from shared.clock import utcnow
from shared.ids import new_id
from shared.models import OpenAIBatch, OpenAIFile
from shared.safe_json import UnsafeJson, check_text
from web.api.batch_input import open_batch_body
from web.api.multipart import upload_name
from web.api.openai_objects import FileDeleted, FileList, FileObject, dump
from web.api.owned_rows import owned_or_404
from web.api.pagination import PageRequest
from web.app_state import app_state
from web.auth import current_tenant
from web.errors import ApiError
from web.openai.batch_file import parse_batch_file
from web.openai.batch_files import result_file, result_file_object

bp = Blueprint("files_api", __name__)

JSONL = "application/jsonl"


def file_object(stored: OpenAIFile) -> FileObject:
    return FileObject(
        id=stored.id,
        bytes=stored.size_bytes,
        created_at=int(stored.created_at.timestamp()),
        filename=stored.filename,
        purpose="batch",
    )


def load_file(tenant_id: str, file_id: str) -> OpenAIFile:
    """The tenant's uploaded file, or a 404 that does not reveal other tenants' ids."""
    with app_state().sessions() as session:
        return owned_or_404(session, OpenAIFile, file_id, tenant_id, "file")


@bp.post("/v1/files")
def upload_file() -> tuple[Response, int]:
    state = app_state()
    tenant_id = current_tenant()
    open_batch_body(request, state.settings)
    if request.mimetype != "multipart/form-data":
        raise ApiError("unsupported_media_type", "send multipart/form-data with a 'file' and 'purpose': 'batch'", 415)
    if extra := sorted(set(request.form) - {"purpose"}):
        raise ApiError("invalid_request", f"unknown form fields {extra}; send 'file' and 'purpose'")
    purpose = request.form.get("purpose")
    if purpose != "batch":
        raise ApiError("invalid_request", f"purpose must be 'batch' (got {purpose!r}); only batch files are kept")
    upload = request.files.get("file")
    if upload is None or set(request.files) != {"file"}:
        raise ApiError("invalid_request", "send exactly one file field, 'file', holding JSON Lines")
    filename = upload_name(upload.filename) or "batch.jsonl"
    try:
        check_text(filename, "the file's name")
    except UnsafeJson as exc:
        raise ApiError("invalid_request", f"{exc}; name the file with printable text") from None
    data = upload.read()
    parse_batch_file(data, state.settings.max_batch_items)
    stored = OpenAIFile(
        id=new_id("file"),
        tenant_id=tenant_id,
        purpose=purpose,
        filename=filename,
        size_bytes=len(data),
        data=data,
        created_at=utcnow(),
    )
    with state.sessions.begin() as session:
        session.add(stored)
    return jsonify(dump(file_object(stored))), 200


@bp.get("/v1/files")
def list_files() -> Response:
    state = app_state()
    tenant_id = current_tenant()
    asked = PageRequest.from_args(cursor_arg="after")
    purpose = request.args.get("purpose")
    if purpose not in (None, "batch"):
        raise ApiError("invalid_purpose", "purpose must be 'batch': uploaded files are batch input files")
    with state.sessions() as session:
        page = asked.read(session, select(OpenAIFile).where(OpenAIFile.tenant_id == tenant_id), OpenAIFile.id)
    data = [file_object(stored) for stored in page.rows]
    listing = FileList(
        data=data,
        first_id=data[0].id if data else None,
        last_id=data[-1].id if data else None,
        has_more=page.has_more,
    )
    return jsonify(dump(listing))


@bp.get("/v1/files/<file_id>")
def get_file(file_id: str) -> Response:
    tenant_id = current_tenant()
    rendered = result_file_object(tenant_id, file_id)
    return jsonify(dump(rendered or file_object(load_file(tenant_id, file_id))))


@bp.get("/v1/files/<file_id>/content")
def file_content(file_id: str) -> Response:
    tenant_id = current_tenant()
    rendered = result_file(tenant_id, file_id)
    data = rendered.content if rendered else load_file(tenant_id, file_id).data
    return Response(data, content_type=JSONL)


@bp.delete("/v1/files/<file_id>")
def delete_file(file_id: str) -> Response:
    """Remove an uploaded file, as OpenAI's `files.delete` does; a batch's input file stays while the batch
    exists (it records where its requests came from), and output and error files are not stored at all."""
    tenant_id = current_tenant()
    if result_file_object(tenant_id, file_id) is not None:
        raise ApiError(
            "file_not_deletable", f"{file_id} is rendered from its batch's jobs when read: nothing is stored", 409
        )
    with app_state().sessions.begin() as session:
        stored = owned_or_404(session, OpenAIFile, file_id, tenant_id, "file")
        user = session.scalar(select(OpenAIBatch.id).where(OpenAIBatch.input_file_id == file_id).limit(1))
        if user is not None:
            raise ApiError("file_in_use", f"{file_id} is the input file of {user}: it is kept while the batch is", 409)
        session.delete(stored)
    return jsonify(dump(FileDeleted(id=file_id)))
