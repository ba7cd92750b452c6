"""One job's result flattened for people and spreadsheets: the `attributes` fields in columns of their own.

The CLI's result files and the evaluation read this shape, so a results file and a
batch read from the API are measured the same way.
"""

from __future__ import annotations

from typing import Any

ATTRIBUTE_FIELDS = ("category", "color", "material", "key_features", "marketing_copy")


def flat_result(row: dict[str, Any]) -> dict[str, Any]:
    """A batch results row (`GET /v1/batches/{id}/results`, JSON Lines) as flat columns."""
    output = row.get("result") or {}
    data = output.get("data")
    fields = data if isinstance(data, dict) else {}
    error = row.get("error") or {}
    feedback = row.get("feedback") or {}
    metrics = row.get("metrics") or {}
    metadata = row.get("metadata") or {}
    return {
        "name": row.get("name"),
        "sku": None if metadata.get("sku") is None else str(metadata["sku"]),
        "status": row["status"],
        **{field: fields.get(field) for field in ATTRIBUTE_FIELDS},
        "text": output.get("text"),
        "data": data,
        "error_code": error.get("code"),
        "error_message": error.get("message"),
        "queue_s": metrics.get("queue_s"),
        "inference_s": metrics.get("inference_s"),
        "feedback_score": feedback.get("score"),
        "feedback_corrections": feedback.get("corrections"),
        "job_id": row.get("job_id"),
        "metadata": metadata,
    }
