"""Suppressed addresses: who the deliverer must not reach, on which channel and for what."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from midstage.clock import Clock
from midstage.errors import InvalidInput, NotFound
from midstage.logic.identity import normalise_email, normalise_phone
from midstage.models.requests import SuppressionPut
from midstage.services.admin.ports import SuppressionList

SUPPRESSIBLE_CHANNELS = ("email", "sms", "push")


class SuppressionAdmin:
    def __init__(self, suppressions: SuppressionList, *, clock: Clock) -> None:
        self.suppressions = suppressions
        self.clock = clock

    def get_suppression(self, channel: str, address: str) -> dict[str, Any]:
        channel, address = suppression_address(channel, address)
        found = self.suppressions.suppression(channel, address)
        if found is None:
            raise NotFound(f"{channel} address '{address[:200]}' is not suppressed")
        return present_suppression(found)

    def put_suppression(self, channel: str, address: str, body: SuppressionPut) -> dict[str, Any]:
        channel, address = suppression_address(channel, address)
        self.suppressions.suppress(channel, address, body.reason, body.scope, self.clock(), body.detail)
        found = self.suppressions.suppression(channel, address)
        if found is None:  # written a moment ago; an eventually consistent read may miss it
            return {"channel": channel, "address": address, "reason": body.reason, "scope": body.scope}
        return present_suppression(found)

    def delete_suppression(self, channel: str, address: str) -> None:
        channel, address = suppression_address(channel, address)
        if not self.suppressions.lift(channel, address):
            raise NotFound(f"{channel} address '{address[:200]}' is not suppressed")


def present_suppression(record: Mapping[str, Any]) -> dict[str, Any]:
    return {k: record[k] for k in ("channel", "address", "reason", "scope", "detail", "at") if k in record}


def suppression_address(channel: str, address: str) -> tuple[str, str]:
    """The channel checked and the address as the deliverer looks it up (emails lower-cased,
    phones in E.164); the address arrives URL-encoded in the path."""
    if channel not in SUPPRESSIBLE_CHANNELS:
        raise InvalidInput(
            f"channel must be one of {', '.join(SUPPRESSIBLE_CHANNELS)}, not '{channel[:40]}'", code="invalid_channel"
        )
    text = unquote(address).strip()
    if not text or len(text) > 512:
        raise InvalidInput("the address must have 1 to 512 characters", code="invalid_address")
    if channel == "email":
        normalised = normalise_email(text) if "@" in text else None
    elif channel == "sms":
        normalised = normalise_phone(text)
    else:
        normalised = text if re.fullmatch(r"[\x21-\x7e]+", text) else None
    if not normalised:
        raise InvalidInput(f"'{text[:200]}' is not a valid {channel} address", code="invalid_address")
    return channel, normalised
