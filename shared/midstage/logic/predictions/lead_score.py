"""Lead score: configurable points for what a person did and is, decaying with age, plus a propensity.

    score = sum over event rules of  points x (occurrences, each weighted 0.5 ^ (age / half-life))
          + sum over trait rules of  points, when the profile's trait matches
          + propensity_points x the person's `predicted.<propensity_trait>` probability

An event's weight halves every `half_life_days` (a click today is worth its points, a click one
half-life ago half of them); events after `as_of` do not count, so a score is reproducible for
any moment. `max_count` caps how many occurrences of one rule count (the most recent ones), so
that one person refreshing a page cannot buy a high score. The score is rounded to two places
and graded by the first threshold it reaches.

Pure Python, no numpy: it runs where profiles are updated, from the events and traits at hand.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

SECONDS_PER_DAY = 86_400.0


class PointRule(BaseModel):
    """Points for each occurrence of an event, or once for a trait with a given value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=64)
    event: str | None = None
    trait: str | None = None
    equals: Any = None  # with `trait`: the value it must have (None: any value present)
    points: float = Field(ge=-1000, le=1000)
    max_count: int | None = Field(default=None, ge=1)  # with `event`: occurrences counted at most

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.event is None) == (self.trait is None):
            raise ValueError(f"rule {self.id!r}: give exactly one of `event` and `trait`")
        if self.trait is not None and self.max_count is not None:
            raise ValueError(f"rule {self.id!r}: `max_count` applies to event rules only")
        return self


class LeadScoreSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: tuple[PointRule, ...] = Field(min_length=1)
    half_life_days: float | None = Field(default=30.0, gt=0)  # None: event points never decay
    propensity_trait: str | None = None  # e.g. "propensity_order_completed_30d"
    propensity_points: float = Field(default=0.0, ge=0, le=1000)
    grades: tuple[tuple[str, float], ...] = (("A", 80.0), ("B", 50.0), ("C", 20.0))  # highest first
    default_grade: str = "D"

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        ids = [rule.id for rule in self.rules]
        if len(set(ids)) != len(ids):
            raise ValueError("rule ids must be unique")
        thresholds = [threshold for _, threshold in self.grades]
        if thresholds != sorted(thresholds, reverse=True):
            raise ValueError("grades must be listed from the highest threshold down")
        if self.propensity_points and not self.propensity_trait:
            raise ValueError("`propensity_points` needs `propensity_trait`")
        return self


@dataclass(frozen=True)
class LeadScore:
    score: float
    grade: str
    breakdown: dict[str, float]  # rule id (and "propensity") -> its points, for the people who ask why


def lead_score(
    events: Iterable[tuple[str, datetime]],
    traits: Mapping[str, Any],
    settings: LeadScoreSettings,
    *,
    as_of: datetime,
    predicted: Mapping[str, Mapping[str, Any]] | None = None,
) -> LeadScore:
    """A person's score as of `as_of` from their (event name, time) pairs, their traits and their
    `predicted` traits ({name: {"value": ...}}, as traits.predicted_traits stores them)."""
    ages: dict[str, list[float]] = {}
    wanted = {rule.event for rule in settings.rules if rule.event is not None}
    for name, when in events:
        if name in wanted and when <= as_of:
            ages.setdefault(name, []).append((as_of - when).total_seconds() / SECONDS_PER_DAY)
    breakdown: dict[str, float] = {}
    for rule in settings.rules:
        if rule.event is not None:
            counted = sorted(ages.get(rule.event, []))[: rule.max_count]  # the most recent first
            breakdown[rule.id] = rule.points * sum(_weight(age, settings.half_life_days) for age in counted)
        elif rule.trait is not None:
            present = rule.trait in traits and traits[rule.trait] is not None
            matches = present and (rule.equals is None or traits[rule.trait] == rule.equals)
            breakdown[rule.id] = rule.points if matches else 0.0
    if settings.propensity_trait:
        probability = ((predicted or {}).get(settings.propensity_trait) or {}).get("value")
        breakdown["propensity"] = settings.propensity_points * float(probability) if probability is not None else 0.0
    score = round(sum(breakdown.values()), 2)
    grade = next((name for name, threshold in settings.grades if score >= threshold), settings.default_grade)
    return LeadScore(score, grade, {key: round(value, 4) for key, value in breakdown.items()})


def _weight(age_days: float, half_life_days: float | None) -> float:
    return 1.0 if half_life_days is None else float(0.5 ** (age_days / half_life_days))
