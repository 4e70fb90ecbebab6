"""The audit log (docs/privacy.md, "Audit log"): each audited admin call appended to the chain,
the entries listed with filters, and the chain verified end to end."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from midstage.clock import Clock
from midstage.errors import InvalidInput
from midstage.logic import audit
from midstage.logic.timefmt import iso, parse_iso
from midstage.models.admin import Caller

# A listing reads at most this many entries per call, matching or not, so a filter that matches
# nothing answers an empty page with a cursor instead of reading the whole chain at once.
READ_BUDGET = 2000
_CURSOR = re.compile(r"[1-9][0-9]{0,11}")
_FILTER_MAX = 400


class AuditLog(Protocol):
    def head(self) -> dict[str, Any] | None: ...
    def append(self, fields: Mapping[str, Any]) -> dict[str, Any]: ...
    def newest(self, *, before: int | None, limit: int) -> list[dict[str, Any]]: ...
    def walk(self, until: int) -> Iterator[dict[str, Any]]: ...


@dataclass(frozen=True)
class AuditCall:
    """One admin call as the audit log records it (built by midstage.admin.auditing)."""

    caller: Caller
    kind: str  # "write" or "read"
    action: str  # method and route template: `PUT /v1/rules/{rule_id}`
    target: str | None
    request_id: str | None
    correlation_id: str | None
    body: str | None  # the request's body as sent, digested, never kept
    result: str | None  # the answer's body, digested, never kept
    status: int


@dataclass(frozen=True)
class AuditFilter:
    since: datetime | None = None
    until: datetime | None = None
    actor: str | None = None
    action: str | None = None
    target: str | None = None
    kind: str | None = None

    def admits(self, entry: Mapping[str, Any]) -> bool:
        at = parse_iso(str(entry.get("at") or "1970-01-01T00:00:00Z"))
        if (self.since and at < self.since) or (self.until and at >= self.until):
            return False
        if self.actor and entry.get("actor") != self.actor:
            return False
        if self.action and entry.get("action") != self.action:
            return False
        if self.kind and entry.get("kind") != self.kind:
            return False
        return not self.target or _names(entry.get("target"), self.target)


def _names(target: Any, wanted: str) -> bool:
    """A target names `wanted` when one of its parameters is it or its digest."""
    values = {part.partition("=")[2] for part in str(target or "").split("/")}
    return wanted in values or audit.digest(audit.plain(wanted)) in values


def parse_filter(query: Mapping[str, str | None]) -> AuditFilter:
    """The listing's filters from its query; a value it cannot use is a 400, never a 500."""
    for name, value in query.items():
        if value is not None and (len(value) > _FILTER_MAX or not value.isprintable()):
            raise InvalidInput(
                f"'{name}' must be printable text of at most {_FILTER_MAX} characters", code="invalid_query"
            )
    kind = query.get("kind") or None
    if kind is not None and kind not in audit.KINDS:
        raise InvalidInput("'kind' must be write or read", code="invalid_query")
    return AuditFilter(
        since=_moment(query, "since"),
        until=_moment(query, "until"),
        actor=query.get("actor") or None,
        action=query.get("action") or None,
        target=query.get("target") or None,
        kind=kind,
    )


def _moment(query: Mapping[str, str | None], name: str) -> datetime | None:
    text = query.get(name)
    if not text:
        return None
    try:
        moment = parse_iso(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise InvalidInput(
            f"'{name}' must be an ISO 8601 time with its zone, e.g. 2026-12-01T00:00:00Z", code="invalid_query"
        )
    return moment


class AuditAdmin:
    def __init__(self, log: AuditLog, *, clock: Clock) -> None:
        self.log = log
        self.clock = clock

    def fields(self, call: AuditCall) -> dict[str, Any]:
        """What the entry for `call` records (no personal data: ids, digests), before chaining."""
        return {
            "at": iso(self.clock()),
            "actor": call.caller.key_id,
            "role": call.caller.role.name,
            "requestId": call.request_id,
            "correlationId": call.correlation_id,
            "kind": call.kind,
            "action": call.action,
            "target": call.target,
            "bodyDigest": audit.digest(call.body) if call.body else None,
            "resultDigest": audit.digest(call.result) if call.result else None,
            "status": call.status,
        }

    def append(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        return self.log.append(fields)

    def record(self, call: AuditCall) -> dict[str, Any]:
        return self.append(self.fields(call))

    def entries(self, wanted: AuditFilter, limit: int, cursor: str | None) -> dict[str, Any]:
        """Matching entries newest first, `limit` at a time; `cursor` is where the next page starts
        (the number below the last entry read), absent once the chain's start is reached."""
        if cursor is not None and not _CURSOR.fullmatch(cursor):
            raise InvalidInput("'cursor' is not one this listing returned", code="invalid_cursor")
        # `before`: entries numbered below it are still to read (0: the chain's start is reached).
        before: int | None = int(cursor) + 1 if cursor is not None else None
        found: list[dict[str, Any]] = []
        read = 0
        while len(found) < limit and read < READ_BUDGET and before != 0:
            page = self.log.newest(before=before, limit=min(200, READ_BUDGET - read))
            read += len(page)
            if not page:
                before = 0
            for entry in page:
                before = int(entry["seq"])
                if wanted.admits(entry):
                    found.append(entry)
                    if len(found) == limit:
                        break
        next_cursor = str(before - 1) if before is not None and before > 1 else None
        return {"entries": [_shown(e) for e in found], "cursor": next_cursor}

    def verify(self) -> dict[str, Any]:
        """The chain walked from its first entry to the head as read now (appends made during
        the walk are left for the next one)."""
        head = self.log.head()
        verdict = audit.verify(self.log.walk(head["seq"] if head else 0), head)
        broken = verdict.broken
        return {
            "valid": broken is None,
            "checked": verdict.checked,
            "head": head,
            "firstBroken": None if broken is None else {"seq": broken.seq, "reason": broken.reason},
        }


def _shown(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {name: entry.get(name) for name in (*audit.FIELDS, "hash")}
