"""A person's consent (changed through the event plane, as every profile change is) and their
inbox (listed, marked read)."""

from __future__ import annotations

import secrets
from typing import Any

from midstage import keys
from midstage.clock import Clock
from midstage.config import IdentitySettings
from midstage.errors import Conflict, HandoffFailed, IssuesError, Unavailable
from midstage.logic import consent, internal_events
from midstage.logic.collect import FUTURE_TOLERANCE
from midstage.logic.profile import CONSENT_UPDATED
from midstage.logic.timefmt import iso, parse_iso
from midstage.models.admin import Caller
from midstage.models.profile import Profile
from midstage.models.requests import ConsentUpdate, InboxRead
from midstage.services import profiles
from midstage.services.admin.common import check_cursor
from midstage.services.admin.ports import Inbox, Ingest, ProfileReader
from midstage.services.profiles import redact, sensitive_values

INBOX_SWEEP_LIMIT = 1000  # entries one "mark all read" looks at, newest first


class ConsentAdmin:
    def __init__(self, profiles: ProfileReader, ingest: Ingest, identity: IdentitySettings, *, clock: Clock) -> None:
        self.profiles = profiles
        self.ingest = ingest
        self.identity = identity
        self.clock = clock

    def profile(self, ref: str) -> Profile:
        return profiles.resolve(ref, self.profiles, self.identity)

    def update_consent(self, ref: str, body: ConsentUpdate) -> dict[str, Any]:
        """Queue the choice at the time the person made it (`timestamp`, else now): the profile
        keeps the newest choice per channel and purpose, so an older grant changes nothing."""
        received = self.clock()
        if body.timestamp is not None and parse_iso(body.timestamp) > received + FUTURE_TOLERANCE:
            issue = {"location": "/timestamp", "message": "is in the future: consent is recorded when it was given"}
            raise IssuesError(f"timestamp: {issue['message']}", [issue], code="invalid_body")
        profile = self.profile(ref)
        person = internal_events.addressed_to(profile)
        if person is None:
            raise Conflict(f"profile '{profile.id}' has no userId or anonymousId to address an event to")
        now = iso(received)
        at = body.timestamp or now
        message_id = internal_events.internal_id("consent", profile.id, now, secrets.token_hex(8))
        properties = {"channel": body.channel, "purpose": body.purpose, "granted": body.granted, "source": body.source}
        event = internal_events.track(person, CONSENT_UPDATED, properties, message_id=message_id, timestamp=at)
        try:
            self.ingest.send({internal_events.person_key(event): [event]})
        except HandoffFailed as error:
            raise Unavailable("the consent change could not be queued; retry") from error
        return {
            "profileId": profile.id,
            "messageId": message_id,
            "event": CONSENT_UPDATED,
            **properties,
            "timestamp": at,
        }

    def consents(self, ref: str) -> dict[str, Any]:
        """The person's recorded choices with where and when each was made, and what decides
        delivery per channel (a merged-away reference answers for the surviving profile)."""
        profile = self.profile(ref)
        return {"profileId": profile.id, **consent.view(profile.consent)}


class InboxAdmin:
    def __init__(self, profiles: ProfileReader, inbox: Inbox, identity: IdentitySettings, *, clock: Clock) -> None:
        self.profiles = profiles
        self.inbox_store = inbox
        self.identity = identity
        self.clock = clock

    def profile(self, ref: str) -> Profile:
        return profiles.resolve(ref, self.profiles, self.identity)

    def inbox(self, ref: str, limit: int, cursor: str | None, caller: Caller) -> dict[str, Any]:
        profile = self.profile(ref)
        check_cursor(cursor, keys.INBOX_PREFIX)
        entries, next_cursor = self.inbox_store.list(profile.id, limit, cursor)
        answer = {"profileId": profile.id, "entries": entries, "cursor": next_cursor}
        return redact(answer, sensitive_values(profile)) if caller.masked else answer

    def mark_read(self, ref: str, body: InboxRead) -> dict[str, Any]:
        profile = self.profile(ref)
        now = self.clock()
        if body.cursors is not None:
            missing = [c for c in dict.fromkeys(body.cursors) if not self.inbox_store.mark_read(profile.id, c, now)]
            return {"profileId": profile.id, "marked": len(set(body.cursors)) - len(missing), "notFound": missing}
        marked, seen, cursor = 0, 0, None
        while seen < INBOX_SWEEP_LIMIT:
            entries, cursor = self.inbox_store.list(profile.id, 100, cursor)
            seen += len(entries)
            for entry in entries:
                if entry["readAt"] is None and self.inbox_store.mark_read(profile.id, entry["cursor"], now):
                    marked += 1
            if cursor is None:
                break
        return {"profileId": profile.id, "marked": marked, "notFound": []}
