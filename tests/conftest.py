"""Shared fixtures: real Redis, SQLite and PostgreSQL, the tiny model, the app."""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import redis
import sqlalchemy as sa
from celery import Celery
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from shared.after_commit import row_id_of_task
from shared.celery_app import GPU_QUEUES, make_celery
from shared.db import make_engine, make_session_factory
from shared.migrate import upgrade_to_head
from shared.settings import Settings
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.helpers import image_bytes
from tests.support.services import missing, postgres_cluster, redis_server, serving
from tests.support.webhook_receiver import Receiver
from web.app import create_app
from worker.context import WorkerContext, worker_name
from worker.inference.engine_contract import Engine
from worker.runner import run_job


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    with postgres_cluster() as cluster:
        yield cluster.url


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """CLI tests call `vlmq.cli.main`, which points the root logger at this test's captured stderr;
    restore it, so later tests do not log into a closed stream."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database per test, its schema built by the migrations."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'vlmq.db'}"
        upgrade_to_head(url)
        yield url
        return
    admin_url: str = request.getfixturevalue("postgres_admin_url")
    name = f"test_{secrets.token_hex(6)}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f"CREATE DATABASE {name}"))
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    upgrade_to_head(url)
    yield url
    with admin.connect() as connection:
        connection.execute(sa.text(f"DROP DATABASE {name} WITH (FORCE)"))
    admin.dispose()


@pytest.fixture(scope="session")
def model_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir shared by the whole run, so the tiny model is built once."""
    return tmp_path_factory.mktemp("vlmq-data")


@pytest.fixture
def settings(database_url: str, redis_url: str, model_data_dir: Path) -> Settings:
    redis.Redis.from_url(redis_url).flushdb()
    return Settings(
        data_dir=model_data_dir,
        database_url=database_url,
        redis_url=redis_url,
        heartbeat_interval_s=0.2,
        max_new_tokens=24,
        rate_limit="1000/second",  # tests submit in tight loops; tests/api/test_tenant_limits.py sets its own
    )


@pytest.fixture
def sessions(settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(settings.sqlalchemy_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def broker(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url)


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    app = create_app(settings)
    yield app
    app.extensions["vlmq"].engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture(scope="session")
def engine(model_data_dir: Path) -> Engine:
    """The real inference engine on the tiny checkpoint, loaded once per test run."""
    from worker.inference.loader import load_engine

    return load_engine(Settings(data_dir=model_data_dir))


@pytest.fixture
def celery_app(settings: Settings) -> Celery:
    return make_celery(settings)


@pytest.fixture
def worker_context(
    settings: Settings, sessions: sessionmaker[Session], celery_app: Celery, broker: redis.Redis, engine: Engine
) -> WorkerContext:
    return WorkerContext(
        settings=settings, sessions=sessions, celery=celery_app, redis=broker, name=worker_name(), engine=engine
    )


@pytest.fixture
def png() -> bytes:
    return image_bytes()


@pytest.fixture
def webhook_context(
    settings: Settings, sessions: sessionmaker[Session], celery_app: Celery, broker: redis.Redis
) -> WorkerContext:
    """A webhook worker's context: no model."""
    return WorkerContext(settings=settings, sessions=sessions, celery=celery_app, redis=broker, name="webhooks-test")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A scriptable webhook endpoint on loopback."""
    with Receiver() as server:
        yield server


@pytest.fixture
def live_url(app: Flask) -> Iterator[str]:
    with serving(app) as url:
        yield url


@pytest.fixture
def openai_client(live_url: str) -> openai.OpenAI:
    """The official OpenAI client, pointed at a live server."""
    return openai.OpenAI(base_url=f"{live_url}/v1", api_key="unused-while-auth-is-off", max_retries=0)


@pytest.fixture
def gpu_thread(broker: redis.Redis, worker_context: WorkerContext) -> Iterator[None]:
    """A GPU worker in a thread: runs every job message that arrives, on the real tiny model."""
    stop = threading.Event()

    def consume() -> None:
        while not stop.is_set():
            item = broker.blpop(list(GPU_QUEUES), timeout=0.2)
            if item is not None:
                run_job(worker_context, row_id_of_task(json.loads(item[1])["headers"]["id"]))

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join()


@pytest.fixture
def browser_page() -> Iterator[object]:
    """A page in headless Chromium (Debian's build, driven by Playwright)."""
    if CHROMIUM is None:
        missing("chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser.new_page()
        browser.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """Where page screenshots are kept after the run (CI can publish the folder): `VLMQ_TEST_ARTIFACTS`
    or `test-artifacts/` in the checkout, one sub-folder `screenshots`."""
    root = Path(os.environ.get("VLMQ_TEST_ARTIFACTS") or Path(__file__).resolve().parent.parent / "test-artifacts")
    folder = root / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
