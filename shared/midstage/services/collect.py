"""The collect use case: an HTTP tracking request in, an acknowledgement out.

Order matters: authenticate, check sizes before parsing, validate each event, charge the rate
limit, quarantine what was rejected, hand off what was accepted, and only then answer 200.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from midstage.config import CollectSettings, IdentitySettings
from midstage.errors import Forbidden, InvalidInput, PayloadTooLarge, RateLimited, Unauthorized, Unavailable
from midstage.logic import collect
from midstage.logic.cors import origin_allowed
from midstage.logic.text import printable
from midstage.logic.timefmt import iso
from midstage.models.admin import Source


class Sources(Protocol):
    def source_for_write_key(self, write_key: str) -> Source | None: ...


class Intake(Protocol):
    def take_rate(self, source_id: str, epoch_second: int, events: int, limit: int) -> bool: ...
    def quarantine(self, entries: list[dict[str, Any]], expires_at: int) -> None: ...


class Handoff(Protocol):
    def send(self, groups: dict[str, list[dict[str, Any]]]) -> int: ...


@dataclass(frozen=True)
class CollectRequest:
    endpoint: str  # "track", ..., or "batch"
    body: str | None
    is_base64: bool
    headers: dict[str, str]  # lower-case names
    source_ip: str | None
    received_at: datetime
    # A write key given beside the body rather than in it or in Authorization: RudderStack's beacons
    # carry it in the query string, since `navigator.sendBeacon` cannot set headers.
    write_key: str | None = None


@dataclass(frozen=True)
class CollectAnswer:
    accepted: int
    rejected: list[collect.Rejection]
    # Accepted events whose time lay in the future and was replaced by their receipt (a metric).
    future_timestamps: int = 0

    def counts(self) -> dict[str, int]:
        """The function's metrics for this request: what was accepted, and whatever else happened."""
        more = {"EventsQuarantined": len(self.rejected), "TimestampsInFuture": self.future_timestamps}
        return {"EventsAccepted": self.accepted, **{name: n for name, n in more.items() if n}}

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"success": True, "accepted": self.accepted}
        if self.rejected:
            body["rejected"] = [r.to_body() for r in self.rejected]
        return body


def handle(
    request: CollectRequest,
    settings: CollectSettings,
    identity: IdentitySettings,
    sources: Sources,
    intake_store: Intake,
    handoff: Handoff,
) -> CollectAnswer:
    limits = collect.Limits(
        settings.max_event_bytes,
        settings.max_batch_bytes,
        settings.max_batch_events,
        timedelta(seconds=settings.future_tolerance_seconds),
    )
    size_limit = limits.max_batch_bytes if request.endpoint == "batch" else limits.max_event_bytes
    header_key = collect.write_key_from_authorization(request.headers.get("authorization")) or request.write_key
    sources = _Guarded(sources)
    # Decoding before authenticating is bounded by the size limit, and a body write key needs it.
    try:
        raw = collect.decode_body(
            request.body,
            is_base64=request.is_base64,
            content_encoding=request.headers.get("content-encoding"),
            limit=size_limit,
        )
    except (InvalidInput, PayloadTooLarge):
        if header_key is None or sources.source_for_write_key(header_key) is None:
            raise Unauthorized("a valid write key is required") from None
        raise
    source: Source | None = None
    if header_key is not None:
        source = sources.source_for_write_key(header_key)
        if source is None:
            raise Unauthorized("the write key is not valid")
    try:
        document = collect.read_document(raw, request.endpoint, limits)
    except (InvalidInput, PayloadTooLarge) as error:
        if source is None:
            raise Unauthorized("a valid write key is required") from None
        _quarantine(
            intake_store,
            settings,
            source,
            request.endpoint,
            request.received_at,
            [
                collect.Rejection(
                    None,
                    error.code,
                    error.message,
                    raw[: collect.QUARANTINED_PAYLOAD_BYTES].decode("utf-8", "replace"),
                )
            ],
        )
        raise
    if source is None:
        source = sources.source_for_write_key(document.write_key) if document.write_key else None
        if source is None:
            raise Unauthorized("a valid write key is required (HTTP Basic user name or 'writeKey')")
    if not source.enabled:
        raise Forbidden("this source is disabled", code="source_disabled")
    origin = request.headers.get("origin") or ""
    if not origin_allowed(source.allowed_origins, origin):
        raise Forbidden(f"origin '{origin[:200]}' is not allowed for this source", code="origin_not_allowed")

    meta = collect.RequestMeta(
        source_id=source.id,
        received_at=request.received_at,
        ip=request.source_ip,
        user_agent=request.headers.get("user-agent"),
    )
    result = collect.intake(document, meta, identity, limits)
    admit(result, source, request.endpoint, request.received_at, settings, intake_store, handoff)
    if request.endpoint != "batch" and result.rejected:
        rejection = result.rejected[0]
        raise InvalidInput(rejection.message, code=rejection.code)
    return CollectAnswer(
        accepted=len(result.accepted), rejected=result.rejected, future_timestamps=result.future_timestamps
    )


def admit(
    result: collect.Intake,
    source: Source,
    endpoint: str,
    received_at: datetime,
    settings: CollectSettings,
    intake_store: Intake,
    handoff: Handoff,
) -> None:
    """The intake's second half, one for every way in (the tracking API, the webhooks): charge
    the source's rate limit, quarantine what was rejected, hand off what was accepted. It
    returns only when all of it is durable; otherwise it raises, and the sender retries."""
    if source.rate_limit and len(result.accepted) > source.rate_limit:
        raise PayloadTooLarge(
            f"the request carries {len(result.accepted)} events, more than this source may send in a second "
            f"({source.rate_limit}); send smaller batches",
            code="over_rate_limit",
        )
    if source.rate_limit and result.accepted:
        second = int(received_at.timestamp())
        try:
            within = intake_store.take_rate(source.id, second, len(result.accepted), source.rate_limit)
        except Exception as error:
            raise Unavailable("the rate limit could not be checked; retry the request") from error
        if not within:
            raise RateLimited(f"source '{source.id}' is over its limit of {source.rate_limit} events per second")
    if result.rejected:
        _quarantine(intake_store, settings, source, endpoint, received_at, result.rejected)
    if result.accepted:
        try:
            handoff.send(collect.group_by_person(result.accepted))
        except Exception as error:
            raise Unavailable("events could not be stored durably; retry the request") from error


def _quarantine(
    store: Intake,
    settings: CollectSettings,
    source: Source,
    endpoint: str,
    received_at: datetime,
    rejections: list[collect.Rejection],
) -> None:
    received = iso(received_at)
    entries = [
        {
            "id": uuid.uuid4().hex[:12],
            "source_id": source.id,
            "received_at": received,
            "endpoint": endpoint,
            "index": r.index,
            "code": r.code,
            "message": printable(r.message),
            "payload": printable(r.payload),
        }
        for r in rejections
    ]
    expires = received_at + timedelta(days=settings.quarantine_retention_days)
    try:
        store.quarantine(entries, int(expires.timestamp()))
    except Exception as error:
        raise Unavailable("rejected events could not be kept in quarantine; retry the request") from error


class _Guarded:
    """A key lookup that fails is the platform's fault, not the client's: answer 503, not 500."""

    def __init__(self, sources: Sources) -> None:
        self._sources = sources

    def source_for_write_key(self, write_key: str) -> Source | None:
        try:
            return self._sources.source_for_write_key(write_key)
        except Exception as error:
            raise Unavailable("write keys cannot be checked right now; retry the request") from error
