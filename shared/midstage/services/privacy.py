"""Privacy requests (Segment's Regulations API): POST /v1/regulations stores a request
INITIALIZED and queues it; the import queue's worker (functions/run_imports) runs it, resolving
every subject through OneID to the whole person (merged profiles included), and records a report
per store it touched.

SUPPRESS_ONLY takes effect twice: at once, in the POST itself, for the identifiers as given (the
next send to them is blocked, however soon it comes), then, in the worker, for every identifier
and profile of each person found. UNSUPPRESS lifts the same set. EXPORT writes a bundle per
person (services/privacy_export.py). DELETE_ONLY erases each person from every store
(services/erasure.py); SUPPRESS_WITH_DELETE suppresses them as SUPPRESS_ONLY does, then erases.

A worker claims a request with a conditional write before working it: of two tasks naming one
request (a repeat's, a redelivery), one works it and the other leaves it alone, unless the
claim's lease ran out (its worker stopped without ending it).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from midstage.errors import InvalidInput, MidstageError, NotFound, NotSupportedYet, QueueRefused, Unavailable
from midstage.logic import erasure, privacy
from midstage.logic.identity import Identifier
from midstage.logic.timefmt import iso
from midstage.models.messages import RegulationTask
from midstage.models.profile import Profile
from midstage.models.requests import RegulationCreate
from midstage.observability import logger
from midstage.services.bulk_import import Tasks
from midstage.services.erasure import Erasure
from midstage.services.privacy_export import bundle_files

# A repeat of a request within this window, with no other request on its subjects in between,
# is the same request (the same regulateId, nothing done twice).
REPLAY_WINDOW = timedelta(hours=24)
# Requests that tell destinations (services/destination_notices.py); the erasure types can join
# once a delete notice's stay in a destination's queue is squared with erasure (docs/privacy.md).
NOTIFIED_TYPES = frozenset({"SUPPRESS_ONLY"})
UNDER_WAY = ("INITIALIZED", "RUNNING")


def _same_request(kept: Mapping[str, Any] | None, actor: str) -> bool:
    if kept is None or kept.get("requestedBy") != actor or kept["status"] == "FAILED":
        return False
    return kept["status"] in UNDER_WAY or kept["regulationType"] == "EXPORT"


REGULATE_ID = re.compile(r"reg_[0-9]{20}[0-9a-f]{12}")
SIGNED_URL_SECONDS = 900
MAX_EXPORT_SUBJECTS = 100
# A worker's claim on a request lasts as long as the worker can run (the function's 15 minutes),
# less than the queue's visibility timeout: a task offered again finds the claim of a worker that
# stopped already run out.
CLAIM_SECONDS = 900
SUPPRESSING = ("SUPPRESS_ONLY", "SUPPRESS_WITH_DELETE")
HIDDEN = ("subjects", "bundle", "erasing", "claimUntil")


class RegulationStore(Protocol):
    def create(self, record: Mapping[str, Any], subjects_digest: str, replay_after: str) -> tuple[str, bool]: ...
    def get(self, regulate_id: str) -> dict[str, Any] | None: ...
    def claim(self, regulate_id: str, token: str, now: datetime, until: datetime) -> bool: ...
    def save(
        self, record: Mapping[str, Any], *, claim: str | None = None, release: bool = False, forget: bool = False
    ) -> bool: ...
    def page(self, limit: int, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]: ...


class Suppressor(Protocol):
    def suppress(self, identifiers: Iterable[Identifier], regulate_id: str, now: datetime) -> int: ...
    def settle(self, identifiers: Iterable[Identifier], regulate_id: str, now: datetime, *, lift: bool) -> int: ...


class People(Protocol):
    def identity_owners(self, identifiers: Iterable[Identifier]) -> dict[Identifier, str]: ...
    def live_profiles(self, profile_ids: Iterable[str]) -> tuple[dict[str, Profile], dict[str, str]]: ...


class Exporter(Protocol):
    def export(self, regulate_id: str, people: Sequence[Profile], now: datetime) -> dict[str, Any]: ...
    def signed_url(self, key: str, seconds: int) -> str: ...


class Notifier(Protocol):
    def notify_destinations(self, regulation: Mapping[str, Any], people: Sequence[Profile]) -> dict[str, Any]: ...


class PrivacyRequests:
    def __init__(
        self,
        regulations: RegulationStore,
        suppressions: Suppressor,
        people: People,
        tasks: Tasks,
        exporter: Exporter | None,
        *,
        clock: Callable[[], datetime],
        new_token: Callable[[], str] = lambda: secrets.token_hex(6),
        erasure: Erasure | None = None,
        destinations: Notifier | None = None,
    ) -> None:
        self.regulations = regulations
        self.suppressions = suppressions
        self.people = people
        self.tasks = tasks
        self.exporter = exporter
        self.clock = clock
        self.new_token = new_token
        self.erasure = erasure
        self.destinations = destinations  # services/destination_notices.py

    # ------------------------------------------------------------------ the API
    def create(self, body: RegulationCreate, actor: str) -> tuple[bool, dict[str, Any]]:
        """(created, answer): a repeat of a recent identical request answers its regulateId."""
        if body.regulationType in privacy.NOT_SUPPORTED_YET:
            raise NotSupportedYet(
                f"{body.regulationType} is one of Segment's types that Midstage does not do: DELETE_ONLY erases "
                "the person from every store (the archive included), SUPPRESS_WITH_DELETE also blocks them",
                code="regulation_type_not_supported",
            )
        if body.regulationType == "EXPORT" and self.exporter is None:
            raise Unavailable("exports need the archive bucket: set ARCHIVE_BUCKET on the admin function")
        if body.regulationType == "EXPORT" and len(body.subjectIds) > MAX_EXPORT_SUBJECTS:
            raise InvalidInput(
                f"an EXPORT names at most {MAX_EXPORT_SUBJECTS} subjects (a bundle per person); split it",
                code="too_many_subjects",
            )
        subjects = privacy.normalise_subjects(body.subjectType, body.subjectIds)
        if subjects.invalid:
            first = subjects.invalid[0]
            raise InvalidInput(
                f"{len(subjects.invalid)} subjectIds are not a valid {body.subjectType}, the first at "
                f"/subjectIds/{first}",
                code="invalid_subject",
            )
        now = self.clock()
        regulate_id = f"reg_{now:%Y%m%d%H%M%S%f}{self.new_token()}"
        record = {
            "regulateId": regulate_id,
            "regulationType": body.regulationType,
            "subjectType": body.subjectType,
            "subjects": [list(i) for i in subjects.identifiers],
            "jurisdiction": body.jurisdiction,
            "receivedAt": iso(now),
            "dueAt": iso(privacy.due_date(now, body.jurisdiction)),
            "requestedBy": actor,
            "status": "INITIALIZED",
            "report": [],
            "subjectCount": len(subjects.identifiers),
        }
        digest = privacy.subjects_digest(body.subjectType, subjects.identifiers)
        kept_id, created = self.regulations.create(record, digest, iso(now - REPLAY_WINDOW))
        kept = record if created else self.regulations.get(kept_id)
        if not created and not _same_request(kept, actor):
            # A repeat is the same request only for the caller who made it, and a suppression or
            # its lift only while under way: once it ended, another request may have changed the
            # same people since (an UNSUPPRESS by another of their identifiers), so it is done anew.
            kept_id, created = self.regulations.create(record, digest, iso(now + timedelta(microseconds=1)))
            kept = record
        if kept is not None and kept["status"] == "INITIALIZED":
            # A repeat of a request not yet worked does its start again: the first may have
            # stopped between storing it and queueing it (the work is safe to do twice).
            self._start(kept, now)
        return created, {"regulateId": kept_id}

    def _start(self, record: Mapping[str, Any], now: datetime) -> None:
        regulate_id = str(record["regulateId"])
        if record["regulationType"] in SUPPRESSING:
            # Before the answer: from the 202 on, no send to these identifiers goes out.
            self.suppressions.suppress([(str(t), str(v)) for t, v in record["subjects"]], regulate_id, now)
        try:
            self.tasks.send_bodies([RegulationTask(regulate_id=regulate_id).body()])
        except QueueRefused as error:
            raise Unavailable(f"the request is stored but could not be queued; send it again ({error})") from error

    def get(self, regulate_id: str) -> dict[str, Any]:
        record = self.regulations.get(regulate_id) if REGULATE_ID.fullmatch(regulate_id) else None
        if record is None:
            raise NotFound(f"no privacy request '{regulate_id[:80]}'", code="regulation_not_found")
        return self._present(record, full=True)

    def list(self, limit: int, cursor: str | None, overdue: bool | None) -> dict[str, Any]:
        if cursor is not None and not REGULATE_ID.fullmatch(cursor):
            raise InvalidInput("the cursor is not one this listing gave", code="invalid_cursor")
        records, next_cursor = self.regulations.page(limit, cursor)
        shown = [self._present(r, full=False) for r in records]
        if overdue is not None:  # a filter of the page read: a page may come back shorter
            shown = [r for r in shown if r["overdue"] is overdue]
        return {"regulations": shown, "cursor": next_cursor}

    def _present(self, record: Mapping[str, Any], *, full: bool) -> dict[str, Any]:
        shown = {k: v for k, v in record.items() if k not in HIDDEN}
        shown["subjectCount"] = len(record.get("subjects") or []) or int(record.get("subjectCount") or 0)
        shown["overdue"] = privacy.is_overdue(record, iso(self.clock()))
        bundle = record.get("bundle")
        if full and bundle and self.exporter is not None and record.get("status") == "FINISHED":
            shown["export"] = {
                "url": self.exporter.signed_url(str(bundle["manifest"]), SIGNED_URL_SECONDS),
                "expiresAt": iso(self.clock() + timedelta(seconds=SIGNED_URL_SECONDS)),
                "files": [
                    {**f, "url": self.exporter.signed_url(f["key"], SIGNED_URL_SECONDS)} for f in bundle_files(bundle)
                ],
            }
        return shown

    # ------------------------------------------------------------------ the worker
    def run(self, regulate_id: str) -> str:
        """Work one request to its end; a request already ended, or being worked by another
        worker, is left as it is (a redelivery, a repeat's second task)."""
        record = self.regulations.get(regulate_id)
        if record is None:
            logger.warning("privacy request not found", regulate_id=regulate_id)
            return "missing"
        if record["status"] in ("FINISHED", "FAILED"):
            return str(record["status"])
        token, now = self.new_token(), self.clock()
        if not self.regulations.claim(regulate_id, token, now, now + timedelta(seconds=CLAIM_SECONDS)):
            logger.info("privacy request worked by another worker", regulate_id=regulate_id)
            return "claimed"
        record = {**record, "status": "RUNNING", "startedAt": iso(now)}
        try:
            record.update(self._work(record, token))
            record["status"] = "FINISHED"
        except (MidstageError, ValueError) as error:  # what another try would meet again: FAILED, with why
            logger.warning("privacy request failed", regulate_id=regulate_id, error=type(error).__name__)
            record["status"] = "FAILED"
            record["error"] = f"{type(error).__name__}: {str(error)[:300]}"
        except Exception:
            # A store throttled or unreachable: the claim is let go and the task fails, so the
            # queue offers it again; RUNNING is worked again, and after its retries it is a dead letter.
            self.regulations.save(self.regulations.get(regulate_id) or record, claim=token, release=True)
            raise
        record["finishedAt"] = iso(self.clock())
        record.pop("erasing", None)
        done = record["status"] == "FINISHED" and record["regulationType"] in erasure.ERASURE_TYPES
        if not self.regulations.save(record, claim=token, release=True, forget=done):
            logger.warning("privacy request taken over by another worker", regulate_id=regulate_id)
            return "claimed"
        return str(record["status"])

    def _work(self, record: dict[str, Any], claim: str) -> dict[str, Any]:
        subjects: list[Identifier] = [(str(t), str(v)) for t, v in record["subjects"]]
        people = self.resolve(subjects)
        unmatched = len(subjects) - sum(1 for s in subjects if s in people.found)
        report: list[dict[str, Any]] = [
            {"store": "profiles", "state": "FINISHED", "people": len(people.profiles), "unmatchedSubjects": unmatched}
        ]
        kind, now = record["regulationType"], self.clock()
        everything = sorted(
            set(subjects).union(
                *(privacy.person_identifiers(p.id, p.merged_from, p.identities) for p in people.profiles)
            )
        )
        answer: dict[str, Any] = {}
        if kind in erasure.ERASURE_TYPES:
            report.extend(dict(entry) for entry in self._erase(record, claim, people.profiles, everything, report))
        elif kind in ("SUPPRESS_ONLY", "UNSUPPRESS"):
            lift = kind == "UNSUPPRESS"
            decided = self.suppressions.settle(everything, str(record["regulateId"]), now, lift=lift)
            figures = {"identifiersLifted" if lift else "identifiersSuppressed": decided}
            # Identifiers a later request already decided are left to it.
            report.append(
                {"store": "suppressions", "state": "FINISHED", **figures, "laterRequestKept": len(everything) - decided}
            )
        elif kind == "EXPORT":
            assert self.exporter is not None
            bundle = self.exporter.export(str(record["regulateId"]), people.profiles, now)
            answer["bundle"] = bundle
            report.append({"store": "exports", "state": "FINISHED", "files": len(bundle_files(bundle)) + 1})
        else:  # refused at the API; a record of another type was not written by this release
            raise ValueError(f"{kind} is not worked by this release")
        # Suppressions only, for now: a `delete` notice names the person while it waits in the
        # destination's queue, which an erasure's "nothing of them left" does not yet allow for.
        if kind in NOTIFIED_TYPES and self.destinations is not None:
            report.append(self.destinations.notify_destinations(record, people.profiles))
        answer["report"] = report
        return answer

    def _erase(
        self,
        record: dict[str, Any],
        claim: str,
        profiles: Sequence[Profile],
        everything: Sequence[Identifier],
        found_report: Sequence[Mapping[str, Any]],
    ) -> Sequence[Mapping[str, Any]]:
        """Suppress (SUPPRESS_WITH_DELETE) then erase every person found now or by an earlier try
        of this request (whose profiles that try may already have deleted)."""
        if self.erasure is None:
            raise Unavailable("erasure is not wired on this worker")
        remembered = [erasure.Person.from_record(p) for p in record.get("erasing") or []]
        found = [erasure.person(p.id, p.merged_from, p.identities) for p in profiles]
        people = erasure.merged(found, remembered)
        head: list[dict[str, Any]] = []
        if record["regulationType"] == "SUPPRESS_WITH_DELETE":
            every = sorted(
                {*everything, *(i for p in people for i in p.identifiers)}
                | {(privacy.PROFILE_ID, pid) for p in people for pid in p.profile_ids}
            )
            decided = self.suppressions.settle(every, str(record["regulateId"]), self.clock(), lift=False)
            head.append(
                {
                    "store": "suppressions",
                    "state": "FINISHED",
                    "identifiersSuppressed": decided,
                    "laterRequestKept": len(every) - decided,
                }
            )
        # Who is being erased is kept on the request until it is done: a retry finds them there.
        record["erasing"] = [p.as_record() for p in people]
        if not self.regulations.save({**record, "report": [*found_report, *head]}, claim=claim):
            raise Unavailable("another worker took the request over")

        def progress(stores: Sequence[Mapping[str, Any]]) -> None:
            self.regulations.save({**record, "report": [*found_report, *head, *stores]}, claim=claim)

        stores = self.erasure.erase(record, people, progress)
        if not erasure.finished(stores, self.erasure.store_names()):
            raise RuntimeError("a store did not report its erasure done")
        return [*head, *stores]

    def resolve(self, subjects: Sequence[Identifier]) -> Resolved:
        """Each subject's person: profile ids as given, identities through their owners, and
        merged-away profiles followed to the profile they live on."""
        owners = self.people.identity_owners([s for s in subjects if s[0] != privacy.PROFILE_ID])
        by_subject = {s: owners[s] for s in subjects if s in owners}
        by_subject.update({s: s[1] for s in subjects if s[0] == privacy.PROFILE_ID})
        live, resolved = self.people.live_profiles(sorted(set(by_subject.values())))
        found = {s for s, profile_id in by_subject.items() if profile_id in resolved}
        return Resolved(sorted(live.values(), key=lambda p: p.id), found)


class Resolved:
    def __init__(self, profiles: list[Profile], found: set[Identifier]) -> None:
        self.profiles = profiles
        self.found = found
