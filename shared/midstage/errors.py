"""Domain errors. Each carries a machine-readable code; handlers map them to HTTP answers.

Definitions that can be wrong in several places (rules, templates, request bodies) are refused
with every problem listed as `{location, message}`, where `location` is a JSON pointer into
what was sent (IssuesError, validation_issues, parse_body).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

MAX_ISSUES = 50
M = TypeVar("M", bound=BaseModel)


class Stale(Exception):
    """A conditional write lost: the item moved on since it was read (another writer); re-read
    and decide again. Raised by the stores behind the ports, caught by the services."""


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


class IssuesError(InvalidInput):
    """A 400 whose body also lists every problem found, as `issues: [{location, message}]`."""

    def __init__(self, message: str, issues: Sequence[Mapping[str, Any]], *, code: str) -> None:
        super().__init__(message, code=code)
        self.issues = [dict(i) for i in issues[:MAX_ISSUES]]

    def to_body(self) -> dict[str, object]:
        return {**super().to_body(), "issues": self.issues}


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


class InUse(Conflict):
    """A 409 naming what still depends on the thing to delete, as `used_by: [{kind, id}]`."""

    def __init__(self, message: str, used_by: Sequence[Mapping[str, str]]) -> None:
        super().__init__(message, code="in_use")
        self.used_by = [dict(u) for u in used_by]

    def to_body(self) -> dict[str, object]:
        return {**super().to_body(), "used_by": self.used_by}


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


def summary(subject: str, issues: Sequence[Mapping[str, Any]]) -> str:
    """`<subject> at <first location>: <first message> (and N more)`."""
    first = issues[0] if issues else {"location": "", "message": "invalid"}
    more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
    return f"{subject} at {first['location'] or '/'}: {first['message']}{more}"


def version_mismatch(kind: str, doc_id: str, version: int, if_match: int | None) -> None:
    """Refuse an edit whose If-Match names another version than the stored one."""
    if if_match is not None and if_match != version:
        raise Conflict(
            f"{kind} '{doc_id}' is at version {version}, not {if_match} (If-Match); reload and retry",
            code="version_mismatch",
        )


def pointer(loc: Sequence[int | str], payload: Any, error_type: str = "") -> str:
    """A pydantic error location as a JSON pointer into the payload that was sent.

    pydantic adds steps that are not in the document (a union member's type, a tagged union's
    tag): only steps that exist in the payload are kept, and a missing field's own name last.
    """
    node = payload
    parts: list[str] = []
    for index, step in enumerate(loc):
        if isinstance(node, dict) and isinstance(step, str) and step in node:
            parts.append(step)
            node = node[step]
        elif isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node):
            parts.append(str(step))
            node = node[step]
        elif index == len(loc) - 1 and error_type == "missing":
            parts.append(str(step))
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def validation_issues(error: ValidationError, payload: Any) -> list[dict[str, str]]:
    issues: list[dict[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for entry in error.errors(include_url=False):
        message = str(entry["msg"]).removeprefix("Value error, ")
        location = pointer(entry["loc"], payload, str(entry["type"]))
        if (location, message) not in seen:
            seen.add((location, message))
            issues.append({"location": location, "message": message})
    return issues[:MAX_ISSUES]


def parse_body(model: type[M], payload: Any) -> M:
    """Validate a request body; a mismatch is `400 invalid_body` with every issue listed."""
    try:
        return model.model_validate(payload)
    except ValidationError as error:
        raise IssuesError(describe(error, "body"), validation_issues(error, payload), code="invalid_body") from error
