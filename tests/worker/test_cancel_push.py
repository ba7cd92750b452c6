"""The web pushes each cancel to the GPU workers, and the runner's job hears it through its stop signal
within 0.5 s, long before the DB heartbeat (30 s here) would have."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import redis
from flask.testing import FlaskClient

from shared.cancel_channel import CHANNEL
from tests.support.helpers import submit
from worker.cancel_listener import start_cancel_listener
from worker.context import WorkerContext
from worker.inference.engine_contract import (
    InferenceRequest,
    InferenceResult,
    ProgressCallback,
    StopSignal,
    TextCallback,
)
from worker.runner import run_job

PUSH_WITHIN_S = 0.5


@pytest.fixture
def observer(broker: redis.Redis) -> Iterator[redis.client.PubSub]:
    """A subscriber to the cancel channel, as a GPU worker is."""
    pubsub = broker.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(CHANNEL)
    yield pubsub
    pubsub.close()


def _pushed(observer: redis.client.PubSub, timeout_s: float = 2.0) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (message := observer.get_message(timeout=0.1)) is not None:
            return message["data"].decode().split()
    raise AssertionError("no cancel was pushed")


def test_an_api_cancel_is_pushed_after_it_commits(
    client: FlaskClient, observer: redis.client.PubSub, png: bytes
) -> None:
    job_id = submit(client, png, task="describe").get_json()["id"]
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
    assert _pushed(observer) == [job_id]
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 409  # nothing canceled: nothing pushed
    assert observer.get_message(timeout=0.3) is None


class _ListeningEngine:
    """Generates until told to stop, as the batching loop does: it never reports progress, it only
    listens to the stop signal."""

    model_name = "listening"
    is_placeholder = False

    def __init__(self) -> None:
        self.generating = threading.Event()
        self.stopped_at: float | None = None

    def run(
        self,
        request: InferenceRequest,
        progress: ProgressCallback | None = None,
        on_text: TextCallback | None = None,
        stop: StopSignal | None = None,
    ) -> InferenceResult:
        assert stop is not None
        stopped = threading.Event()
        stop.listen(lambda _reason: stopped.set())
        self.generating.set()
        if not stopped.wait(20):
            return InferenceResult(text="ran to the end")
        self.stopped_at = time.monotonic()
        assert stop.reason is not None
        raise stop.reason


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_pushed_cancel_stops_the_running_job_within_half_a_second(
    client: FlaskClient, worker_context: WorkerContext, broker: redis.Redis, png: bytes
) -> None:
    worker_context.settings = worker_context.settings.model_copy(update={"heartbeat_interval_s": 30})
    engine = worker_context.engine = _ListeningEngine()
    subscribers = broker.pubsub_numsub(CHANNEL)[0][1]
    listening = start_cancel_listener(broker, worker_context.running)
    try:
        deadline = time.monotonic() + 10
        while broker.pubsub_numsub(CHANNEL)[0][1] == subscribers:
            assert time.monotonic() < deadline, "the listener did not subscribe"
            time.sleep(0.02)
        job_id = submit(client, png, task="describe").get_json()["id"]
        outcome: list[str] = []
        runner = threading.Thread(target=lambda: outcome.append(run_job(worker_context, job_id)))
        runner.start()
        assert engine.generating.wait(10)
        asked = time.monotonic()
        assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
        runner.join(timeout=5)
    finally:
        listening.set()
    assert outcome == ["canceled"]
    assert engine.stopped_at is not None
    print(f"\npushed cancel stopped the job {engine.stopped_at - asked:.4f} s after the request was sent")
    assert engine.stopped_at - asked < PUSH_WITHIN_S
    assert client.get(f"/v1/jobs/{job_id}").get_json()["status"] == "canceled"
