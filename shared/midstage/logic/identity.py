"""OneID: which identifiers an event carries, normalised, and how profiles may be merged."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from midstage.config import IdentitySettings

Identifier = tuple[str, str]  # (type, normalised value)

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
_PHONE_NOISE = re.compile(r"[\s().\-/]")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
# External id types become part of a key (`ID#x:<type>#<value>`): no '#', nothing exotic.
_SAFE_KIND = re.compile(r"[^a-z0-9_.\-]")
# externalIds types that name one of our own identifier types.
_KNOWN_EXTERNAL = {"email": "email", "phone": "phone", "user_id": "user_id", "device_id": "device_id"}


def normalise_email(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    email = value.strip().lower()
    return email if _EMAIL.match(email) else None


def normalise_phone(value: Any) -> str | None:
    """E.164 (`+` and 7-15 digits). Numbers without a country code cannot be linked safely."""
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str):
        return None
    phone = _PHONE_NOISE.sub("", value.strip())
    if phone.startswith("00"):
        phone = "+" + phone[2:]
    return phone if _E164.match(phone) else None


def identifiers_of(event: Mapping[str, Any], settings: IdentitySettings) -> list[Identifier]:
    """Every usable identifier of an event, highest priority first, without duplicates."""
    found: list[Identifier] = []

    def add(id_type: str, value: Any) -> None:
        if value is None:
            return
        text = str(value).strip()
        # DynamoDB keys hold at most 2,048 bytes; identifiers are kept well below.
        if not text or len(text.encode()) > 512 or settings.is_blocked(text):
            return
        if (id_type, text) not in found:
            found.append((id_type, text))

    add("user_id", event.get("userId"))
    traits = _traits_of(event)
    add("email", normalise_email(traits.get("email")))
    add("phone", normalise_phone(traits.get("phone")))
    context = event.get("context") or {}
    external_ids = context.get("externalIds") if isinstance(context, dict) else None
    if isinstance(external_ids, list):
        for external in external_ids[:20]:
            if not isinstance(external, dict) or not external.get("id") or not external.get("type"):
                continue
            kind = _SAFE_KIND.sub("_", str(external["type"]).strip().lower())[:64]
            mapped = _KNOWN_EXTERNAL.get(kind)
            if mapped == "email":
                add("email", normalise_email(external["id"]))
            elif mapped == "phone":
                add("phone", normalise_phone(external["id"]))
            elif mapped:
                add(mapped, external["id"])
            else:
                add(f"x:{kind}", external["id"])
    device = context.get("device") if isinstance(context, dict) else None
    if isinstance(device, dict):
        add("device_id", device.get("id"))
    add("anonymous_id", event.get("anonymousId"))
    if event.get("type") == "alias":
        # previousId is an earlier anonymousId or userId; lookup_only() finds the userId case.
        add("anonymous_id", event.get("previousId"))
    return sorted(found, key=lambda ident: priority_of(ident[0], settings))


def lookup_only(event: Mapping[str, Any], settings: IdentitySettings) -> list[Identifier]:
    """Identifiers that may find a profile but are never attached: alias's previousId as a userId."""
    previous = event.get("previousId") if event.get("type") == "alias" else None
    if previous is None or settings.is_blocked(str(previous)):
        return []
    return [("user_id", str(previous).strip())]


def priority_of(id_type: str, settings: IdentitySettings) -> int:
    order = settings.identity_priority
    key = "external" if id_type.startswith("x:") else id_type
    return order.index(key) if key in order else len(order)


def _traits_of(event: Mapping[str, Any]) -> Mapping[str, Any]:
    traits = event.get("traits")
    context = event.get("context")
    context_traits = context.get("traits") if isinstance(context, dict) else None
    merged: dict[str, Any] = {}
    if isinstance(context_traits, dict):
        merged.update(context_traits)
    if isinstance(traits, dict) and event.get("type") in ("identify", "alias"):
        merged.update(traits)
    return merged


@dataclass(frozen=True)
class LimitBreach:
    id_type: str
    values: tuple[str, ...]
    limit: int

    def reason(self) -> str:
        return f"{self.id_type} limit {self.limit} exceeded: would hold {', '.join(self.values)}"


def limit_breach(
    held: Mapping[str, Iterable[str]], extra: Mapping[str, Iterable[str]], settings: IdentitySettings
) -> LimitBreach | None:
    """The first identifier type whose per-profile limit the union of `held` and `extra` breaks."""
    for id_type in sorted(set(held) | set(extra)):
        values = sorted(set(held.get(id_type, ())) | set(extra.get(id_type, ())))
        limit = settings.limit_for(id_type)
        if len(values) > limit:
            return LimitBreach(id_type, tuple(values), limit)
    return None
