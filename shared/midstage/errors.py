"""Domain errors. Each carries a machine-readable code; handlers map them to HTTP answers."""

from __future__ import annotations

from pydantic import ValidationError


class MidstageError(Exception):
    """Base of errors a caller can act on: `code` is stable, `message` is for people."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code

    def to_body(self) -> dict[str, object]:
        return {"success": False, "code": self.code, "message": self.message}


class InvalidInput(MidstageError):
    status = 400
    code = "invalid_input"


class Unauthorized(MidstageError):
    status = 401
    code = "unauthorized"


class Forbidden(MidstageError):
    status = 403
    code = "forbidden"


class NotFound(MidstageError):
    status = 404
    code = "not_found"


class Conflict(MidstageError):
    status = 409
    code = "conflict"


class PayloadTooLarge(MidstageError):
    status = 413
    code = "payload_too_large"


class RateLimited(MidstageError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Unavailable(MidstageError):
    """A dependency failed; nothing was acknowledged, so the client should retry."""

    status = 503
    code = "unavailable"


def describe(error: ValidationError, subject: str) -> str:
    """A validation failure in one line: the first few fields at fault and why."""
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or subject}: {e['msg']}" for e in error.errors(include_url=False)[:5]
    )
