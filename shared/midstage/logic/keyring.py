"""Key rings for signing secrets (link tokens, webhook signatures): several keys, each with an id.

New signatures use the current key (the newest one not retired). Verification accepts every key
still in the ring until its stated expiry, so rotating a secret does not break what was already
signed with the old one: links in mail already sent, webhooks a receiver is still checking with
the old secret. A key removed from the ring, or past its expiry, verifies nothing.

Pure: the keys, the new key's random bytes and the time are all arguments.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from midstage.errors import KeyRingError as KeyRingError
from midstage.logic.timefmt import iso

MIN_SECRET_BYTES = 16
MAX_KEYS = 20  # a ring is read on every cold start and an unknown-format token is tried against each key
KEY_ID = re.compile(r"k[0-9]{1,9}")
# The key that was the single secret before rings existed is the first key of its ring.
LEGACY_KEY_ID = "k0"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class SigningKey:
    id: str
    secret: bytes
    created_at: datetime
    retired_at: datetime | None = None  # no longer signs from then on
    expires_at: datetime | None = None  # no longer verifies from then on (None: until removed)

    def verifies_at(self, now: datetime) -> bool:
        return self.expires_at is None or now < self.expires_at


@dataclass(frozen=True)
class KeyRing:
    """The keys of one secret, oldest first; exactly one of them (the last) is not retired."""

    name: str
    keys: tuple[SigningKey, ...]

    def __post_init__(self) -> None:
        problem = _ring_problem(self.keys)
        if problem:
            raise KeyRingError(f"key ring {self.name!r}: {problem}")

    @property
    def current(self) -> SigningKey:
        """The key new signatures are made with."""
        return self.keys[-1]

    def verifying(self, now: datetime) -> tuple[SigningKey, ...]:
        """The keys that still verify at `now`, current first."""
        return tuple(key for key in reversed(self.keys) if key.verifies_at(now))

    def key(self, key_id: str, now: datetime) -> SigningKey | None:
        """The key named `key_id` if it still verifies at `now`."""
        found = next((key for key in self.keys if key.id == key_id), None)
        return found if found is not None and found.verifies_at(now) else None

    def rotate(self, secret: bytes, now: datetime, keep_old_for: timedelta | None) -> KeyRing:
        """A new current key made of `secret`; the previous current key retires at `now` and keeps
        verifying for `keep_old_for` (None: until it is removed; zero: not at all). Keys already
        past their expiry are dropped."""
        if keep_old_for is not None and keep_old_for < timedelta(0):
            raise KeyRingError("the time to keep the old key cannot be negative")
        previous = self.current
        retired = replace(previous, retired_at=now, expires_at=None if keep_old_for is None else now + keep_old_for)
        kept = [key for key in self.keys[:-1] if key.verifies_at(now)] + [retired]
        new_key = SigningKey(next_key_id(self.keys), secret, now)
        if len(kept) + 1 > MAX_KEYS:
            raise KeyRingError(f"a ring holds at most {MAX_KEYS} keys; remove retired keys first")
        return KeyRing(self.name, (*kept, new_key))

    def remove(self, key_id: str) -> KeyRing:
        """The ring without the retired key `key_id`: it verifies nothing from then on."""
        if not any(key.id == key_id for key in self.keys):
            raise KeyRingError(f"key ring {self.name!r} has no key {key_id!r}")
        if key_id == self.current.id:
            raise KeyRingError(f"{key_id!r} is the current key of {self.name!r}; rotate before removing it")
        return KeyRing(self.name, tuple(key for key in self.keys if key.id != key_id))

    def summary(self, now: datetime) -> dict[str, Any]:
        """The ring as an admin sees it: ids and dates, never the secrets."""
        return {
            "name": self.name,
            "currentKeyId": self.current.id,
            "keys": [
                {
                    "id": key.id,
                    "createdAt": iso(key.created_at),
                    "retiredAt": iso(key.retired_at) if key.retired_at else None,
                    "expiresAt": iso(key.expires_at) if key.expires_at else None,
                    "state": "current" if key is self.current else ("retired" if key.verifies_at(now) else "expired"),
                }
                for key in self.keys
            ],
        }


def next_key_id(keys: Sequence[SigningKey]) -> str:
    return f"k{max((int(key.id[1:]) for key in keys), default=0) + 1}"


def new_ring(name: str, secret: bytes, now: datetime) -> KeyRing:
    return KeyRing(name, (SigningKey("k1", secret, now),))


# ------------------------------------------------------------------------------- storage shape
def from_document(name: str, doc: Mapping[str, Any]) -> KeyRing:
    """A ring from its stored document: `{"keys": [...]}`, or the single `{"value": <hex>}` that
    was stored before rings (it becomes key `k0`, so what it signed keeps verifying)."""
    raw_keys = doc.get("keys")
    if raw_keys is None:
        return KeyRing(name, (SigningKey(LEGACY_KEY_ID, bytes.fromhex(str(doc["value"])), _EPOCH),))
    return KeyRing(
        name,
        tuple(
            SigningKey(
                id=str(raw["id"]),
                secret=bytes.fromhex(str(raw["value"])),
                created_at=_time(raw["createdAt"]),
                retired_at=_time(raw.get("retiredAt")) if raw.get("retiredAt") else None,
                expires_at=_time(raw.get("expiresAt")) if raw.get("expiresAt") else None,
            )
            for raw in raw_keys
        ),
    )


def to_document(ring: KeyRing) -> dict[str, Any]:
    """The stored document. `value` stays the current secret, for readers older than rings."""
    return {
        "value": ring.current.secret.hex(),
        "keys": [
            {
                "id": key.id,
                "value": key.secret.hex(),
                "createdAt": iso(key.created_at),
                "retiredAt": iso(key.retired_at) if key.retired_at else None,
                "expiresAt": iso(key.expires_at) if key.expires_at else None,
            }
            for key in ring.keys
        ],
    }


def _time(text: Any) -> datetime:
    value = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _ring_problem(keys: Sequence[SigningKey]) -> str | None:
    if not keys:
        return "a ring needs at least one key"
    if len(keys) > MAX_KEYS:
        return f"at most {MAX_KEYS} keys"
    ids = [key.id for key in keys]
    if len(set(ids)) != len(ids):
        return "key ids repeat"
    for key in keys:
        if not KEY_ID.fullmatch(key.id):
            return f"{key.id!r} is not a key id (k and digits)"
        if len(key.secret) < MIN_SECRET_BYTES:
            return f"key {key.id!r} is shorter than {MIN_SECRET_BYTES} bytes"
    if keys[-1].retired_at is not None:
        return "the newest key is retired"
    if any(key.retired_at is None for key in keys[:-1]):
        return "only the newest key may be unretired"
    return None
