"""A journey's instances and who may enter: entry keys (events, segments, dates) and the first step."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal, TypedDict

from midstage.logic.conditions import Facts
from midstage.logic.delivery import zone_of
from midstage.logic.journeys.definition import MAX_PATH, CompiledJourney
from midstage.logic.profile import slim_event
from midstage.logic.timefmt import iso, parse_iso
from midstage.models.journeys import (
    DateEntry,
    EventEntry,
    Journey,
    SegmentEntry,
)
from midstage.models.profile import Profile

_FULL_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_MONTH_DAY = re.compile(r"([0-9]{2})-([0-9]{2})")

NOBODY = Profile(id="", created_at="")  # a missing profile has no zone of its own: the default applies

InstanceStatus = Literal["active", "waiting", "completed", "exited"]
ENDED = ("completed", "exited")
MAX_SENT = 20


# ============================================================================== instances
class WaitState(TypedDict):
    kind: Literal["timer", "event"]
    step: str
    until: str
    timer_id: str
    event: str | None


@dataclass
class Instance:
    """One person's run through a journey. Stored as a document; `rev` is the store's (it may set
    it after a write). `advance` never changes the instance it is given."""

    journey_id: str
    journey_version: int
    profile_id: str
    run: int  # 1 on the first entry, +1 per re-entry
    status: InstanceStatus
    step: str  # where it is: the step to run next, or the wait it is in
    seq: int  # steps executed so far; a step's effects carry its number
    entered_at: str
    updated_at: str
    ended_at: str | None = None
    exit_reason: str | None = None
    wait: WaitState | None = None
    path: list[list[str]] = field(default_factory=list)  # the last MAX_PATH [step, at, outcome]
    entry_key: str = ""
    last_event: dict[str, Any] | None = None  # the slim event that entered or last woke it
    # The ids of the messages this run requested (the last MAX_SENT): a wait for an event a
    # message causes (an open, a click) counts only theirs. None on a run begun before it was kept.
    sent: list[str] | None = None
    # Set when a merge brought the run over from another profile: the id its ids (instance,
    # timers, message keys) go on being named by, so nothing it sent or awaits changes name.
    ids_from: str = ""
    # A run brought over by a merge in place of the survivor's own ended run: the survivor's
    # run number, so the survivor's next run is numbered (and its messages keyed) after both.
    run_floor: int = 0
    # The offers an issue_offer step of this run named, by variable: {"offer", "cause"}; the
    # send steps after it carry them, and the deliverer turns each into the person's code.
    offers: dict[str, dict[str, str]] = field(default_factory=dict)
    # The event that let the person in, when one did: when the platform received it and when it
    # happened. An event received with it (the same request) answers the run if it happened no
    # earlier; one received before it never does (stepper._before_entry).
    entry_received_at: str = ""
    entry_timestamp: str = ""
    rev: int = 0

    @property
    def instance_id(self) -> str:
        return f"{self.journey_id}:{self.ids_from or self.profile_id}:{self.run}"

    @property
    def in_progress(self) -> bool:
        return self.status in ("active", "waiting")

    def to_doc(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Instance:
        known = cls.__dataclass_fields__
        fields = {k: v for k, v in doc.items() if k in known}
        fields["path"] = [list(entry) for entry in fields.get("path") or []]
        if fields.get("sent") is not None:
            fields["sent"] = [str(message_id) for message_id in fields["sent"]]
        if fields.get("wait") is not None:
            fields["wait"] = dict(fields["wait"])
        fields["offers"] = {
            str(var): {k: str(v) for k, v in ref.items()} for var, ref in (fields.get("offers") or {}).items()
        }
        for number in ("journey_version", "run", "seq", "run_floor", "rev"):  # DynamoDB reads numbers as Decimal
            if number in fields:
                fields[number] = int(fields[number])
        return cls(**fields)


# ============================================================================== entry
def entry_key_for(
    compiled: CompiledJourney,
    detail_type: str,
    detail: Mapping[str, Any],
    profile: Profile | None,
    *,
    now: datetime,
) -> str | None:
    """The entry key when a domain event lets this person into the journey, else None.

    Event entries take "event.tracked" (key "event:<messageId>"); segment entries take
    "segment.entered" (key "segment:<segmentId>:<at>"). The entry conditions are checked on the
    person (with the triggering event for event entries) at `now`.
    """
    entry = compiled.journey.entry
    event: Mapping[str, Any] | None = None
    if isinstance(entry, EventEntry):
        event = detail.get("event") if detail_type == "event.tracked" else None
        if not isinstance(event, Mapping) or event_name(event) != entry.event or not event.get("messageId"):
            return None
        if compiled.entry_where is not None and not compiled.entry_where.test(Facts(profile, event, now)):
            return None
        key = f"event:{event['messageId']}"
    elif isinstance(entry, SegmentEntry):
        if detail_type != "segment.entered" or detail.get("segmentId") != entry.segment or not detail.get("at"):
            return None
        key = f"segment:{entry.segment}:{detail['at']}"
    else:
        return None  # date entries come from the daily sweep: date_entry_key
    if compiled.entry_conditions is not None and not compiled.entry_conditions.test(Facts(profile, event, now)):
        return None
    return key


def date_entry_key(compiled: CompiledJourney, profile: Profile, now: datetime, default_timezone: str) -> str | None:
    """For a date entry: "date:<YYYY-MM-DD>" when today in the person's zone is the trait's
    anniversary plus offset_days (and the person meets the entry conditions), else None.

    A full date counts from its own year on, so a renewal date next year is not celebrated this
    year. The date of an ISO datetime is the one written, not converted to the person's zone.
    """
    entry = compiled.journey.entry
    if not isinstance(entry, DateEntry):
        return None
    source = _date_parts(_dig(profile.traits, entry.trait.split(".")))
    if source is None:
        return None
    year, month, day = source
    today = now.astimezone(zone_of(profile, default_timezone)).date()
    try:
        target = today - timedelta(days=entry.offset_days)
    except OverflowError:
        return None
    if (year is not None and target.year < year) or _anniversary(month, day, target.year) != target:
        return None
    conditions = compiled.entry_conditions
    if conditions is not None and not conditions.test(Facts(profile, None, now)):
        return None
    return f"date:{today.isoformat()}"


def _date_parts(value: Any) -> tuple[int | None, int, int] | None:
    if not isinstance(value, str) or len(value) > 40:
        return None
    month_day = _MONTH_DAY.fullmatch(value)
    if month_day is not None:
        month, day = int(month_day.group(1)), int(month_day.group(2))
        try:
            date(2000, month, day)  # a leap year: 02-29 is a real birthday
        except ValueError:
            return None
        return None, month, day
    full = _FULL_DATE.match(value)
    if full is None:
        return None
    try:
        parsed = date.fromisoformat(value) if len(value) == 10 else parse_iso(value).date()
    except ValueError:
        return None
    return parsed.year, parsed.month, parsed.day


def _anniversary(month: int, day: int, year: int) -> date:
    try:
        return date(year, month, day)
    except ValueError:  # Feb 29 in a common year
        return date(year, 2, 28)


def _dig(traits: Mapping[str, Any], keys: list[str]) -> Any:
    current: Any = traits
    for key in keys:
        if not isinstance(current, Mapping):
            return None
        current = current.get(key)
    return current


def may_enter(
    journey: Journey | CompiledJourney, previous: Instance | None, entry_key: str, now: datetime
) -> tuple[bool, str]:
    """Whether the person may start a run now, given their latest run (None if never), and why."""
    definition = journey.journey if isinstance(journey, CompiledJourney) else journey
    if not definition.enabled:
        return False, "the journey is disabled"
    if previous is None:
        return True, "first entry"
    if previous.entry_key == entry_key:
        return False, "already entered for this trigger"
    reentry = definition.reentry
    if reentry.mode == "never":
        return False, f"already entered at {previous.entered_at} (reentry: never)"
    if previous.in_progress:
        return False, f"still in the journey (run {previous.run}, {previous.status} at {previous.step})"
    if reentry.mode == "cooldown":
        assert reentry.days is not None
        due = parse_iso(previous.entered_at) + timedelta(days=reentry.days)
        if now < due:
            return False, f"entered at {previous.entered_at}; may enter again from {iso(due)} (cooldown)"
    return True, "re-entry allowed"


def start_instance(
    journey: Journey | CompiledJourney,
    profile_id: str,
    previous: Instance | None,
    entry_key: str,
    event: Mapping[str, Any] | None,
    now: datetime,
) -> Instance:
    """A new run at the start step, not yet advanced: the service then wakes it with Wake.enter()."""
    definition = journey.journey if isinstance(journey, CompiledJourney) else journey
    stamp = iso(now)
    return Instance(
        journey_id=definition.id,
        journey_version=definition.version,
        profile_id=profile_id,
        run=max(previous.run, previous.run_floor) + 1 if previous is not None else 1,
        status="active",
        step=definition.start,
        seq=0,
        entered_at=stamp,
        updated_at=stamp,
        entry_key=entry_key,
        last_event=slim_event(event) if event else None,
        sent=[],
        entry_received_at=str(event.get("receivedAt") or "") if event else "",
        entry_timestamp=str(event.get("timestamp") or "") if event else "",
    )


def adopted(theirs: Instance, mine: Instance | None, survivor_id: str, now: datetime) -> Instance | None:
    """After a merge, the survivor's instance of a journey given the merged-away profile's
    (`theirs`) and its own (`mine`, None if it never entered); None keeps `mine` as it is.

    A run in progress wins over an ended one; between two in progress, or two ended, the
    survivor's own wins. A run brought over keeps its ids, its wait and its timers (they are
    named by `ids_from`) and notes the move in its path."""
    if mine is not None and (mine.in_progress or not theirs.in_progress):
        return None
    moved = Instance.from_doc(theirs.to_doc())
    moved.ids_from = theirs.ids_from or theirs.profile_id
    moved.profile_id = survivor_id
    if mine is not None:
        moved.run_floor = max(mine.run, mine.run_floor, theirs.run_floor)
    moved.path = [*moved.path, [moved.step, iso(now), f"merged from profile {theirs.profile_id}"]][-MAX_PATH:]
    return moved


# ============================================================================== the stepper


def event_name(event: Mapping[str, Any]) -> str | None:
    # As in rules: a track call's name is `event`; page and screen calls have `name`.
    name = event.get("event") if event.get("type", "track") == "track" else event.get("name")
    return name if isinstance(name, str) else None
