"""The scheduled refit: read the archive, leave suppressed people out, fit, store the cards, and
hand everyone's `predicted.*` traits to the profile updater.

1. Orders, product views and merges of the look-back window from the archive (the reports'
   engine: Athena on AWS, DuckDB over the bucket locally), one `History` per living profile.
2. People a privacy request suppressed (any of their profile ids, user ids or anonymous ids) are
   dropped before anything is fitted: they are neither trained on nor scored, and the cards count
   them (`excluded_people`).
3. BG/NBD + Gamma-Gamma on the orders (`refit.refit_customer_value`: a back-test, then the model
   that scores) and the item-to-item model on purchases and views; each fit is a new version of
   its card, stored before any score that names it is sent.
4. One platform `identify` per person with the trait `predicted` = {name: {value, percentile,
   model}} and `recommendations` = {value: [item ids], model}: the profile updater stays the one
   writer of profiles, and segments, rules and journeys react as to any trait change.

The numerical modules (numpy, scipy) are imported here, so only the refit function loads them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from midstage.logic import internal_events
from midstage.logic.identity import Identifier
from midstage.logic.predictions import history as archive_history
from midstage.logic.predictions.bgnbd import FitError
from midstage.logic.predictions.cards import DataWindow, ModelCard, ModelKind, new_card
from midstage.logic.predictions.co_occurrence import ItemSettings, fit_items
from midstage.logic.predictions.recommendations import recommend
from midstage.logic.predictions.refit import CustomerValueSettings, refit_customer_value
from midstage.logic.predictions.summary import Transactions, day_number
from midstage.logic.predictions.traits import merge
from midstage.logic.timefmt import iso
from midstage.services.analytics import Engine
from midstage.services.ports import EventSink, PersonSuppressionLookup

RECOMMENDATIONS_TRAIT = "recommendations"
_LOOKUP_CHUNK = 500  # identifiers per suppression lookup


class RefitSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lookback_days: int = Field(default=730, ge=30, le=3650)  # the archive window read
    customer_value: CustomerValueSettings = CustomerValueSettings()
    items: ItemSettings = ItemSettings()
    recommendations_per_person: int = Field(default=10, ge=1, le=50)


class ModelCards(Protocol):
    """The stored cards: the latest of each kind and every version."""

    def latest(self, kind: ModelKind) -> ModelCard | None: ...

    def save(self, card: ModelCard) -> bool: ...  # False: another run stored this version


@dataclass
class RefitSummary:
    as_of: str
    people: int = 0  # in the archive's window
    excluded: int = 0  # suppressed: neither trained on nor scored
    scored: int = 0  # people handed a `predicted` trait
    messages: int = 0
    cards: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dict(vars(self))


def suppressed_people(people: Mapping[str, archive_history.History], lookup: PersonSuppressionLookup) -> set[str]:
    owner: dict[Identifier, str] = {}
    for person, history in people.items():
        for identifier in history.identifiers():
            owner[identifier] = person
    found: set[str] = set()
    listed = sorted(owner)
    for start in range(0, len(listed), _LOOKUP_CHUNK):
        found.update(owner[i] for i in lookup.matching(listed[start : start + _LOOKUP_CHUNK]))
    return found


def _next_version(cards: ModelCards, kind: ModelKind) -> int:
    latest = cards.latest(kind)
    return 1 if latest is None else latest.version + 1


def _orders(people: Iterable[archive_history.History]) -> Transactions:
    ids: list[str] = []
    days: list[int] = []
    amounts: list[float] = []
    for history in people:
        for day, amount in history.orders:
            ids.append(history.person)
            days.append(day_number(day))
            amounts.append(amount)
    return Transactions.from_columns(ids, days, amounts)


def refit(
    engine: Engine,
    suppressions: PersonSuppressionLookup,
    cards: ModelCards,
    events: EventSink,
    *,
    now: datetime,
    settings: RefitSettings | None = None,
) -> RefitSummary:
    """Refit and rescore everyone as of `now` (the schedule's occurrence)."""
    settings = settings or RefitSettings()
    fitted_at = iso(now)
    done = cards.latest("customer_value")
    if done is not None and done.fitted_at == fitted_at:  # the schedule fired again for this occurrence
        return RefitSummary(fitted_at, notes=[f"{done.id} is already the refit as of {fitted_at}: nothing sent"])
    start, end = archive_history.window(now.date(), settings.lookback_days)
    merged_into = archive_history.survivors(engine.run(archive_history.merges_query(start, end)).records())
    people = archive_history.histories(engine.run(archive_history.activity_query(start, end)).records(), merged_into)
    excluded = suppressed_people(people, suppressions)
    kept = {person: h for person, h in people.items() if person not in excluded}
    summary = RefitSummary(fitted_at, people=len(people), excluded=len(excluded))
    tables = []
    try:
        value = refit_customer_value(
            _orders(people.values()),
            as_of=now.date(),
            settings=settings.customer_value,
            version=_next_version(cards, "customer_value"),
            fitted_at=fitted_at,
            erased=excluded,
        )
        if not cards.save(value.card):
            summary.notes.append(f"{value.card.id} was stored by another run: nothing sent")
            return summary
        summary.cards.append(value.card.id)
        summary.notes.extend(value.card.notes)
        tables.append(value.scores)
    except (FitError, ValueError) as error:
        summary.notes.append(f"no customer-value model: {error}")
    recommended, items_card = _recommendations(kept, settings, cards, fitted_at, now, len(excluded))
    if items_card is not None:
        if not cards.save(items_card):
            summary.notes.append(f"{items_card.id} was stored by another run: nothing sent")
            return summary
        summary.cards.append(items_card.id)
    traits = merge(*tables)
    groups: dict[str, list[dict[str, Any]]] = {}
    for person, history in kept.items():
        predicted: dict[str, Any] = dict(traits.get(person, {}))
        if person in recommended:
            predicted[RECOMMENDATIONS_TRAIT] = recommended[person]
        if not predicted:
            continue
        address = history.address()
        message_id = internal_events.internal_id("predicted", person, *summary.cards, fitted_at)
        event = internal_events.identify(address, {"predicted": predicted}, message_id=message_id, timestamp=fitted_at)
        groups[internal_events.person_key(event)] = [event]
    summary.scored = len(groups)
    summary.messages = events.send(groups) if groups else 0
    return summary


def _recommendations(
    kept: Mapping[str, archive_history.History],
    settings: RefitSettings,
    cards: ModelCards,
    fitted_at: str,
    now: datetime,
    excluded: int,
) -> tuple[dict[str, dict[str, Any]], ModelCard | None]:
    rows = archive_history.interactions(kept.values())
    if not rows:
        return {}, None
    model = fit_items(rows, settings.items)
    parameters = model.to_parameters()
    card = new_card(
        "recommendations",
        _next_version(cards, "recommendations"),
        fitted_at,
        DataWindow(
            start=None,
            calibration_end=now.date().isoformat(),
            people=len({person for person, _, _ in rows}),
            records=len(rows),
            excluded_people=excluded,
        ),
        parameters,
        settings=settings.items.model_dump(mode="json"),
        notes=[f"{len(parameters['neighbours'])} items with neighbours, {len(parameters['popular'])} popular"],
    )
    out: dict[str, dict[str, Any]] = {}
    for person, history in kept.items():
        if not history.purchased and not history.viewed:
            continue
        listed = recommend(
            parameters, purchased=history.purchased, viewed=history.viewed, k=settings.recommendations_per_person
        )
        out[person] = {"value": listed, "model": card.id}
    return out, card
