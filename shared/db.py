"""Database engines and sessions, one engine per process.

SQLite gets WAL mode and a busy timeout so the web server and a worker can write
at once; PostgreSQL uses a pre-pinging pool. Forked processes must call
`engine.dispose(close=False)` (the worker does) so no connection crosses a fork.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

T = TypeVar("T")


def make_engine(url: str) -> Engine:
    """Create an engine tuned for the backend behind `url`."""
    if url.startswith("sqlite"):
        _make_private(make_url(url).database)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


def _make_private(path: str | None) -> None:
    """The SQLite file holds webhook secrets: readable by its owner only (its -wal/-shm files follow its mode)."""
    if not path or path == ":memory:":
        return
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    os.chmod(path, 0o600)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Deleted rows (photos, results) are overwritten with zeros, not left in free pages.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def drop_deleted_copies(session: Session) -> None:
    """After a deletion is committed: SQLite's `-wal` file still holds the deleted rows' earlier page images
    until a checkpoint copies the pages back and the file is emptied, so do both now (the database file's own
    pages were zeroed by `secure_delete`). PostgreSQL keeps its own WAL and vacuums dead rows; nothing to do."""
    if session.get_bind().dialect.name != "sqlite":
        return
    busy, _, _ = session.execute(text("PRAGMA wal_checkpoint(TRUNCATE)")).one()
    if busy:
        log.warning("the SQLite WAL could not be emptied (a reader held it); deleted data stays in it until the next")


SQLITE_FULL = 13  # "database or disk is full"
POSTGRES_DISK_FULL = "53100"


def is_storage_full(exc: BaseException) -> bool:
    """The database refused a write for want of disk space, which waiting alone will not fix (unlike an outage).

    The whole chain is searched: a full SQLite rolls back the transaction, so leaving a savepoint then fails
    with "no such savepoint", raised during the first error.
    """
    seen: BaseException | None = exc
    while seen is not None:
        orig = getattr(seen, "orig", seen)
        if getattr(orig, "sqlite_errorcode", None) == SQLITE_FULL:
            return True
        if getattr(orig, "sqlstate", None) == POSTGRES_DISK_FULL:
            return True
        seen = seen.__context__
    return False


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded attributes after commit (the API reads them)."""
    return sessionmaker(engine, expire_on_commit=False)


def retry_while_unreachable(
    operation: Callable[[], T],
    give_up_after_s: float,
    first_delay_s: float = 0.25,
    max_delay_s: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Run `operation` (a whole transaction) again while the database cannot be reached, backing off.

    For writes that must not be lost to a database restart, such as a finished job's result.
    The delay stays short so the write lands soon after the database is back; after
    `give_up_after_s` the last `OperationalError` is raised.
    """
    deadline = clock() + give_up_after_s
    delay = first_delay_s
    while True:
        try:
            return operation()
        except OperationalError as exc:
            if clock() + delay > deadline:
                raise
            problem = "database storage full" if is_storage_full(exc) else "database unreachable"
            log.warning("%s (retrying in %.2f s): %s", problem, delay, exc.orig or exc)
            sleep(delay)
            delay = min(delay * 2, max_delay_s)
