"""Image storage deduplicates per tenant, also when two requests race; a full disk is said as such."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from shared.db import make_engine, retry_while_unreachable
from shared.images import check_image
from shared.models import StoredImage
from shared.storage import store_image
from tests.support.helpers import assert_nothing_stored, image_bytes, submit


def test_identical_uploads_share_a_row(sessions: sessionmaker[Session]) -> None:
    checked = check_image(image_bytes(), 10**7, 10**8)
    with sessions.begin() as session:
        first = store_image(session, "default", checked).id
    with sessions.begin() as session:
        assert store_image(session, "default", checked).id == first


def test_two_transactions_storing_one_new_image_both_succeed(sessions: sessionmaker[Session]) -> None:
    checked = check_image(image_bytes(color="teal"), 10**7, 10**8)
    first, second = sessions(), sessions()
    first.begin()
    second.begin()
    a = store_image(first, "default", checked).id  # both look up before either commits
    outcome: list[str] = []

    def store_in_second() -> None:
        outcome.append(store_image(second, "default", checked).id)
        second.commit()

    racer = threading.Thread(target=store_in_second)
    racer.start()
    racer.join(timeout=1)  # PostgreSQL: blocks on the first's uncommitted unique key; SQLite: on the write lock
    first.commit()
    racer.join(timeout=30)
    first.close()
    second.close()
    assert outcome == [a]
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(StoredImage)) == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_full_disk_is_507_storage_full_and_stores_nothing(
    app: Flask, sessions: sessionmaker[Session], broker: redis.Redis
) -> None:
    """SQLite's page quota gives the very error a full disk does (SQLITE_FULL), without filling the test's disk."""
    client = app.test_client()

    @event.listens_for(app.extensions["vlmq"].engine, "connect")
    def _no_room(dbapi_connection: Any, _record: Any) -> None:
        pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
        dbapi_connection.execute(f"PRAGMA max_page_count={pages}")

    app.extensions["vlmq"].engine.dispose()  # new connections get the quota
    response = submit(client, image_bytes("BMP", (200, 200)), task="describe")
    assert response.status_code == 507, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "storage_full" and "storage is full" in error["message"]
    assert "cannot be reached" not in error["message"]
    assert_nothing_stored(sessions, broker)


def test_a_worker_retrying_a_write_on_a_full_disk_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'full.db'}")
    event.listen(engine, "connect", lambda connection, _record: connection.execute("PRAGMA max_page_count=2"))
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE t (x BLOB)")  # the schema page and the table's: 2 pages

    def write() -> None:
        with engine.begin() as connection:
            connection.exec_driver_sql("INSERT INTO t VALUES (?)", (b"x" * 100_000,))

    with pytest.raises(OperationalError):
        retry_while_unreachable(write, give_up_after_s=0.1, first_delay_s=0.01, sleep=lambda _s: None)
    assert "database storage full (retrying" in caplog.text and "unreachable" not in caplog.text
    engine.dispose()
