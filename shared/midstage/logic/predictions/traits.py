"""Scores as profile traits: `predicted.<name>` = {value, percentile, model}.

The value is the model's own number (a probability, a count, a currency amount), the percentile
its rank among everyone scored in the same run (0-100, the share of people with a lower score,
ties counted half: 90 means "above 90 % of customers"), and `model` the id of the card behind it,
so an export can name the model that produced a person's score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from midstage.logic.predictions.summary import FloatArray, IntArray

PREFIX = "predicted"
DECIMALS = 6  # stored values are decimals in DynamoDB; six places is far below any model's error


@dataclass(frozen=True)
class ScoreTable:
    """Scores of one run, as columns over the same people."""

    ids: tuple[str, ...]
    columns: dict[str, FloatArray]
    model: str  # the card id

    def __post_init__(self) -> None:
        for name, column in self.columns.items():
            if len(column) != len(self.ids):
                raise ValueError(f"score {name!r} has {len(column)} values for {len(self.ids)} people")

    def percentiles(self) -> dict[str, IntArray]:
        return {name: percentiles(column) for name, column in self.columns.items()}


def percentiles(values: FloatArray) -> IntArray:
    """0-100: 100 x (people below + half of those equal) / people, rounded."""
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    ordered = np.sort(values)
    below = np.searchsorted(ordered, values, side="left")
    at_or_below = np.searchsorted(ordered, values, side="right")
    return np.rint(100.0 * (below + (at_or_below - below) / 2.0) / n).astype(np.int64)


def predicted_traits(table: ScoreTable) -> dict[str, dict[str, dict[str, Any]]]:
    """Per person id, the `predicted` traits to store: {name: {value, percentile, model}}."""
    ranks = table.percentiles()
    rounded = {name: np.round(column, DECIMALS) for name, column in table.columns.items()}
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for i, person in enumerate(table.ids):
        out[person] = {
            name: {"value": float(rounded[name][i]), "percentile": int(ranks[name][i]), "model": table.model}
            for name in table.columns
        }
    return out


def merge(*tables: ScoreTable) -> dict[str, dict[str, dict[str, Any]]]:
    """The `predicted` traits of several runs (customer value, each propensity) per person."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for table in tables:
        for person, scores in predicted_traits(table).items():
            out.setdefault(person, {}).update(scores)
    return out
