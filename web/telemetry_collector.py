"""Renders, at scrape time, what every process recorded in Redis and what live workers announce.

`shared.telemetry` holds the job-timing histograms and the webhook and refusal counters summed
over every web and worker process; the workers' presence records (`worker.live_load`) hold each
worker's batch occupancy and GPU memory, labelled here by worker.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from shared import telemetry
from shared.request_rules import TASKS

JOB_END_STATUSES = ("succeeded", "failed")
WEBHOOK_OUTCOMES = ("delivered", "retrying", "failed")
# Label sets shown at zero before anything happened, so rates and alerts have a series from the start.
_KNOWN_LABELS: dict[str, list[tuple[str, ...]]] = {
    telemetry.QUEUE_WAIT.name: [(task,) for task in TASKS],
    telemetry.INFERENCE.name: [(task,) for task in TASKS],
    telemetry.END_TO_END.name: [(task, status) for task in TASKS for status in JOB_END_STATUSES],
    telemetry.TOKENS_PER_SECOND.name: [(task,) for task in TASKS],
    telemetry.WEBHOOK_DELIVERIES.name: [(outcome,) for outcome in WEBHOOK_OUTCOMES],
    telemetry.REFUSED_REQUESTS.name: [],
}
WORKER_GAUGES = {
    "slots": ("vlmq_worker_slots", "Jobs the worker can run at once (its batch slots)"),
    "rows_running": ("vlmq_worker_rows_running", "Jobs in the worker's batch now"),
    "gpu_memory_allocated_bytes": ("vlmq_worker_gpu_memory_allocated_bytes", "GPU memory torch allocated to tensors"),
    "gpu_memory_reserved_bytes": ("vlmq_worker_gpu_memory_reserved_bytes", "GPU memory torch's allocator holds"),
    "gpu_memory_total_bytes": ("vlmq_worker_gpu_memory_total_bytes", "Memory of the worker's GPU"),
}
WORKER_COUNTERS = {
    "decode_steps": ("vlmq_worker_decode_steps", "Decode steps of the worker's batching loop since it started"),
    "decode_seconds": ("vlmq_worker_decode_seconds", "Seconds the batching loop spent in decode steps"),
    "prefill_seconds": ("vlmq_worker_prefill_seconds", "Seconds the batching loop spent prefilling new jobs"),
    "prefill_tokens": ("vlmq_worker_prefill_tokens", "Prompt tokens the batching loop prefilled"),
}


class RecordedTelemetry(Collector):
    """The Redis-kept histograms and counters, read in one round trip."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    def collect(self) -> Iterator[Metric]:
        specs = (*telemetry.HISTOGRAMS, *telemetry.COUNTERS)
        with self._client.pipeline(transaction=False) as pipe:
            for spec in specs:
                pipe.hgetall(spec.key)
            stored = pipe.execute()
        for spec, fields in zip(specs, stored, strict=True):
            series = _by_label_set(fields, _KNOWN_LABELS[spec.name])
            if isinstance(spec, telemetry.HistogramSpec):
                yield _histogram(spec, series)
            else:
                counter = CounterMetricFamily(spec.name, spec.help, labels=spec.labels)
                for label_values, values in sorted(series.items()):
                    counter.add_metric(label_values, values.get("count", 0))
                yield counter


def _by_label_set(fields: dict[bytes, bytes], known: list[tuple[str, ...]]) -> dict[tuple[str, ...], dict[str, float]]:
    series: dict[tuple[str, ...], dict[str, float]] = defaultdict(dict)
    for label_values in known:
        series[label_values] = {}
    for raw_field, raw_value in fields.items():
        labels_json, _, suffix = raw_field.decode().rpartition("|")
        series[tuple(json.loads(labels_json))][suffix] = float(raw_value)
    return series


def _histogram(spec: telemetry.HistogramSpec, series: dict[tuple[str, ...], dict[str, float]]) -> Metric:
    family = HistogramMetricFamily(spec.name, spec.help, labels=spec.labels)
    for label_values, values in sorted(series.items()):
        cumulative, buckets = 0.0, []
        for bound in (*spec.buckets, math.inf):
            name = telemetry.bucket_name(bound)
            cumulative += values.get(name, 0)
            buckets.append((name, cumulative))
        family.add_metric(label_values, buckets, values.get("sum", 0.0))
    return family


class WorkerLoad(Collector):
    """Each live GPU worker's slots, rows running, batching-loop totals and GPU memory, by worker."""

    def __init__(self, workers: list[dict[str, Any]]) -> None:
        self._workers = [worker for worker in workers if "slots" in worker]

    def collect(self) -> Iterator[Metric]:
        for key, (name, help_text) in WORKER_GAUGES.items():
            gauge = GaugeMetricFamily(name, help_text, labels=("worker",))
            for worker in self._workers:
                if (value := _worker_value(worker, key)) is not None:
                    gauge.add_metric((worker["name"],), value)
            yield gauge
        for key, (name, help_text) in WORKER_COUNTERS.items():
            counter = CounterMetricFamily(name, help_text, labels=("worker",))
            for worker in self._workers:
                if (value := _worker_value(worker, key)) is not None:
                    counter.add_metric((worker["name"],), value)
            yield counter


def _worker_value(worker: dict[str, Any], key: str) -> float | None:
    """`slots` is fixed at start-up; the rest is the load the presence loop refreshes."""
    return worker.get(key) if key == "slots" else worker.get("load", {}).get(key)
