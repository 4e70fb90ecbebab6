"""The admin API's automation routes: segments (with backfills, estimates and imports),
campaigns (with their Scheduler schedules, state changes and stats) and journeys.

Pure orchestration over the stores it is given, as services/messaging_admin.py is for rules and
templates: the handler authenticates and parses, this module decides, the stores persist. A
definition that is wrong in several places is refused with every problem listed as
`{location, message}`, `location` being a JSON pointer into what was sent.

Ids are chosen by the caller and never reused once deleted: run records, counters, journey
instances and version histories are kept under a definition's id, and a new definition under
an old id would inherit them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
import zlib
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, model_validator

from midstage import keys
from midstage.adapters.automation_store import CampaignRuns, Counters, JourneyInstances, RefreshJobs
from midstage.adapters.config_store import ConfigStore
from midstage.adapters.handoff import HandoffFailed, SqsHandoff
from midstage.adapters.profile_store import ProfileStore
from midstage.adapters.queues import MessageQueue, QueueRefused
from midstage.adapters.scheduler import CampaignSchedules
from midstage.clock import Clock
from midstage.config import IdentitySettings
from midstage.errors import Conflict, InvalidInput, NotFound, Unavailable
from midstage.logic import internal_events
from midstage.logic.campaigns import (
    CampaignStateError,
    SchedulerSpec,
    scheduler_spec,
    stats_view,
    transition,
    validate_campaign,
)
from midstage.logic.conditions import Issue
from midstage.logic.imports import MAX_TEXT_BYTES, ImportFormat, ImportRefused, detect_format, parse_import
from midstage.logic.journeys import validate_journey
from midstage.logic.schedules import occurrences
from midstage.logic.segments import referenced_segments, segment_references, validate_segment
from midstage.logic.timefmt import iso, parse_iso
from midstage.models.campaigns import Campaign, CampaignBody, CampaignStatus, Conversion
from midstage.models.journeys import (
    ConditionStep,
    EventEntry,
    Journey,
    JourneyBody,
    SegmentEntry,
    SendStep,
    WaitStep,
)
from midstage.models.messaging import _ID, Channel, Rule
from midstage.models.segments import SEGMENT_ID, Segment, SegmentBody
from midstage.services import profiles
from midstage.services.campaigns import part_message
from midstage.services.messaging_admin import MAX_ISSUES, Caller, IssuesError, validation_issues
from midstage.services.segments import estimate_condition, start_refresh

ESTIMATE_BUDGET_S = 3.0
NEXT_FIRINGS = 5  # upcoming firings shown when a campaign is scheduled
# Counts a campaign worker checkpoints on each part (services/campaigns.py); the rest of a run's
# counters (sent, blocked, delivered, converted...) are sharded counters.
PART_COUNTERS = ("scanned", "targeted", "held_out", "missed", "capped", "queued", "scheduled")
EDITABLE_STATUSES: tuple[CampaignStatus, ...] = ("draft", "scheduled", "paused")
ENDED_STATUSES: tuple[CampaignStatus, ...] = ("completed", "cancelled")
_JOB_ID = re.compile(r"rf_[0-9a-f]{24}")
_GZIP_MAGIC = b"\x1f\x8b"


# ------------------------------------------------------------------------------ errors
class InUse(Conflict):
    """A 409 naming what still depends on the thing to delete, as `used_by: [{kind, id}]`."""

    def __init__(self, message: str, used_by: Sequence[Mapping[str, str]]) -> None:
        super().__init__(message, code="in_use")
        self.used_by = [dict(u) for u in used_by]

    def to_body(self) -> dict[str, object]:
        return {**super().to_body(), "used_by": self.used_by}


def _refused(subject: str, issues: Sequence[Issue], *, code: str) -> IssuesError:
    shown = [issue.to_dict() for issue in issues][:MAX_ISSUES]
    first = shown[0]
    more = f" (and {len(shown) - 1} more)" if len(shown) > 1 else ""
    return IssuesError(f"invalid {subject} at {first['location'] or '/'}: {first['message']}{more}", shown, code=code)


def _version_matches(kind: str, doc_id: str, version: int, if_match: int | None) -> None:
    if if_match is not None and if_match != version:
        raise Conflict(
            f"{kind} '{doc_id}' is at version {version}, not {if_match} (If-Match); reload and retry",
            code="version_mismatch",
        )


# ------------------------------------------------------------------------------ request bodies
class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


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


# ------------------------------------------------------------------------------ the service
@dataclass
class AutomationStores:
    config: ConfigStore
    profiles: ProfileStore
    refresh_jobs: RefreshJobs
    runs: CampaignRuns
    counters: Counters
    instances: JourneyInstances
    refresh_queue: MessageQueue
    campaign_queue: MessageQueue
    ingest: SqsHandoff
    schedules: CampaignSchedules


class AutomationAdmin:
    def __init__(
        self,
        stores: AutomationStores,
        identity: IdentitySettings,
        *,
        refresh_parts: int = 8,
        max_window_days: int = 90,
        estimate_budget_s: float = ESTIMATE_BUDGET_S,
        clock: Clock,
    ) -> None:
        self.stores = stores
        self.identity = identity
        self.refresh_parts = refresh_parts
        self.max_window_days = max_window_days
        self.estimate_budget_s = estimate_budget_s
        self.clock = clock

    # -------------------------------------------------------------- shared helpers
    def _segments(self) -> dict[str, Segment]:
        return {s.id: s for s in self.stores.config.documents(keys.SEGMENT_PK, Segment)}

    def _template_ids(self) -> set[str]:
        return {str(entry["latest"]["id"]) for entry in self.stores.config.list_templates()}

    def _check_new_id(self, kind: str, model: type[BaseModel], doc_id: str, route: str) -> None:
        config = self.stores.config
        label = kind.lower()
        if config.find_document(kind, doc_id, model) is not None:
            raise Conflict(f"{label} '{doc_id}' exists; change it with PUT {route}/{doc_id}")
        if config.document_versions(kind, doc_id, model):
            raise Conflict(f"{label} id '{doc_id}' belonged to a deleted {label} and is not reused; pick another id")

    def _stamp(self, caller: Caller) -> dict[str, str]:
        now = iso(self.clock())
        return {"updated_at": now, "updated_by": caller.key_id}

    # -------------------------------------------------------------- segments
    def list_segments(self) -> dict[str, Any]:
        shown = sorted(self._segments().values(), key=lambda s: s.id)
        return {"segments": [s.model_dump(mode="json") for s in shown]}

    def _segment_issues(self, segment_id: str, body: SegmentBody, others: Mapping[str, Segment]) -> None:
        issues = validate_segment(segment_id, body, others, max_window_days=self.max_window_days)
        if issues:
            raise _refused("segment", issues, code="invalid_segment")

    def create_segment(self, body: SegmentCreate, caller: Caller) -> dict[str, Any]:
        self._check_new_id(keys.SEGMENT_PK, Segment, body.id, "/v1/segments")
        self._segment_issues(body.id, body, self._segments())
        stamp = self._stamp(caller)
        segment = Segment(**body.model_dump(), version=1, created_at=stamp["updated_at"], **stamp)
        saved = self.stores.config.save_document(keys.SEGMENT_PK, segment)
        refresh = self._start_refresh(saved) if saved.kind == "dynamic" else None
        return {"segment": saved.model_dump(mode="json"), "refresh": refresh}

    def get_segment(self, segment_id: str) -> dict[str, Any]:
        return self.stores.config.get_document(keys.SEGMENT_PK, segment_id, Segment).model_dump(mode="json")

    def replace_segment(
        self, segment_id: str, body: SegmentBody, if_match: int | None, caller: Caller
    ) -> dict[str, Any]:
        """A new version. A dynamic segment whose condition changed is backfilled: every stored
        profile is judged again, not only those written from now on."""
        current = self.stores.config.get_document(keys.SEGMENT_PK, segment_id, Segment)
        _version_matches("segment", segment_id, current.version, if_match)
        if body.kind != current.kind:
            issue = Issue(
                "/kind",
                f"segment '{segment_id}' is {current.kind}; its kind cannot change (its members come "
                f"from {'imports' if current.kind == 'static' else 'its condition'}); create another segment",
            )
            raise _refused("segment", [issue], code="invalid_segment")
        self._segment_issues(segment_id, body, self._segments())
        segment = Segment(
            **body.model_dump(),
            id=segment_id,
            version=current.version + 1,
            created_at=current.created_at,
            **self._stamp(caller),
        )
        saved = self.stores.config.save_document(keys.SEGMENT_PK, segment)
        moved = saved.kind == "dynamic" and saved.condition != current.condition
        return {"segment": saved.model_dump(mode="json"), "refresh": self._start_refresh(saved) if moved else None}

    def delete_segment(self, segment_id: str) -> None:
        self.stores.config.get_document(keys.SEGMENT_PK, segment_id, Segment)
        used_by = self._users_of_segment(segment_id)
        if used_by:
            names = ", ".join(f"{u['kind']} '{u['id']}'" for u in used_by[:10])
            more = f" and {len(used_by) - 10} more" if len(used_by) > 10 else ""
            raise InUse(f"segment '{segment_id}' is used by {names}{more}; change or delete them first", used_by)
        self.stores.config.delete_document(keys.SEGMENT_PK, segment_id)

    def _users_of_segment(self, segment_id: str) -> list[dict[str, str]]:
        """What would break without the segment: campaigns still to run, journeys (enabled or not:
        enabling one is a save, which checks its segments), rules and other segments."""
        config = self.stores.config
        used: list[dict[str, str]] = []
        for campaign in sorted(config.documents(keys.CAMPAIGN_PK, Campaign), key=lambda c: c.id):
            audience = campaign.audience
            if campaign.status not in ENDED_STATUSES and segment_id in (*audience.segments, *audience.exclude):
                used.append({"kind": "campaign", "id": campaign.id})
        for journey in sorted(config.documents(keys.JOURNEY_PK, Journey), key=lambda j: j.id):
            entry = journey.entry
            named = isinstance(entry, SegmentEntry) and entry.segment == segment_id
            if named or any(segment_id in referenced_segments(spec) for _, spec in _journey_conditions(journey)):
                used.append({"kind": "journey", "id": journey.id})
        for rule in sorted(config.documents(keys.RULE_PK, Rule), key=lambda r: r.id):
            specs = [rule.conditions, rule.trigger.where]
            if rule.trigger.segment == segment_id or any(segment_id in referenced_segments(s) for s in specs):
                used.append({"kind": "rule", "id": rule.id})
        for other in sorted(self._segments().values(), key=lambda s: s.id):
            if other.id != segment_id and segment_id in referenced_segments(other.condition):
                used.append({"kind": "segment", "id": other.id})
        return used

    def _start_refresh(self, segment: Segment) -> dict[str, Any]:
        """A backfill job over every profile, one refresh-queue message per part (the
        refresh_segments function works them and records progress on the job)."""
        job_id = "rf_" + secrets.token_hex(12)
        parts = self.refresh_parts
        doc = {"segment_id": segment.id, "version": segment.version}
        try:
            start_refresh(self.stores.refresh_jobs, self.stores.refresh_queue, job_id, doc, parts, self.clock())
        except QueueRefused as error:
            raise Unavailable(
                f"segment '{segment.id}' version {segment.version} is saved, but its backfill could not be "
                f"queued; start it with POST /v1/segments/{segment.id}/refresh"
            ) from error
        return {"jobId": job_id, "parts": parts}

    def refresh_segment(self, segment_id: str) -> dict[str, Any]:
        segment = self.stores.config.get_document(keys.SEGMENT_PK, segment_id, Segment)
        return {"segment_id": segment.id, "version": segment.version, **self._start_refresh(segment)}

    def refresh_progress(self, segment_id: str, job_id: str) -> dict[str, Any]:
        job = self.stores.refresh_jobs.get(job_id) if _JOB_ID.fullmatch(job_id) else None
        if job is None or job.get("segment_id") != segment_id:
            raise NotFound(f"segment '{segment_id[:100]}' has no refresh job '{job_id[:100]}'")
        return {"jobId": job_id, **job}

    def estimate(self, body: EstimateRequest) -> dict[str, Any]:
        """How many profiles a condition matches now, from a sample of the profiles when there
        are too many to read within the time budget (`exact` says which)."""
        probe = SegmentBody(name="estimate", kind="dynamic", condition=body.condition)
        issues = validate_segment("estimate", probe, self._segments(), max_window_days=self.max_window_days)
        if issues:
            raise _refused("condition", issues, code="invalid_segment")
        return estimate_condition(
            self.stores.profiles,
            body.condition,
            self.clock(),
            budget_s=self.estimate_budget_s,
            max_window_days=self.max_window_days,
        )

    def import_people(self, segment_id: str, body: ImportRequest) -> dict[str, Any]:
        """Put the people of a file into a static segment, through the event plane: each person
        gets an identify and a `Segment Added` event on the ingest queue. The import's id is
        derived from the file, so sending the same file again (a retry) is absorbed by the
        profile updater's dedupe."""
        segment = self.stores.config.get_document(keys.SEGMENT_PK, segment_id, Segment)
        if segment.kind != "static":
            raise Conflict(
                f"segment '{segment_id}' is dynamic: its members are whoever its condition matches; "
                "import into a static segment",
                code="not_static",
            )
        raw = body.data.encode() if body.data is not None else _file_bytes(body.data_base64 or "")
        fmt: ImportFormat = detect_format(raw) if body.format == "auto" else body.format
        digest = hashlib.sha256(b"|".join([segment_id.encode(), fmt.encode(), raw])).hexdigest()
        import_id = f"imp_{digest[:24]}"
        report = parse_import(
            raw, segment_id=segment_id, import_id=import_id, now=self.clock(), fmt=fmt, identity=self.identity
        )
        groups: dict[str, list[dict[str, Any]]] = {}
        for event in report.events:
            groups.setdefault(internal_events.person_key(event), []).append(event)
        try:
            self.stores.ingest.send(groups)
        except HandoffFailed as error:
            raise Unavailable("the import could not be queued in full; send the same file again") from error
        summary = report.summary()
        return {
            "import_id": import_id,
            "segment_id": segment_id,
            "format": fmt,
            "accepted": summary["accepted"],
            "people": summary["people"],
            "events": summary["events"],
            "rejected": summary["rejected"],
            "rejected_total": summary["rejected_total"],
        }

    # -------------------------------------------------------------- campaigns
    def list_campaigns(self, status: str | None) -> dict[str, Any]:
        found = [c for c in self.stores.config.documents(keys.CAMPAIGN_PK, Campaign) if status in (None, c.status)]
        return {"campaigns": [c.model_dump(mode="json") for c in sorted(found, key=lambda c: c.id)]}

    def _campaign_issues(self, body: CampaignBody) -> None:
        issues = validate_campaign(
            body, segments_known=set(self._segments()), templates_known=self._template_ids(), now=self.clock()
        )
        if issues:
            raise _refused("campaign", issues, code="invalid_campaign")

    def create_campaign(self, body: CampaignCreate, caller: Caller) -> dict[str, Any]:
        self._check_new_id(keys.CAMPAIGN_PK, Campaign, body.id, "/v1/campaigns")
        self._campaign_issues(body)
        now = iso(self.clock())
        campaign = Campaign(
            **body.model_dump(), version=1, status="draft", created_at=now, updated_at=now, updated_by=caller.key_id
        )
        return self.stores.config.save_document(keys.CAMPAIGN_PK, campaign).model_dump(mode="json")

    def _campaign(self, campaign_id: str) -> Campaign:
        return self.stores.config.get_document(keys.CAMPAIGN_PK, campaign_id, Campaign)

    def get_campaign(self, campaign_id: str) -> dict[str, Any]:
        return self._campaign(campaign_id).model_dump(mode="json")

    def replace_campaign(
        self, campaign_id: str, body: CampaignBody, if_match: int | None, caller: Caller
    ) -> dict[str, Any]:
        """A new version, while the campaign is a draft, scheduled or paused. A scheduled
        campaign's schedule follows the new definition at once; a paused one's when resumed."""
        current = self._campaign(campaign_id)
        if current.status not in EDITABLE_STATUSES:
            hint = "pause it first" if current.status == "running" else "copy it to send again"
            raise CampaignStateError(f"cannot change a {current.status} campaign: {hint}")
        _version_matches("campaign", campaign_id, current.version, if_match)
        self._campaign_issues(body)
        campaign = Campaign(
            **body.model_dump(),
            id=campaign_id,
            version=current.version + 1,
            status=current.status,
            created_at=current.created_at,
            updated_at=iso(self.clock()),
            updated_by=caller.key_id,
        )
        if campaign.status == "scheduled":
            self._arm(campaign)
        return self.stores.config.save_document(keys.CAMPAIGN_PK, campaign).model_dump(mode="json")

    def delete_campaign(self, campaign_id: str) -> None:
        """Stops what is still to happen (the schedule, parts not yet worked), then deletes the
        definition; runs, counters and versions stay for the record."""
        current = self._campaign(campaign_id)
        if current.status not in ENDED_STATUSES:
            self._stop_parts(campaign_id)
        self.stores.schedules.delete(campaign_id)
        self.stores.config.delete_document(keys.CAMPAIGN_PK, campaign_id)

    def _with_status(self, campaign: Campaign, status: CampaignStatus, caller: Caller) -> Campaign:
        if status == campaign.status:
            return campaign
        moved = campaign.model_copy(update={"status": status, "version": campaign.version + 1, **self._stamp(caller)})
        return self.stores.config.save_document(keys.CAMPAIGN_PK, moved)

    def _arm(self, campaign: Campaign) -> dict[str, Any]:
        """Create (or replace) the Scheduler schedule that starts the campaign's runs."""
        now = self.clock()
        spec = scheduler_spec(campaign, now)
        name = self.stores.schedules.put(
            campaign.id, spec.expression, spec.timezone, start=spec.start, end=spec.end, one_time=spec.one_time
        )
        return _schedule_view(name, spec, now)

    def schedule_campaign(self, campaign_id: str, caller: Caller) -> dict[str, Any]:
        """draft -> scheduled. The definition is checked again (a date may have passed, a template
        gone) and the schedule is created before the status changes, so a refusal leaves nothing."""
        current = self._campaign(campaign_id)
        status = transition(current.status, "schedule")
        self._campaign_issues(current)
        schedule = self._arm(current)
        return {"campaign": self._with_status(current, status, caller).model_dump(mode="json"), "schedule": schedule}

    def pause_campaign(self, campaign_id: str, caller: Caller) -> dict[str, Any]:
        """Workers stop at their next page and leave their part paused; a schedule firing while
        paused starts nothing."""
        current = self._campaign(campaign_id)
        status = transition(current.status, "pause")
        return {"campaign": self._with_status(current, status, caller).model_dump(mode="json")}

    def resume_campaign(self, campaign_id: str, caller: Caller) -> dict[str, Any]:
        """Back to running when its latest run was interrupted (its paused parts are queued
        again, under the same run id, so nobody gets a second message), else back on its
        schedule, which is created again (a one-time moment passed meanwhile fires a minute on)."""
        current = self._campaign(campaign_id)
        status = transition(current.status, "resume")
        latest = self._latest_run(campaign_id)
        parts = self.stores.runs.parts(campaign_id, latest["run_id"]) if latest else []
        if status == "scheduled" and any(p["state"] not in ("done", "cancelled") for p in parts):
            status = "running"
        saved = self._with_status(current, status, caller)
        requeued: list[int] = []
        if saved.status == "running" and latest is not None:
            requeued = [p["part"] for p in parts if p["state"] == "paused"]
            bodies = [part_message(campaign_id, latest["run_id"], p, int(latest["parts"])) for p in requeued]
            try:
                self.stores.campaign_queue.send_bodies(bodies)
            except QueueRefused as error:
                raise Unavailable("the paused parts could not be queued again; resume again to retry") from error
        schedule = None
        if saved.status == "scheduled" or (saved.status == "running" and saved.schedule.type == "recurring"):
            schedule = self._arm(saved)
        return {"campaign": saved.model_dump(mode="json"), "requeued_parts": requeued, "schedule": schedule}

    def cancel_campaign(self, campaign_id: str, caller: Caller) -> dict[str, Any]:
        """Ends the campaign for good: no more runs, and parts not yet worked never will be
        (workers busy on a part stop at their next page)."""
        current = self._campaign(campaign_id)
        status = transition(current.status, "cancel")
        saved = self._with_status(current, status, caller)
        deleted = self.stores.schedules.delete(campaign_id)
        cancelled = self._stop_parts(campaign_id)
        return {"campaign": saved.model_dump(mode="json"), "schedule_deleted": deleted, "cancelled_parts": cancelled}

    def _latest_run(self, campaign_id: str) -> dict[str, Any] | None:
        runs = self.stores.runs.runs(campaign_id)
        return max(runs, key=lambda r: str(r["run_id"])) if runs else None

    def _stop_parts(self, campaign_id: str) -> int:
        stopped = 0
        for run in self.stores.runs.runs(campaign_id):
            if int(run["parts_done"]) >= int(run["parts"]):
                continue
            for part in self.stores.runs.parts(campaign_id, run["run_id"]):
                if part["state"] in ("pending", "paused") and self.stores.runs.set_part_state(
                    campaign_id, run["run_id"], part["part"], "cancelled", only_from=("pending", "paused")
                ):
                    stopped += 1
        return stopped

    def campaign_stats(self, campaign_id: str) -> dict[str, Any]:
        """Each run's counters (what its workers decided, and what became of each message) and
        the totals over every run."""
        campaign = self._campaign(campaign_id)
        counted = self.stores.counters.totals("campaign", campaign_id)
        totals: dict[str, Decimal] = {}
        runs = []
        for run in sorted(self.stores.runs.runs(campaign_id), key=lambda r: str(r["run_id"])):
            run_id = str(run["run_id"])
            parts = self.stores.runs.parts(campaign_id, run_id)
            counts = dict(counted.pop(run_id, {}))
            for part in parts:
                for name in PART_COUNTERS:
                    counts[name] = counts.get(name, Decimal(0)) + Decimal(part["counts"].get(name, 0))
            _add(totals, counts)
            runs.append(
                {
                    "run_id": run_id,
                    "scheduled_at": run.get("scheduled_at"),
                    "started_at": run.get("started_at"),
                    "parts": int(run["parts"]),
                    "parts_done": int(run["parts_done"]),
                    "part_states": dict(sorted(Counter(str(p["state"]) for p in parts).items())),
                    "stats": _run_stats(counts, campaign.conversion),
                }
            )
        for leftover in counted.values():  # outcomes of messages whose run record is gone
            _add(totals, leftover)
        return {
            "campaignId": campaign_id,
            "status": campaign.status,
            "runs": runs,
            "totals": _run_stats(totals, campaign.conversion),
        }

    # -------------------------------------------------------------- journeys
    def list_journeys(self) -> dict[str, Any]:
        journeys = sorted(self.stores.config.documents(keys.JOURNEY_PK, Journey), key=lambda j: j.id)
        return {"journeys": [_journey_summary(j) for j in journeys]}

    def _journey_problems(self, body: JourneyBody) -> list[Issue]:
        issues = list(validate_journey(body, max_window_days=self.max_window_days))
        issues.extend(_journey_reference_issues(body, set(self._segments()), self._template_ids()))
        return issues

    def _journey_issues(self, body: JourneyBody) -> None:
        issues = self._journey_problems(body)
        if issues:
            raise _refused("journey", issues, code="invalid_journey")

    def create_journey(self, body: JourneyCreate, caller: Caller) -> dict[str, Any]:
        self._check_new_id(keys.JOURNEY_PK, Journey, body.id, "/v1/journeys")
        self._journey_issues(body)
        stamp = self._stamp(caller)
        journey = Journey(**body.model_dump(), version=1, created_at=stamp["updated_at"], **stamp)
        return self.stores.config.save_document(keys.JOURNEY_PK, journey).model_dump(mode="json")

    def validate_journey(self, payload: Any) -> dict[str, Any]:
        model: type[JourneyBody] = JourneyCreate if isinstance(payload, dict) and "id" in payload else JourneyBody
        try:
            body = model.model_validate(payload)
        except ValidationError as error:
            return {"valid": False, "issues": validation_issues(error, payload)}
        issues = [issue.to_dict() for issue in self._journey_problems(body)][:MAX_ISSUES]
        return {"valid": not issues, "issues": issues}

    def _journey(self, journey_id: str) -> Journey:
        return self.stores.config.get_document(keys.JOURNEY_PK, journey_id, Journey)

    def get_journey(self, journey_id: str) -> dict[str, Any]:
        return self._journey(journey_id).model_dump(mode="json")

    def _save_journey(
        self, current: Journey, changes: Mapping[str, Any], if_match: int | None, caller: Caller
    ) -> Journey:
        _version_matches("journey", current.id, current.version, if_match)
        document = {**current.model_dump(), **changes, "version": current.version + 1, **self._stamp(caller)}
        journey = Journey.model_validate(document)
        self._journey_issues(journey)
        return self.stores.config.save_document(keys.JOURNEY_PK, journey)

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
        self.stores.config.delete_document(keys.JOURNEY_PK, journey_id)

    def journey_versions(self, journey_id: str, limit: int, cursor: str | None) -> dict[str, Any]:
        """Newest first, `limit` at a time (a definition can be 256 KB); `cursor` is the next
        version number to list."""
        config = self.stores.config
        versions = sorted(config.document_versions(keys.JOURNEY_PK, journey_id, Journey), key=lambda j: -j.version)
        current = config.find_document(keys.JOURNEY_PK, journey_id, Journey)
        if not versions and current is None:
            raise NotFound(f"no journey '{journey_id}'")
        start = versions[0].version if versions else 0
        if cursor is not None:
            if not cursor.isdigit() or not 1 <= int(cursor) <= start:
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
        for run in self.stores.counters.totals("journey", journey_id).values():
            _add(counts, run)
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
        profile = profiles.resolve(ref, self.stores.profiles, self.identity)
        instances = sorted(self.stores.instances.of_person(profile.id), key=lambda d: str(d.get("journey_id")))
        return {"profileId": profile.id, "journeys": [present_instance(doc) for doc in instances]}


# ------------------------------------------------------------------------------ presentation
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


def _journey_summary(journey: Journey) -> dict[str, Any]:
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


def _schedule_view(name: str, spec: SchedulerSpec, now: datetime) -> dict[str, Any]:
    start = parse_iso(spec.start) if spec.start else None
    end = parse_iso(spec.end) if spec.end else None
    upcoming = occurrences(spec.expression, spec.timezone, now, NEXT_FIRINGS, start=start, end=end)
    return {
        "name": name,
        "expression": spec.expression,
        "timezone": spec.timezone,
        "start": spec.start,
        "end": spec.end,
        "one_time": spec.one_time,
        "next": [iso(moment) for moment in upcoming],
    }


def _add(into: dict[str, Decimal], counts: Mapping[str, Any]) -> None:
    for name, value in counts.items():
        into[name] = into.get(name, Decimal(0)) + Decimal(value)


def _run_stats(counts: Mapping[str, Decimal], conversion: Conversion | None) -> dict[str, Any]:
    return {
        **stats_view(counts, conversion=conversion),
        "scanned": int(counts.get("scanned", 0)),
        "scheduled": int(counts.get("scheduled", 0)),
    }


# ------------------------------------------------------------------------------ checks
def _journey_conditions(journey: JourneyBody) -> Iterator[tuple[str, dict[str, Any]]]:
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
    for location, spec in _journey_conditions(journey):
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


def _file_bytes(encoded: str) -> bytes:
    """`data_base64` as the file's bytes, inflated when gzip'd (never past the import limit, so
    a small bomb cannot fill memory). Line breaks, as `base64` writes them, are ignored."""
    try:
        raw = base64.b64decode("".join(encoded.split()), validate=True)
    except (binascii.Error, ValueError) as error:
        issue = {"location": "/data_base64", "message": "not valid base64"}
        raise IssuesError("data_base64: not valid base64", [issue], code="invalid_body") from error
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        inflated = inflater.decompress(raw, MAX_TEXT_BYTES + 1)
    except zlib.error as error:
        raise ImportRefused(f"the gzip data is damaged ({error})") from error
    if len(inflated) > MAX_TEXT_BYTES or inflater.unconsumed_tail:
        raise ImportRefused(f"the file inflates to over {MAX_TEXT_BYTES:,} bytes; split it")
    if not inflater.eof:
        raise ImportRefused("the gzip data is truncated")
    return inflated
