"""Profile lookup for the admin API: by canonical id or by any identifier, masked by role."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from midstage.adapters.profile_store import ProfileStore
from midstage.config import IdentitySettings
from midstage.errors import InvalidInput, NotFound
from midstage.logic.identity import normalise_email, normalise_phone
from midstage.models.admin import RoleRank
from midstage.models.profile import Profile

SENSITIVE_TYPES = ("email", "phone")
DEVICE_SECRETS = ("token", "advertisingId")
NETWORK_CONTEXT = ("ip", "userAgent")


def resolve(ref: str, store: ProfileStore, identity: IdentitySettings) -> Profile:
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


def present(profile: Profile, role: RoleRank, merges: list[dict[str, Any]]) -> dict[str, Any]:
    """The API view of a profile; contact data is masked below the data_operator role."""
    masked = role < RoleRank.data_operator
    identities = {
        t: [_mask(t, v) for v in values] if masked and t in SENSITIVE_TYPES else list(values)
        for t, values in sorted(profile.identities.items())
    }
    traits = {k: _mask(k, v) if masked and k in SENSITIVE_TYPES else v for k, v in sorted(profile.traits.items())}
    return {
        "id": profile.id,
        "version": profile.version,
        "createdAt": profile.created_at,
        "updatedAt": profile.updated_at,
        "identities": identities,
        "traits": traits,
        "computed": profile.computed,
        "firstSeen": profile.first_seen,
        "lastSeen": profile.last_seen,
        "groups": {g: v["traits"] for g, v in profile.groups.items()},
        "devices": [
            {k: v for k, v in d.items() if k != "stamp" and not (masked and k in DEVICE_SECRETS)}
            for d in profile.devices.values()
        ],
        "tags": profile.tags,
        "segments": dict(sorted(profile.segments.items())),
        "mergedFrom": profile.merged_from,
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


def mask_event(event: dict[str, Any]) -> dict[str, Any]:
    """A timeline event without network identifiers, for roles below data_operator."""
    context = event.get("context")
    if not isinstance(context, dict) or not any(k in context for k in NETWORK_CONTEXT):
        return event
    return {**event, "context": {k: v for k, v in context.items() if k not in NETWORK_CONTEXT}}
