"""Request bodies of the admin API, one model per body the routes validate (docs/openapi.yaml
names each as a schema). Definitions themselves (RuleBody, TemplateBody, SegmentBody...) live
beside their domain in models/; a `...Create` is a definition plus the id it will be known by."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    field_validator,
    model_validator,
)

from midstage.logic.timefmt import iso, parse_iso
from midstage.models.campaigns import CampaignBody
from midstage.models.journeys import JourneyBody
from midstage.models.messaging import Category, RuleBody, TemplateBody
from midstage.models.segments import SEGMENT_ID, SegmentBody

# Rules, templates, campaigns and journeys share the segments' id grammar.
_ID = SEGMENT_ID

# Dead letters: how many one redrive may move, how many one listing shows.
MAX_LISTED = 100
MAX_REDRIVEN = 1000
EARLIEST_CONSENT = "1970-01-01T00:00:00.000Z"


# ------------------------------------------------------------------------------ messaging
class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RuleCreate(RuleBody):
    """A new rule: its definition and the id it will be known by (never reused once deleted)."""

    id: str = Field(pattern=_ID)


class RulePatch(_Body):
    enabled: StrictBool | None = None
    priority: StrictInt | None = Field(default=None, ge=-1000, le=1000)

    @model_validator(mode="after")
    def _something(self) -> RulePatch:
        if self.enabled is None and self.priority is None:
            raise ValueError("give `enabled` and/or `priority`")
        return self


class TrackEvent(_Body):
    """A Segment-style track event to test with."""

    type: Literal["track"] = "track"
    event: str = Field(min_length=1, max_length=200)
    properties: dict[str, Any] = Field(default_factory=dict)
    timestamp: str | None = Field(default=None, max_length=64, description="ISO 8601 with a zone; default now")
    messageId: str | None = Field(default=None, min_length=1, max_length=256)
    context: dict[str, Any] = Field(default_factory=dict)

    @field_validator("timestamp")
    @classmethod
    def _zoned(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            moment = parse_iso(value)
        except ValueError as error:
            raise ValueError(f"not an ISO 8601 timestamp: {value!r}") from error
        if moment.tzinfo is None:
            raise ValueError("needs a time zone, e.g. 2026-11-22T10:00:00Z")
        return iso(moment)


class DryRunRequest(_Body):
    profile: str | None = Field(default=None, min_length=1, max_length=1024, description="id or type:value")
    event: TrackEvent | None = None
    rule: RuleBody | None = Field(default=None, description="an unsaved definition to try instead")


class TemplateCreate(TemplateBody):
    id: str = Field(pattern=_ID)


class TemplateApproval(_Body):
    version: StrictInt = Field(ge=1)


class PreviewRequest(_Body):
    profile: str | None = Field(default=None, min_length=1, max_length=1024)
    event: TrackEvent | None = None
    version: int | None = Field(default=None, ge=1, description="default: the latest version")
    locale: str | None = Field(default=None, pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
    vars: dict[str, Any] = Field(default_factory=dict)


MessageChannel = Literal["email", "sms", "push", "inbox"]


class SendMessage(_Body):
    profile: str = Field(min_length=1, max_length=1024)
    channels: list[MessageChannel] = Field(min_length=1, max_length=4, description="in fallback order")
    template: str | dict[MessageChannel, str]
    category: Category
    vars: dict[str, Any] = Field(default_factory=dict)
    idempotencyKey: str | None = Field(default=None, min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:@+=-]+$")
    experiment: str | None = Field(
        default=None, pattern=_ID, description="an experiment whose arms split this send (docs/experiments.md)"
    )

    @field_validator("channels")
    @classmethod
    def _distinct(cls, channels: list[MessageChannel]) -> list[MessageChannel]:
        if len(set(channels)) != len(channels):
            raise ValueError("a channel is listed twice")
        return channels

    @field_validator("template")
    @classmethod
    def _template_ids(cls, template: str | dict[MessageChannel, str]) -> str | dict[MessageChannel, str]:
        for template_id in [template] if isinstance(template, str) else template.values():
            if not re.match(_ID, template_id):
                raise ValueError(f"not a template id: {template_id!r}")
        return template

    @model_validator(mode="after")
    def _a_template_per_channel(self) -> SendMessage:
        if isinstance(self.template, dict) and set(self.channels) - set(self.template):
            raise ValueError(f"no template for {sorted(set(self.channels) - set(self.template))}")
        return self


class ConsentUpdate(_Body):
    channel: Literal["email", "sms", "push", "inbox", "*"]
    purpose: Literal["marketing", "transactional"]
    granted: StrictBool
    source: str = Field(default="admin-api", min_length=1, max_length=200, description="where consent was given")
    timestamp: str | None = Field(
        default=None, max_length=64, description="when the person made the choice (ISO 8601 with a zone); default now"
    )

    @field_validator("timestamp")
    @classmethod
    def _choice_time(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            moment = parse_iso(value)
            if moment.tzinfo is None:
                raise ValueError("needs a time zone, e.g. 2026-11-22T10:00:00Z")
            stamped = iso(moment)
        except (ValueError, OverflowError) as error:
            raise ValueError(f"not an ISO 8601 timestamp with a zone: {value[:64]!r}") from error
        if stamped < EARLIEST_CONSENT:
            raise ValueError(f"before {EARLIEST_CONSENT}: not a time consent was given")
        return stamped


class InboxRead(_Body):
    cursors: list[str] | None = Field(default=None, min_length=1, max_length=100)
    all: StrictBool | None = None

    @model_validator(mode="after")
    def _one_way(self) -> InboxRead:
        if (self.cursors is None) == (self.all is not True):
            raise ValueError('give either `cursors` or `"all": true`')
        return self


class SuppressionPut(_Body):
    reason: str = Field(default="manual", pattern=r"^[a-z][a-z_]{0,39}$")
    scope: Literal["all", "marketing"] = "all"
    detail: str = Field(default="", max_length=1000)


# ------------------------------------------------------------------------------ privacy
class RegulationCreate(_Body):
    """A privacy request, in Segment's Regulations shape (services/privacy.py)."""

    # DELETE_INTERNAL and DELETE_ARCHIVE_ONLY are Segment's: answered 422 regulation_type_not_supported.
    regulationType: Literal[
        "SUPPRESS_ONLY",
        "UNSUPPRESS",
        "SUPPRESS_WITH_DELETE",
        "DELETE_ONLY",
        "EXPORT",
        "DELETE_INTERNAL",
        "DELETE_ARCHIVE_ONLY",
    ]
    subjectType: Literal["USER_ID", "ANONYMOUS_ID", "EMAIL", "PHONE", "PROFILE_ID"]
    subjectIds: list[Annotated[str, StringConstraints(min_length=1, max_length=512)]] = Field(
        min_length=1, max_length=5000
    )
    jurisdiction: Literal["GDPR", "CCPA", "PIPL"] = "GDPR"


# ------------------------------------------------------------------------------ automation
class SegmentCreate(SegmentBody):
    """A new segment: its definition and the id it will be known by (never reused once deleted)."""

    id: str = Field(pattern=SEGMENT_ID)


class EstimateRequest(_Body):
    condition: dict[str, Any] = Field(description="a segment condition, as in a dynamic segment")


class ImportRequest(_Body):
    """A file of people for a static segment, as text (`data`) or base64, gzip'd or not (`data_base64`)."""

    format: Literal["auto", "csv", "pinpoint-json", "pinpoint-csv"] = "auto"
    data: str | None = Field(default=None, min_length=1)
    data_base64: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_file(self) -> ImportRequest:
        if (self.data is None) == (self.data_base64 is None):
            raise ValueError("give the file as either `data` (text) or `data_base64`")
        return self


class CampaignCreate(CampaignBody):
    id: str = Field(pattern=_ID)


class JourneyCreate(JourneyBody):
    id: str = Field(pattern=_ID)


class JourneyPatch(_Body):
    enabled: StrictBool


# ------------------------------------------------------------------------------ dead letters
class RedriveRequest(_Body):
    """POST /v1/dead-letters/{queue}/redrive: how many, or which ones (among the first 100 in
    sight); no body redrives up to 100."""

    limit: StrictInt = Field(default=100, ge=1, le=MAX_REDRIVEN)
    messageIds: list[str] | None = Field(default=None, min_length=1, max_length=MAX_LISTED)


class SpendLine(_Body):
    """One cost line as the API takes it; checked line by line by the import (a bad one is
    reported with its index, the others kept)."""

    date: str = Field(max_length=40, description="YYYY-MM-DD, the day the money was spent")
    channel: str = Field(
        max_length=128, description="a touch's channel: the UTM source of paid traffic, or a message channel"
    )
    campaign: str | None = Field(default=None, max_length=256, description="a UTM campaign or a Midstage campaign id")
    amount: float | str = Field(description="the amount spent, in `currency`")
    currency: str = Field(max_length=8, description="ISO 4217, e.g. EUR")


class SpendImport(_Body):
    """Spend as a CSV file (`data`, header `date,channel,campaign,amount,currency`) or as `lines`."""

    data: str | None = Field(default=None, min_length=1)
    lines: list[SpendLine] | None = Field(default=None, min_length=1, max_length=100_000)

    @model_validator(mode="after")
    def _one_source(self) -> SpendImport:
        if (self.data is None) == (self.lines is None):
            raise ValueError("give the spend as either `data` (CSV text) or `lines`")
        return self
