"""Every domain error, in one place. Each carries a machine-readable code and its HTTP status;
handlers map them to answers. Refusals decided in `logic/` (a bad condition, schedule, template,
link token, campaign or experiment state, import file) are declared here too and re-exported by
the module that raises them, so a reader finds every code a caller can get in this file.

Definitions that can be wrong in several places (rules, templates, request bodies) are refused
with every problem listed as `{location, message}`, where `location` is a JSON pointer into
what was sent (IssuesError, validation_issues, parse_body).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

MAX_ISSUES = 50
M = TypeVar("M", bound=BaseModel)


class Stale(Exception):
    """A conditional write lost: the item moved on since it was read (another writer); re-read
    and decide again. Raised by the stores behind the ports, caught by the services."""


class CauseGroupsFull(Stale):
    """An offer's claim named a new per-cause group when the offer counts as many as it may: claim
    again, counted under the overflow group (logic/offers.OTHER_CAUSES)."""


class QueueRefused(Exception):
    """A queue did not take the messages (SQS refused them): nothing was sent for those."""


class HandoffFailed(Exception):
    """Some events could not be made durable; the request must not be acknowledged."""


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


class NotSupportedYet(MidstageError):
    """A well-formed request for something this release does not do (yet): refused, never faked."""

    status = 422
    code = "not_supported"


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


# ------------------------------------------- refusals decided in logic/ (re-exported where they are raised)
@dataclass(frozen=True, slots=True)
class Issue:
    """One problem with a definition: where (a JSON pointer into it) and what."""

    location: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"location": self.location, "message": self.message}


class ConfigurationError(MidstageError):
    status = 500
    code = "configuration_error"


class ConditionError(InvalidInput):
    """A definition was refused; `issues` says where and why (the admin API's 400 details)."""

    code = "invalid_condition"

    def __init__(self, issues: Sequence[Issue]) -> None:
        self.issues = list(issues)
        if not self.issues:
            summary = "invalid condition"
        else:
            first = self.issues[0]
            more = f" (and {len(self.issues) - 1} more)" if len(self.issues) > 1 else ""
            summary = f"invalid condition at {first.location or '/'}: {first.message}{more}"
        super().__init__(summary)

    def to_body(self) -> dict[str, object]:
        return {**super().to_body(), "details": [issue.to_dict() for issue in self.issues]}


class ScheduleError(InvalidInput):
    """An expression or time zone Scheduler would refuse; `issues` says where and why."""

    code = "invalid_schedule"

    def __init__(self, issues: Sequence[Issue]) -> None:
        self.issues = list(issues)
        first = self.issues[0] if self.issues else Issue("", "invalid schedule")
        more = f" (and {len(self.issues) - 1} more)" if len(self.issues) > 1 else ""
        super().__init__(f"invalid schedule at {first.location or '/'}: {first.message}{more}")

    def to_body(self) -> dict[str, object]:
        return {**super().to_body(), "details": [issue.to_dict() for issue in self.issues]}


class CampaignStateError(MidstageError):
    """The action does not apply to the campaign in its current status."""

    status = 409
    code = "invalid_state"


class AssetStateError(MidstageError):
    """The review action does not apply to the asset version in its current state."""

    status = 409
    code = "invalid_asset_state"


class RenderError(MidstageError):
    """A template could not be rendered for this person; nothing should be sent."""

    status = 422
    code = "render_failed"

    def __init__(
        self,
        message: str,
        *,
        variable: str | None = None,
        field: str | None = None,
        locale: str | None = None,
        line: int | None = None,
    ) -> None:
        super().__init__(message)
        self.variable = variable
        self.field = field
        self.locale = locale
        self.line = line


class KeyRingError(Conflict):
    """A key ring change that cannot be made: removing the current key, a ring over its size."""

    code = "key_ring_conflict"


class BadToken(MidstageError):
    status = 400
    code = "bad_token"

    def __init__(self, reason: str) -> None:
        # One message for every failure: a caller probing tokens learns nothing from it.
        super().__init__("invalid link")
        self.reason = reason


class ExperimentFrozen(MidstageError):
    """A change to what a running experiment does, asked for without a new phase."""

    status = 409
    code = "experiment_frozen"


class ExperimentStateError(MidstageError):
    status = 409
    code = "invalid_state"


class WinnerNotReady(Unavailable):
    """An auto-winner that cannot be judged yet (its test still sending, or a decision that says
    wait): the winner's schedule fails this try and Scheduler's retry asks again."""


class ImportRefused(InvalidInput):
    """The whole file was refused: its format, size or content makes no row worth reading."""

    code = "invalid_import"
