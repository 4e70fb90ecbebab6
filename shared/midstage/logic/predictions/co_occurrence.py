"""Item-to-item model from co-purchase and co-view, with popularity for the fallback.

Per signal (purchases, views), people x items is a 0/1 matrix X (did this person ever buy / view
this item in the window); the similarity of two items is the cosine of their columns,

    cos(i, j) = |people with both| / sqrt(|people with i| |people with j|)

and an item's neighbours are ranked by  purchase_weight x cos_purchase + view_weight x cos_view,
keeping the `neighbours` best with at least `min_together` people behind the stronger signal
(a pair seen once is noise). Popularity is the number of distinct buyers (then viewers) per item.

The fitted model is plain data (`ItemModel.to_parameters`), stored in a model card of kind
"recommendations"; `recommendations.py` reads it without numpy.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field
from scipy import sparse


class ItemSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    purchase_weight: float = Field(default=1.0, ge=0)
    view_weight: float = Field(default=0.3, ge=0)
    neighbours: int = Field(default=20, ge=1, le=200)
    min_together: int = Field(default=2, ge=1)
    popular: int = Field(default=50, ge=1, le=1000)


class ItemModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    neighbours: dict[str, list[tuple[str, float]]]  # item -> [(item, similarity)], best first
    popular: list[str]  # most bought first, then most viewed

    def to_parameters(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def fit_items(interactions: Iterable[tuple[str, str, str]], settings: ItemSettings | None = None) -> ItemModel:
    """From (person id, item id, "purchase" | "view") rows; other kinds are ignored."""
    settings = settings or ItemSettings()
    people: dict[str, int] = {}
    items: dict[str, int] = {}
    rows: dict[str, tuple[list[int], list[int]]] = {"purchase": ([], []), "view": ([], [])}
    for person, item, kind in interactions:
        if kind not in rows:
            continue
        who, what = rows[kind]
        who.append(people.setdefault(person, len(people)))
        what.append(items.setdefault(item, len(items)))
    names = list(items)
    n_people, n_items = len(people), len(items)
    score = sparse.csr_matrix((n_items, n_items))
    together = sparse.csr_matrix((n_items, n_items))
    reach: dict[str, npt.NDArray[np.float64]] = {}
    for kind, weight in (("purchase", settings.purchase_weight), ("view", settings.view_weight)):
        who, what = rows[kind]
        x = sparse.csr_matrix((np.ones(len(who)), (who, what)), shape=(n_people, n_items))
        x.data[:] = 1.0  # duplicates summed on construction: ever, not how often
        counts = (x.T @ x).tocsr()
        counts.setdiag(0)
        counts.eliminate_zeros()
        per_item = np.asarray(x.sum(axis=0)).ravel()
        reach[kind] = per_item
        norm = np.sqrt(np.maximum(per_item, 1.0))
        cosine = sparse.diags(1.0 / norm) @ counts @ sparse.diags(1.0 / norm)
        score = score + weight * cosine
        together = together.maximum(counts)
    supported = sparse.csr_matrix(score.multiply(together >= settings.min_together))
    supported.eliminate_zeros()
    neighbours: dict[str, list[tuple[str, float]]] = {}
    for i in range(n_items):
        start, end = supported.indptr[i], supported.indptr[i + 1]
        columns, values = supported.indices[start:end], supported.data[start:end]
        keep = values > 0
        columns, values = columns[keep], values[keep]
        # best first; equal scores by item id, so the order does not depend on the input's
        best = sorted(range(len(columns)), key=lambda k: (-values[k], names[columns[k]]))[: settings.neighbours]
        if best:
            neighbours[names[i]] = [(names[columns[b]], round(float(values[b]), 6)) for b in best]
    buyers = reach["purchase"] if n_items else np.zeros(0)
    viewers = reach["view"] if n_items else np.zeros(0)
    order = sorted(range(n_items), key=lambda k: (-buyers[k], -viewers[k], names[k]))
    return ItemModel(neighbours=neighbours, popular=[names[k] for k in order[: settings.popular]])
