"""Destinations over the admin API: their definitions (checked before saving: the filter
compiles, the projection is JMESPath, the URL is one a delivery would be made to), their
delivery figures, and the redrive of their failed records."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from pydantic import ValidationError

from midstage.clock import Clock
from midstage.errors import InvalidInput, IssuesError, NotFound, describe, summary
from midstage.logic.conditions import ConditionError
from midstage.logic.destinations import Entry, compile_route
from midstage.logic.rules import describe_issues
from midstage.logic.timefmt import iso
from midstage.models.destinations import (
    DESTINATION_KIND,
    Destination,
    DestinationCreate,
    DestinationStats,
    DestinationUpdate,
    new_destination_id,
    new_destination_secret,
)
from midstage.services.destinations import with_lag

MAX_REDRIVEN = 1000


class Definitions(Protocol):
    def documents(self, kind: str, model: type[Destination]) -> list[Destination]: ...
    def find_document(self, kind: str, doc_id: str, model: type[Destination]) -> Destination | None: ...
    def save_document(self, kind: str, document: Destination) -> Destination: ...
    def delete_document(self, kind: str, doc_id: str) -> None: ...


class DeliveryState(Protocol):
    def stats(self, destination_id: str) -> DestinationStats: ...
    def waiting(self, destination_id: str, limit: int) -> list[Entry]: ...
    def redrive(self, destination_id: str, limit: int, now: datetime) -> int: ...
    def forget(self, destination_id: str) -> None: ...


class DestinationAdmin:
    def __init__(
        self,
        definitions: Definitions,
        state: DeliveryState,
        check_url: Callable[[str], None],
        *,
        max_window_days: int,
        clock: Clock,
        new_id: Callable[[], str] = new_destination_id,
        new_secret: Callable[[], str] = new_destination_secret,
    ) -> None:
        self.definitions = definitions
        self.state = state
        self.check_url = check_url
        self.max_window_days = max_window_days
        self.clock = clock
        self.new_id = new_id
        self.new_secret = new_secret

    def list_destinations(self) -> dict[str, Any]:
        found = sorted(self.definitions.documents(DESTINATION_KIND, Destination), key=lambda d: d.created_at)
        return {"destinations": [d.public() for d in found]}

    def create_destination(self, body: DestinationCreate) -> dict[str, Any]:
        now = iso(self.clock())
        secret = body.secret
        if body.kind == "webhook" and secret is None:
            secret = self.new_secret()
        destination = Destination(
            **body.model_dump(exclude={"secret"}), secret=secret, id=self.new_id(), created_at=now, updated_at=now
        )
        self._check(destination)
        saved = self.definitions.save_document(DESTINATION_KIND, destination)
        # Shown once, as a webhook source's signing secret is: the receiver needs it to verify.
        return {**saved.public(), "secret": secret} if saved.kind == "webhook" else saved.public()

    def get_destination(self, destination_id: str) -> dict[str, Any]:
        return self._get(destination_id).public()

    def update_destination(self, destination_id: str, body: DestinationUpdate) -> dict[str, Any]:
        current = self._get(destination_id)
        changes = body.model_dump(exclude_unset=True)
        for name in ("name", "enabled", "batch_size", "url", "secret", "write_key", "bus_arn", "stream_arn", "source"):
            if name in changes and changes[name] is None:
                raise InvalidInput(f"`{name}` cannot be cleared; give a value", code="invalid_body")
        merged = {
            **current.model_dump(),
            **changes,
            "version": current.version + 1,
            "updated_at": iso(self.clock()),
        }
        try:
            updated = Destination.model_validate(merged)
        except ValidationError as error:
            raise InvalidInput(describe(error, "body"), code="invalid_body") from error
        self._check(updated)
        return self.definitions.save_document(DESTINATION_KIND, updated).public()

    def delete_destination(self, destination_id: str) -> None:
        self._get(destination_id)
        self.definitions.delete_document(DESTINATION_KIND, destination_id)
        # Its queue and failed records go with it: nothing will ever deliver them.
        self.state.forget(destination_id)

    def stats(self, destination_id: str) -> dict[str, Any]:
        self._get(destination_id)
        waiting = self.state.waiting(destination_id, 1)
        figures = with_lag(self.state.stats(destination_id), waiting[0] if waiting else None, self.clock())
        return {"destinationId": destination_id, **figures.model_dump(mode="json")}

    def redrive(self, destination_id: str, limit: int) -> dict[str, Any]:
        self._get(destination_id)
        moved = self.state.redrive(destination_id, min(limit, MAX_REDRIVEN), self.clock())
        return {"destinationId": destination_id, "redriven": moved}

    # ------------------------------------------------------------------ helpers
    def _get(self, destination_id: str) -> Destination:
        found = self.definitions.find_document(DESTINATION_KIND, destination_id, Destination)
        if found is None:
            raise NotFound(f"no destination '{destination_id[:100]}'")
        return found

    def _check(self, destination: Destination) -> None:
        issues: list[dict[str, str]] = []
        try:
            compile_route(destination, max_window_days=self.max_window_days)
        except ConditionError as error:
            issues += [{**i, "location": f"/filter{i['location']}"} for i in describe_issues(error.issues)]
        except InvalidInput as error:
            issues.append({"location": "/transform", "message": str(error)})
        if destination.url is not None:
            try:
                self.check_url(destination.url)
            except Exception as error:  # the sender's own vetting: ProviderError with its reason
                issues.append({"location": "/url", "message": getattr(error, "reason", str(error))})
        if issues:
            raise IssuesError(summary("invalid destination", issues), issues, code="invalid_destination")
