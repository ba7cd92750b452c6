"""The one error family a client sees: a stable code, a message it can act on, the HTTP status that fits.

Raised on either side of the web/worker line (`ImageRejected`, `UnsafeUrl`, the web's `ApiError`, the
worker's `InferenceError`, which a job records);
the web renders every one of them in one handler (`web/errors.py`), so nothing translates
one error shape into another by hand.
"""

from __future__ import annotations


class ServiceError(Exception):
    """An error a client caused or can act on."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    def at(self, field: str) -> ServiceError:
        """The same error placed at the request field it came from (`webhook: ...`), as validation errors are."""
        return ServiceError(self.code, f"{field}: {self.message}", self.status)
