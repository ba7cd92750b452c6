"""Image storage deduplicates per tenant, also when two requests race."""

from __future__ import annotations

import threading

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from shared.images import check_image
from shared.models import StoredImage
from shared.storage import store_image
from tests.support.helpers import image_bytes


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
