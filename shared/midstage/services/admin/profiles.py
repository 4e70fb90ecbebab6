"""Profile lookup: one person's profile, timeline and merges, masked below data_operator."""

from __future__ import annotations

from typing import Any

from midstage.config import IdentitySettings
from midstage.models.admin import RoleRank
from midstage.services import profiles
from midstage.services.admin.ports import ProfileReader


class ProfileAdmin:
    def __init__(self, profiles: ProfileReader, identity: IdentitySettings) -> None:
        self.profiles = profiles
        self.identity = identity

    def lookup(self, ref: str, role: RoleRank) -> dict[str, Any]:
        profile = profiles.resolve(ref, self.profiles, self.identity)
        merges = self.profiles.merges([profile.id])[:20]
        return profiles.present(profile, role, merges)

    def timeline(self, ref: str, role: RoleRank, limit: int, cursor: str | None) -> dict[str, Any]:
        profile = profiles.resolve(ref, self.profiles, self.identity)
        events, next_cursor = self.profiles.timeline([profile.id, *profile.merged_from], limit=limit, before=cursor)
        if role < RoleRank.data_operator:
            secrets = profiles.sensitive_values(profile)
            events = [profiles.mask_event(e, secrets) for e in events]
        return {"profileId": profile.id, "events": events, "cursor": next_cursor}

    def merges(self, ref: str, role: RoleRank) -> dict[str, Any]:
        profile = profiles.resolve(ref, self.profiles, self.identity)
        records = self.profiles.merges([profile.id, *profile.merged_from])
        masked = [profiles.present_merge(r, role < RoleRank.data_operator) for r in records]
        return {"profileId": profile.id, "merges": masked}
