"""`Idempotency-Key`: a retried submission returns what the first one created.

A key names one request. A retry with the same key and the same request gets the
first result back; the same key with a different request is refused with 422 (as
Stripe does), rather than silently answered with a job the client did not ask for.
Requests are compared by a fingerprint of what they say, not of their bytes: JSON
bodies by their parsed value and multipart bodies by their fields and file
contents, so a client that re-encodes (another multipart boundary, other key order)
still matches.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from flask import Request, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from shared.models import Batch, Job
from web.app_state import app_state
from web.errors import ApiError

MAX_IDEMPOTENCY_KEY = 255
REPLAYED = {"Idempotent-Replayed": "true"}


def idempotency_key() -> str | None:
    """The request's key, or None; a 400 when it is empty or too long."""
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
        raise ApiError("invalid_idempotency_key", f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters")
    return key


def request_fingerprint(req: Request) -> str:
    """SHA-256 of the route and what the body says (see the module docstring)."""
    digest = hashlib.sha256(f"{req.method} {req.path}\n".encode())
    if req.mimetype == "multipart/form-data":
        fields = sorted(req.form.items(multi=True))
        files = []
        for name, upload in sorted(req.files.items(multi=True), key=lambda item: item[0]):
            files.append((name, hashlib.sha256(upload.stream.read()).hexdigest()))
            upload.stream.seek(0)
        digest.update(json.dumps([fields, files]).encode())
    elif (body := req.get_json(silent=True)) is not None:
        digest.update(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
    else:
        digest.update(req.get_data())
    return digest.hexdigest()


def check_same_request(stored_hash: str | None, fingerprint: str, key: str, found: str) -> None:
    """A 422 when `key` was first used (for `found`, e.g. `job job_...`) with another request.

    Rows from before fingerprints were kept have none and are taken as matching.
    """
    if stored_hash is not None and stored_hash != fingerprint:
        raise ApiError(
            "idempotency_key_reused",
            f"Idempotency-Key {key!r} was already used for {found} with a different request; "
            "send a new key for a new request, or repeat the first request exactly to get its result",
            422,
        )


Row = TypeVar("Row", Job, Batch)
Made = TypeVar("Made")


@dataclass(frozen=True)
class IdempotentCreate(Generic[Row]):
    """A create request with its Idempotency-Key: replay what an earlier request with the key made, or make it once."""

    model: type[Row]
    tenant_id: str
    key: str | None
    fingerprint: str | None

    @classmethod
    def of_request(cls, model: type[Row], tenant_id: str) -> IdempotentCreate[Row]:
        """Read (and check) the request's key; fingerprint the request only when it has one."""
        key = idempotency_key()
        return cls(model, tenant_id, key, request_fingerprint(request) if key else None)

    def earlier(self) -> Row | None:
        """The row an earlier request with this key made (a 422 when that was another request), or None."""
        if self.key is None:
            return None
        with app_state().sessions() as session:
            row = session.scalar(
                select(self.model).where(self.model.tenant_id == self.tenant_id, self.model.idempotency_key == self.key)
            )
        if row is not None:
            check_same_request(row.request_hash, self.fingerprint, self.key, f"{self.model.__name__.lower()} {row.id}")
        return row

    def create(self, insert: Callable[[], Made]) -> tuple[Made, None] | tuple[None, Row]:
        """`(insert(), None)`, or `(None, earlier row)` when a request with the same key won the race to insert."""
        try:
            return insert(), None
        except IntegrityError:
            # Two requests with one Idempotency-Key raced; the other one won.
            if (row := self.earlier()) is None:
                raise
            return None, row
