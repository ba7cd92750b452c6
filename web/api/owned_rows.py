"""Get-or-404 for rows a tenant owns (jobs, batches, files)."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy.orm import Session

from web.errors import ApiError

Row = TypeVar("Row")


def owned_or_404(session: Session, model: type[Row], row_id: str, tenant_id: str, noun: str) -> Row:
    """The tenant's row, or a 404 `{noun}_not_found` that does not reveal other tenants' ids."""
    row: Any = session.get(model, row_id)
    if row is None or row.tenant_id != tenant_id:
        raise ApiError(f"{noun}_not_found", f"no {noun} {row_id!r}", 404)
    return row
