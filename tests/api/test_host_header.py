"""The client writes `Host`: links never echo an untrusted one, and `VLMQ_ALLOWED_HOSTS` refuses the rest."""

from __future__ import annotations

import pytest
import redis
from flask import Flask
from sqlalchemy.orm import Session, sessionmaker

from shared.settings import Settings
from tests.support.helpers import assert_nothing_stored, data_uri, image_bytes
from web.app import create_app

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _submit(app: Flask, host: str) -> tuple[int, dict]:
    body = {"task": "describe", "image": data_uri(image_bytes())}
    response = app.test_client().post("/v1/jobs", json=body, headers={"Host": host})
    return response.status_code, response.get_json() | {"location": response.headers.get("Location")}


@SQLITE
@pytest.mark.parametrize("host", ["evil.example", "localhost/evil.example", "x@evil.example", "evil.example:443"])
def test_links_never_name_an_untrusted_host(app: Flask, host: str) -> None:
    status, job = _submit(app, host)
    assert status == 202
    assert "evil" not in str(job["urls"]) + job["location"]
    assert job["urls"]["self"].startswith("http://127.0.0.1:8000/v1/jobs/")


@SQLITE
def test_links_name_a_trusted_host_it_came_in_on(app: Flask) -> None:
    status, job = _submit(app, "localhost:5000")
    assert status == 202 and job["location"].startswith("http://localhost:5000/v1/jobs/")


@SQLITE
def test_allowed_hosts_refuse_others_with_400_and_store_nothing(
    settings: Settings, sessions: sessionmaker[Session], broker: redis.Redis
) -> None:
    app = create_app(settings.model_copy(update={"allowed_hosts": ("vlmq.shop.example",)}))
    status, refused = _submit(app, "evil.example")
    assert status == 400 and refused["error"]["code"] == "invalid_host"
    assert "vlmq.shop.example (VLMQ_ALLOWED_HOSTS)" in refused["error"]["message"]
    assert _submit(app, "localhost")[0] == 400, "the list replaces the defaults"
    assert_nothing_stored(sessions, broker)
    status, job = _submit(app, "VLMQ.shop.example:8443")
    assert status == 202 and job["location"].startswith("http://vlmq.shop.example:8443/v1/jobs/")
    app.extensions["vlmq"].engine.dispose()


@SQLITE
def test_the_public_url_wins_over_any_host(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"public_url": "https://vlmq.shop.example"}))
    status, job = _submit(app, "evil.example")
    assert status == 202 and job["location"].startswith("https://vlmq.shop.example/v1/jobs/")
    app.extensions["vlmq"].engine.dispose()


def test_the_setting_is_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLMQ_ALLOWED_HOSTS", "vlmq.shop.example, web")
    assert Settings().allowed_hosts == ("vlmq.shop.example", "web")
