"""The public JSON shape of an API key (never its hash), for the admin API and `vlmq keys list`."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from shared.auth import IssuedKey
from shared.job_view import Timestamp, iso_utc
from shared.models import ApiKey

KeyStatus = Literal["active", "expired", "revoked"]


class KeyView(BaseModel):
    id: str
    tenant_id: str
    prefix: str = Field(description="the key's first characters, to recognise it")
    status: KeyStatus
    created_at: Timestamp
    expires_at: Timestamp | None
    revoked_at: Timestamp | None = Field(description="in the future while a rotated key is in its grace period")
    last_used_at: Timestamp | None = Field(description="to within about a minute")


class IssuedKeyView(KeyView):
    key: str = Field(description="the key in clear: shown only in this response")


def key_status(row: ApiKey, now: datetime) -> KeyStatus:
    if row.revoked_at is not None and row.revoked_at <= now:
        return "revoked"
    if row.expires_at is not None and row.expires_at <= now:
        return "expired"
    return "active"


def key_view(row: ApiKey, now: datetime) -> KeyView:
    return KeyView(
        id=row.id,
        tenant_id=row.tenant_id,
        prefix=row.prefix,
        status=key_status(row, now),
        created_at=iso_utc(row.created_at),
        expires_at=iso_utc(row.expires_at),
        revoked_at=iso_utc(row.revoked_at),
        last_used_at=iso_utc(row.last_used_at),
    )


def issued_key_view(issued: IssuedKey, now: datetime) -> IssuedKeyView:
    return IssuedKeyView(**key_view(issued.row, now).model_dump(), key=issued.secret)
