"""Request bodies of the admin API's key routes (`/v1/admin/keys`)."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

MAX_EXPIRES_IN_S = 10 * 365 * 24 * 3600
MAX_GRACE_S = 30 * 24 * 3600
TENANT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant: str = Field(pattern=TENANT_ID_PATTERN, description="created if new")
    name: str | None = Field(None, min_length=1, max_length=200, description="the tenant's name, when it is new")
    expires_in: int | None = Field(
        None, ge=60, le=MAX_EXPIRES_IN_S, strict=True, description="seconds; no expiry when absent"
    )


class KeyRotate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_s: int = Field(
        0, ge=0, le=MAX_GRACE_S, strict=True, description="seconds the old key still works; 0 refuses it at once"
    )
    expires_in: int | None = Field(
        None, ge=60, le=MAX_EXPIRES_IN_S, strict=True, description="the new key's lifetime in seconds"
    )


def expiry(now: datetime, expires_in: int | None) -> datetime | None:
    return None if expires_in is None else now + timedelta(seconds=expires_in)
