"""Profile lookup for the admin API: by canonical id or by any identifier, masked by role."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace
from typing import Any, Protocol
from urllib.parse import unquote

from midstage.config import IdentitySettings
from midstage.errors import InvalidInput, NotFound
from midstage.logic.identity import Identifier, normalise_email, normalise_phone
from midstage.models.admin import RoleRank
from midstage.models.profile import Profile

SENSITIVE_TYPES = ("email", "phone")
DEVICE_SECRETS = ("token", "advertisingId")
NETWORK_CONTEXT = ("ip", "userAgent")


class Lookup(Protocol):
    """What finding a profile by id or identifier reads."""

    def identity_owners(self, identifiers: Iterable[Identifier]) -> dict[Identifier, str]: ...
    def profile(self, profile_id: str) -> Profile | None: ...


def resolve(ref: str, store: Lookup, identity: IdentitySettings) -> Profile:
    """`ref` is a profile id, or `<type>:<value>` such as `email:ann@example.com`."""
    ref = unquote(ref).strip()
    if not ref:
        raise InvalidInput("a profile id or identifier is needed", code="invalid_profile_ref")
    if ":" in ref:
        id_type, _, value = ref.partition(":")
        if id_type == "x" and ":" in value:  # external ids are typed x:<type>:<value>
            kind, _, value = value.partition(":")
            id_type = f"x:{kind.lower()}"
        id_type = {"userId": "user_id", "anonymousId": "anonymous_id", "user": "user_id"}.get(id_type, id_type)
        if id_type == "email":
            value = normalise_email(value) or value
        elif id_type == "phone":
            value = normalise_phone(value) or value
        owners = store.identity_owners([(id_type, value)])
        if not owners:
            raise NotFound(f"no profile has {id_type} '{value[:200]}'")
        ref = next(iter(owners.values()))
    profile = store.profile(ref)
    if profile is None:
        raise NotFound(f"no profile '{ref[:200]}'")
    return profile


def mask_email(value: str) -> str:
    local, _, domain = value.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


def mask_phone(value: str) -> str:
    return value[:2] + "*" * max(0, len(value) - 6) + value[-4:] if len(value) > 6 else "***"


def _mask(id_type: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    return mask_email(value) if id_type == "email" else mask_phone(value)


def masked_view(profile: Profile) -> Profile:
    """The profile as a role below data_operator may read it. Contact values are masked in the
    data itself (identities, and every occurrence in traits and group traits at any depth) and
    device secrets removed, so that whatever is computed from it afterwards (a template and its
    filters, a join, an export) only ever sees the masked values: no filter can undo a mask
    that was applied before the value was read."""
    secrets_ = sensitive_values(profile)
    identities = {
        t: [_mask(t, v) for v in values] if t in SENSITIVE_TYPES else list(values)
        for t, values in profile.identities.items()
    }
    traits = {k: _mask(k, v) if k in SENSITIVE_TYPES else v for k, v in profile.traits.items()}
    return replace(
        profile,
        identities=identities,
        traits=redact(traits, secrets_),
        groups=redact(profile.groups, secrets_),
        devices={
            key: {k: v for k, v in device.items() if k not in DEVICE_SECRETS} for key, device in profile.devices.items()
        },
    )


def present(profile: Profile, role: RoleRank, merges: list[dict[str, Any]]) -> dict[str, Any]:
    """The API view of a profile; contact data is masked below the data_operator role."""
    masked = role < RoleRank.data_operator
    shown = masked_view(profile) if masked else profile
    return {
        "id": shown.id,
        "version": shown.version,
        "createdAt": shown.created_at,
        "updatedAt": shown.updated_at,
        "identities": {t: list(values) for t, values in sorted(shown.identities.items())},
        "traits": dict(sorted(shown.traits.items())),
        "computed": shown.computed,
        "firstSeen": shown.first_seen,
        "lastSeen": shown.last_seen,
        "groups": {g: v["traits"] for g, v in shown.groups.items()},
        "devices": [{k: v for k, v in d.items() if k != "stamp"} for d in shown.devices.values()],
        "tags": shown.tags,
        "segments": dict(sorted(shown.segments.items())),
        "mergedFrom": shown.merged_from,
        "merges": [present_merge(m, masked) for m in merges],
        "masked": masked,
    }


def present_merge(record: dict[str, Any], masked: bool) -> dict[str, Any]:
    if not masked:
        return record
    shown = dict(record)
    if "identifiers" in shown:
        shown["identifiers"] = [_mask_ref(i) for i in shown["identifiers"]]
    if "identifier" in shown:
        shown["identifier"] = _mask_ref(shown["identifier"])
    if "reason" in shown:
        shown["reason"] = "limit exceeded (details need the data_operator role)"
    return shown


def _mask_ref(ref: str) -> str:
    id_type, _, value = ref.partition(":")
    return f"{id_type}:{_mask(id_type, value)}" if id_type in SENSITIVE_TYPES else ref


def mask_event(event: dict[str, Any], secrets_: Iterable[str] = ()) -> dict[str, Any]:
    """A timeline event for roles below data_operator: without network identifiers, and with
    the person's contact values masked wherever they occur (an identify's traits, properties)."""
    context = event.get("context")
    if isinstance(context, dict) and any(k in context for k in NETWORK_CONTEXT):
        event = {**event, "context": {k: v for k, v in context.items() if k not in NETWORK_CONTEXT}}
    shown: dict[str, Any] = redact(event, secrets_)
    return shown


def sensitive_values(profile: Profile | None) -> list[str]:
    """The person's email addresses and phone numbers, as they may appear in output."""
    if profile is None:
        return []
    found: set[str] = set()
    for kind in SENSITIVE_TYPES:
        found.update(v for v in profile.identities.get(kind) or [] if isinstance(v, str))
        trait = profile.traits.get(kind)
        if isinstance(trait, str):
            found.add(trait)
    return sorted((v for v in found if len(v) >= 4), key=len, reverse=True)


def redact(value: Any, secrets_: Iterable[str]) -> Any:
    """`value` with every occurrence of the given contact values masked."""
    masks = [(s, mask_email(s) if "@" in s else mask_phone(s)) for s in secrets_]
    if not masks:
        return value
    # Emails appear in any case; a replacement template must have its backslashes doubled.
    anycase = [(re.compile(re.escape(s), re.IGNORECASE), m.replace("\\", "\\\\")) for s, m in masks if "@" in s]

    def walk(node: Any) -> Any:
        if isinstance(node, str):
            for secret, mask in masks:
                node = node.replace(secret, mask)
            for pattern, template in anycase:
                node = pattern.sub(template, node)
            return node
        if isinstance(node, dict):
            return {walk(k) if isinstance(k, str) else k: walk(v) for k, v in node.items()}
        if isinstance(node, list | tuple):
            return [walk(v) for v in node]
        return node

    return walk(value)
