"""Whether an admin command can find the service's database, and what to set when it cannot.

`vlmq up` keeps its SQLite file in VLMQ_DATA_DIR (`.vlmq` in the folder it runs in, by
default). An admin command (`vlmq keys`, `vlmq webhooks`) run from another folder would
otherwise die on a missing file, or worse, start an empty database the service never reads.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url

from shared.settings import Settings


def missing_database(settings: Settings) -> str | None:
    """One line saying where the database was looked for and what to set; None when it is there (or not SQLite)."""
    url = make_url(settings.sqlalchemy_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    if Path(url.database).exists():
        return None
    return (
        f"no vlmq database at {url.database}: run this in the folder where `vlmq up` runs, "
        "or set VLMQ_DATA_DIR to its data folder (VLMQ_DATABASE_URL for PostgreSQL)"
    )
