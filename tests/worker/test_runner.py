"""The worker's job runner on the real tiny model, called without a broker."""

from __future__ import annotations

import json
import threading
import time

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from shared.models import Job
from tests.support.helpers import submit
from worker.context import WorkerContext
from worker.heartbeat import Heartbeat
from worker.inference.engine_contract import (
    Engine,
    InferenceError,
    InferenceRequest,
    InferenceResult,
    ProgressCallback,
    StopSignal,
    TextCallback,
)
from worker.runner import conversation_before, run_job
from worker.warmup import warm_up


def _job(sessions: sessionmaker[Session], job_id: str) -> Job:
    with sessions() as session:
        return session.get(Job, job_id)


@pytest.mark.parametrize("task,prompt", [("describe", None), ("ocr", None), ("ask", "Is it waterproof?")])
def test_tasks_run_end_to_end(
    task: str, prompt: str | None, client: FlaskClient, worker_context: WorkerContext, png: bytes
) -> None:
    fields = {"task": task, **({"prompt": prompt} if prompt else {})}
    job_id = submit(client, png, **fields).get_json()["id"]
    assert run_job(worker_context, job_id) == "succeeded"
    body = client.get(f"/v1/jobs/{job_id}").get_json()
    assert body["status"] == "succeeded"
    assert isinstance(body["result"]["text"], str)
    assert body["result"]["usage"]["prompt_tokens"] > 0
    assert 0 < body["result"]["usage"]["completion_tokens"] <= 24
    assert body["attempts"] == 1
    assert body["metrics"]["queue_s"] >= 0 and body["metrics"]["inference_s"] > 0
    assert body["started_at"] <= body["completed_at"]
    assert _job(worker_context.sessions, job_id).worker == worker_context.name


def test_duplicate_and_unknown_messages_are_ignored(
    client: FlaskClient, worker_context: WorkerContext, png: bytes
) -> None:
    job_id = submit(client, png, task="describe").get_json()["id"]
    assert run_job(worker_context, job_id) == "succeeded"
    completed_at = client.get(f"/v1/jobs/{job_id}").get_json()["completed_at"]
    assert run_job(worker_context, job_id) == "skipped"
    assert client.get(f"/v1/jobs/{job_id}").get_json()["completed_at"] == completed_at
    assert run_job(worker_context, "job_does_not_exist") == "missing"


def test_follow_up_question_continues_the_conversation(
    client: FlaskClient, worker_context: WorkerContext, png: bytes
) -> None:
    first = submit(client, png, task="ask", prompt="What is it?").get_json()["id"]
    run_job(worker_context, first)
    follow_up = submit(client, None, task="ask", prompt="What colour?", params=json.dumps({"parent_job_id": first}))
    assert follow_up.status_code == 202, follow_up.get_json()
    second = follow_up.get_json()["id"]
    with worker_context.sessions() as session:
        turns = conversation_before(session, session.get(Job, second))
        parent = session.get(Job, first)
        assert [t.role for t in turns] == ["user", "assistant"]
        assert turns[0].text == "What is it?"
        assert turns[1].text == parent.result["text"]
        assert session.get(Job, second).image_id == parent.image_id
    assert run_job(worker_context, second) == "succeeded"


def test_follow_up_needs_a_finished_ask_parent(client: FlaskClient, png: bytes) -> None:
    parent = submit(client, png, task="describe").get_json()["id"]
    response = submit(client, None, task="ask", prompt="and?", params=json.dumps({"parent_job_id": parent}))
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "invalid_parent_job"


class _SlowEngine:
    """Stands in for a model that takes a long time, reporting progress as it goes."""

    model_name = "slow"
    is_placeholder = False

    def run(
        self,
        request: InferenceRequest,
        progress: ProgressCallback | None = None,
        on_text: TextCallback | None = None,
        stop: StopSignal | None = None,
    ) -> InferenceResult:
        for step in range(200):
            time.sleep(0.05)
            if progress:
                progress(step, 200)
        return InferenceResult(text="finished")


def test_a_running_job_shows_its_progress_from_the_first_poll(
    client: FlaskClient, worker_context: WorkerContext, png: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Polled while the engine reports its first step, before any heartbeat has written: 0 of the budget,
    not null (it read null in every poll of a job shorter than a heartbeat interval)."""
    job_id = submit(client, png, task="describe").get_json()["id"]
    polls: list[dict] = []
    report = Heartbeat.progress

    def poll_then_report(heartbeat: Heartbeat, tokens: int, total: int) -> None:
        if not polls:
            polls.append(client.get(f"/v1/jobs/{job_id}").get_json())
        report(heartbeat, tokens, total)

    monkeypatch.setattr(Heartbeat, "progress", poll_then_report)
    assert run_job(worker_context, job_id) == "succeeded"
    assert polls[0]["status"] == "running"
    assert polls[0]["progress"] == {"tokens": 0, "max_tokens": 24}  # the test settings' max_new_tokens
    assert client.get(f"/v1/jobs/{job_id}").get_json()["progress"]["max_tokens"] == 24


def test_cancel_stops_a_running_job(client: FlaskClient, worker_context: WorkerContext, png: bytes) -> None:
    worker_context.engine = _SlowEngine()
    job_id = submit(client, png, task="describe").get_json()["id"]
    outcome: list[str] = []
    runner = threading.Thread(target=lambda: outcome.append(run_job(worker_context, job_id)))
    runner.start()
    deadline = time.monotonic() + 5
    # Until a heartbeat has written what the engine reported (null while queued, then 0 of the job's budget).
    while not (client.get(f"/v1/jobs/{job_id}").get_json()["progress"] or {}).get("tokens"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    running = client.get(f"/v1/jobs/{job_id}").get_json()
    assert running["status"] == "running"
    assert running["progress"]["max_tokens"] == 200
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
    runner.join(timeout=10)
    assert outcome == ["canceled"]
    body = client.get(f"/v1/jobs/{job_id}").get_json()
    assert body["status"] == "canceled"
    assert body["result"] is None


def test_warm_up_runs_the_real_engine(engine: Engine) -> None:
    assert warm_up(engine) > 0


class _FailingEngine:
    """A model that refuses every request, as a real one does on an input it cannot read."""

    model_name = "org/failing-model"
    is_placeholder = False

    def run(
        self,
        request: InferenceRequest,
        progress: ProgressCallback | None = None,
        on_text: TextCallback | None = None,
        stop: StopSignal | None = None,
    ) -> InferenceResult:
        raise InferenceError("inference_error", "the model could not read this input")


def test_a_failed_job_shows_the_model_that_ran_it(
    client: FlaskClient, worker_context: WorkerContext, png: bytes
) -> None:
    job_id = submit(client, png, task="describe").get_json()["id"]
    submitted_with = client.get(f"/v1/jobs/{job_id}").get_json()["model"]
    worker_context.engine = _FailingEngine()
    assert run_job(worker_context, job_id) == "failed"
    body = client.get(f"/v1/jobs/{job_id}").get_json()
    assert body["error"]["code"] == "inference_error"
    assert submitted_with != "org/failing-model"
    assert body["model"] == "org/failing-model"
