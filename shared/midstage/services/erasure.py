"""Erasure of people from every store that holds them (SUPPRESS_WITH_DELETE, DELETE_ONLY).

One deleter per store, run in `ORDER`: a deleter reads what points elsewhere (a timeline page
names its dedupe markers, a message reference its ledger record, a journey instance its timer)
and deletes the far items before the near ones, and the profile items go last, so a try that
stops half way leaves everything the next try needs to find the rest. Each deleter reports
`{store, status, items}`; each pass is appended to the audit log. A failure goes up (the queue
offers the request again) after the report so far is saved, with the failed store `failed`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from midstage import keys
from midstage.logic import audit, erasure
from midstage.logic.erasure import Person
from midstage.logic.identity import Identifier
from midstage.logic.timefmt import iso
from midstage.observability import logger
from midstage.services.admin.audit import AuditLog


class Table(Protocol):
    def items(self, pk: str, prefix: str = "") -> list[dict[str, Any]]: ...
    def existing(self, wanted: Sequence[Mapping[str, str]]) -> list[dict[str, Any]]: ...
    def delete(self, wanted: Iterable[Mapping[str, str]]) -> int: ...
    def delete_identities(self, identifiers: Iterable[Identifier], profile_ids: Sequence[str]) -> int: ...
    def detach_code(self, code: str, profile_ids: Sequence[str], now: datetime) -> bool: ...


class Archive(Protocol):
    def erase(self, wanted: Mapping[str, Sequence[str]]) -> tuple[int, int]: ...


class MessageRecords(Protocol):
    def many(self, message_ids: Sequence[str]) -> list[dict[str, Any]]: ...


def _key(item: Mapping[str, Any]) -> dict[str, str]:
    return {"pk": str(item["pk"]), "sk": str(item["sk"])}


class Stores:
    """The deleters, each `store -> erase(people) -> items`, over one table and the archive."""

    def __init__(
        self,
        table: Table,
        ledger: MessageRecords,
        archive: Archive | None,
        sources: Callable[[], list[str]],
        *,
        destinations: Callable[[], list[str]] = list,
        clock: Callable[[], datetime],
        origin_shards: int,
    ) -> None:
        self.table = table
        self.ledger = ledger
        self.archive = archive
        self.sources = sources
        self.destinations = destinations
        self.clock = clock
        self.origin_shards = origin_shards

    def deleters(self) -> list[tuple[str, Callable[[Sequence[Person]], int]]]:
        found: list[tuple[str, Callable[[Sequence[Person]], int]]] = [
            ("dedupe_markers", self.markers),
            ("timeline", self._prefix(keys.TIMELINE_PREFIX)),
            ("messages", self.messages),
            ("inbox", self._prefix(keys.INBOX_PREFIX)),
            ("caps", self.caps),
            ("journeys", self.journeys),
            ("campaign_touches", self.touches),
            ("offer_codes", self.offer_codes),
            ("quarantine", self.quarantine),
            ("address_suppressions", self.address_suppressions),
            ("destination_queues", self.destination_queues),
        ]
        if self.archive is not None:
            found.append(("archive", self.archived))
        found += [
            ("merges", self._prefix(keys.MERGE_PREFIX)),
            ("identities", self.identities),
            ("profile_items", self.profile_items),
        ]
        return found

    # ------------------------------------------------------------------ under the profiles
    def _under(self, people: Sequence[Person], prefix: str) -> list[dict[str, Any]]:
        return [i for p in people for pid in p.profile_ids for i in self.table.items(keys.profile_pk(pid), prefix)]

    def _prefix(self, prefix: str) -> Callable[[Sequence[Person]], int]:
        def erase(people: Sequence[Person]) -> int:
            return self.table.delete(_key(i) for i in self._under(people, prefix))

        return erase

    def markers(self, people: Sequence[Person]) -> int:
        pages = self._under(people, keys.TIMELINE_PREFIX)
        return self.table.delete(erasure.marker_keys(e for page in pages for e in page.get("doc") or []))

    def messages(self, people: Sequence[Person]) -> int:
        """Ledger records with their origin references, quiet-hours timers and once-markers, then
        the person's references to them."""
        refs = self._under(people, keys.MESSAGE_REF_PREFIX)
        records = self.ledger.many([str(r["messageId"]) for r in refs])
        far = [k for m in records for k in erasure.message_keys(m, self.origin_shards)]
        far += [_key(i) for m in records for pk in erasure.once_partitions(str(m["id"])) for i in self.table.items(pk)]
        return self.table.delete(far) + self.table.delete(_key(r) for r in refs)

    def caps(self, people: Sequence[Person]) -> int:
        return self.table.delete(_key(i) for i in self._under(people, keys.CAPS_SK) + self._under(people, "FIRE#"))

    def journeys(self, people: Sequence[Person]) -> int:
        """Instances and the timers of their waits."""
        instances = self._under(people, keys.JOURNEY_PREFIX)
        timers = [erasure.journey_timer(i.get("doc") or {}) for i in instances]
        return self.table.delete(t for t in timers if t) + self.table.delete(_key(i) for i in instances)

    def touches(self, people: Sequence[Person]) -> int:
        """Campaign touches and the conversions counted from them (their once-markers)."""
        touches = self._under(people, keys.TOUCH_PREFIX)
        parsed = [_touch(str(i["sk"])) for i in touches]
        profile_ids = [pid for p in people for pid in p.profile_ids]
        markers = erasure.conversion_markers([t for t in parsed if t], profile_ids)
        present = self.table.existing(markers)
        return self.table.delete(_key(i) for i in present) + self.table.delete(_key(i) for i in touches)

    def offer_codes(self, people: Sequence[Person]) -> int:
        """Codes held are detached from the person and kept issued (marked erased), then the
        holdings and refusals go."""
        holdings = self._under(people, keys.OFFER_HOLDING_PREFIX)
        refusals = self._under(people, "OFFERREFUSAL#")
        codes = {str(v) for h in holdings for v in _codes(h)}
        profile_ids = sorted(pid for p in people for pid in p.profile_ids)
        detached = sum(self.table.detach_code(code, profile_ids, self.clock()) for code in sorted(codes))
        return detached + self.table.delete(_key(i) for i in holdings + refusals)

    # ------------------------------------------------------------------ shared stores
    def quarantine(self, people: Sequence[Person]) -> int:
        """Quarantined input naming any of their identifiers or profiles (every source's entries
        are read: they are few, and kept 30 days)."""
        wanted = frozenset(v for p in people for v in p.values)
        theirs = [
            _key(item)
            for source in self.sources()
            for item in self.table.items(keys.quarantine_pk(source))
            if erasure.mentions(item.get("doc"), wanted)
        ]
        return self.table.delete(theirs)

    def destination_queues(self, people: Sequence[Person]) -> int:
        """Their events waiting for a destination, or kept failed for a redrive (`DQ#`, `DF#`)."""
        profile_ids = {pid for p in people for pid in p.profile_ids}
        wanted = frozenset(v for p in people for v in p.values)
        theirs = [
            _key(item)
            for destination in self.destinations()
            for pk in (keys.destination_queue_pk(destination), keys.destination_failed_pk(destination))
            for item in self.table.items(pk)
            if item.get("profile_id") in profile_ids or erasure.mentions(_json(item.get("payload")), wanted)
        ]
        return self.table.delete(theirs)

    def address_suppressions(self, people: Sequence[Person]) -> int:
        """Per-address suppressions of their emails and phones (the address is the key)."""
        wanted = [keys.suppression_key("email", v) for p in people for v in p.of_type("email")]
        wanted += [keys.suppression_key("sms", v) for p in people for v in p.of_type("phone")]
        return self.table.delete(_key(i) for i in self.table.existing(wanted))

    def archived(self, people: Sequence[Person]) -> int:
        assert self.archive is not None
        _, rows = self.archive.erase(erasure.archive_filter(people))
        return rows

    def identities(self, people: Sequence[Person]) -> int:
        return sum(self.table.delete_identities(p.identifiers, p.profile_ids) for p in people)

    def profile_items(self, people: Sequence[Person]) -> int:
        """Everything left under their profiles: the profile items, tombstones included (with
        the consent, segment memberships and traits they hold), and any kind of item added later."""
        return self.table.delete(_key(i) for i in self._under(people, ""))


def _json(text: Any) -> Any:
    try:
        return json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None


def _touch(sort_key: str) -> dict[str, str] | None:
    """`TOUCH#<at>#<kind>#<originId>#<run>` read back (keys.touch_sk)."""
    parts = sort_key[len(keys.TOUCH_PREFIX) :].rsplit("#", 3)
    if len(parts) != 4:
        return None
    return {"at": parts[0], "kind": parts[1], "origin_id": parts[2], "run": parts[3]}


def _codes(holding: Mapping[str, Any]) -> list[str]:
    found = [holding["current"]] if isinstance(holding.get("current"), str) else []
    causes = holding.get("causes")
    return found + ([v for v in causes.values() if isinstance(v, str)] if isinstance(causes, Mapping) else [])


class Erasure:
    def __init__(self, stores: Stores, audit_log: AuditLog | None, *, clock: Callable[[], datetime]) -> None:
        self.stores = stores
        self.audit_log = audit_log
        self.clock = clock

    def store_names(self) -> list[str]:
        return [name for name, _ in self.stores.deleters()]

    def erase(
        self,
        record: Mapping[str, Any],
        people: Sequence[Person],
        save: Callable[[list[dict[str, Any]]], None],
    ) -> list[dict[str, Any]]:
        """Each store's deleter over `people`, in order; the report, saved after every store."""
        report: list[dict[str, Any]] = []
        for store, deleter in self.stores.deleters():
            try:
                items = deleter(people)
            except Exception as error:
                logger.warning("erasure store failed", regulate_id=record["regulateId"], store=store)
                failed = erasure.store_report(store, 0, erasure.FAILED, error=type(error).__name__)
                self._audit(record, failed)
                save([*report, failed])
                raise
            entry = erasure.store_report(store, items)
            self._audit(record, entry)
            report.append(entry)
            save(report)
        return report

    def _audit(self, record: Mapping[str, Any], entry: Mapping[str, Any]) -> None:
        """One entry per store and pass: who asked, which request, what store, how many items (no
        personal data: the report holds counts)."""
        if self.audit_log is None:
            return
        self.audit_log.append(
            {
                "at": iso(self.clock()),
                "actor": record.get("requestedBy"),
                "role": "privacy_worker",
                "requestId": record["regulateId"],
                "correlationId": None,
                "kind": "write",
                "action": f"ERASE {entry['store']}",
                "target": f"regulateId={record['regulateId']}",
                "bodyDigest": None,
                "resultDigest": audit.digest(json.dumps(entry, sort_keys=True)),
                "status": 200 if entry["status"] == erasure.DONE else 503,
            }
        )
