"""What the admin services share: the caller's stamp, cursors checked, the definitions that
others name (segments, templates, offers), ids never reused, and refusals listing every issue."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from midstage import keys
from midstage.clock import Clock
from midstage.errors import MAX_ISSUES, Conflict, InvalidInput, IssuesError, summary
from midstage.logic import internal_events
from midstage.logic.conditions import Issue
from midstage.logic.profile import slim_event
from midstage.logic.timefmt import iso
from midstage.models.admin import Caller
from midstage.models.profile import Profile
from midstage.models.requests import TrackEvent
from midstage.models.segments import Segment
from midstage.services.admin.ports import DefinitionStore

_CURSOR = re.compile(r"[A-Za-z0-9#:._+@-]{1,400}")


def changed_by(clock: Clock, caller: Caller) -> dict[str, str]:
    """Who changed a definition, and when."""
    return {"updated_at": iso(clock()), "updated_by": caller.key_id}


def check_cursor(cursor: str | None, prefix: str) -> None:
    if cursor is not None and not (cursor.startswith(prefix) and _CURSOR.fullmatch(cursor)):
        raise InvalidInput("'cursor' is not one this listing returned", code="invalid_cursor")


def segments_of(config: DefinitionStore) -> dict[str, Segment]:
    return {s.id: s for s in config.documents(keys.SEGMENT_PK, Segment)}


def template_ids(config: DefinitionStore) -> set[str]:
    return {str(entry["latest"]["id"]) for entry in config.list_templates()}


# Whether an offer exists (and is not deleted): definitions that name one are checked on save.
OfferExists = Callable[[str], bool]


def unknown_offers(named: Iterable[tuple[str, str]], exists: OfferExists | None) -> list[Issue]:
    """An issue at each place (a JSON pointer) naming an offer that does not exist; None: the
    deployment has no offers to check against (nothing is refused)."""
    if exists is None:
        return []
    known: dict[str, bool] = {}
    issues = []
    for offer_id, location in named:
        if offer_id not in known:
            known[offer_id] = exists(offer_id)
        if not known[offer_id]:
            issues.append(Issue(location, f"no offer '{offer_id}' (POST /v1/offers creates one)"))
    return issues


def check_new_id(config: DefinitionStore, kind: str, model: type[BaseModel], doc_id: str, route: str) -> None:
    """Ids are never reused once deleted: run records, counters, instances and version histories
    are kept under a definition's id, and a new definition under an old id would inherit them."""
    label = kind.lower()
    if config.find_document(kind, doc_id, model) is not None:
        raise Conflict(f"{label} '{doc_id}' exists; change it with PUT {route}/{doc_id}")
    if config.document_versions(kind, doc_id, model):
        raise Conflict(f"{label} id '{doc_id}' belonged to a deleted {label} and is not reused; pick another id")


def refused(subject: str, issues: Sequence[Issue], *, code: str) -> IssuesError:
    """A definition refused with every issue found (at most MAX_ISSUES)."""
    shown = [issue.to_dict() for issue in issues][:MAX_ISSUES]
    return IssuesError(summary(f"invalid {subject}", shown), shown, code=code)


def add_counts(into: dict[str, Decimal], counts: Mapping[str, Any]) -> None:
    for name, value in counts.items():
        into[name] = into.get(name, Decimal(0)) + Decimal(value)


def trial_event(event: TrackEvent, profile: Profile | None, now: datetime) -> dict[str, Any]:
    """The track event a dry run or a preview is judged against, as the profile updater would
    have stored it (addressed to the profile's person when there is one)."""
    person = internal_events.addressed_to(profile) if profile else None
    document: dict[str, Any] = {
        "type": "track",
        "event": event.event,
        "properties": event.properties,
        "context": event.context,
        "messageId": event.messageId or "dry-run-" + secrets.token_hex(8),
        "timestamp": event.timestamp or iso(now),
        "receivedAt": iso(now),
        **(person or {}),
    }
    return slim_event(document)
