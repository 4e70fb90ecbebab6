"""Messages sent through the API (queued for delivery, at most once per idempotency key) and
the ledger's records of every message, shown masked to roles below data_operator."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from midstage import keys
from midstage.clock import Clock
from midstage.config import IdentitySettings
from midstage.errors import InvalidInput, NotFound, QueueRefused, Unavailable
from midstage.logic.timefmt import iso
from midstage.models.admin import Caller
from midstage.models.messaging import MessageRequest, Origin, message_id_for
from midstage.models.profile import Profile
from midstage.models.requests import SendMessage
from midstage.services import profiles
from midstage.services.admin.common import check_cursor
from midstage.services.admin.ports import DeliveryQueue, MessageHistory, ProfileReader, TemplateStore
from midstage.services.profiles import redact, sensitive_values


class MessageAdmin:
    def __init__(
        self,
        config: TemplateStore,
        profiles: ProfileReader,
        ledger: MessageHistory,
        delivery: DeliveryQueue,
        identity: IdentitySettings,
        *,
        clock: Clock,
    ) -> None:
        self.config = config
        self.profiles = profiles
        self.ledger = ledger
        self.delivery = delivery
        self.identity = identity
        self.clock = clock

    def profile(self, ref: str) -> Profile:
        return profiles.resolve(ref, self.profiles, self.identity)

    def send_message(self, body: SendMessage, caller: Caller) -> tuple[bool, dict[str, Any]]:
        """Queue one API send. Returns (queued now, answer); the same idempotency key for the
        same person names the same message, which is sent at most once."""
        profile = self.profile(body.profile)
        for channel in body.channels:
            template_id = body.template if isinstance(body.template, str) else body.template[channel]
            self._check_sendable(template_id, channel)
        token = body.idempotencyKey or secrets.token_hex(16)
        key = f"api:{token}:{profile.id}"
        message_id = message_id_for(key)
        known = self.ledger.get(message_id)
        answer = {"messageId": message_id, "profileId": profile.id, "idempotencyKey": body.idempotencyKey}
        if known is not None:
            return False, {**answer, "status": known.get("status", "queued"), "duplicate": True}
        request = MessageRequest(
            key=key,
            origin=Origin(kind="api", id=caller.key_id),
            profile_id=profile.id,
            channels=list(body.channels),
            category=body.category,
            template=body.template if isinstance(body.template, str) else dict(body.template),
            vars=body.vars,
            requested_at=iso(self.clock()),
            experiment=body.experiment,
        )
        try:
            self.delivery.send([request])
        except QueueRefused as error:
            raise Unavailable(
                f"the message could not be queued; retry with the same idempotencyKey ({error})"
            ) from error
        return True, {**answer, "status": "queued", "duplicate": False}

    def _check_sendable(self, template_id: str, channel: str) -> None:
        entry = self.config.template_entry(template_id)
        if entry is None:
            raise InvalidInput(f"no template '{template_id}'", code="unknown_template")
        approved = entry.get("approved")
        if not approved:
            raise InvalidInput(
                f"template '{template_id}' has no approved version; approve one first", code="template_not_approved"
            )
        if approved["channel"] != channel:
            raise InvalidInput(
                f"template '{template_id}' is for {approved['channel']}, not {channel}", code="invalid_body"
            )

    def get_message(self, message_id: str, caller: Caller) -> dict[str, Any]:
        record = self.ledger.get(message_id) if re.fullmatch(r"msg_[0-9a-f]{24}", message_id) else None
        if record is None:
            raise NotFound(f"no message '{message_id[:100]}' (it may not have been processed yet)")
        shown = present_message(record, caller.masked, full=True)
        if caller.masked and record.get("profileId"):
            person = self.profiles.profile(str(record["profileId"]))
            shown = redact(shown, sensitive_values(person))
        return shown

    def profile_messages(self, ref: str, limit: int, cursor: str | None, caller: Caller) -> dict[str, Any]:
        profile = self.profile(ref)
        check_cursor(cursor, keys.MESSAGE_REF_PREFIX)
        ids, next_cursor = self.ledger.list_for(keys.profile_pk(profile.id), keys.MESSAGE_REF_PREFIX, limit, cursor)
        records = [present_message(r, caller.masked, full=False) for r in self.ledger.many(ids)]
        return {"profileId": profile.id, "messages": records, "cursor": next_cursor}


def present_message(record: Mapping[str, Any], masked: bool, *, full: bool) -> dict[str, Any]:
    """A ledger record for the API: the stored request parsed (full) or left out (listings)."""
    hidden = {"pk", "sk", "expiresAt", "leaseUntil", "request"}
    shown = {k: v for k, v in record.items() if k not in hidden}
    if isinstance(shown.get("notBefore"), int):
        shown["notBefore"] = iso(datetime.fromtimestamp(shown["notBefore"], UTC))
    if full and isinstance(record.get("request"), str):
        try:
            shown["request"] = json.loads(record["request"])
        except ValueError:
            shown["request"] = None
    if masked and isinstance(shown.get("address"), str):
        address = shown["address"]
        shown["address"] = profiles.mask_email(address) if "@" in address else profiles.mask_phone(address)
    return shown
