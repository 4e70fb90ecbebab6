"""The predictive models' cards, as the admin API shows them (docs/predictions.md)."""

from __future__ import annotations

from typing import Any, Protocol, get_args

from midstage.errors import NotFound
from midstage.logic.predictions.cards import ModelCard, ModelKind

KINDS: tuple[str, ...] = get_args(ModelKind)


class StoredCards(Protocol):
    def latest(self, kind: ModelKind) -> ModelCard | None: ...

    def version(self, kind: ModelKind, version: int) -> ModelCard | None: ...


def model_card(cards: StoredCards, kind: str, version: int | None) -> dict[str, Any]:
    """The latest card of a kind, or one version of it; 404 for a kind or version never fitted."""
    if kind not in KINDS:
        raise NotFound(f"no model of kind {kind!r}; the kinds are {', '.join(KINDS)}")
    known: ModelKind = kind  # type: ignore[assignment]  # checked against KINDS above
    card = cards.latest(known) if version is None else cards.version(known, version)
    if card is None:
        which = f"version {version} of the {kind} model" if version is not None else f"{kind} model"
        raise NotFound(f"no {which}: the weekly refit has not fitted it")
    return {"card": card.to_json()}
