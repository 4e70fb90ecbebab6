"""The ports more than one service needs, defined once. A service names only the methods it
calls, so an adapter, an in-memory fake or a test double satisfies a port by its shape alone.
Ports that a single service needs stay beside that service."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel

from midstage.errors import Stale as Stale
from midstage.logic.identity import Identifier
from midstage.logic.keyring import KeyRing
from midstage.models.archive import ArchiveRecord
from midstage.models.experiments import Experiment
from midstage.models.messaging import MessageRequest
from midstage.models.profile import Profile

D = TypeVar("D", bound=BaseModel)


# ------------------------------------------------------------------------------ people
class Profiles(Protocol):
    """One person's profile by id (None: no such person)."""

    def profile(self, profile_id: str) -> Profile | None: ...


class PersonSuppressionLookup(Protocol):
    """Privacy requests' suppressions, by any of a person's identifiers (read strongly consistent):
    those found, each with the request that made it."""

    def matching(self, identifiers: Iterable[Identifier]) -> dict[Identifier, str]: ...


class ProfilePages(Protocol):
    """Every profile, a page at a time, in one of `total_segments` parallel parts; `started`: when
    the job the parts belong to began (its parts then read the same way: adapters/profile_store.py)."""

    def scan_page(
        self,
        segment: int,
        total_segments: int,
        cursor: dict[str, Any] | None,
        limit: int = 500,
        *,
        started: datetime | None = None,
    ) -> tuple[list[Profile], dict[str, Any] | None]: ...


# ------------------------------------------------------------------------------ definitions
class Documents(Protocol):
    """Every document of a kind (rules, segments, journeys), as the model given."""

    def documents(self, kind: str, model: type[D]) -> list[D]: ...


# ------------------------------------------------------------------------------ outgoing
class MessageSink(Protocol):
    """The delivery queue: one message request per intended send."""

    def send(self, requests: Sequence[MessageRequest], delay_seconds: int = 0) -> None: ...


class EventSink(Protocol):
    """Internal events back into the event plane, grouped by person key; returns messages sent."""

    def send(self, groups: Mapping[str, Sequence[dict[str, Any]]]) -> int: ...


class ArchiveSink(Protocol):
    """The analytics archive: records put here land in its Parquet files (at least once; a
    record's id is stable, so a repeat is recognisable)."""

    def put(self, records: Sequence[ArchiveRecord]) -> None: ...


class Publisher(Protocol):
    """Domain events on the bus, as (detail-type, detail) pairs."""

    def publish(self, events: Sequence[tuple[str, dict[str, Any]]]) -> None: ...


class PartQueue(Protocol):
    """Raw bodies for the work queue that carries refresh and campaign parts."""

    def send_bodies(self, bodies: Sequence[str], delay_seconds: int = 0) -> None: ...


class Timers(Protocol):
    """A payload released at a time (a deferred send, a journey wait)."""

    def schedule(self, at: datetime, timer_id: str, payload: Mapping[str, Any], kind: str = "deliver") -> None: ...


class CountsOnce(Protocol):
    """Counters that can add once per marker, the marker and the addition in one write."""

    def add_once(
        self,
        kind: str,
        origin_id: str,
        run: str,
        subject: str,
        counts: Mapping[str, int | Decimal],
        *,
        once: tuple[str, str],
        now: datetime,
        keep: timedelta,
    ) -> bool: ...


# ------------------------------------------------------------------------------ messages sent
class StatusLedger(Protocol):
    """The send ledger as feedback sees it: a message's record and its status history."""

    def get(self, message_id: str) -> dict[str, Any] | None: ...
    def update_status(
        self, message_id: str, status: str, reason: str, now: datetime, *, final_only: bool, provider_id: str = ""
    ) -> bool: ...


class KeyRings(Protocol):
    """Signing secrets as key rings (links, webhooks); `fresh` reads past any cache."""

    def key_ring(self, name: str, *, fresh: bool = False) -> KeyRing: ...


class Suppressions(Protocol):
    """Addresses that must not be messaged again (bounce, complaint, unsubscribe, manual)."""

    def suppress(
        self, channel: str, address: str, reason: str, scope: str, now: datetime, detail: str = ""
    ) -> None: ...


class ExperimentLookup(Protocol):
    """Experiments as senders read them (the deliverer, the journey runner): adapters' RecentExperiments."""

    def find_experiment(self, experiment_id: str) -> Experiment | None: ...
