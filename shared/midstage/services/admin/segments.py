"""Segments: dynamic ones (a condition, backfilled over every stored profile when it changes)
and static ones (filled by imports through the event plane); estimates of a condition's reach."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
import zlib
from collections.abc import Mapping
from typing import Any

from midstage import keys
from midstage.clock import Clock
from midstage.config import IdentitySettings
from midstage.errors import (
    Conflict,
    HandoffFailed,
    InUse,
    IssuesError,
    NotFound,
    QueueRefused,
    Unavailable,
    version_mismatch,
)
from midstage.logic import internal_events
from midstage.logic.conditions import Issue
from midstage.logic.imports import MAX_TEXT_BYTES, ImportFormat, ImportRefused, detect_format, parse_import
from midstage.logic.segments import referenced_segments, validate_segment
from midstage.models.admin import Caller
from midstage.models.campaigns import Campaign
from midstage.models.journeys import Journey, SegmentEntry
from midstage.models.messaging import Rule
from midstage.models.requests import EstimateRequest, ImportRequest, SegmentCreate
from midstage.models.segments import Segment, SegmentBody
from midstage.services.admin.campaigns import ENDED_STATUSES
from midstage.services.admin.common import changed_by, check_new_id, refused, segments_of
from midstage.services.admin.journeys import journey_conditions
from midstage.services.admin.ports import DefinitionStore, Ingest, PartQueue, RefreshJobs
from midstage.services.ports import ProfilePages as ProfileScan
from midstage.services.segments import estimate_condition, start_refresh

ESTIMATE_BUDGET_S = 3.0
_JOB_ID = re.compile(r"rf_[0-9a-f]{24}")
_GZIP_MAGIC = b"\x1f\x8b"


class SegmentAdmin:
    def __init__(
        self,
        config: DefinitionStore,
        profiles: ProfileScan,
        refresh_jobs: RefreshJobs,
        refresh_queue: PartQueue,
        ingest: Ingest,
        identity: IdentitySettings,
        *,
        refresh_parts: int = 8,
        max_window_days: int = 90,
        estimate_budget_s: float = ESTIMATE_BUDGET_S,
        clock: Clock,
    ) -> None:
        self.config = config
        self.profiles = profiles
        self.refresh_jobs = refresh_jobs
        self.refresh_queue = refresh_queue
        self.ingest = ingest
        self.identity = identity
        self.refresh_parts = refresh_parts
        self.max_window_days = max_window_days
        self.estimate_budget_s = estimate_budget_s
        self.clock = clock

    def list_segments(self) -> dict[str, Any]:
        shown = sorted(segments_of(self.config).values(), key=lambda s: s.id)
        return {"segments": [s.model_dump(mode="json") for s in shown]}

    def _segment_issues(self, segment_id: str, body: SegmentBody, others: Mapping[str, Segment]) -> None:
        issues = validate_segment(segment_id, body, others, max_window_days=self.max_window_days)
        if issues:
            raise refused("segment", issues, code="invalid_segment")

    def create_segment(self, body: SegmentCreate, caller: Caller) -> dict[str, Any]:
        check_new_id(self.config, keys.SEGMENT_PK, Segment, body.id, "/v1/segments")
        self._segment_issues(body.id, body, segments_of(self.config))
        stamp = changed_by(self.clock, caller)
        segment = Segment(**body.model_dump(), version=1, created_at=stamp["updated_at"], **stamp)
        saved = self.config.save_document(keys.SEGMENT_PK, segment)
        refresh = self._start_refresh(saved) if saved.kind == "dynamic" else None
        return {"segment": saved.model_dump(mode="json"), "refresh": refresh}

    def get_segment(self, segment_id: str) -> dict[str, Any]:
        return self.config.get_document(keys.SEGMENT_PK, segment_id, Segment).model_dump(mode="json")

    def replace_segment(
        self, segment_id: str, body: SegmentBody, if_match: int | None, caller: Caller
    ) -> dict[str, Any]:
        """A new version. A dynamic segment whose condition changed is backfilled: every stored
        profile is judged again, not only those written from now on."""
        current = self.config.get_document(keys.SEGMENT_PK, segment_id, Segment)
        version_mismatch("segment", segment_id, current.version, if_match)
        if body.kind != current.kind:
            issue = Issue(
                "/kind",
                f"segment '{segment_id}' is {current.kind}; its kind cannot change (its members come "
                f"from {'imports' if current.kind == 'static' else 'its condition'}); create another segment",
            )
            raise refused("segment", [issue], code="invalid_segment")
        self._segment_issues(segment_id, body, segments_of(self.config))
        segment = Segment(
            **body.model_dump(),
            id=segment_id,
            version=current.version + 1,
            created_at=current.created_at,
            **changed_by(self.clock, caller),
        )
        saved = self.config.save_document(keys.SEGMENT_PK, segment)
        moved = saved.kind == "dynamic" and saved.condition != current.condition
        return {"segment": saved.model_dump(mode="json"), "refresh": self._start_refresh(saved) if moved else None}

    def delete_segment(self, segment_id: str) -> None:
        self.config.get_document(keys.SEGMENT_PK, segment_id, Segment)
        used_by = self._users_of_segment(segment_id)
        if used_by:
            names = ", ".join(f"{u['kind']} '{u['id']}'" for u in used_by[:10])
            more = f" and {len(used_by) - 10} more" if len(used_by) > 10 else ""
            raise InUse(f"segment '{segment_id}' is used by {names}{more}; change or delete them first", used_by)
        self.config.delete_document(keys.SEGMENT_PK, segment_id)

    def _users_of_segment(self, segment_id: str) -> list[dict[str, str]]:
        """What would break without the segment: campaigns still to run, journeys (enabled or not:
        enabling one is a save, which checks its segments), rules and other segments."""
        config = self.config
        used: list[dict[str, str]] = []
        for campaign in sorted(config.documents(keys.CAMPAIGN_PK, Campaign), key=lambda c: c.id):
            audience = campaign.audience
            if campaign.status not in ENDED_STATUSES and segment_id in (*audience.segments, *audience.exclude):
                used.append({"kind": "campaign", "id": campaign.id})
        for journey in sorted(config.documents(keys.JOURNEY_PK, Journey), key=lambda j: j.id):
            entry = journey.entry
            named = isinstance(entry, SegmentEntry) and entry.segment == segment_id
            if named or any(segment_id in referenced_segments(spec) for _, spec in journey_conditions(journey)):
                used.append({"kind": "journey", "id": journey.id})
        for rule in sorted(config.documents(keys.RULE_PK, Rule), key=lambda r: r.id):
            specs = [rule.conditions, rule.trigger.where]
            if rule.trigger.segment == segment_id or any(segment_id in referenced_segments(s) for s in specs):
                used.append({"kind": "rule", "id": rule.id})
        for other in sorted(segments_of(self.config).values(), key=lambda s: s.id):
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
            start_refresh(self.refresh_jobs, self.refresh_queue, job_id, doc, parts, self.clock())
        except QueueRefused as error:
            raise Unavailable(
                f"segment '{segment.id}' version {segment.version} is saved, but its backfill could not be "
                f"queued; start it with POST /v1/segments/{segment.id}/refresh"
            ) from error
        return {"jobId": job_id, "parts": parts}

    def refresh_segment(self, segment_id: str) -> dict[str, Any]:
        segment = self.config.get_document(keys.SEGMENT_PK, segment_id, Segment)
        return {"segment_id": segment.id, "version": segment.version, **self._start_refresh(segment)}

    def refresh_progress(self, segment_id: str, job_id: str) -> dict[str, Any]:
        job = self.refresh_jobs.get(job_id) if _JOB_ID.fullmatch(job_id) else None
        if job is None or job.get("segment_id") != segment_id:
            raise NotFound(f"segment '{segment_id[:100]}' has no refresh job '{job_id[:100]}'")
        return {"jobId": job_id, **job}

    def estimate(self, body: EstimateRequest) -> dict[str, Any]:
        """How many profiles a condition matches now, from a sample of the profiles when there
        are too many to read within the time budget (`exact` says which)."""
        probe = SegmentBody(name="estimate", kind="dynamic", condition=body.condition)
        issues = validate_segment("estimate", probe, segments_of(self.config), max_window_days=self.max_window_days)
        if issues:
            raise refused("condition", issues, code="invalid_segment")
        return estimate_condition(
            self.profiles,
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
        segment = self.config.get_document(keys.SEGMENT_PK, segment_id, Segment)
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
            self.ingest.send(groups)
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
