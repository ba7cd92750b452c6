"""Cursor pagination, newest first, for every list route (jobs, batches, audit events, files).

Ids grow with time (`shared.ids.new_id`), so "older than the last id seen" is a stable
cursor: rows created while a client pages through never shift the pages it has yet to read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from flask import request
from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session

from web.api.query_args import int_query_arg
from web.app_state import app_state

MAX_PAGE_SIZE = 500


class _Identified(Protocol):
    @property
    def id(self) -> str: ...


Row = TypeVar("Row", bound=_Identified)


@dataclass(frozen=True)
class Page(Generic[Row]):
    rows: list[Row]
    has_more: bool
    next_cursor: str | None


@dataclass(frozen=True)
class PageRequest:
    """The `limit` and cursor a list request asked for, read (and checked: a 400 otherwise) before anything else."""

    limit: int
    cursor: str | None

    @classmethod
    def from_args(cls, cursor_arg: str = "cursor") -> PageRequest:
        limit = int_query_arg("limit", app_state().settings.default_page_size, 1, MAX_PAGE_SIZE)
        return cls(limit, request.args.get(cursor_arg))

    def read(self, session: Session, query: Select[tuple[Row]], id_column: InstrumentedAttribute[Any]) -> Page[Row]:
        """One page of `query`, newest id first, after the cursor (the last id of the previous page)."""
        query = query.order_by(id_column.desc()).limit(self.limit + 1)
        if self.cursor is not None:
            query = query.where(id_column < self.cursor)
        rows = list(session.scalars(query))
        page, has_more = rows[: self.limit], len(rows) > self.limit
        return Page(page, has_more, page[-1].id if has_more else None)
