"""`vlmq submit`: send one image to a running vlmq, optionally wait with progress, print the job as JSON.

The exit code says how it ended (see `vlmq.client`): a script can trust 0 to mean the
job succeeded, never that it is merely still running.
"""

from __future__ import annotations

import json
import mimetypes
import sys
import time
from pathlib import Path
from typing import Any

from shared.states import JobStatus
from vlmq.client import EXIT_JOB_FAILED, EXIT_OK, EXIT_STILL_RUNNING, ApiClient, CliError
from vlmq.progress import ProgressBar

POLL_INTERVAL_S = 0.5


def submit(
    client: ApiClient,
    image: Path,
    task: str,
    prompt: str | None,
    params: dict[str, Any],
    metadata: dict[str, Any],
    wait_s: float,
) -> int:
    """Submit; with `wait_s` > 0 follow the job until it ends or the deadline passes."""
    fields = {"task": task, "params": json.dumps(params), "metadata": json.dumps(metadata)}
    if prompt:
        fields["prompt"] = prompt
    content_type = mimetypes.guess_type(image.name)[0] or "application/octet-stream"
    try:
        handle = image.open("rb")
    except OSError as exc:
        raise CliError(f"cannot read {image}: {exc.strerror}") from None
    with handle:
        job = client.json("POST", "/v1/jobs", data=fields, files={"image": (image.name, handle, content_type)})
    if wait_s > 0:
        job = _follow(client, job, wait_s)
    print(json.dumps(job, indent=2, ensure_ascii=False))
    return _outcome(job, wait_s)


def _follow(client: ApiClient, job: dict[str, Any], wait_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + wait_s
    with ProgressBar(1, "job") as bar:
        while True:
            finished = JobStatus(job["status"]).is_terminal()
            bar.update(int(finished), _note(job))
            if finished or time.monotonic() >= deadline:
                return job
            time.sleep(POLL_INTERVAL_S)
            job = client.json("GET", f"/v1/jobs/{job['id']}")


def _note(job: dict[str, Any]) -> str:
    progress = job.get("progress")
    if job["status"] == "running" and progress:
        return f"running, {progress['tokens']}/{progress['max_tokens']} tokens"
    return job["status"]


def _outcome(job: dict[str, Any], wait_s: float) -> int:
    status = job["status"]
    if status == JobStatus.SUCCEEDED or (wait_s <= 0 and status == JobStatus.QUEUED):
        return EXIT_OK
    if status in (JobStatus.FAILED, JobStatus.CANCELED):
        error = job.get("error") or {}
        reason = f": {error.get('code')}: {error.get('message')}" if error else ""
        print(f"vlmq: job {job['id']} {status}{reason}", file=sys.stderr)
        return EXIT_JOB_FAILED
    print(
        f"vlmq: job {job['id']} is still {status} after {wait_s:g} s; follow it at {job['urls']['page']}",
        file=sys.stderr,
    )
    return EXIT_STILL_RUNNING
