"""Standard Webhooks signatures (https://www.standardwebhooks.com), made by the sender.

`webhook-signature` is `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, one per
secret that is currently valid, separated by spaces: during a secret rotation the
receiver can verify with either the old or the new secret. `verify` is the receiver's
side, for `vlmq webhooks listen` and the tests.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.models import RetiredWebhookSecret
from shared.settings import Settings
from shared.webhooks.tenant_secrets import SECRET_PREFIX, current_secret

TOLERANCE_S = 300


class SignatureError(Exception):
    """A delivery whose headers do not prove it came from vlmq."""


def _key(secret: str) -> bytes:
    raw = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(raw, validate=True)
    except binascii.Error:
        raise ValueError("a webhook secret is 'whsec_' followed by base64") from None


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,` signature of `body` under `secret`."""
    mac = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signed_headers(signing_secrets: Iterable[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt."""
    signatures = " ".join(sign(secret, msg_id, timestamp, body) for secret in signing_secrets)
    if not signatures:
        raise ValueError("at least one signing secret is needed")
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": signatures}


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: float | None = None) -> None:
    """Raise `SignatureError` unless `headers` sign `body` with `secret` within the tolerance."""
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id, stamp, signatures = (lowered.get(f"webhook-{part}") for part in ("id", "timestamp", "signature"))
    if not (msg_id and stamp and signatures):
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise SignatureError("webhook-timestamp is not an integer") from None
    if abs((time.time() if now is None else now) - timestamp) > TOLERANCE_S:
        raise SignatureError(f"webhook-timestamp is more than {TOLERANCE_S} s away from now (replay?)")
    expected = sign(secret, msg_id, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures.split(" ")):
        raise SignatureError("no signature matches the secret")


def signing_secrets(session: Session, settings: Settings, tenant_id: str, now: datetime) -> list[str]:
    """Every secret a delivery is signed with right now, current first."""
    current = current_secret(session, settings, tenant_id, now)  # first: it may retire the previous one
    retired = session.scalars(
        select(RetiredWebhookSecret.secret)
        .where(RetiredWebhookSecret.tenant_id == tenant_id, RetiredWebhookSecret.expires_at > now)
        .order_by(RetiredWebhookSecret.expires_at.desc())
    ).all()
    return [current, *(secret for secret in retired if secret != current)]
