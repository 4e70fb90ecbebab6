"""Journeys: multi-step flows run per person with waits (API payload and stored definition).

A journey is a graph of steps keyed by id. The model checks each step's own shape and bounds
the whole definition's size; how the steps fit together (references, reachability, exits,
loops) is judged by `logic.journeys.validate_journey`, which reports every problem at once
with its JSON-pointer location.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from midstage.models.messaging import _ID, _TAG, _TRAIT, IssueOfferAction, SendAction, WebhookAction

__all__ = [
    "MAX_CONDITION_CHARS",
    "MAX_DEFINITION_CHARS",
    "MAX_JSON_DEPTH",
    "MAX_STEPS",
    "MAX_VARS_CHARS",
    "ConditionStep",
    "DateEntry",
    "Entry",
    "EventEntry",
    "ExitStep",
    "Goal",
    "Journey",
    "JourneyBody",
    "RandomBranch",
    "RandomStep",
    "Reentry",
    "SegmentEntry",
    "SendStep",
    "Step",
    "UntilEvent",
    "UpdateProfileStep",
    "WaitStep",
    "WebhookStep",
    "duration_of",
]

MAX_STEPS = 100
# A stored definition is one item (DynamoDB's limit is 400 KB), with room for its bookkeeping.
MAX_DEFINITION_CHARS = 256_000
MAX_CONDITION_CHARS = 64_000
MAX_VARS_CHARS = 16_000
# JSON nesting: a condition 12 nodes deep ({"all": [{...}]}) is about 25 levels.
MAX_JSON_DEPTH = 40
MIN_WAIT = timedelta(minutes=1)
MAX_WAIT = timedelta(days=365)

_DURATION = re.compile(r"([1-9][0-9]{0,5})([mhdw])")
_UNIT = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
_CLOCK = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"

StepId = Annotated[str, Field(pattern=_ID, description="a step id: a-z 0-9 _ -, up to 64 characters")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def duration_of(text: str) -> timedelta:
    """A duration written as a positive whole number of m, h, d or w ("30m", "2d", "1w")."""
    match = _DURATION.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f'not a duration: {text!r}; write a whole number and m, h, d or w, like "30m" or "2d"')
    return int(match.group(1)) * _UNIT[match.group(2)]


def _wait_length(text: str) -> str:
    length = duration_of(text)
    if not MIN_WAIT <= length <= MAX_WAIT:
        raise ValueError(f"{text} is out of range: a wait lasts from 1 minute to 365 days")
    return text


Duration = Annotated[str, Field(max_length=8), AfterValidator(_wait_length)]


def _json_problem(value: Any, *, max_chars: int, max_depth: int) -> str | None:
    """Why a JSON value is too big or too deep, walked without recursion (a hostile value may
    nest thousands of levels), or None."""
    chars = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            return f"nested deeper than {max_depth} levels"
        if isinstance(item, dict):
            chars += 2
            for key, member in item.items():
                chars += len(str(key)) + 4
                stack.append((member, depth + 1))
        elif isinstance(item, list | tuple):
            chars += 2
            stack.extend((member, depth + 1) for member in item)
        elif isinstance(item, str):
            chars += len(item) + 2
        else:
            chars += 8
        if chars > max_chars:
            return f"larger than {max_chars} characters of JSON"
    return None


def _bounded_condition(spec: dict[str, Any]) -> dict[str, Any]:
    problem = _json_problem(spec, max_chars=MAX_CONDITION_CHARS, max_depth=MAX_JSON_DEPTH)
    if problem:
        raise ValueError(f"this condition is {problem}")
    return spec


ConditionSpec = Annotated[
    dict[str, Any],
    AfterValidator(_bounded_condition),
    Field(description="a condition in the condition language (see logic/conditions.py)"),
]
EventName = Annotated[str, Field(min_length=1, max_length=200)]


# ------------------------------------------------------------------------------- entry
class EventEntry(_Strict):
    """A person enters when they do `event` (and the event matches `where`)."""

    type: Literal["event"]
    event: EventName
    where: ConditionSpec | None = Field(default=None, description="a condition on the event")


class SegmentEntry(_Strict):
    """A person enters when they enter `segment`."""

    type: Literal["segment_entered"]
    segment: str = Field(pattern=_ID)


class DateEntry(_Strict):
    """A person enters on the day (in their time zone) `offset_days` from the yearly anniversary
    of a date trait ("YYYY-MM-DD", "MM-DD" or an ISO datetime). Feb 29 is Feb 28 in other years."""

    type: Literal["date"]
    trait: str = Field(min_length=1, max_length=200, description="a trait name; dots reach into objects")
    offset_days: int = Field(default=0, ge=-366, le=366, description="-3: three days before")


Entry = Annotated[EventEntry | SegmentEntry | DateEntry, Field(discriminator="type")]


# ------------------------------------------------------------------------------- steps
class SendStep(SendAction):
    """Send a message on the first channel that can reach the person (channels in fallback order)."""

    next: StepId

    @field_validator("vars")
    @classmethod
    def _bounded_vars(cls, variables: dict[str, Any]) -> dict[str, Any]:
        problem = _json_problem(variables, max_chars=MAX_VARS_CHARS, max_depth=MAX_JSON_DEPTH)
        if problem:
            raise ValueError(f"vars are {problem}")
        return variables


class UntilEvent(_Strict):
    event: EventName
    where: ConditionSpec | None = Field(default=None, description="a condition on the awaited event")
    caused_by: Literal["this_run", "any"] | None = Field(
        default=None,
        description=(
            "for the events a message causes (Email Delivered, Email Opened, Email Link Clicked, Email Bounced,"
            ' Email Marked as Spam, Unsubscribed): "this_run" (the default) counts only those of a message this'
            ' run of the journey sent; "any" counts them whatever sent the message. Other events ignore it.'
        ),
    )


class WaitStep(_Strict):
    """Wait for a duration, until a local time of day, or for an event (with a timeout)."""

    type: Literal["wait"]
    duration: Duration | None = Field(default=None, description='"30m", "1h", "2d", "1w": 1 minute to 365 days')
    until_time: str | None = Field(default=None, pattern=_CLOCK, description="HH:MM in the person's time zone")
    until_event: UntilEvent | None = None
    timeout: Duration | None = Field(default=None, description="how long to wait for until_event")
    next: StepId | None = None
    on_event: StepId | None = None
    on_timeout: StepId | None = None

    @model_validator(mode="after")
    def _one_kind_and_its_exits(self) -> WaitStep:
        kinds = [k for k in ("duration", "until_time", "until_event") if getattr(self, k) is not None]
        if len(kinds) != 1:
            found = f"got {' and '.join(kinds)}" if kinds else "got none"
            raise ValueError(f"a wait takes exactly one of duration, until_time, until_event; {found}")
        if kinds[0] == "until_event":
            missing = [k for k in ("timeout", "on_event", "on_timeout") if getattr(self, k) is None]
            if missing:
                raise ValueError(f"a wait for an event needs {', '.join(missing)}")
            if self.next is not None:
                raise ValueError("a wait for an event goes on to on_event or on_timeout, not next")
        else:
            if self.next is None:
                raise ValueError(f"a wait with {kinds[0]} needs next")
            extra = [k for k in ("timeout", "on_event", "on_timeout") if getattr(self, k) is not None]
            if extra:
                raise ValueError(f"{', '.join(extra)} belong to a wait for an event (until_event)")
        return self


class ConditionStep(_Strict):
    """Branch on a condition about the person and the event that entered or last woke them."""

    type: Literal["condition"]
    condition: ConditionSpec
    yes: StepId
    no: StepId


class RandomBranch(_Strict):
    percent: float = Field(default=0, ge=0, le=100, description="a share of people, to 0.01")
    arm: str | None = Field(default=None, pattern=_ID, description="with the step's experiment: the arm it takes")
    next: StepId

    @field_validator("percent")
    @classmethod
    def _hundredths(cls, percent: float) -> float:
        if not math.isclose(percent * 100, round(percent * 100), abs_tol=1e-6):
            raise ValueError(f"{percent} has more than two decimals; percents are exact to 0.01")
        return percent


class RandomStep(_Strict):
    """Split people at random but stably: the same person takes the same branch in a run."""

    type: Literal["random"]
    branches: list[RandomBranch] = Field(min_length=2, max_length=10)
    experiment: str | None = Field(
        default=None,
        pattern=_ID,
        description="an experiment whose arms choose the branch (each branch names its `arm`; percents unused)",
    )


Scalar = Annotated[str, Field(max_length=1024)] | int | float | bool | None


class UpdateProfileStep(_Strict):
    """Set traits and add or remove tags, through the profile updater like any event."""

    type: Literal["update_profile"]
    set_traits: dict[Annotated[str, Field(pattern=_TRAIT)], Scalar] = Field(default_factory=dict, max_length=20)
    add_tags: list[Annotated[str, Field(pattern=_TAG)]] = Field(default_factory=list, max_length=20)
    remove_tags: list[Annotated[str, Field(pattern=_TAG)]] = Field(default_factory=list, max_length=20)
    next: StepId

    @model_validator(mode="after")
    def _does_something(self) -> UpdateProfileStep:
        if not (self.set_traits or self.add_tags or self.remove_tags):
            raise ValueError("an update_profile step needs set_traits, add_tags or remove_tags")
        both = sorted(set(self.add_tags) & set(self.remove_tags))
        if both:
            raise ValueError(f"tags both added and removed: {', '.join(both)}")
        return self


class WebhookStep(WebhookAction):
    """Call a URL with parts of the person and event (delivered like a message)."""

    next: StepId


class IssueOfferStep(IssueOfferAction):
    """Give the person a code of an offer (docs/offers.md): the following send steps of the run
    carry it as `vars.<var>`. The cause is the run and this step, so a redelivered step, and every
    send after it, gets the same code; it is issued when the first of those sends is delivered."""

    next: StepId


class ExitStep(_Strict):
    """End the instance: it is completed."""

    type: Literal["exit"]


Step = Annotated[
    SendStep | WaitStep | ConditionStep | RandomStep | UpdateProfileStep | WebhookStep | IssueOfferStep | ExitStep,
    Field(discriminator="type"),
]


# ------------------------------------------------------------------------------- journey
class Goal(_Strict):
    """An event that ends an active instance early (status exited, reason "goal: <event>")."""

    event: EventName
    where: ConditionSpec | None = None


class Reentry(_Strict):
    """Whether a person may go through again: never, once the previous run ended, or after a
    cooldown counted from the previous entry (and only once it ended)."""

    mode: Literal["never", "after_exit", "cooldown"] = "after_exit"
    days: int | None = Field(default=None, ge=1, le=3650)

    @model_validator(mode="after")
    def _days_for_cooldown(self) -> Reentry:
        if (self.mode == "cooldown") != (self.days is not None):
            raise ValueError("`days` is needed for mode cooldown, and only there")
        return self


class JourneyBody(_Strict):
    """What a user writes (API payload or YAML file)."""

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    enabled: bool = True
    entry: Entry
    entry_conditions: ConditionSpec | None = Field(default=None, description="a condition on the person")
    start: StepId
    steps: dict[StepId, Step] = Field(min_length=1, max_length=MAX_STEPS)
    exit_when: list[Goal] = Field(default_factory=list, max_length=10)
    reentry: Reentry = Field(default_factory=Reentry)
    daily_cap: int | None = Field(default=None, ge=1, le=10**9, description="entries per UTC day, at most")

    @field_validator("steps", mode="before")
    @classmethod
    def _count_before_parsing(cls, steps: Any) -> Any:
        # Counted before each step is parsed, so a definition with a million steps is cheap to refuse.
        if isinstance(steps, dict) and len(steps) > MAX_STEPS:
            raise ValueError(f"a journey has at most {MAX_STEPS} steps, got {len(steps)}")
        return steps

    @model_validator(mode="after")
    def _fits_one_item(self) -> JourneyBody:
        size = len(self.model_dump_json())
        if size > MAX_DEFINITION_CHARS:
            raise ValueError(f"the definition is {size} characters of JSON; at most {MAX_DEFINITION_CHARS}")
        return self


class Journey(JourneyBody):
    model_config = ConfigDict(extra="ignore")

    id: str = Field(pattern=_ID)
    version: int = 1
    created_at: str = ""
    updated_at: str = ""
    updated_by: str = ""
