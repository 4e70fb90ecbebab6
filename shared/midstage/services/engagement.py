"""Opens, clicks and unsubscribes from the links in sent messages, back into the event plane."""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from midstage.logic import internal_events, links
from midstage.logic.archive import records
from midstage.logic.timefmt import iso
from midstage.models.messaging import MessageRequest
from midstage.observability import count, logger
from midstage.services.ports import ArchiveSink, KeyRings, Profiles, Suppressions
from midstage.services.ports import EventSink as Events
from midstage.services.ports import StatusLedger as Ledger

LINKS = "links"  # the key ring that signs open, click and unsubscribe tokens
# The smallest transparent GIF.
PIXEL = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")


@dataclass(frozen=True)
class Page:
    status: int
    body: str | bytes
    content_type: str = "text/html; charset=utf-8"
    location: str | None = None


class Engagement:
    def __init__(
        self,
        rings: KeyRings,
        ledger: Ledger,
        profiles: Profiles,
        suppressions: Suppressions,
        events: Events,
        archive: ArchiveSink | None = None,
    ):
        self.rings = rings
        self.ledger = ledger
        self.profiles = profiles
        self.suppressions = suppressions
        self.events = events
        self.archive = archive

    def _archive(self, message: Mapping[str, Any] | None, kind: str, cause: str, now: datetime, **extra: Any) -> None:
        """The open, click or unsubscribe into the analytics archive. Never in the person's way:
        the page is answered whatever happens here (logged and counted when it fails)."""
        raw = message.get("request") if message else None
        if self.archive is None or message is None or not isinstance(raw, str):
            return
        try:
            request = MessageRequest.model_validate_json(raw)
            channel = str(message.get("channel") or request.channels[0])
            batch = records.Batch()
            batch.add(
                records.message_feedback, request, kind, now, now, channel=channel, provider_event_id=cause, **extra
            )
            self.archive.put(batch.records)
        except Exception:
            logger.exception("engagement not archived", kind=kind)
            count(ArchiveFailures=1)

    def _payload(self, token: str, kind: str, now: datetime) -> dict[str, Any] | None:
        try:
            payload = links.verify(token, self.rings.key_ring(LINKS), now=now)
        except links.BadToken:
            # A key rotated in within the cache time is not yet in this container's ring.
            if not links.names_unknown_key(token, self.rings.key_ring(LINKS), now):
                return None
            try:
                payload = links.verify(token, self.rings.key_ring(LINKS, fresh=True), now=now)
            except links.BadToken:
                return None
        return payload if payload.get("k") == kind else None

    def _emit(self, profile_id: str | None, name: str, properties: dict[str, Any], cause: str, now: datetime) -> None:
        profile = self.profiles.profile(profile_id) if profile_id else None
        person = internal_events.addressed_to(profile) if profile else None
        if person is None:
            return
        event = internal_events.track(
            person, name, properties, message_id=internal_events.internal_id(cause), timestamp=iso(now)
        )
        self.events.send({internal_events.person_key(event): [event]})

    def open(self, token: str, now: datetime) -> Page:
        """Always the pixel (a broken image helps nobody); only a valid token is recorded."""
        payload = self._payload(token, "o", now)
        if payload is not None:
            message = self.ledger.get(payload["m"])
            if message is not None:
                self.ledger.update_status(payload["m"], "opened", "the open pixel loaded", now, final_only=False)
                # Each open is its own event: the minute distinguishes repeated opens.
                cause = f"open|{payload['m']}|{iso(now)[:16]}"
                self._emit(message.get("profileId"), "Email Opened", {"messageId": payload["m"]}, cause, now)
                self._archive(message, "open", cause, now)
        return Page(200, PIXEL, "image/gif")

    def click(self, token: str, now: datetime) -> Page:
        payload = self._payload(token, "c", now)
        url = str(payload.get("u", "")) if payload else ""
        if payload is None or not url.lower().startswith(("https://", "http://")):
            return _page(400, "This link is not valid", "The link may have been altered or mistyped.")
        message = self.ledger.get(payload["m"])
        if message is not None:
            self.ledger.update_status(payload["m"], "clicked", f"clicked {url[:500]}", now, final_only=False)
            cause = f"click|{payload['m']}|{url}|{iso(now)[:16]}"
            properties = {"messageId": payload["m"], "url": url[:2000]}
            self._emit(message.get("profileId"), "Email Link Clicked", properties, cause, now)
            self._archive(message, "click", cause, now, link=url)
        return Page(302, b"", "text/plain", location=url)

    def unsubscribe_page(self, token: str, action_url: str, now: datetime) -> Page:
        payload = self._payload(token, "u", now)
        if payload is None:
            return _page(400, "This link is not valid", "The link may have been altered or mistyped.")
        what = "emails" if payload.get("c") == "email" else "text messages"
        form = (
            f'<form method="post" action="{html.escape(action_url, quote=True)}">'
            '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
            f'<button type="submit">Unsubscribe {html.escape(str(payload.get("a", "")))}</button></form>'
        )
        return _page(200, "Unsubscribe", f"Stop marketing {what} to this address?", form)

    def unsubscribe(self, token: str, now: datetime) -> Page:
        """RFC 8058 one-click (and the confirmation form): idempotent, marketing only."""
        payload = self._payload(token, "u", now)
        if payload is None:
            return _page(400, "This link is not valid", "The link may have been altered or mistyped.")
        channel, address, message_id = str(payload.get("c")), str(payload.get("a")), str(payload.get("m"))
        self.suppressions.suppress(channel, address, "unsubscribe", "marketing", now, detail=f"message {message_id}")
        self.ledger.update_status(message_id, "unsubscribed", f"{address} unsubscribed", now, final_only=False)
        properties = {"channel": channel, "purpose": "marketing", "messageId": message_id}
        cause = f"unsubscribe|{message_id}|{address}"
        self._emit(payload.get("p"), "Unsubscribed", properties, cause, now)
        if self.archive is not None:  # the ledger is read only to archive the unsubscribe
            self._archive(self.ledger.get(message_id), "unsubscribe", cause, now)
        return _page(200, "You are unsubscribed", f"{address} will get no more marketing messages from us.")


def _page(status: int, title: str, text: str, extra: str = "") -> Page:
    body = (
        '<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">'
        f"<title>{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1>"
        f"<p>{html.escape(text)}</p>{extra}</body></html>"
    )
    return Page(status, body)
