"""`vlmq batch run`: a folder (or CSV) of photos through a running vlmq, with progress, into a results file.

The photos go up as batches of at most `chunk_size`. Each batch's `Idempotency-Key` is a
hash of what it asks (task, prompt, params, and every photo's name, SKU, metadata and
bytes), so running the same command again after an interruption sends nothing twice: the
server answers with the batches it already has, and the run waits for them and writes
the results. A photo the server refuses (corrupt, too large) is left out of its batch and
reported in the errors file, and the rest of that batch is sent.
"""

from __future__ import annotations

import base64
import hashlib
import json
import mimetypes
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.result_rows import flat_result
from vlmq.catalogue_source import SourceItem, read_source
from vlmq.client import EXIT_JOB_FAILED, EXIT_OK, EXIT_STILL_RUNNING, ApiClient, CliError
from vlmq.progress import ProgressBar
from vlmq.result_files import ERROR_COLUMNS, RESULT_COLUMNS, check_suffix, errors_path, write_rows

POLL_INTERVAL_S = 1.0
UPLOAD_TIMEOUT_S = 300.0
MAX_CHUNK_BYTES = 40 * 1024 * 1024  # base64 of the photos of one request, well under the server's batch limit
_ITEM_ERROR = re.compile(r"^items\.(\d+): ")


@dataclass(frozen=True)
class RunRequest:
    """What every photo of the run is asked."""

    task: str
    prompt: str | None
    params: dict[str, Any]
    metadata: dict[str, Any]


@dataclass
class SentBatch:
    batch_id: str
    items: list[SourceItem]
    resumed: bool


def batch_run(
    client: ApiClient, source: Path, request: RunRequest, out: Path, chunk_size: int, timeout_s: float | None
) -> int:
    """Send, wait, write `out` and its errors file; the exit code says whether every photo succeeded."""
    check_suffix(out)
    items = read_source(source)
    refused: list[dict[str, Any]] = []
    sent = [
        batch
        for chunk in _chunks(items, chunk_size)
        if (batch := _send_chunk(client, request, chunk, refused)) is not None
    ]
    _say(f"{len(items)} photos in {len(sent)} batches ({sum(b.resumed for b in sent)} already sent by an earlier run)")
    finished = _wait(client, sent, timeout_s)
    rows = [row for batch in sent for row in _result_rows(client, batch)] + refused
    write_rows(out, RESULT_COLUMNS, rows)
    errors = [row for row in rows if row["status"] != "succeeded"]
    write_rows(errors_path(out), ERROR_COLUMNS, errors)
    _say(f"{len(rows) - len(errors)}/{len(rows)} succeeded; results in {out}, problems in {errors_path(out)}")
    if not finished:
        _say(f"the deadline of {timeout_s:g} s passed first; run the same command again to wait for the rest")
        return EXIT_STILL_RUNNING
    return EXIT_OK if not errors else EXIT_JOB_FAILED


def _say(message: str) -> None:
    print(f"vlmq: {message}", file=sys.stderr, flush=True)


def _chunks(items: list[SourceItem], chunk_size: int) -> list[list[SourceItem]]:
    """Consecutive runs of photos, each within `chunk_size` photos and `MAX_CHUNK_BYTES` of base64."""
    chunks: list[list[SourceItem]] = [[]]
    size = 0
    for item in items:
        item_size = _encoded_size(item)
        if chunks[-1] and (len(chunks[-1]) >= chunk_size or size + item_size > MAX_CHUNK_BYTES):
            chunks.append([])
            size = 0
        chunks[-1].append(item)
        size += item_size
    return [chunk for chunk in chunks if chunk]


def _encoded_size(item: SourceItem) -> int:
    """About what the photo adds to a request body (a file that cannot be read is reported when sent)."""
    try:
        return (item.path.stat().st_size * 4 // 3 if item.path is not None else 0) + 1024
    except OSError:
        return 1024


@dataclass(frozen=True)
class _Prepared:
    items: list[SourceItem]  # the photos in the body, in its order
    body: dict[str, Any]
    key: str


def _send_chunk(
    client: ApiClient, request: RunRequest, chunk: list[SourceItem], refused: list[dict[str, Any]]
) -> SentBatch | None:
    """POST one batch; a photo the server refuses is moved to `refused` and the rest sent again."""
    prepared = _prepare(request, chunk, refused)
    while prepared.items:
        try:
            response = client.request(
                "POST",
                "/v1/batches",
                json=prepared.body,
                headers={"Idempotency-Key": prepared.key},
                timeout=UPLOAD_TIMEOUT_S,
            )
        except CliError as exc:
            bad = _refused_index(exc)
            if bad is None:
                raise
            item = prepared.items[bad]
            refused.append(_error_row(item, "refused", exc.api_error or {}))
            prepared = _prepare(request, [entry for entry in prepared.items if entry is not item], refused)
            continue
        batch = response.json()
        resumed = response.status_code == 200
        _say(f"batch {batch['id']}: {batch['total']} photos {'already sent' if resumed else 'sent'}")
        return SentBatch(batch_id=batch["id"], items=prepared.items, resumed=resumed)
    return None


def _prepare(request: RunRequest, items: list[SourceItem], refused: list[dict[str, Any]]) -> _Prepared:
    """The JSON body and its idempotency key; a photo that cannot be read here goes to `refused`."""
    digest = hashlib.sha256(
        json.dumps([request.task, request.prompt, request.params, request.metadata], sort_keys=True).encode()
    )
    included: list[SourceItem] = []
    body_items: list[dict[str, Any]] = []
    for item in items:
        entry: dict[str, Any] = {"name": item.name, "metadata": item.item_metadata}
        if item.path is None:
            entry["image_url"] = fingerprint = item.url
        else:
            try:
                data = item.path.read_bytes()
            except OSError as exc:
                refused.append(_error_row(item, "unreadable", {"code": "unreadable", "message": str(exc)}))
                continue
            content_type = mimetypes.guess_type(item.name)[0] or "image/png"
            entry["image"] = f"data:{content_type};base64,{base64.b64encode(data).decode()}"
            fingerprint = hashlib.sha256(data).hexdigest()
        digest.update(json.dumps([item.name, item.item_metadata, fingerprint], sort_keys=True).encode())
        included.append(item)
        body_items.append(entry)
    body = {"task": request.task, "params": request.params, "metadata": request.metadata, "items": body_items}
    if request.prompt is not None:
        body["prompt"] = request.prompt
    return _Prepared(items=included, body=body, key=f"vlmq-run-{digest.hexdigest()[:48]}")


def _refused_index(exc: CliError) -> int | None:
    """The item a refusal names (`items.3: the image is corrupt` → 3), if it names one."""
    match = _ITEM_ERROR.match((exc.api_error or {}).get("message", ""))
    return int(match[1]) if match else None


def _wait(client: ApiClient, sent: list[SentBatch], timeout_s: float | None) -> bool:
    """Follow every batch with a progress bar until all have ended (True) or the deadline passes (False)."""
    total = sum(len(batch.items) for batch in sent)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    pending = {batch.batch_id for batch in sent}
    finished: dict[str, int] = {}
    running: dict[str, int] = {}
    with ProgressBar(total, "photos") as bar:
        while True:
            for batch_id in sorted(pending):
                batch = client.json("GET", f"/v1/batches/{batch_id}")
                counts = batch["counts"]
                finished[batch_id] = counts["succeeded"] + counts["failed"] + counts["canceled"]
                running[batch_id] = counts["running"]
                if batch["status"] != "running":
                    pending.discard(batch_id)
            bar.update(sum(finished.values()), f"{sum(running.values())} running")
            if not pending:
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(POLL_INTERVAL_S)


def _result_rows(client: ApiClient, batch: SentBatch) -> list[dict[str, Any]]:
    """The batch's results, one row per photo, in the order the photos were listed."""
    lines = client.request("GET", f"/v1/batches/{batch.batch_id}/results", params={"format": "jsonl"}).text
    results = [json.loads(line) for line in lines.splitlines() if line.strip()]
    return [_result_row(item, result, batch.batch_id) for item, result in zip(batch.items, results, strict=True)]


def _result_row(item: SourceItem, result: dict[str, Any], batch_id: str) -> dict[str, Any]:
    """The server's row, keyed by the photo's name and SKU as listed here."""
    return flat_result(result) | {"name": item.name, "sku": item.sku, "batch_id": batch_id}


def _error_row(item: SourceItem, status: str, error: dict[str, str]) -> dict[str, Any]:
    return {
        "name": item.name,
        "sku": item.sku,
        "status": status,
        "error_code": error.get("code"),
        "error_message": error.get("message"),
    }
