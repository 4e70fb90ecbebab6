"""The stack's own settings shown to admins, and the key rings of its signing secrets."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from midstage.clock import Clock
from midstage.errors import NotFound
from midstage.logic.timefmt import iso
from midstage.models.admin import SecretRotation
from midstage.services.admin.ports import Secrets, SigningSecrets

# What each signing secret signs, and how long its retired key keeps verifying unless told:
# links sit in mailboxes for a long time (the ledger keeps a message 400 days, and an unsubscribe
# link must work as long as anyone keeps the mail); a webhook receiver only needs time to switch.
SIGNING_SECRETS: dict[str, tuple[str, timedelta]] = {
    "links": ("open, click and unsubscribe link tokens", timedelta(days=400)),
    "webhooks": ("the Midstage-Signature header of webhook requests", timedelta(days=1)),
}


def webhook_secret(config: Secrets, now: datetime) -> dict[str, Any]:
    """The secret that signs webhook requests (the current key), and every key a request is still
    signed with at `now`, current first, so a receiver can switch secrets without a gap."""
    ring = config.key_ring("webhooks")
    return {
        "secret": ring.current.secret.hex(),
        "keyId": ring.current.id,
        "keys": [
            {"keyId": key.id, "secret": key.secret.hex(), "expiresAt": iso(key.expires_at) if key.expires_at else None}
            for key in ring.verifying(now)
        ],
    }


class SecretAdmin:
    """Listing, rotating and pruning the key rings of the signing secrets."""

    def __init__(self, config: SigningSecrets, *, clock: Clock) -> None:
        self.config = config
        self.clock = clock

    def list_secrets(self) -> dict[str, Any]:
        now = self.clock()
        return {
            "secrets": [
                {**self.config.key_ring(name, fresh=True).summary(now), "signs": signs}
                for name, (signs, _) in SIGNING_SECRETS.items()
            ]
        }

    def rotate(self, name: str, request: SecretRotation) -> dict[str, Any]:
        signs, default_keep = _known(name)
        keep = default_keep if request.keepOldKeyDays is None else timedelta(days=request.keepOldKeyDays)
        now = self.clock()
        return {**self.config.rotate_secret(name, now, keep).summary(now), "signs": signs}

    def remove_key(self, name: str, key_id: str) -> dict[str, Any]:
        signs, _ = _known(name)
        ring = self.config.key_ring(name, fresh=True)
        if not any(key.id == key_id for key in ring.keys):
            raise NotFound(f"the {name} secret has no key '{key_id}'", code="key_not_found")
        return {**self.config.remove_secret_key(name, key_id).summary(self.clock()), "signs": signs}


def _known(name: str) -> tuple[str, timedelta]:
    if name not in SIGNING_SECRETS:
        raise NotFound(f"no signing secret '{name}' (there are: {', '.join(SIGNING_SECRETS)})", code="secret_not_found")
    return SIGNING_SECRETS[name]
