"""A finished chat job as OpenAI's objects: the answer, why it stopped, and what it cost."""

from __future__ import annotations

from shared.models import Job
from shared.settings import Settings
from shared.states import JobStatus
from web.api.openai_objects import AssistantMessage, ChatCompletion, Choice, Usage


def chat_id(job: Job) -> str:
    return f"chatcmpl-{job.id}"


def finish_reason(job: Job) -> str:
    """`stop` or `length` as the worker that ran the job reported it.

    Not recomputed here: the token budget is the worker's (`job_budget` on its settings),
    and a result stored before workers recorded the reason is reported as `stop`.
    """
    return (job.result or {}).get("finish_reason") or "stop"


def usage(job: Job) -> Usage:
    counts = (job.result or {}).get("usage", {})
    prompt, completion_tokens = counts.get("prompt_tokens", 0), counts.get("completion_tokens", 0)
    return Usage(prompt_tokens=prompt, completion_tokens=completion_tokens, total_tokens=prompt + completion_tokens)


def completion(job: Job) -> ChatCompletion:
    """A succeeded job as a `chat.completion` (a JSON answer's text is its JSON)."""
    choice = Choice(
        message=AssistantMessage(content=job.result["text"]),
        finish_reason=finish_reason(job),  # type: ignore[arg-type]
    )
    return ChatCompletion(
        id=chat_id(job),
        created=int(job.created_at.timestamp()),
        model=job.model,
        choices=[choice],
        usage=usage(job),
    )


def failure(job: Job, settings: Settings) -> tuple[int, str, str]:
    """Status, code and message for a job that did not succeed in time."""
    if job.status == JobStatus.CANCELED:
        return 504, "timeout", f"job {job.id} did not finish within {settings.max_wait_s:g} s and was canceled"
    if job.status == JobStatus.FAILED:
        return 500, job.error_code or "job_failed", f"job {job.id} failed: {job.error_message}"
    return (
        504,
        "timeout",
        f"job {job.id} is still {job.status} after {settings.max_wait_s:g} s; "
        "repeat the call with the same Idempotency-Key to keep waiting for it",
    )
