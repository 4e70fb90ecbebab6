"""A generated population whose goal conversions follow a known rule, for the propensity tests
and the benchmark."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from midstage.logic.predictions.propensity import ActivityLog, days_since_epoch

START = datetime(2026, 1, 1, tzinfo=UTC)
DAYS = 240
WINDOW = 30
AS_OF = START + timedelta(days=DAYS)
GOAL = "Subscription Started"
KINDS = ("Product Viewed", "Email Opened", "Email Link Clicked", "Order Completed", "$page", GOAL)
# The true rule: logit P(goal within 30 days of a cut-off) from what a person did before it.
RULE = {"intercept": -2.6, "views_7d": 1.0, "clicks_30d": 0.9, "orders": 0.5, "days_since_last": -0.4}


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


@dataclass
class Population:
    log: ActivityLog
    truth: dict[str, np.ndarray]  # per cut-off name: the true probability per person code (nan: not seen)


def rule_logit(person: np.ndarray, kind: np.ndarray, at: np.ndarray, cutoff: float, n: int) -> np.ndarray:
    """The true rule's logit per person code, from raw events up to `cutoff` (nan: not seen yet)."""
    seen = at <= cutoff
    last = np.full(n, -np.inf)
    np.maximum.at(last, person[seen], at[seen])

    def count(k: int, window: float | None) -> np.ndarray:
        m = seen & (kind == k) & ((at > cutoff - window) if window else True)
        return np.bincount(person[m], minlength=n).astype(float)

    z = (
        RULE["intercept"]
        + RULE["views_7d"] * np.log1p(count(0, 7))
        + RULE["clicks_30d"] * np.log1p(count(2, 30))
        + RULE["orders"] * np.log1p(count(3, None))
        + RULE["days_since_last"] * np.log1p(cutoff - last)
    )
    z[~np.isfinite(last)] = np.nan
    return z


def generate(people: int, seed: int) -> Population:
    rng = np.random.default_rng(seed)
    t0 = days_since_epoch(START)
    end = t0 + DAYS
    first = t0 + rng.uniform(0, DAYS * 0.6, people)
    activity = rng.gamma(1.5, 1.0, people)
    email = rng.gamma(1.0, 1.0, people)
    rates = {0: 0.15 * activity, 1: 0.05 * email, 3: 0.01 * activity, 4: 0.3 * rng.gamma(2.0, 0.5, people)}
    person_parts, kind_parts, at_parts = [np.arange(people)], [np.full(people, 4)], [first]  # first visit
    for k, rate in rates.items():
        n = rng.poisson(rate * (end - first))
        who = np.repeat(np.arange(people), n)
        person_parts.append(who)
        kind_parts.append(np.full(len(who), k))
        at_parts.append(first[who] + rng.uniform(0, 1, len(who)) * (end - first[who]))
    # Clicks follow opens: about a third of the opens (part 2: kind 1) are clicked a little later.
    open_who, open_at = person_parts[2], at_parts[2]
    clicked = rng.random(len(open_who)) < 0.35
    person_parts.append(open_who[clicked])
    kind_parts.append(np.full(int(clicked.sum()), 2))
    at_parts.append(np.minimum(open_at[clicked] + rng.uniform(0, 0.1, int(clicked.sum())), end))
    person, kind, at = (np.concatenate(p) for p in (person_parts, kind_parts, at_parts))

    truth = {}
    for name, cutoff in (("training", end - 2 * WINDOW), ("holdout", end - WINDOW)):
        z = rule_logit(person, kind, at, cutoff, people)
        p = np.where(np.isnan(z), 0.0, sigmoid(np.nan_to_num(z)))
        converts = rng.random(people) < p
        who = np.flatnonzero(converts)
        person = np.concatenate([person, who])
        kind = np.concatenate([kind, np.full(len(who), 5)])
        at = np.concatenate([at, cutoff + rng.uniform(1e-6, WINDOW, len(who))])
        truth[name] = np.where(np.isnan(z), np.nan, p)
    amount = np.where(kind == 3, np.round(rng.gamma(2.0, 30.0, len(kind)), 2), 0.0)
    log = ActivityLog(
        people=tuple(f"p{i:07d}" for i in range(people)),
        person=person.astype(np.int64),
        kinds=KINDS,
        kind=kind.astype(np.int64),
        at=at,
        amount=amount,
    )
    return Population(log, truth)
