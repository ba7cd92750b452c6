"""A streamed chat completion: the worker's text relayed as server-sent events.

The relay reads the job's Redis stream (`shared.streaming`) from its start, sends
each delta as a `chat.completion.chunk` as soon as it arrives, and checks the job row
whenever the stream is quiet, so a job that ended without a `done` entry (a worker
that publishes nothing, a crash, a cancel) still ends the stream. At the end, any text
of the result the deltas did not carry is sent, then the chunk with `finish_reason`,
the usage chunk when `stream_options.include_usage` asked for it, and `[DONE]`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

from shared.models import Job
from shared.states import JobStatus
from shared.streaming import START, read_stream
from web.api.chat_answer import chat_id, failure, finish_reason, usage
from web.api.openai_objects import ChatCompletionChunk, ChunkChoice, Delta
from web.api.waiting import wait_until_finished
from web.app_state import app_state

KEEP_ALIVE_S = 5.0
POLL_MS = 1000


def relay(
    job_id: str,
    deadline: float,
    include_usage: bool,
    give_up: Callable[[], Job],
    abandon: Callable[[], object] | None,
) -> Iterator[str]:
    """Server-sent events for the job until it ends or `deadline` (monotonic) passes.

    `give_up` returns the job as the call leaves it (canceled, when the call had no Idempotency-Key);
    `abandon`, when given, runs if the client goes away mid-stream.
    """
    try:
        yield from _events(job_id, deadline, include_usage, give_up)
    except GeneratorExit:
        if abandon is not None:
            abandon()
        raise


def _events(job_id: str, deadline: float, include_usage: bool, give_up: Callable[[], Job]) -> Iterator[str]:
    state = app_state()
    with state.sessions() as session:
        job = session.get_one(Job, job_id)
    yield _event(_chunk(job, Delta(role="assistant", content="")))
    sent, cursor, done, quiet_since = "", START, False, time.monotonic()
    while not done and (left := deadline - time.monotonic()) > 0:
        read = read_stream(state.redis, job_id, cursor, max(1, min(POLL_MS, int(left * 1000))))
        if not read.deltas and not read.done and _has_ended(job_id):
            # Ended without a `done` entry: take what was published before the end, then stop.
            read = read_stream(state.redis, job_id, read.cursor, None)
            done = True
        cursor, done = read.cursor, done or read.done
        for delta in read.deltas:
            sent += delta
            quiet_since = time.monotonic()
            yield _event(_chunk(job, Delta(content=delta)))
        if time.monotonic() - quiet_since >= KEEP_ALIVE_S:
            quiet_since = time.monotonic()
            yield ": waiting for the model\n\n"
    if done:
        wait_until_finished(state.sessions, job_id, max(0.0, deadline - time.monotonic()))
    yield from _ending(give_up(), sent, include_usage)


def _ending(job: Job, sent: str, include_usage: bool) -> Iterator[str]:
    settings = app_state().settings
    if job.status != JobStatus.SUCCEEDED:
        _, code, message = failure(job, settings)
        yield _event({"error": {"code": code, "message": message}})
        return
    text = job.result["text"]
    if text.startswith(sent) and len(text) > len(sent):
        yield _event(_chunk(job, Delta(content=text[len(sent) :])))
    final = ChunkChoice(delta=Delta(), finish_reason=finish_reason(job))  # type: ignore[arg-type]
    yield _event(_chunk(job, choices=[final]))
    if include_usage:
        yield _event(_chunk(job, choices=[], usage_included=True))
    yield "data: [DONE]\n\n"


def _has_ended(job_id: str) -> bool:
    with app_state().sessions() as session:
        return JobStatus(session.get_one(Job, job_id).status).is_terminal()


def _chunk(
    job: Job, delta: Delta | None = None, choices: list[ChunkChoice] | None = None, usage_included: bool = False
) -> dict:
    chunk = ChatCompletionChunk(
        id=chat_id(job),
        created=int(job.created_at.timestamp()),
        model=job.model,
        choices=choices if choices is not None else [ChunkChoice(delta=delta or Delta())],
        usage=usage(job) if usage_included else None,
    )
    return chunk.model_dump(mode="json", exclude_none=False)


def _event(payload: dict) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"
