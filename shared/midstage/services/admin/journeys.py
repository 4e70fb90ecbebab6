"""Journeys: definitions (checked, and checked against the segments and templates they name),
their versions, stats, and where each person is in them."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from midstage import keys
from midstage.clock import Clock
from midstage.config import IdentitySettings
from midstage.errors import MAX_ISSUES, InvalidInput, NotFound, validation_issues, version_mismatch
from midstage.logic.conditions import Issue
from midstage.logic.journeys import validate_journey
from midstage.logic.segments import segment_references
from midstage.models.admin import Caller
from midstage.models.journeys import (
    ConditionStep,
    EventEntry,
    IssueOfferStep,
    Journey,
    JourneyBody,
    SegmentEntry,
    SendStep,
    WaitStep,
)
from midstage.models.messaging import Channel
from midstage.models.requests import JourneyCreate, JourneyPatch
from midstage.services import profiles
from midstage.services.admin.common import (
    OfferExists,
    add_counts,
    changed_by,
    check_new_id,
    refused,
    segments_of,
    template_ids,
    unknown_offers,
)
from midstage.services.admin.ports import DefinitionStore, PersonJourneys, ProfileReader, Totals


class JourneyAdmin:
    def __init__(
        self,
        config: DefinitionStore,
        profiles: ProfileReader,
        counters: Totals,
        instances: PersonJourneys,
        identity: IdentitySettings,
        *,
        max_window_days: int = 90,
        clock: Clock,
        offer_exists: OfferExists | None = None,
    ) -> None:
        self.config = config
        self.profiles = profiles
        self.counters = counters
        self.instances = instances
        self.identity = identity
        self.max_window_days = max_window_days
        self.clock = clock
        self.offer_exists = offer_exists

    def list_journeys(self) -> dict[str, Any]:
        journeys = sorted(self.config.documents(keys.JOURNEY_PK, Journey), key=lambda j: j.id)
        return {"journeys": [_journeysummary(j) for j in journeys]}

    def _journey_problems(self, body: JourneyBody) -> list[Issue]:
        issues = list(validate_journey(body, max_window_days=self.max_window_days))
        issues.extend(_journey_reference_issues(body, set(segments_of(self.config)), template_ids(self.config)))
        named = [(s.offer, f"/steps/{sid}/offer") for sid, s in body.steps.items() if isinstance(s, IssueOfferStep)]
        issues.extend(unknown_offers(named, self.offer_exists))
        return issues

    def _journey_issues(self, body: JourneyBody) -> None:
        issues = self._journey_problems(body)
        if issues:
            raise refused("journey", issues, code="invalid_journey")

    def create_journey(self, body: JourneyCreate, caller: Caller) -> dict[str, Any]:
        check_new_id(self.config, keys.JOURNEY_PK, Journey, body.id, "/v1/journeys")
        self._journey_issues(body)
        stamp = changed_by(self.clock, caller)
        journey = Journey(**body.model_dump(), version=1, created_at=stamp["updated_at"], **stamp)
        return self.config.save_document(keys.JOURNEY_PK, journey).model_dump(mode="json")

    def validate_journey(self, payload: Any) -> dict[str, Any]:
        model: type[JourneyBody] = JourneyCreate if isinstance(payload, dict) and "id" in payload else JourneyBody
        try:
            body = model.model_validate(payload)
        except ValidationError as error:
            return {"valid": False, "issues": validation_issues(error, payload)}
        issues = [issue.to_dict() for issue in self._journey_problems(body)][:MAX_ISSUES]
        return {"valid": not issues, "issues": issues}

    def _journey(self, journey_id: str) -> Journey:
        return self.config.get_document(keys.JOURNEY_PK, journey_id, Journey)

    def get_journey(self, journey_id: str) -> dict[str, Any]:
        return self._journey(journey_id).model_dump(mode="json")

    def _save_journey(
        self, current: Journey, changes: Mapping[str, Any], if_match: int | None, caller: Caller
    ) -> Journey:
        version_mismatch("journey", current.id, current.version, if_match)
        document = {**current.model_dump(), **changes, "version": current.version + 1, **changed_by(self.clock, caller)}
        journey = Journey.model_validate(document)
        self._journey_issues(journey)
        return self.config.save_document(keys.JOURNEY_PK, journey)

    def replace_journey(
        self, journey_id: str, body: JourneyBody, if_match: int | None, caller: Caller
    ) -> dict[str, Any]:
        """A new version. People already inside go on under it; one whose current step is gone
        exits (logic/journeys.py)."""
        current = self._journey(journey_id)
        changes = {name: getattr(body, name) for name in JourneyBody.model_fields}
        return self._save_journey(current, changes, if_match, caller).model_dump(mode="json")

    def patch_journey(
        self, journey_id: str, body: JourneyPatch, if_match: int | None, caller: Caller
    ) -> dict[str, Any]:
        current = self._journey(journey_id)
        return self._save_journey(current, {"enabled": body.enabled}, if_match, caller).model_dump(mode="json")

    def delete_journey(self, journey_id: str) -> None:
        self.config.delete_document(keys.JOURNEY_PK, journey_id)

    def journey_versions(self, journey_id: str, limit: int, cursor: str | None) -> dict[str, Any]:
        """Newest first, `limit` at a time (a definition can be 256 KB); `cursor` is the next
        version number to list."""
        config = self.config
        versions = sorted(config.document_versions(keys.JOURNEY_PK, journey_id, Journey), key=lambda j: -j.version)
        current = config.find_document(keys.JOURNEY_PK, journey_id, Journey)
        if not versions and current is None:
            raise NotFound(f"no journey '{journey_id}'")
        start = versions[0].version if versions else 0
        if cursor is not None:
            if not (cursor.isascii() and cursor.isdigit()) or not 1 <= int(cursor) <= start:
                raise InvalidInput("'cursor' is not one this listing returned", code="invalid_cursor")
            start = int(cursor)
        page = [v for v in versions if v.version <= start][:limit]
        last = page[-1].version if page else 1
        return {
            "journeyId": journey_id,
            "deleted": current is None,
            "versions": [v.model_dump(mode="json") for v in page],
            "cursor": str(last - 1) if last > 1 and len(page) == limit else None,
        }

    def journey_stats(self, journey_id: str) -> dict[str, Any]:
        journey = self._journey(journey_id)
        counts: dict[str, Decimal] = {}
        for run in self.counters.totals("journey", journey_id, "all").values():  # a journey's one run
            add_counts(counts, run)
        number = {name: int(counts.get(name, 0)) for name in ("entered", "completed", "exited", "goal", "capped")}
        steps = dict.fromkeys(journey.steps, 0)
        for name, value in sorted(counts.items()):
            if name.startswith("step:"):
                steps[name[len("step:") :]] = int(value)
        return {
            "journeyId": journey_id,
            "version": journey.version,
            **number,
            "in_progress": max(0, number["entered"] - number["completed"] - number["exited"]),
            "steps": steps,
        }

    def profile_journeys(self, ref: str) -> dict[str, Any]:
        profile = profiles.resolve(ref, self.profiles, self.identity)
        instances = sorted(self.instances.of_person(profile.id), key=lambda d: str(d.get("journey_id")))
        return {"profileId": profile.id, "journeys": [present_instance(doc) for doc in instances]}


INSTANCE_FIELDS = (
    "journey_id",
    "journey_version",
    "run",
    "status",
    "step",
    "seq",
    "wait",
    "path",
    "entered_at",
    "updated_at",
    "ended_at",
    "exit_reason",
)


def present_instance(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A journey instance for the API: where the person is and how they got there (the stored
    outbox and revision are bookkeeping; the triggering event stays on the timeline)."""
    return {name: doc.get(name) for name in INSTANCE_FIELDS}


def _journeysummary(journey: Journey) -> dict[str, Any]:
    return {
        "id": journey.id,
        "name": journey.name,
        "description": journey.description,
        "enabled": journey.enabled,
        "entry": journey.entry.model_dump(mode="json"),
        "steps": len(journey.steps),
        "version": journey.version,
        "updated_at": journey.updated_at,
        "updated_by": journey.updated_by,
    }


def journey_conditions(journey: JourneyBody) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every condition in a journey with its JSON pointer."""
    entry = journey.entry
    if isinstance(entry, EventEntry) and entry.where is not None:
        yield "/entry/where", entry.where
    if journey.entry_conditions is not None:
        yield "/entry_conditions", journey.entry_conditions
    for step_id, step in journey.steps.items():
        if isinstance(step, ConditionStep):
            yield f"/steps/{_escaped(step_id)}/condition", step.condition
        elif isinstance(step, WaitStep) and step.until_event is not None and step.until_event.where is not None:
            yield f"/steps/{_escaped(step_id)}/until_event/where", step.until_event.where
    for index, goal in enumerate(journey.exit_when):
        if goal.where is not None:
            yield f"/exit_when/{index}/where", goal.where


def _journey_reference_issues(journey: JourneyBody, segments: set[str], templates: set[str]) -> list[Issue]:
    """Segments and templates a journey names that do not exist."""
    issues: list[Issue] = []
    entry = journey.entry
    if isinstance(entry, SegmentEntry) and entry.segment not in segments:
        issues.append(Issue("/entry/segment", f"no segment {entry.segment!r}"))
    for location, spec in journey_conditions(journey):
        for segment_id, where in segment_references(spec, location):
            if segment_id not in segments:
                issues.append(Issue(where, f"no segment {segment_id!r}"))
    for step_id, step in journey.steps.items():
        if not isinstance(step, SendStep):
            continue
        here = f"/steps/{_escaped(step_id)}/template"
        named = [(here, step.template)] if isinstance(step.template, str) else _per_channel(here, step.template)
        issues.extend(Issue(where, f"no template {t!r}") for where, t in named if t not in templates)
    return issues


def _per_channel(location: str, templates: Mapping[Channel, str]) -> list[tuple[str, str]]:
    return [(f"{location}/{channel}", template_id) for channel, template_id in templates.items()]


def _escaped(step: str) -> str:
    return step.replace("~", "~0").replace("/", "~1")
