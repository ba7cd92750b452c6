"""A few seconds of the load test's locust users against a live server: the benchmark's
locustfile keeps working (the benchmark itself, bench/load_test.py, is not run in CI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from shared.models import Job
from tests.support.helpers import submit

LOCUSTFILE = Path(__file__).resolve().parents[2] / "bench" / "locustfile.py"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_locust_users_submit_and_read_without_errors(
    live_url: str, client: FlaskClient, png: bytes, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    ids, summary = tmp_path / "ids.txt", tmp_path / "summary.json"
    ids.write_text(submit(client, png, task="describe").get_json()["id"])
    locust = Path(sys.executable).with_name("locust")
    command = [str(locust), "-f", str(LOCUSTFILE), "--headless", "--only-summary", "-u", "2", "-r", "2", "-t", "3s"]
    env = {**os.environ, "LOAD_IDS_IN": str(ids), "LOAD_SUMMARY": str(summary)}
    result = subprocess.run(
        [*command, "--host", live_url, "SubmitUser", "ReadUser"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(summary.read_text())
    requests = report["requests"]
    assert requests["POST /v1/jobs"]["count"] > 0 and set(requests["POST /v1/jobs"]["codes"]) == {"202"}
    assert requests["GET /v1/jobs/{id}"]["count"] > 0 and set(requests["GET /v1/jobs/{id}"]["codes"]) == {"200"}
    with sessions() as session:
        stored = set(session.scalars(select(Job.id).where(Job.id.in_(report["accepted_ids"]))))
    assert stored == set(report["accepted_ids"])
