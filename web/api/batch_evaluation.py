"""`POST /v1/batches/{id}/evaluation`: the batch's `attributes` output measured against a labels file.

The same measures as `vlmq eval` (`shared.evaluation`), for a shop that keeps its labels
next to its own systems rather than on the machine running the CLI. Nothing is stored.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from shared.evaluation import LabelsError, evaluate
from shared.result_rows import flat_result
from shared.spreadsheets import read_table
from web.api.batch_records import load_batch
from web.api.batch_results import FORMATS, batch_rows
from web.app_state import app_state
from web.auth import current_tenant
from web.errors import ApiError

bp = Blueprint("batch_evaluation_api", __name__)

KINDS = {"text/csv": "csv", FORMATS["xlsx"]: "xlsx", "application/x-ndjson": "jsonl"}
ACCEPTED = (
    "send the labels as the body (text/csv, an XLSX workbook or application/x-ndjson) "
    "or as a multipart file field 'labels' named .csv, .xlsx or .jsonl"
)


@bp.post("/v1/batches/<batch_id>/evaluation")
def evaluate_batch(batch_id: str) -> Response:
    state = app_state()
    tenant_id = current_tenant()
    with state.sessions() as session:
        load_batch(session, tenant_id, batch_id)
    data, kind = _labels_upload()
    try:
        labels = read_table(data, kind)
        results = [flat_result(row) for row in batch_rows(state.sessions, batch_id)]
        return jsonify(evaluate(labels, results))
    except (LabelsError, ValueError) as exc:
        raise ApiError("invalid_labels", f"labels: {exc}") from None


def _labels_upload() -> tuple[bytes, str]:
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("labels")
        suffix = (upload.filename or "").rsplit(".", 1)[-1].lower() if upload is not None else ""
        if upload is None or suffix not in KINDS.values():
            raise ApiError("invalid_labels", ACCEPTED)
        return upload.read(), suffix
    kind = KINDS.get(request.mimetype)
    if kind is None:
        raise ApiError("unsupported_media_type", ACCEPTED, 415)
    return request.get_data(), kind
