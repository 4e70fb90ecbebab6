"""Next products for a person from a fitted item-to-item model (co_occurrence.py), pure Python.

A candidate's score is the sum of its similarities to the items the person bought (weight 1) and
viewed (`view_weight`, default 0.5); items the person already bought are not recommended. When
fewer than `k` candidates remain, the most popular items the person has not bought fill the list,
so someone with no history still gets `k` products (as long as the catalogue has them).

`parameters` is the model as its card stores it: {"neighbours": {item: [[item, similarity], ...]},
"popular": [item, ...]}.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def recommend(
    parameters: Mapping[str, Any],
    *,
    purchased: Sequence[str] = (),
    viewed: Sequence[str] = (),
    k: int = 3,
    view_weight: float = 0.5,
) -> list[str]:
    if k < 1:
        return []
    neighbours: Mapping[str, Sequence[Sequence[Any]]] = parameters.get("neighbours", {})
    owned = set(purchased)
    scores: dict[str, float] = {}
    for seeds, weight in ((set(purchased), 1.0), (set(viewed) - owned, view_weight)):
        for seed in seeds:
            for item, similarity in neighbours.get(seed, ()):
                if item not in owned:
                    scores[item] = scores.get(item, 0.0) + weight * float(similarity)
    ranked = sorted(scores, key=lambda item: (-scores[item], item))[:k]
    chosen = set(ranked)
    for item in parameters.get("popular", ()):
        if len(ranked) >= k:
            break
        if item not in owned and item not in chosen:
            ranked.append(item)
            chosen.add(item)
    return ranked


def for_person(traits: Mapping[str, Any], popular: Sequence[str], limit: int = 50) -> list[str]:
    """What `recommendations(n)` in a template shows someone: the list the weekly refit stored on
    their profile (`traits.predicted.recommendations.value`, already filled up from popularity),
    else the latest model's best sellers (`popular`): someone the archive has no history of."""
    predicted = traits.get("predicted")
    stored = predicted.get("recommendations") if isinstance(predicted, Mapping) else None
    listed = stored.get("value") if isinstance(stored, Mapping) else None
    if isinstance(listed, list) and listed:
        return [str(item) for item in listed[:limit]]
    return [str(item) for item in popular[:limit]]


def popular_of(parameters: Mapping[str, Any] | None) -> list[str]:
    """The best sellers of a stored item model (its card's parameters), the fallback for people
    with no history."""
    popular = (parameters or {}).get("popular")
    return [str(item) for item in popular] if isinstance(popular, list) else []
