"""EXPORT privacy requests: everything held about a person, as a bundle of JSON and CSV files
with a `manifest.json` listing each file's sha256, written under
`exports/regulations/<regulateId>/` and handed out as short-lived presigned URLs.

Per person (`person-<n>/`): the profile as stored (traits, computed traits, consent with its
provenance, segments, devices, counts), its identities, merge records, timeline events,
messages from the send ledger, the suppressions that hold for their addresses or for them, and
the other records kept per profile the wiring names (journeys, offer codes, inbox, touches).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from midstage import keys
from midstage.logic import privacy
from midstage.logic.privacy import BundleFile, csv_file, json_file
from midstage.logic.timefmt import iso
from midstage.models.profile import Profile
from midstage.services.ports import PersonSuppressionLookup

MAX_EVENTS = 100_000  # a person's timeline read in full, up to this many events
MAX_MESSAGES = 10_000
_PAGE = 1000
# Bookkeeping of the profile updater, not data about the person.
_INTERNAL = ("outbox", "pending", "trait_stamps", "tag_stamps", "version")
_CHANNELS = {"email": "email", "phone": "sms"}


class Files(Protocol):
    def put(self, key: str, content: bytes, content_type: str) -> None: ...
    def signed_url(self, key: str, seconds: int) -> str: ...


class History(Protocol):
    def merges(self, profile_ids: Iterable[str]) -> list[dict[str, Any]]: ...
    def timeline(
        self, profile_ids: Sequence[str], *, limit: int, before: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]: ...


class SentMessages(Protocol):
    def list_for(self, pk: str, prefix: str, limit: int, start: str | None) -> tuple[list[str], str | None]: ...
    def many(self, message_ids: Sequence[str]) -> list[dict[str, Any]]: ...


class AddressSuppressions(Protocol):
    def suppression(self, channel: str, address: str) -> Mapping[str, Any] | None: ...


class BundleExporter:
    def __init__(
        self,
        files: Files,
        history: History,
        ledger: SentMessages,
        addresses: AddressSuppressions,
        people: PersonSuppressionLookup,
        more: Mapping[str, Callable[[str], list[dict[str, Any]]]] | None = None,
    ) -> None:
        """`more`: other records kept per profile (journey instances, offer codes, the inbox,
        campaign touches), each written as `<name>.json` from every profile of the person."""
        self.more = dict(more or {})
        self.files = files
        self.history = history
        self.ledger = ledger
        self.addresses = addresses
        self.people = people

    def signed_url(self, key: str, seconds: int) -> str:
        return self.files.signed_url(key, seconds)

    def export(self, regulate_id: str, people: Sequence[Profile], now: datetime) -> dict[str, Any]:
        """Writes the bundle; returns where its manifest and files are."""
        prefix = f"exports/regulations/{regulate_id}/"
        bundle: list[BundleFile] = []
        for n, profile in enumerate(people, start=1):
            bundle.extend(dataclasses.replace(f, name=f"person-{n}/{f.name}") for f in self.person_files(profile))
        about = {
            "regulateId": regulate_id,
            "generatedAt": iso(now),
            "people": len(people),
            "profileIds": [p.id for p in people],
            "retention": "the bundle is kept under the archive bucket's exports/ lifecycle (docs/privacy.md)",
        }
        manifest = privacy.manifest(bundle, about)
        for f in bundle:
            self.files.put(prefix + f.name, f.content, f.content_type)
        self.files.put(prefix + manifest.name, manifest.content, manifest.content_type)
        # Kept compact (every person has the same files): the request's item stays small.
        names = [f.name.split("/", 1)[1] for f in bundle[: len(bundle) // len(people)]] if people else []
        return {"manifest": prefix + manifest.name, "prefix": prefix, "people": len(people), "names": names}

    def person_files(self, profile: Profile) -> list[BundleFile]:
        stored = {k: v for k, v in dataclasses.asdict(profile).items() if k not in _INTERNAL}
        ids = [profile.id, *profile.merged_from]
        identities = [{"type": t, "value": v} for t, values in sorted(profile.identities.items()) for v in values]
        events = self._timeline(ids)
        messages = self._messages(ids)
        consents = [
            {"channelPurpose": key, **{k: v for k, v in entry.items()}}
            for key, entry in sorted(profile.consent.items())
        ]
        segments = [{"segmentId": s, "kind": "dynamic", "since": at} for s, at in sorted(profile.segments.items())]
        segments += [
            {"segmentId": s, "kind": "static", "since": state[0], "member": state[1]}
            for s, state in sorted(profile.static_segments.items())
            if isinstance(state, list) and len(state) == 2
        ]
        suppressions = self._suppressions(profile)
        return [
            json_file("profile.json", stored),
            csv_file("traits.csv", privacy.flatten(profile.traits)),
            csv_file("computed_traits.csv", privacy.flatten(profile.computed)),
            csv_file("identities.csv", identities),
            json_file("merges.json", self.history.merges(ids)),
            json_file("events.json", events),
            csv_file("events.csv", [_event_row(e) for e in events]),
            csv_file("segments.csv", segments),
            csv_file("consents.csv", consents),
            json_file("messages.json", messages),
            csv_file("messages.csv", [{k: v for k, v in m.items() if k != "request"} for m in messages]),
            csv_file("suppressions.csv", suppressions),
            *(
                json_file(f"{name}.json", [row for p in ids for row in read(p)])
                for name, read in sorted(self.more.items())
            ),
        ]

    def _timeline(self, profile_ids: list[str]) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        cursor: str | None = None
        while len(events) < MAX_EVENTS:
            page, cursor = self.history.timeline(profile_ids, limit=_PAGE, before=cursor)
            events.extend(page)
            if cursor is None:
                break
        return events

    def _messages(self, profile_ids: list[str]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for profile_id in profile_ids:
            start: str | None = None
            while len(found) < MAX_MESSAGES:
                ids, start = self.ledger.list_for(keys.profile_pk(profile_id), keys.MESSAGE_REF_PREFIX, _PAGE, start)
                found.extend(self.ledger.many(ids))
                if start is None:
                    break
        hidden = ("pk", "sk", "expiresAt", "leaseUntil")
        return [{k: v for k, v in m.items() if k not in hidden} for m in found]

    def _suppressions(self, profile: Profile) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for id_type, channel in _CHANNELS.items():
            for address in profile.identities.get(id_type, []):
                found = self.addresses.suppression(channel, address)
                if found:
                    rows.append({"kind": "address", "channel": channel, "address": address, **_plain(found)})
        everyone = privacy.person_identifiers(profile.id, profile.merged_from, profile.identities)
        for (id_type, value), regulate_id in sorted(self.people.matching(everyone).items()):
            rows.append(
                {"kind": "privacy_request", "identifierType": id_type, "value": value, "regulateId": regulate_id}
            )
        return rows


def _plain(record: Mapping[str, Any]) -> dict[str, Any]:
    return {k: record[k] for k in ("reason", "scope", "detail", "at") if k in record}


def _event_row(event: Mapping[str, Any]) -> dict[str, Any]:
    top = ("messageId", "type", "event", "timestamp", "receivedAt", "sourceId", "userId", "anonymousId")
    row = {k: event.get(k) for k in top}
    row["properties"] = event.get("properties")
    row["traits"] = event.get("traits")
    row["context"] = event.get("context")
    return row


def bundle_files(bundle: Mapping[str, Any]) -> list[dict[str, str]]:
    """Each file of a bundle as `export` recorded it: its name in the bundle and its key."""
    people = range(1, int(bundle.get("people", 0)) + 1)
    names = [f"person-{n}/{name}" for n in people for name in bundle.get("names", [])]
    return [{"name": name, "key": f"{bundle['prefix']}{name}"} for name in names]
