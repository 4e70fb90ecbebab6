"""The analytics archive's records: one schema per kind, versioned, stored as Parquet rows.

Every record shares one columnar layout (`COLUMNS`): the columns a kind does not use are null,
which Parquet stores for almost nothing, and one Glue table (partitioned by `kind` and `dt`)
or one DuckDB view reads every kind. Each kind's model says which columns it fills and which of
them it requires; its `schema_version` changes when that contract does. Within a version, changes
are additive only (a new nullable column); readers take columns by name, so files of older
versions keep reading.

Objects live under `kind=<kind>/dt=YYYY-MM-DD/` (the UTC day the record happened). The partition
values are in the object key, not in the file, as Hive, Glue and DuckDB expect.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MessageKind = Literal[
    "message_requested",
    "message_blocked",
    "message_deferred",
    "message_sent",
    "message_failed",
    "message_delivered",
    "message_opened",
    "message_clicked",
    "message_bounced",
    "message_complained",
    "message_unsubscribed",
    "message_converted",
]

Kind = Literal[
    "event",
    MessageKind,
    "identity_merged",
    "segment_transition",
    "journey_move",
    "experiment_exposure",
    "spend",
]
KINDS: tuple[Kind, ...] = Kind.__args__  # type: ignore[attr-defined]
MESSAGE_KINDS: tuple[Kind, ...] = tuple(k for k in KINDS if k.startswith("message_"))

# (column, DuckDB type, Glue / Athena type). Order is the files' column order; never reorder or
# retype a column: add new ones at the end.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("schema_version", "INTEGER", "int"),
    ("record_id", "VARCHAR", "string"),
    ("occurred_at", "TIMESTAMP", "timestamp"),
    ("archived_at", "TIMESTAMP", "timestamp"),
    ("profile_id", "VARCHAR", "string"),
    ("user_id", "VARCHAR", "string"),
    ("anonymous_id", "VARCHAR", "string"),
    ("source_id", "VARCHAR", "string"),
    ("event_type", "VARCHAR", "string"),
    ("event", "VARCHAR", "string"),
    ("message_id", "VARCHAR", "string"),
    ("channel", "VARCHAR", "string"),
    ("category", "VARCHAR", "string"),
    ("origin_kind", "VARCHAR", "string"),
    ("origin_id", "VARCHAR", "string"),
    ("origin_version", "INTEGER", "int"),
    ("origin_step", "VARCHAR", "string"),
    ("template_id", "VARCHAR", "string"),
    ("experiment_id", "VARCHAR", "string"),
    ("variant", "VARCHAR", "string"),
    ("guard", "VARCHAR", "string"),
    ("reason", "VARCHAR", "string"),
    ("link", "VARCHAR", "string"),
    ("utm_source", "VARCHAR", "string"),
    ("utm_medium", "VARCHAR", "string"),
    ("utm_campaign", "VARCHAR", "string"),
    ("utm_term", "VARCHAR", "string"),
    ("utm_content", "VARCHAR", "string"),
    ("campaign", "VARCHAR", "string"),
    ("revenue", "DOUBLE", "double"),
    ("amount", "DOUBLE", "double"),
    ("currency", "VARCHAR", "string"),
    ("segment_id", "VARCHAR", "string"),
    ("transition", "VARCHAR", "string"),
    ("previous_step", "VARCHAR", "string"),
    ("merged_profile_id", "VARCHAR", "string"),
    ("properties", "VARCHAR", "string"),
    ("context", "VARCHAR", "string"),
    ("detail", "VARCHAR", "string"),
)
COLUMN_NAMES: tuple[str, ...] = tuple(name for name, _, _ in COLUMNS)
PARTITION_COLUMNS: tuple[tuple[str, str], ...] = (("kind", "string"), ("dt", "string"))


def partition_prefix(kind: str, day: date) -> str:
    return f"kind={kind}/dt={day.isoformat()}/"


class ArchiveRecord(BaseModel):
    """What every kind carries. Timestamps are UTC (naive ones are taken as UTC)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Kind
    schema_version: int = 1
    record_id: str = Field(min_length=1, max_length=512, description="stable: the same fact archived twice has one id")
    occurred_at: datetime
    archived_at: datetime
    profile_id: str | None = Field(default=None, max_length=512)

    @field_validator("occurred_at", "archived_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @property
    def day(self) -> date:
        return self.occurred_at.date()

    @property
    def prefix(self) -> str:
        return partition_prefix(self.kind, self.day)

    def row(self) -> dict[str, Any]:
        """The record as a row of `COLUMNS` (absent columns null, timestamps naive UTC)."""
        values = self.model_dump(exclude={"kind"})
        row = {name: values.get(name) for name in COLUMN_NAMES}
        row["occurred_at"] = self.occurred_at.replace(tzinfo=None)
        row["archived_at"] = self.archived_at.replace(tzinfo=None)
        return row


class _Utm(BaseModel):
    utm_source: str | None = None
    utm_medium: str | None = None
    utm_campaign: str | None = None
    utm_term: str | None = None
    utm_content: str | None = None
    campaign: str | None = Field(default=None, description="utm_campaign for visits; the origin id for messages")


class EventRecord(ArchiveRecord, _Utm):
    """An accepted event, enriched, as the profile updater applied it (v1)."""

    kind: Literal["event"] = "event"
    profile_id: str
    user_id: str | None = None
    anonymous_id: str | None = None
    source_id: str
    event_type: Literal["track", "identify", "page", "screen", "group", "alias"]
    event: str | None = Field(default=None, description="the track event's name, or the page or screen name")
    message_id: str = Field(description="the event's messageId")
    revenue: float | None = Field(default=None, description="the value property of a conversion event")
    currency: str | None = None
    properties: str | None = Field(default=None, description="JSON: properties, or traits for identify/group")
    context: str | None = Field(default=None, description="JSON: the context kept (page, referrer, campaign...)")


class MessageRecord(ArchiveRecord):
    """One step of a message's life (v1). `guard` and `reason` say why it was blocked, deferred,
    failed or bounced; `link` is the clicked link; `revenue` the converted value."""

    kind: MessageKind
    profile_id: str
    message_id: str
    channel: str | None = Field(default=None, description="the channel tried; requests name the first choice")
    category: str | None = None
    origin_kind: Literal["rule", "campaign", "journey", "api"]
    origin_id: str
    origin_version: int | None = None
    origin_step: str | None = None
    template_id: str | None = None
    experiment_id: str | None = None
    variant: str | None = None
    campaign: str | None = None
    guard: str | None = None
    reason: str | None = Field(default=None, max_length=1000)
    link: str | None = Field(default=None, max_length=2048)
    revenue: float | None = None
    currency: str | None = None
    detail: str | None = Field(default=None, description="JSON: kind-specific extras (bounce type, deferral end)")


class MergeRecord(ArchiveRecord):
    """Two profiles became one (v1): `merged_profile_id` now lives in `profile_id`."""

    kind: Literal["identity_merged"] = "identity_merged"
    profile_id: str
    merged_profile_id: str
    message_id: str | None = Field(default=None, description="the event that caused the merge")
    source_id: str | None = None
    detail: str | None = Field(default=None, description='JSON: {"identifiers": [...]} of the merged profile')


class SegmentTransitionRecord(ArchiveRecord):
    kind: Literal["segment_transition"] = "segment_transition"
    profile_id: str
    segment_id: str
    transition: Literal["entered", "exited"]


class JourneyMoveRecord(ArchiveRecord):
    """A person moved in a journey (v1): entered, ran a step, or exited with a reason."""

    kind: Literal["journey_move"] = "journey_move"
    profile_id: str
    origin_kind: Literal["journey"] = "journey"
    origin_id: str = Field(description="the journey id")
    origin_version: int | None = None
    origin_step: str | None = Field(default=None, description="the step moved to (null on exit)")
    previous_step: str | None = None
    transition: Literal["entered", "moved", "exited"]
    reason: str | None = Field(default=None, max_length=1000)
    detail: str | None = Field(default=None, description='JSON: {"run": n, "seq": n}')


class ExposureRecord(ArchiveRecord):
    """A person was assigned to an experiment's variant and exposed to it (v1)."""

    kind: Literal["experiment_exposure"] = "experiment_exposure"
    profile_id: str
    experiment_id: str
    variant: str
    origin_kind: Literal["rule", "campaign", "journey", "api"] | None = None
    origin_id: str | None = None
    message_id: str | None = None


class SpendRecord(ArchiveRecord):
    """One imported cost line (v1): no person. `channel` matches a touch's channel (the UTM source
    of paid traffic, or a message channel); `campaign` a UTM campaign or a Midstage origin id."""

    kind: Literal["spend"] = "spend"
    profile_id: None = None
    channel: str = Field(min_length=1, max_length=128)
    campaign: str | None = Field(default=None, max_length=256)
    amount: float = Field(allow_inf_nan=False)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    source_id: str | None = Field(default=None, description="the import it came from")


AnyRecord = Annotated[
    EventRecord
    | MessageRecord
    | MergeRecord
    | SegmentTransitionRecord
    | JourneyMoveRecord
    | ExposureRecord
    | SpendRecord,
    Field(discriminator="kind"),
]

SCHEMA_VERSIONS: dict[str, int] = dict.fromkeys(KINDS, 1)
