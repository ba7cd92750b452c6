"""Requests the proxy stamped too long ago are shed with 503 before any work; others pass."""

from __future__ import annotations

import time

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from shared.settings import Settings
from tests.support.helpers import job_count, submit
from web.app import create_app


def stamp(seconds_ago: float) -> dict[str, str]:
    return {"X-Request-Start": f"t={int((time.time() - seconds_ago) * 1000)}"}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_request_that_queued_too_long_is_shed_and_changes_nothing(
    client: FlaskClient, sessions: sessionmaker[Session], png: bytes
) -> None:
    shed = submit(client, png, task="describe", headers=stamp(10))
    assert shed.status_code == 503 and shed.headers["Retry-After"] == "1"
    assert shed.get_json()["error"]["code"] == "overloaded"
    assert job_count(sessions) == 0
    assert client.get("/healthz", headers=stamp(10)).status_code == 200  # probes are never shed
    assert submit(client, png, task="describe", headers=stamp(0.05)).status_code == 202
    assert client.get("/v1/jobs", headers={"X-Request-Start": "t=soon"}).status_code == 200  # unreadable: not shed
    assert job_count(sessions) == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_shedding_is_off_at_zero(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"max_queue_ms": 0}))
    assert app.test_client().get("/v1/jobs", headers=stamp(3600)).status_code == 200
    app.extensions["vlmq"].engine.dispose()
