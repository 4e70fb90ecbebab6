"""People as an import builds them, and the events that put each one in the segment."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from midstage.logic import internal_events
from midstage.logic.identity import normalise_email, normalise_phone
from midstage.logic.imports.model import DEVICE_REGISTERED, LOCALE, MAX_IDENTIFIER_BYTES, ImportReport, Job, RowProblem
from midstage.logic.imports.text import check_shape
from midstage.logic.profile import CONSENT_UPDATED, SEGMENT_ADDED


# ------------------------------------------------------------------------------------- people
@dataclass(frozen=True)
class Update:
    """One Pinpoint endpoint's traits and context, for an identify of its own."""

    endpoint_id: str
    at: str  # its time
    stated: str  # the EffectiveDate that names its event ("" when there was none to trust)
    traits: dict[str, Any]
    context: dict[str, str]


@dataclass
class Person:
    """One person to import: identifiers, traits, and (Pinpoint) devices and refusals."""

    key: tuple[str, str]
    line: int  # the first line naming them: their events' message ids derive from it
    user_id: str | None = None
    anonymous_id: str | None = None
    email: str | None = None
    phone: str | None = None
    traits: dict[str, Any] = field(default_factory=dict)
    context: dict[str, str] = field(default_factory=dict)
    # Pinpoint people only: what each endpoint says, its devices and refusals. Their events are
    # one per endpoint, dated by its EffectiveDate and named by what they say (see _pinpoint_id).
    updates: list[Update] | None = None
    # (line, device, at, endpoint id, stated EffectiveDate), (consent channel, at, endpoint id, stated)
    devices: list[tuple[int, dict[str, str], str, str, str]] = field(default_factory=list)
    refusals: list[tuple[str, str, str, str]] = field(default_factory=list)

    def absorb(self, later: Person) -> None:
        """A later row for the same person: its non-empty values win."""
        self.user_id = later.user_id or self.user_id
        self.anonymous_id = later.anonymous_id or self.anonymous_id
        self.email = later.email or self.email
        self.phone = later.phone or self.phone
        self.traits.update(later.traits)
        self.context.update(later.context)


def clean_identifier(value: str, label: str, job: Job) -> str | None:
    text = value.strip()
    if not text:
        return None
    if len(text.encode()) > MAX_IDENTIFIER_BYTES:
        raise RowProblem(f"{label} is over {MAX_IDENTIFIER_BYTES} bytes")
    if job.identity.is_blocked(text):
        raise RowProblem(f"{label} {text[:80]!r} is a blocked value (placeholders are never identifiers)")
    return text


def csv_person(
    job: Job, line: int, header: list[str], cells: list[str], roles: Mapping[int, str], traits: Mapping[int, str]
) -> Person:
    check_shape(cells, header)
    found: dict[str, str | None] = {}
    for index, role in roles.items():
        raw = cells[index].strip()
        if role == "email" and raw:
            found[role] = normalise_email(raw)
            if found[role] is None:
                raise RowProblem(f"email {raw[:80]!r} is not a valid email address")
        elif role == "phone" and raw:
            found[role] = normalise_phone(raw)
            if found[role] is None:
                raise RowProblem(
                    f"phone {raw[:80]!r} is not an international number (E.164: + country code, 7 to 15 digits)"
                )
        else:
            found[role] = clean_identifier(raw, role, job)
    if not any(found.values()):
        present = ", ".join(header[index].strip() for index in roles)
        raise RowProblem(f"no identifier: {present} {'is' if len(roles) == 1 else 'are all'} empty")
    person = Person(
        key=_person_key(found),
        line=line,
        user_id=found.get("userId"),
        anonymous_id=found.get("anonymousId"),
        email=found.get("email"),
        phone=found.get("phone"),
    )
    for index, name in traits.items():
        value = cells[index].strip()
        if value:
            person.traits[name] = value  # text as written: "=1+1" stays a string, nothing evaluates it
    person.context = locale_context(person.traits.get("timezone"), person.traits.get("locale"))
    return person


def _person_key(found: Mapping[str, str | None]) -> tuple[str, str]:
    """Rows for the same person: the strongest identifier they carry, as OneID ranks them."""
    for role in ("userId", "email", "phone", "anonymousId"):
        value = found.get(role)
        if value:
            return role, value
    raise RowProblem("no identifier")


def locale_context(timezone: Any, locale: Any) -> dict[str, str]:
    context: dict[str, str] = {}
    if isinstance(timezone, str) and _valid_zone(timezone):
        context["timezone"] = timezone
    if isinstance(locale, str) and LOCALE.fullmatch(locale):
        context["locale"] = locale.replace("_", "-")
    return context


def _valid_zone(name: str) -> bool:
    if not 0 < len(name) <= 64 or ".." in name or name.startswith("/"):
        return False
    try:
        ZoneInfo(name)
    except (ValueError, OSError, KeyError):  # ZoneInfoNotFoundError is a KeyError
        return False
    return True


# ---------------------------------------------------------------------------------- events
def emit(job: Job, report: ImportReport, people: Iterable[Person]) -> None:
    ordered = sorted(people, key=lambda person: person.line)
    report.people = len(ordered)
    report.person_keys = [person.key for person in ordered]
    for person in ordered:
        report.events.extend(_events_of(job, person))


def _events_of(job: Job, person: Person) -> list[dict[str, Any]]:
    who: dict[str, str] = {}
    if person.user_id:
        who["userId"] = person.user_id
    if person.anonymous_id:
        who["anonymousId"] = person.anonymous_id
    if not who:
        # Every event needs a userId or an anonymousId. One derived from the contact identifier
        # is the same in every import, so a person imported twice gains it once.
        kind, value = ("email", person.email) if person.email else ("phone", person.phone)
        who["anonymousId"] = f"import-{kind}-{hashlib.sha256(str(value).encode()).hexdigest()[:32]}"
    contact = {k: v for k, v in (("email", person.email), ("phone", person.phone)) if v}
    pinpoint = person.updates is not None
    events: list[dict[str, Any]] = []
    if person.updates is None:
        traits = {**person.traits, **contact}
        identify = internal_events.identify(
            who, traits, message_id=job.message_id(person.line, "identify"), timestamp=job.timestamp
        )
        identify["context"].update(person.context)
        events.append(identify)
    for update in person.updates or ():
        if update.traits or update.context:
            said = json.dumps([update.traits, update.context], sort_keys=True, default=str)
            digest = hashlib.sha256(said.encode("utf-8", "surrogatepass")).hexdigest()
            message_id = _pinpoint_id(person, "identify", update.endpoint_id, update.stated, digest)
            identify = internal_events.identify(who, update.traits, message_id=message_id, timestamp=update.at)
            identify["context"].update(update.context)
            events.append(identify)

    def track(name: str, properties: dict[str, Any], message_id: str, at: str) -> dict[str, Any]:
        event = internal_events.track(who, name, properties, message_id=message_id, timestamp=at)
        # Each event finds the person by itself, whichever the updater sees first. A Pinpoint
        # person is found by their userId or endpoint id, and their addresses are stamped by
        # each endpoint's EffectiveDate alone (a later export's newer address must win).
        if contact and not pinpoint:
            event["context"]["traits"] = dict(contact)
        return event

    for _, device, at, endpoint_id, stated in person.devices:
        event = track(
            DEVICE_REGISTERED,
            {"platform": device["type"], "source": "pinpoint", "endpoint": endpoint_id},
            _pinpoint_id(person, "device", endpoint_id, stated, device["token"]),
            at,
        )
        event["context"]["device"] = device
        events.append(event)
    for channel, at, endpoint_id, stated in person.refusals:
        events.append(
            track(
                CONSENT_UPDATED,
                {"channel": channel, "purpose": "marketing", "granted": False, "source": f"import:{job.import_id}"},
                _pinpoint_id(person, "consent", channel, endpoint_id, stated),
                at,
            )
        )
    segment_id = _pinpoint_id(person, "segment", job.segment_id) if pinpoint else job.message_id(person.line, "segment")
    events.append(track(SEGMENT_ADDED, {"segment": job.segment_id}, segment_id, job.timestamp))
    return events


def _pinpoint_id(person: Person, kind: str, *parts: str) -> str:
    """A Pinpoint person's events are named by who they are and what the event says (an
    endpoint's id, EffectiveDate and content), never by the import that carried them: a second
    export job, cut into other files in another order, makes the same events for the endpoints
    that did not change, which the profile updater's dedupe absorbs, and new ones only for
    what changed, however long after (their markers are kept IMPORT_MARKER_DAYS). (A CSV
    row's derive from the import, its line and kind: the same file sent again makes the same
    events.)"""
    return internal_events.imported_id("pinpoint", *person.key, kind, *parts)
