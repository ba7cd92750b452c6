"""Runs one job: claim it, ask the engine, write the outcome back.

Plain functions with no Celery in them, so tests call them directly. The claim
(`queued → running`) and the outcome are conditional updates: a duplicate message
finds nothing to claim, and a job canceled mid-run keeps its `canceled` status.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from functools import partial

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from shared import jobs, log_context, telemetry
from shared.attributes_budget import job_budget
from shared.clock import utcnow
from shared.db import retry_while_unreachable
from shared.job_enqueue import enqueue_job
from shared.job_view import PLACEHOLDER_MODEL_NAME
from shared.models import Job
from shared.schemas import MAX_HISTORY_TURNS
from shared.settings import Settings
from shared.states import JobStatus
from shared.storage import load_image_bytes
from shared.streaming import publish_delta, publish_done
from shared.webhooks.enqueue import enqueue_job_deliveries
from worker.context import WorkerContext
from worker.heartbeat import Heartbeat, JobCanceled, JobTimedOut
from worker.inference.engine_contract import GenerationParams, InferenceError, InferenceRequest, Turn
from worker.inference.image_normalise import open_reduced

log = logging.getLogger(__name__)


def run_job(ctx: WorkerContext, job_id: str) -> str:
    """Run the job if it is still queued; returns what happened, for logs and tests."""
    if ctx.engine is None:
        raise RuntimeError("this process has no model loaded; run_job belongs on a GPU worker")
    with ctx.sessions() as session:
        request_id = session.scalar(select(Job.request_id).where(Job.id == job_id))
    with log_context.bound(request_id, job_id):
        return _claim_and_execute(ctx, job_id)


def _claim_and_execute(ctx: WorkerContext, job_id: str) -> str:
    with ctx.sessions.begin() as session:
        job = session.get(Job, job_id)
        if job is None:
            log.warning("job %s does not exist; dropping its message", job_id)
            return "missing"
        now = utcnow()
        if not jobs.start(session, job_id, ctx.name, now, job_budget(job.task, job.params, ctx.settings)):
            log.info("job %s is %s, not queued; ignoring a duplicate message", job_id, job.status)
            return "skipped"
        timing = _JobTiming(job.task, job.created_at)
        interactive = job.interactive
    log.info("job %s started (%s, waited %.2f s)", job_id, timing.task, timing.since_created(now))
    telemetry.record(ctx.redis, [(telemetry.QUEUE_WAIT, (timing.task,), timing.since_created(now))])
    # Webhooks are only queued here; the webhook worker sends them, never this GPU process.
    enqueue_job_deliveries(ctx.celery, ctx.sessions, job_id)
    return _execute(ctx, job_id, timing, interactive)


def _release(ctx: WorkerContext, job_id: str, interactive: bool, exc: OperationalError) -> str:
    """The database failed between the claim and reading the job: no model ran, so the job goes back to `queued`
    (its attempt given back) once the database answers, and to the front of its queue."""
    log.warning("job %s: the database failed as the job was read (%s); putting it back in the queue", job_id, exc.orig)

    def give_back() -> bool:
        with ctx.sessions.begin() as session:
            return jobs.release(session, job_id, ctx.name)

    # Past the retry window this raises and the job stays `running`: the sweeper requeues it once its heartbeat is
    # stale. Not moved: it was canceled (or recovered) meanwhile, and is no longer this worker's.
    if not retry_while_unreachable(give_back, ctx.settings.result_write_retry_s):
        return "skipped"
    enqueue_job(ctx.celery, ctx.sessions, job_id, interactive, front=ctx.redis)
    return "requeued"


@dataclass(frozen=True)
class _JobTiming:
    """What the job's timing metrics are labelled with and measured from."""

    task: str
    created_at: datetime

    def since_created(self, now: datetime) -> float:
        return max(0.0, (now - self.created_at).total_seconds())


def _execute(ctx: WorkerContext, job_id: str, timing: _JobTiming, interactive: bool) -> str:
    started = time.perf_counter()
    settings = ctx.settings
    heartbeat = Heartbeat(
        ctx.sessions,
        job_id,
        ctx.name,
        settings.heartbeat_interval_s,
        settings.task_soft_time_limit_s,
        settings.task_hard_time_limit_s,
    )
    outcome: tuple[str, str] | None = None
    result = None
    streamed = False
    try:
        with heartbeat:
            with ctx.sessions() as session:
                request = build_request(session, ctx.settings, session.get_one(Job, job_id))
            # A caller waits on interactive jobs (chat): new text goes out as it is generated.
            streamed = request.interactive
            on_text = partial(publish_delta, ctx.redis, job_id) if streamed else None
            with ctx.running.registered(job_id, heartbeat.stop):  # a pushed cancel stops it at once
                result = ctx.engine.run(request, progress=heartbeat.progress, on_text=on_text, stop=heartbeat.stop)
    except JobCanceled:
        log.info("job %s was canceled while running", job_id)
        return "canceled"
    except OperationalError as exc:  # reading the job is the only database work in here: no model ran
        return _release(ctx, job_id, interactive, exc)
    except InferenceError as exc:
        outcome = (exc.code, exc.message)
    except JobTimedOut:
        outcome = ("timeout", f"inference took longer than {settings.task_soft_time_limit_s} s and was stopped")
    except Exception as exc:
        log.exception("job %s crashed the engine", job_id)
        outcome = ("internal_error", f"inference crashed: {type(exc).__name__}: {exc}")
    elapsed = time.perf_counter() - started
    finished_at = utcnow()

    def record_outcome() -> bool:
        with ctx.sessions.begin() as session:
            if outcome is None:
                return jobs.succeed(session, job_id, asdict(result), _model_label(ctx), elapsed, finished_at)
            return jobs.fail(session, job_id, *outcome, finished_at, inference_s=elapsed, model=_model_label(ctx))

    # A database outage must not cost the work done: keep the result and write it when the database is back.
    moved = retry_while_unreachable(record_outcome, settings.result_write_retry_s)
    if streamed:
        publish_done(ctx.redis, job_id)
    if not moved:
        return "canceled"
    status = "succeeded" if outcome is None else "failed"
    log.info("job %s %s in %.2f s%s", job_id, status, elapsed, "" if outcome is None else f" ({outcome[0]})")
    observations = [
        (telemetry.INFERENCE, (timing.task,), elapsed),
        (telemetry.END_TO_END, (timing.task, status), timing.since_created(finished_at)),
    ]
    if result is not None and (tokens := result.usage.get("completion_tokens", 0)) and elapsed > 0:
        observations.append((telemetry.TOKENS_PER_SECOND, (timing.task,), tokens / elapsed))
    telemetry.record(ctx.redis, observations)
    enqueue_job_deliveries(ctx.celery, ctx.sessions, job_id)
    return status


def _model_label(ctx: WorkerContext) -> str:
    """The model name jobs record; the placeholder gets the name the API warns about."""
    return PLACEHOLDER_MODEL_NAME if ctx.engine.is_placeholder else ctx.engine.model_name


def build_request(session: Session, settings: Settings, job: Job) -> InferenceRequest:
    """Turn a job row into an engine request; an unreadable image fails the job."""
    params = job.params
    generation = GenerationParams(
        max_new_tokens=job_budget(job.task, params, settings),
        temperature=params.get("temperature", settings.temperature),
        top_p=params.get("top_p", settings.top_p),
        repetition_penalty=params.get("repetition_penalty", settings.repetition_penalty),
    )
    try:
        data = load_image_bytes(session, job.image_id)
    except (OSError, LookupError) as exc:
        raise InferenceError("image_error", f"the stored image could not be read: {exc}") from None
    image = open_reduced(data, settings.image_max_side)
    options = {k: params[k] for k in ("channel", "campaign", "schema") if k in params}
    return InferenceRequest(
        task=job.task,  # type: ignore[arg-type]
        image=image,
        generation=generation,
        prompt=job.prompt,
        options=options,
        history=conversation_before(session, job),
        interactive=job.interactive,
    )


def conversation_before(session: Session, job: Job) -> tuple[Turn, ...]:
    """Earlier turns of an `ask` job, oldest first: given in `params.history`, or
    read from its chain of parent jobs."""
    if history := job.params.get("history"):
        return tuple(Turn(turn["role"], turn["text"]) for turn in history)
    turns: list[Turn] = []
    parent_id = job.parent_job_id
    # New chains are bounded at submit; the cap guards chains made before that rule existed.
    for _ in range(MAX_HISTORY_TURNS // 2):
        if parent_id is None:
            break
        parent = session.get(Job, parent_id)
        if parent is None or parent.status != JobStatus.SUCCEEDED or not parent.result:
            break
        turns[:0] = [Turn("user", parent.prompt or ""), Turn("assistant", parent.result.get("text", ""))]
        parent_id = parent.parent_job_id
    return tuple(turns)
