"""Campaigns: one message to an audience on a schedule (API payload and stored definition).

The model checks each part's own shape and bounds. What needs the world (whether the segments
and templates exist, whether a date is still ahead, whether Scheduler accepts the expression
and time zone) is judged by `logic.campaigns.validate_campaign`, which reports every problem
with its JSON-pointer location.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, field_validator, model_validator

from midstage.models.messaging import _ID, Category, Channel, _Strict

__all__ = [
    "CAMPAIGN_STATUSES",
    "DEFAULT_SEND_RATE",
    "MAX_SEND_RATE",
    "MAX_VARS_CHARS",
    "Audience",
    "Campaign",
    "CampaignBody",
    "CampaignMessage",
    "CampaignStatus",
    "Conversion",
    "LocalTimeSchedule",
    "OnceSchedule",
    "RecurringSchedule",
    "Schedule",
    "Variant",
    "conversion_window",
]

CampaignStatus = Literal["draft", "scheduled", "running", "paused", "completed", "cancelled"]
CAMPAIGN_STATUSES: tuple[CampaignStatus, ...] = ("draft", "scheduled", "running", "paused", "completed", "cancelled")

MAX_SEGMENTS = 10
MAX_VARIANTS = 5
MAX_HOLDOUT_PERCENT = 50
DEFAULT_SEND_RATE = 50
MAX_SEND_RATE = 10_000
MAX_MESSAGES = 1_000_000_000
# Vars travel in every queued message (SQS takes 256 KB) and are stored with the campaign.
MAX_VARS_CHARS = 16_000
MAX_VARS_DEPTH = 10
MIN_CONVERSION_WINDOW = dt.timedelta(hours=1)
MAX_CONVERSION_WINDOW = dt.timedelta(days=30)

_WINDOW = re.compile(r"([1-9][0-9]{0,3})([hd])")
_PROPERTY_PATH = r"^[A-Za-z0-9_$-]{1,64}(\.[A-Za-z0-9_$-]{1,64}){0,7}$"
_DAY = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_CLOCK = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"

SegmentId = Annotated[str, Field(pattern=_ID, description="a segment id")]


def _json_problem(value: Any) -> str | None:
    """Why vars are too big or too deep, walked without recursion (a hostile value may nest
    thousands of levels), or None."""
    chars = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_VARS_DEPTH:
            return f"nested deeper than {MAX_VARS_DEPTH} levels"
        if isinstance(item, dict):
            chars += 2 + sum(len(str(key)) + 4 for key in item)
            stack.extend((member, depth + 1) for member in item.values())
        elif isinstance(item, list | tuple):
            chars += 2
            stack.extend((member, depth + 1) for member in item)
        else:
            chars += len(item) + 2 if isinstance(item, str) else 8
        if chars > MAX_VARS_CHARS:
            return f"larger than {MAX_VARS_CHARS} characters of JSON"
    return None


def _bounded_vars(value: dict[str, Any]) -> dict[str, Any]:
    problem = _json_problem(value)
    if problem:
        raise ValueError(f"vars are {problem}")
    return value


Vars = Annotated[dict[str, Any], AfterValidator(_bounded_vars), Field(description="template variables")]
TemplateRef = str | dict[Channel, str]


def _aware_iso(text: str) -> str:
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an ISO 8601 timestamp: {text[:40]!r}") from None
    if moment.tzinfo is None:
        raise ValueError(f"{text[:40]!r} needs a UTC offset, e.g. 2026-12-01T10:00:00Z or +01:00")
    return text


AwareTimestamp = Annotated[
    str, Field(max_length=40, description="ISO 8601 with a UTC offset"), AfterValidator(_aware_iso)
]


def _check_template_ids(template: TemplateRef) -> None:
    for template_id in [template] if isinstance(template, str) else template.values():
        if not re.match(_ID, template_id):
            raise ValueError(f"not a template id: {template_id[:80]!r}")


def _check_template_channels(template: TemplateRef | None, channels: list[Channel], where: str) -> None:
    if not isinstance(template, dict):
        return
    missing = [c for c in channels if c not in template]
    if missing:
        raise ValueError(f"{where} has no template for {', '.join(missing)}")
    unused = [c for c in template if c not in channels]
    if unused:
        raise ValueError(f"{where} names a template for {', '.join(unused)}, which is not among the channels")


def conversion_window(text: str) -> dt.timedelta:
    """A conversion window ("1h" .. "30d") as a duration."""
    match = _WINDOW.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f'not a window: {str(text)[:20]!r}; write whole hours or days, like "12h" or "3d"')
    length = int(match.group(1)) * (dt.timedelta(hours=1) if match.group(2) == "h" else dt.timedelta(days=1))
    if not MIN_CONVERSION_WINDOW <= length <= MAX_CONVERSION_WINDOW:
        raise ValueError(f"{text} is out of range: a conversion window lasts from 1h to 30d")
    return length


def _window(text: str) -> str:
    conversion_window(text)
    return text


# ------------------------------------------------------------------------------- parts
class Audience(_Strict):
    """Members of any listed segment, minus members of any excluded one."""

    segments: list[SegmentId] = Field(min_length=1, max_length=MAX_SEGMENTS, description="a union")
    exclude: list[SegmentId] = Field(default_factory=list, max_length=MAX_SEGMENTS)

    @model_validator(mode="after")
    def _distinct(self) -> Audience:
        for name, ids in (("segments", self.segments), ("exclude", self.exclude)):
            if len(set(ids)) != len(ids):
                raise ValueError(f"a segment is listed twice in `{name}`")
        both = sorted(set(self.segments) & set(self.exclude))
        if both:
            raise ValueError(f"{', '.join(both)} cannot be both targeted and excluded")
        return self


class CampaignOffer(_Strict):
    """A code of an offer for each recipient, as `vars.<var>` (docs/offers.md)."""

    id: str = Field(pattern=_ID)
    var: str = Field(default="coupon", pattern=r"^[a-z][a-z0-9_]{0,39}$")


class CampaignMessage(_Strict):
    """What is sent: channels in fallback order, a template (one, or one per channel), vars."""

    channels: list[Channel] = Field(min_length=1, max_length=4, description="in fallback order")
    category: Category = "marketing"
    template: TemplateRef = Field(description="a template id, or one per channel")
    vars: Vars = Field(default_factory=dict)
    offer: CampaignOffer | None = Field(default=None, description="a code of this offer for each recipient")

    @field_validator("channels")
    @classmethod
    def _people_channels(cls, channels: list[Channel]) -> list[Channel]:
        if len(set(channels)) != len(channels):
            raise ValueError("a channel is listed twice")
        if "webhook" in channels:
            raise ValueError("a campaign messages people: webhook is not one of its channels")
        return channels

    @field_validator("template")
    @classmethod
    def _template_ids(cls, template: TemplateRef) -> TemplateRef:
        _check_template_ids(template)
        return template

    @model_validator(mode="after")
    def _a_template_per_channel(self) -> CampaignMessage:
        _check_template_channels(self.template, self.channels, "the message")
        return self


class Variant(_Strict):
    """One arm of a split test: its share of the people messaged, and what it changes."""

    id: str = Field(pattern=_ID)
    percent: float = Field(gt=0, lt=100, strict=True, allow_inf_nan=False, description="at most two decimals")
    template: TemplateRef | None = Field(default=None, description="the message's template when unset")
    vars: Vars = Field(default_factory=dict, description="merged over the message's vars")

    @field_validator("percent")
    @classmethod
    def _hundredths(cls, percent: float) -> float:
        # People are split into 10,000 buckets, so a share is a whole number of hundredths.
        if abs(percent * 100 - round(percent * 100)) > 1e-6:
            raise ValueError(f"{percent} has more than two decimals")
        return percent

    @field_validator("template")
    @classmethod
    def _template_ids(cls, template: TemplateRef | None) -> TemplateRef | None:
        if template is not None:
            _check_template_ids(template)
        return template

    @property
    def hundredths(self) -> int:
        return round(self.percent * 100)


class OnceSchedule(_Strict):
    type: Literal["once"]
    at: AwareTimestamp

    def moment(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.at)


class RecurringSchedule(_Strict):
    """A Scheduler cron() or rate() expression read in `timezone`, between `start` and `end`."""

    type: Literal["recurring"]
    expression: str = Field(min_length=1, max_length=256, description="cron(...) or rate(...)")
    timezone: str = Field(default="UTC", min_length=1, max_length=64, description="an IANA time zone")
    start: AwareTimestamp | None = None
    end: AwareTimestamp | None = None

    @model_validator(mode="after")
    def _ordered(self) -> RecurringSchedule:
        if self.start and self.end and dt.datetime.fromisoformat(self.start) >= dt.datetime.fromisoformat(self.end):
            raise ValueError("`end` must be after `start`")
        return self

    def start_at(self) -> dt.datetime | None:
        return dt.datetime.fromisoformat(self.start) if self.start else None

    def end_at(self) -> dt.datetime | None:
        return dt.datetime.fromisoformat(self.end) if self.end else None


class LocalTimeSchedule(_Strict):
    """Each person at this wall-clock time on this date in their own time zone."""

    type: Literal["local_time"]
    date: str = Field(pattern=_DAY, description="YYYY-MM-DD")
    time: str = Field(pattern=_CLOCK, description="HH:MM, 24-hour")

    @field_validator("date")
    @classmethod
    def _real_date(cls, text: str) -> str:
        try:
            dt.date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{text} is not a date in the calendar") from None
        return text

    def local_date(self) -> dt.date:
        return dt.date.fromisoformat(self.date)

    def local_clock(self) -> dt.time:
        return dt.time.fromisoformat(self.time)


Schedule = Annotated[OnceSchedule | RecurringSchedule | LocalTimeSchedule, Field(discriminator="type")]


class Conversion(_Strict):
    """The event that counts as converting, within `window` after a person is messaged (or held out)."""

    event: str = Field(min_length=1, max_length=200)
    window: Annotated[str, Field(max_length=8), AfterValidator(_window)] = "3d"
    revenue_property: str = Field(default="revenue", pattern=_PROPERTY_PATH, description="a dotted property path")

    def window_length(self) -> dt.timedelta:
        return conversion_window(self.window)


# ------------------------------------------------------------------------------- campaigns
class CampaignBody(_Strict):
    """What a user writes (API payload)."""

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    audience: Audience
    message: CampaignMessage
    variants: list[Variant] | None = Field(default=None, min_length=2, max_length=MAX_VARIANTS)
    holdout_percent: float = Field(
        default=0,
        ge=0,
        le=MAX_HOLDOUT_PERCENT,
        strict=True,
        allow_inf_nan=False,
        description="a control group, counted not sent",
    )
    schedule: Schedule
    send_rate: int = Field(
        default=DEFAULT_SEND_RATE, ge=1, le=MAX_SEND_RATE, strict=True, description="messages per second"
    )
    max_messages: int | None = Field(
        default=None, ge=1, le=MAX_MESSAGES, strict=True, description="queued per run at most"
    )
    conversion: Conversion | None = None
    experiment: str | None = Field(
        default=None,
        pattern=_ID,
        description="an experiment targeting this campaign: its arms split the audience (docs/experiments.md)",
    )

    @model_validator(mode="after")
    def _variants_split_everyone(self) -> CampaignBody:
        if not self.variants:
            return self
        ids = [variant.id for variant in self.variants]
        if len(set(ids)) != len(ids):
            raise ValueError("a variant id is used twice")
        total = sum(variant.hundredths for variant in self.variants)
        if total != 10_000:
            raise ValueError(f"variant percents add up to {total / 100:g}, not 100")
        for variant in self.variants:
            _check_template_channels(variant.template, self.message.channels, f"variant {variant.id}")
        return self


class Campaign(CampaignBody):
    model_config = ConfigDict(extra="ignore")

    id: str = Field(pattern=_ID)
    version: int = Field(default=1, ge=1)
    status: CampaignStatus = "draft"
    created_at: str = ""
    updated_at: str = ""
    updated_by: str = ""
