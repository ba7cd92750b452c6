"""Standard Webhooks signatures (https://www.standardwebhooks.com).

`webhook-signature` is `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, one per
secret that is currently valid, separated by spaces: during a secret rotation the
receiver can verify with either the old or the new secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Mapping

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 24
TOLERANCE_S = 300


class SignatureError(Exception):
    """A delivery whose headers do not prove it came from vlmq."""


def generate_secret() -> str:
    """A new `whsec_` secret: 24 random bytes, base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


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
