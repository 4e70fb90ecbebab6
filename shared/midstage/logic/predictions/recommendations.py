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
