"""The shipped Prometheus rules and Grafana dashboard are valid, fire when they should, and
name only metrics and label values that a live `GET /metrics` exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import redis
import yaml
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from shared.celery_app import GPU_QUEUES
from shared.presence import announce
from tests.support.services import missing

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "vlmq-dashboard.json"
KEYWORDS = {"by", "without", "and", "or", "unless", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
# Prometheus' own series for a scrape job; prometheus.yml names the job `vlmq`.
SCRAPE_SERIES = {("up", (("job", "vlmq"),))}


def _selectors(expr: str) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """Each metric an expression reads, with its label matchers (a small PromQL reader)."""
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)  # label lists
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range durations
    found = []
    for match in re.finditer(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?\s*(\()?", text):
        name, braces, call = match.groups()
        if call or name in KEYWORDS or re.fullmatch(r"\d.*", name):
            continue
        matchers = re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"', braces or "")
        found.append((name, matchers))
    return found


def _satisfies(labels: dict[str, str], matchers: list[tuple[str, str, str]]) -> bool:
    tests = {
        "=": lambda value, want: value == want,
        "!=": lambda value, want: value != want,
        "=~": lambda value, want: re.fullmatch(want, value) is not None,
        "!~": lambda value, want: re.fullmatch(want, value) is None,
    }
    return all(tests[op](labels.get(label, ""), want) for label, op, want in matchers)


def _expressions() -> list[str]:
    rules = [rule["expr"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return rules + [target["expr"] for panel in panels for target in panel["targets"]]


def test_alert_rules_are_valid_and_fire_on_what_they_name() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        missing("promtool (Debian package prometheus)")
    for command in (
        ["check", "rules", str(RULES)],
        ["check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
        ["test", "rules", str(DEPLOY / "prometheus" / "alerts_test.yml")],
    ):
        result = subprocess.run([promtool, *command], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_is_well_formed() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {variable["name"] for variable in dashboard["templating"]["list"]}
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert dashboard["uid"]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])
        assert panel["datasource"]["uid"].strip("${}") in variables
        refs = [target["refId"] for target in panel["targets"]]
        assert refs
        assert len(refs) == len(set(refs))


def test_every_query_reads_metrics_the_service_exports(client: FlaskClient, broker: redis.Redis) -> None:
    # What a running service has besides its tables: a GPU worker on a card, and a refused request.
    load = {"rows_running": 3, "decode_steps": 40, "decode_seconds": 1.2, "prefill_seconds": 0.8, "prefill_tokens": 9e3}
    load |= {"gpu_memory_allocated_bytes": 9e9, "gpu_memory_reserved_bytes": 1e10, "gpu_memory_total_bytes": 8e10}
    worker = {"name": "gpu1:7", "queues": list(GPU_QUEUES), "slots": 64, "load": load}
    announce(broker, "gpu1:7", worker, ttl_s=60)
    assert client.get("/v1/jobs/job_missing").status_code == 404
    scrape = client.get("/metrics")
    assert scrape.status_code == 200
    samples = [
        (sample.name, sample.labels)
        for family in text_string_to_metric_families(scrape.get_data(as_text=True))
        for sample in family.samples
    ]
    samples += [(name, dict(labels)) for name, labels in SCRAPE_SERIES]
    wrong = []
    for expr in _expressions():
        selectors = _selectors(expr)
        assert selectors, expr
        for name, matchers in selectors:
            if not any(sample == name and _satisfies(labels, matchers) for sample, labels in samples):
                wrong.append(f"{expr!r}: no exported {name} matches {matchers}")
    assert not wrong


def test_the_query_reader_sees_metrics_and_labels() -> None:
    expr = 'sum by (queue) (rate(vlmq_x{a=~"b|c"}[5m])) / on(queue) max(vlmq_y) > 3 and up{job="vlmq"}'
    assert _selectors(expr) == [("vlmq_x", [("a", "=~", "b|c")]), ("vlmq_y", []), ("up", [("job", "=", "vlmq")])]
