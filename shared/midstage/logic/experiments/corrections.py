"""Multiple-testing corrections: Holm (family-wise error) and Benjamini-Hochberg (false
discovery rate), over a family of comparisons the user chooses.

GrowthBook pools every goal metric x variation into one family; users asked for narrower ones
(growthbook/growthbook#2868), so the family is a choice here:

- "all": every comparison of the experiment (every metric, every treatment arm);
- "metric": the comparisons of one metric (its treatment arms) form a family;
- "variant": the comparisons of one treatment arm (its metrics) form a family.

Adjusted p-values equal statsmodels' `multipletests(method="holm" | "fdr_bh")`: Holm's is the
running maximum of (m - i + 1)·p₍ᵢ₎ over the sorted p-values, BH's the running minimum, from the
largest down, of m·p₍ᵢ₎/i; both capped at 1. A comparison is rejected when its adjusted p-value
is at most alpha.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "CORRECTIONS",
    "FAMILIES",
    "Comparison",
    "Correction",
    "Family",
    "adjust",
    "benjamini_hochberg",
    "correct",
    "holm",
]

Correction = Literal["none", "holm", "benjamini-hochberg"]
Family = Literal["all", "metric", "variant"]
CORRECTIONS: Final[tuple[Correction, ...]] = ("none", "holm", "benjamini-hochberg")
FAMILIES: Final[tuple[Family, ...]] = ("all", "metric", "variant")


def holm(p_values: Sequence[float]) -> list[float]:
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, (m - rank) * p_values[index])
        adjusted[index] = min(running, 1.0)
    return adjusted


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 1.0
    for rank in range(m - 1, -1, -1):
        index = order[rank]
        running = min(running, p_values[index] * m / (rank + 1))
        adjusted[index] = running
    return adjusted


def adjust(p_values: Sequence[float], method: Correction) -> list[float]:
    if method == "holm":
        return holm(p_values)
    if method == "benjamini-hochberg":
        return benjamini_hochberg(p_values)
    return [min(p, 1.0) for p in p_values]


@dataclass(frozen=True, slots=True)
class Comparison:
    """One treatment arm against control on one metric."""

    metric: Hashable
    variant: Hashable
    p_value: float


def correct(comparisons: Sequence[Comparison], method: Correction, family: Family = "all") -> list[float]:
    """Each comparison's adjusted p-value, in the order given, corrected within its family."""
    groups: dict[Hashable, list[int]] = {}
    for index, comparison in enumerate(comparisons):
        key = {"all": None, "metric": comparison.metric, "variant": comparison.variant}[family]
        groups.setdefault(key, []).append(index)
    adjusted = [0.0] * len(comparisons)
    for members in groups.values():
        for index, value in zip(members, adjust([comparisons[i].p_value for i in members], method), strict=True):
            adjusted[index] = value
    return adjusted
