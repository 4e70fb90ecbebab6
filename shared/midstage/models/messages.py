"""Every message the functions send each other, one model per kind.

A queue body names its `kind` and `version`; producers build these models and consumers parse
them at their edge (`parse_body`), so a body is checked once, where it arrives. Bodies written
before messages carried a version (still in a queue or a dead-letter queue when this version is
deployed) read as version 0: their kind follows from the queue they came from, and from the job
id for a refresh part (a sweep's id starts with `sweep_`).

The correlation id travels beside the body, as the SQS message attribute `correlationId` (and
in a domain event's `envelope`), so that a body stays what the producer built and a redriven
dead letter keeps the id it had.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, model_validator

from midstage import correlation
from midstage.models.messaging import MessageRequest

VERSION = 1
ENVELOPE_KEY = "envelope"
_WIRE = {"from": "queue"}  # validation context of a body read off a queue


class MessageError(ValueError):
    """What a bus target received is not a domain event."""


class _Message(BaseModel):
    # Built on first use: a consumer reads one or two of these kinds, not all of them.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)

    # The kinds a consumer of this model accepts; the first is what a version 0 body was.
    kinds: ClassVar[tuple[str, ...]] = ()
    what: ClassVar[str] = "message"  # in the error a malformed body fails with
    version: int = Field(default=VERSION, ge=0, le=VERSION)

    @model_validator(mode="before")
    @classmethod
    def _version_zero(cls, data: Any, info: ValidationInfo) -> Any:
        # A body read off a queue without a version predates kinds: version 0 of this model's
        # kind. (Built in code, a message is the current version: only bodies are read so.)
        if info.context == _WIRE and isinstance(data, dict) and "version" not in data:
            return cls._from_version_zero(data)
        return data

    @classmethod
    def _from_version_zero(cls, data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "version": 0, "kind": cls.kinds[0]}

    def body(self) -> str:
        return json.dumps(self.model_dump(mode="json", by_alias=True, exclude_none=True), separators=(",", ":"))


def profile_events_body(events: list[dict[str, Any]]) -> str:
    """The body of a ProfileEvents message of the current version, written straight from the
    events: the tracking API hands off every event it accepts, and building a model per person
    there costs more than the JSON itself (bench/bench_collect.py, "hand-off encoding")."""
    return json.dumps({"version": VERSION, "kind": "profile.events", "events": events}, separators=(",", ":"))


class AppliedEvents(_Message):
    """The destinations feed (a FIFO queue grouped by profile id): one person's events as the
    profile updater applied them, in the order it applied them."""

    kinds: ClassVar[tuple[str, ...]] = ("destination.events",)
    what: ClassVar[str] = "destinations feed message"
    kind: Literal["destination.events"] = "destination.events"
    profile_id: str = Field(alias="profileId", min_length=1)
    events: list[dict[str, Any]] = Field(min_length=1)


class ProfileEvents(_Message):
    """The ingest queue: one person's tracked events, applied in order by the profile updater."""

    kinds: ClassVar[tuple[str, ...]] = ("profile.events",)
    what: ClassVar[str] = "hand-off message"
    kind: Literal["profile.events"] = "profile.events"
    events: list[dict[str, Any]] = Field(min_length=1)

    def body(self) -> str:
        # Written directly: the events are plain JSON already, and a model dump's walk over them
        # would cost the tracking API's hot path more than the dump itself.
        return json.dumps({"version": self.version, "kind": self.kind, "events": self.events}, separators=(",", ":"))

    @classmethod
    def _from_version_zero(cls, data: dict[str, Any]) -> dict[str, Any]:
        if data.get("v") != 1:
            return data  # not a hand-off body of any version: fails on the missing fields
        return {"version": 0, "kind": "profile.events", "events": data.get("events")}


class Delivery(MessageRequest, _Message):
    """The delivery queue: one intended send for the deliver function. The body is the request's
    own fields beside `version` and `kind`, so a version 0 body is a bare request."""

    kinds: ClassVar[tuple[str, ...]] = ("delivery.request",)
    what: ClassVar[str] = "message request"
    kind: Literal["delivery.request"] = "delivery.request"

    @classmethod
    def of(cls, request: MessageRequest) -> Delivery:
        # Not validated again: a MessageRequest is valid by construction.
        return cls.model_construct(**{name: getattr(request, name) for name in MessageRequest.model_fields})

    @property
    def request(self) -> MessageRequest:
        return MessageRequest.model_construct(**{name: getattr(self, name) for name in MessageRequest.model_fields})


RefreshKind = Literal["refresh.sweep", "refresh.segment"]


class RefreshPart(_Message):
    """The refresh queue: one part of a scan over every profile. A sweep (hourly) also enters
    people into date-triggered journeys; a segment refresh backfills one segment."""

    kinds: ClassVar[tuple[str, ...]] = ("refresh.segment", "refresh.sweep")
    what: ClassVar[str] = "refresh part"
    kind: RefreshKind
    job_id: str = Field(alias="jobId", min_length=1)
    part: int = Field(ge=0)
    total: int = Field(ge=1)
    # The time the part judges by (a sweep's schedule time); without it, the part's own clock.
    as_of: str | None = Field(default=None, alias="asOf")
    # When the job began: every part reads the profiles the same way (adapters/profile_store.py).
    started_at: str | None = Field(default=None, alias="startedAt")
    cursor: Any = None

    @classmethod
    def _from_version_zero(cls, data: dict[str, Any]) -> dict[str, Any]:
        swept = str(data.get("jobId", "")).startswith("sweep_")
        return {**data, "version": 0, "kind": "refresh.sweep" if swept else "refresh.segment"}

    @property
    def sweep(self) -> bool:
        return self.kind == "refresh.sweep"


class CampaignPart(_Message):
    """The campaign queue: one part of a campaign run (a slice of the profile scan)."""

    kinds: ClassVar[tuple[str, ...]] = ("campaign.part",)
    what: ClassVar[str] = "campaign part"
    kind: Literal["campaign.part"] = "campaign.part"
    campaign_id: str = Field(alias="campaignId", min_length=1)
    run_id: str = Field(alias="runId", min_length=1)
    part: int = Field(ge=0)
    total: int = Field(ge=1)


class RegulationTask(_Message):
    """The import queue also carries privacy requests to work (services/privacy.py): like an
    import's part, long batch work one message at a time, off the API's path."""

    kinds: ClassVar[tuple[str, ...]] = ("regulation.run",)
    what: ClassVar[str] = "privacy request task"
    kind: Literal["regulation.run"] = "regulation.run"
    regulate_id: str = Field(alias="regulateId", min_length=1, max_length=64)


class Envelope(BaseModel):
    """What a domain event on the bus carries beside its detail: its kind (the detail-type),
    the version of this envelope and the correlation id of what caused it."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    version: int = Field(default=VERSION, ge=0, le=VERSION)
    kind: str
    correlation_id: Annotated[str | None, Field(alias="correlationId", max_length=correlation.MAX_CHARS)] = None


class DomainEvent(BaseModel):
    """A domain event as a bus target receives it: `detail` is what the producer published,
    without the envelope. An event without an envelope is version 0."""

    model_config = ConfigDict(frozen=True)

    kind: str
    detail: dict[str, Any]
    envelope: Envelope

    @classmethod
    def from_bus(cls, event: Any) -> DomainEvent:
        if not isinstance(event, dict) or not isinstance(event.get("detail"), dict):
            raise MessageError("not a domain event")
        kind = str(event.get("detail-type", ""))
        detail = dict(event["detail"])
        raw = detail.pop(ENVELOPE_KEY, None)
        try:
            envelope = Envelope.model_validate(raw) if isinstance(raw, dict) else Envelope(version=0, kind=kind)
        except ValidationError as error:
            raise MessageError(f"not a domain event envelope: {error.errors()[0]['msg']}") from error
        return cls(kind=kind, detail=detail, envelope=envelope)

    @property
    def correlation_id(self) -> str | None:
        return self.envelope.correlation_id


def envelope_for(kind: str, correlation_id: str | None) -> dict[str, Any]:
    """The envelope a publisher adds to a domain event's detail."""
    return Envelope(kind=kind, correlation_id=correlation_id).model_dump(mode="json", by_alias=True, exclude_none=True)


M = TypeVar("M", bound=_Message)


def parse_body(model: type[M], body: str) -> M:
    """The message a queue body holds, or ValueError saying why it is not one (a plain ValueError:
    the dead-letter listing names the error type, and a malformed body has always been one)."""
    try:
        return model.model_validate_json(body, context=_WIRE)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise ValueError(f"not a {model.what}: {where}: {first['msg']}") from error
