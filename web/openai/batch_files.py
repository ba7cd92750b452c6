"""A finished OpenAI batch's output and error files, rendered from its jobs when read.

Output lines are OpenAI's `{id, custom_id, response: {status_code, request_id, body},
error}` with the `chat.completion` as body; error lines carry `error: {code, message}`
for requests that failed or were cancelled. File ids name the batch and the kind
(`file-<batch id>-output`, `file-<batch id>-errors`), so nothing has to be stored.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from shared.models import Batch, Job, OpenAIBatch
from shared.states import JobStatus
from web.api.batch_results import batch_jobs
from web.api.chat_answer import completion
from web.api.openai_objects import FileObject, dump
from web.app_state import app_state

_RESULT_FILE = re.compile(r"^file-(?P<batch>batch_[0-9a-f]+)-(?P<kind>output|errors)$")


def output_file_id(batch_id: str) -> str:
    return f"file-{batch_id}-output"


def error_file_id(batch_id: str) -> str:
    return f"file-{batch_id}-errors"


@dataclass(frozen=True)
class RenderedFile:
    id: str
    filename: str
    created_at: int
    content: bytes


def _line(job: Job, custom_id: str) -> dict[str, Any] | None:
    """The job's line in the output file (succeeded) or the error file (failed, cancelled)."""
    line: dict[str, Any] = {"id": f"batch_req_{job.id}", "custom_id": custom_id, "response": None, "error": None}
    if job.status == JobStatus.SUCCEEDED:
        body = dump(completion(job))
        line["response"] = {"status_code": 200, "request_id": job.id, "body": body}
    elif job.status == JobStatus.FAILED:
        line["error"] = {"code": job.error_code, "message": job.error_message}
    elif job.status == JobStatus.CANCELED:
        line["error"] = {"code": "batch_cancelled", "message": "the batch was cancelled before this request finished"}
    else:
        return None
    return line


def render_lines(openai_batch: OpenAIBatch, kind: str) -> bytes:
    """The output (`output`) or error (`errors`) file of the batch, as JSON Lines."""
    lines = []
    for job in batch_jobs(app_state().sessions, openai_batch.batch_id):
        line = _line(job, openai_batch.custom_ids[job.batch_index])
        if line is not None and (line["error"] is None) == (kind == "output"):
            lines.append(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n")
    return "".join(lines).encode()


def result_file(tenant_id: str, file_id: str) -> RenderedFile | None:
    """The rendered file `file_id` names; None when the id is not a result file's.

    A result file of another tenant's batch, of a batch still running, or an error
    file of a batch without errors does not exist: the caller's 404.
    """
    match = _RESULT_FILE.match(file_id)
    if match is None:
        return None
    with app_state().sessions() as session:
        openai_batch = session.get(OpenAIBatch, match["batch"])
        batch = session.get(Batch, openai_batch.batch_id) if openai_batch else None
    if openai_batch is None or batch is None or openai_batch.tenant_id != tenant_id or batch.completed_at is None:
        return None
    content = render_lines(openai_batch, match["kind"])
    if match["kind"] == "errors" and not content:
        return None
    return RenderedFile(
        id=file_id,
        filename=f"{openai_batch.id}_{match['kind']}.jsonl",
        created_at=int(batch.completed_at.timestamp()),
        content=content,
    )


def result_file_object(tenant_id: str, file_id: str) -> FileObject | None:
    rendered = result_file(tenant_id, file_id)
    if rendered is None:
        return None
    return FileObject(
        id=rendered.id,
        bytes=len(rendered.content),
        created_at=rendered.created_at,
        filename=rendered.filename,
        purpose="batch_output",
    )
