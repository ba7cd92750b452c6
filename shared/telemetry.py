"""Histograms and counters kept in Redis, so every process that observes adds to one series.

The web runs several gunicorn processes and the workers run on other hosts, so in-process
`prometheus_client` metrics would be split per process (and its multiprocess mode needs one
shared directory, which hosts do not have). Every process already reaches Redis: each
observation is a few `HINCRBY`s in one round trip, and `web/telemetry_collector.py` renders
the totals at scrape time. Losing Redis resets them, which Prometheus reads as a counter reset.

Layout: one hash per metric (`vlmq:metrics:<name>`), one field per label set and bucket:
`<JSON list of label values>|<bucket upper bound, "sum" or "count">`. Buckets are stored
uncumulated; the collector adds them up.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

_PREFIX = "vlmq:metrics:"
_WIDE_SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


@dataclass(frozen=True)
class HistogramSpec:
    name: str
    help: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...]

    @property
    def key(self) -> str:
        return _PREFIX + self.name


@dataclass(frozen=True)
class CounterSpec:
    name: str
    help: str
    labels: tuple[str, ...]

    @property
    def key(self) -> str:
        return _PREFIX + self.name


QUEUE_WAIT = HistogramSpec(
    "vlmq_job_queue_wait_seconds", "Seconds from submission to a worker starting the job", ("task",), _WIDE_SECONDS
)
INFERENCE = HistogramSpec(
    "vlmq_job_inference_seconds",
    "Seconds a worker spent on the job (prompt, waiting for a batch slot, generation)",
    ("task",),
    (0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300, 600),
)
END_TO_END = HistogramSpec(
    "vlmq_job_end_to_end_seconds",
    "Seconds from submission to the job ending on a worker",
    ("task", "status"),
    _WIDE_SECONDS,
)
TOKENS_PER_SECOND = HistogramSpec(
    "vlmq_job_tokens_per_second",
    "Completion tokens per second of inference time, per succeeded job",
    ("task",),
    (1, 2, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 1000),
)
WEBHOOK_DELIVERIES = CounterSpec(
    "vlmq_webhook_deliveries", "Webhook delivery attempts by what came of them", ("outcome",)
)
REFUSED_REQUESTS = CounterSpec(
    "vlmq_refused_requests", "HTTP answers with a 4xx or 5xx status, by status and error code", ("status", "code")
)

HISTOGRAMS = (QUEUE_WAIT, INFERENCE, END_TO_END, TOKENS_PER_SECOND)
COUNTERS = (WEBHOOK_DELIVERIES, REFUSED_REQUESTS)


def field(label_values: Sequence[str], suffix: str) -> str:
    return f"{json.dumps(list(label_values))}|{suffix}"


def bucket_name(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def _observe(pipe: redis.client.Pipeline, spec: HistogramSpec, label_values: Sequence[str], value: float) -> None:
    """Queue one observation on `pipe` (the caller executes it, with its other observations)."""
    bound = next((b for b in spec.buckets if value <= b), math.inf)
    pipe.hincrby(spec.key, field(label_values, bucket_name(bound)), 1)
    pipe.hincrby(spec.key, field(label_values, "count"), 1)
    pipe.hincrbyfloat(spec.key, field(label_values, "sum"), value)


def count(client: redis.Redis, spec: CounterSpec, label_values: Sequence[str]) -> None:
    """Add one to a counter; a Redis failure is logged, never passed on (metrics must not fail work)."""
    try:
        client.hincrby(spec.key, field(label_values, "count"), 1)
    except RedisError as exc:
        log.warning("could not count %s: %s", spec.name, exc)


def record(client: redis.Redis, observations: Sequence[tuple[HistogramSpec, Sequence[str], float]]) -> None:
    """Write several histogram observations in one round trip; a Redis failure is only logged."""
    try:
        with client.pipeline(transaction=False) as pipe:
            for spec, label_values, value in observations:
                _observe(pipe, spec, label_values, value)
            pipe.execute()
    except RedisError as exc:
        log.warning("could not record job timings: %s", exc)
