"""Propensity: the probability that a person does a goal event within N days (or, for churn, does not).

Features are computed from the event log as it stood at a cut-off, never after it:
recency (days since the last event, since the last order), tenure, frequency and value of
orders, counts of the most frequent event kinds over each window, counts of channel engagement
events (opens, clicks) over each window, and the lifecycle stage the profile logic would have
given at the cut-off. Counts enter as log(1 + n), every column standardised.

Training uses a time split, with N the goal's window and T the run's "as of":

    training    features at T - 2N, outcome in (T - 2N, T - N]
    holdout     features at T - N,  outcome in (T - N, T]        -> the card's quality
    scores      features at T                                    -> the profile's traits

The model is an L2-regularised logistic regression (scipy's L-BFGS-B, analytic gradient), on a
seeded random 75 % of the training people; the other 25 % calibrate its probabilities (Platt
scaling, or isotonic regression by pool-adjacent-violators). The holdout period is never seen
by the fit or the calibration.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field
from scipy.optimize import isotonic_regression, minimize

from midstage.logic.predictions import metrics
from midstage.logic.predictions.bgnbd import FitError
from midstage.logic.predictions.cards import DataWindow, DecileRow, ModelCard, PropensityQuality, new_card
from midstage.logic.predictions.summary import FloatArray, IntArray
from midstage.logic.predictions.traits import ScoreTable

SECONDS_PER_DAY = 86_400.0
LIFECYCLE = ("new", "active", "silent", "churned")
MIN_OUTCOMES = 20  # people doing and not doing the goal, each, in training and in the calibration set


def days_since_epoch(moment: datetime) -> float:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp() / SECONDS_PER_DAY


def iso_day_of(days: float) -> str:
    return datetime.fromtimestamp(days * SECONDS_PER_DAY, UTC).date().isoformat()


def last_day_before(cutoff: float) -> str:
    """The last (inclusive) day of data before a cut-off: a cut at midnight closes the day before."""
    return iso_day_of(cutoff - 1e-6)


# ------------------------------------------------------------------------------ the event log
@dataclass(frozen=True)
class ActivityLog:
    """Events as columns: `person[i]` indexes `people`, `kind[i]` indexes `kinds`, `at[i]` is
    days since 1970-01-01 UTC, `amount[i]` the order value (0 for other events)."""

    people: tuple[str, ...]
    person: IntArray
    kinds: tuple[str, ...]
    kind: IntArray
    at: FloatArray
    amount: FloatArray

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str, float | datetime, str, float]]) -> ActivityLog:
        """From (person id, time, event name, amount) rows."""
        people: dict[str, int] = {}
        kinds: dict[str, int] = {}
        person, kind, at, amount = [], [], [], []
        for who, when, what, value in rows:
            person.append(people.setdefault(who, len(people)))
            kind.append(kinds.setdefault(what, len(kinds)))
            at.append(days_since_epoch(when) if isinstance(when, datetime) else float(when))
            amount.append(float(value))
        return cls(
            tuple(people),
            np.asarray(person, dtype=np.int64),
            tuple(kinds),
            np.asarray(kind, dtype=np.int64),
            np.asarray(at, dtype=np.float64),
            np.asarray(amount, dtype=np.float64),
        )

    def code(self, kind: str) -> int:
        return self.kinds.index(kind) if kind in self.kinds else -1

    def without(self, excluded: set[str]) -> ActivityLog:
        if not excluded:
            return self
        drop = np.array([p in excluded for p in self.people], dtype=bool)
        keep = ~drop[self.person]
        return ActivityLog(
            self.people, self.person[keep], self.kinds, self.kind[keep], self.at[keep], self.amount[keep]
        )


# ------------------------------------------------------------------------------ features
class FeatureSpec(BaseModel):
    """Which features a model uses; fixed at training and stored in the card."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    order_event: str = "Order Completed"
    windows_days: tuple[int, ...] = (7, 30, 90)
    event_kinds: tuple[str, ...] = ()  # counted per window
    channels: dict[str, tuple[str, ...]] = Field(
        default_factory=lambda: {
            "email": ("Email Opened", "Email Link Clicked"),
            "push": ("Push Notification Tapped",),
        }
    )
    lifecycle_new_days: int = 30  # the profile's computed-trait defaults (config.ComputedTraitSettings)
    lifecycle_silent_days: int = 30
    lifecycle_churned_days: int = 90
    never_days: float = 730.0  # "days since the last order" of someone who never ordered

    def names(self) -> list[str]:
        names = [
            "log_days_since_last_event",
            "log_days_since_first_event",
            "log_days_since_last_order",
            "has_ordered",
            "log_orders",
            "log_mean_order_value",
        ]
        names += [f"log_count[{k}][{w}d]" for k in self.event_kinds for w in self.windows_days]
        names += [f"log_channel[{c}][{w}d]" for c in self.channels for w in self.windows_days]
        names += [f"lifecycle={stage}" for stage in LIFECYCLE]
        return names


@dataclass(frozen=True)
class Features:
    rows: IntArray  # person codes (indexes into the log's people) of the people seen by the cut-off
    matrix: FloatArray
    days_since_last_event: FloatArray


def features(log: ActivityLog, spec: FeatureSpec, cutoff: float) -> Features:
    """Features of everyone with an event at or before `cutoff` (days since epoch), as of then."""
    seen = log.at <= cutoff
    person, at, kind, amount = log.person[seen], log.at[seen], log.kind[seen], log.amount[seen]
    rows = np.unique(person)
    row_of = np.full(len(log.people), -1, dtype=np.int64)
    row_of[rows] = np.arange(len(rows))
    r = row_of[person]
    n = len(rows)

    first = np.full(n, np.inf)
    last = np.full(n, -np.inf)
    np.minimum.at(first, r, at)
    np.maximum.at(last, r, at)
    order_code = log.code(spec.order_event)
    is_order = kind == order_code
    orders = np.bincount(r[is_order], minlength=n).astype(np.float64)
    revenue = np.bincount(r[is_order], weights=amount[is_order], minlength=n)
    last_order = np.full(n, -np.inf)
    np.maximum.at(last_order, r[is_order], at[is_order])
    since_last = cutoff - last
    tenure = cutoff - first
    since_order = np.where(orders > 0, cutoff - last_order, spec.never_days)
    mean_value = np.where(orders > 0, np.maximum(revenue, 0.0) / np.maximum(orders, 1.0), 0.0)

    columns: list[FloatArray] = [
        np.log1p(since_last),
        np.log1p(tenure),
        np.log1p(since_order),
        (orders > 0).astype(np.float64),
        np.log1p(orders),
        np.log1p(mean_value),
    ]
    columns += _window_counts(log, r, kind, at, n, cutoff, [[k] for k in spec.event_kinds], spec.windows_days)
    columns += _window_counts(log, r, kind, at, n, cutoff, list(spec.channels.values()), spec.windows_days)
    stage = np.full(n, 1)  # active
    stage[tenure < spec.lifecycle_new_days] = 0
    stage[since_last >= spec.lifecycle_silent_days] = 2
    stage[since_last >= spec.lifecycle_churned_days] = 3
    columns += [(stage == s).astype(np.float64) for s in range(len(LIFECYCLE))]
    return Features(rows, np.column_stack(columns) if n else np.zeros((0, len(spec.names()))), since_last)


def _window_counts(
    log: ActivityLog,
    r: IntArray,
    kind: IntArray,
    at: FloatArray,
    n: int,
    cutoff: float,
    groups: list[list[str]] | list[tuple[str, ...]],
    windows: tuple[int, ...],
) -> list[FloatArray]:
    """log(1 + events of each group of kinds within each window), in the order group, window."""
    if not groups:
        return []
    column_of_kind = np.full(len(log.kinds) + 1, -1, dtype=np.int64)
    for g, names in enumerate(groups):
        for name in names:
            code = log.code(name)
            if code >= 0:
                column_of_kind[code] = g
    column = column_of_kind[kind]
    counted = column >= 0
    out: list[FloatArray] = []
    per_window = []
    for window in windows:
        inside = counted & (at > cutoff - window)
        flat = np.bincount(r[inside] * len(groups) + column[inside], minlength=n * len(groups))
        per_window.append(np.log1p(flat.reshape(n, len(groups)).astype(np.float64)))
    for g in range(len(groups)):
        for w in range(len(windows)):
            out.append(per_window[w][:, g])
    return out


def outcome(log: ActivityLog, goal: str, start: float, end: float) -> npt.NDArray[np.bool_]:
    """Per person code: did `goal` happen in (start, end]?"""
    hit = (log.kind == log.code(goal)) & (log.at > start) & (log.at <= end)
    done = np.zeros(len(log.people), dtype=bool)
    done[log.person[hit]] = True
    return done


# ------------------------------------------------------------------------------ the model
def _sigmoid(z: FloatArray) -> FloatArray:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * z)), dtype=np.float64)  # no overflow for large |z|


def fit_logistic(x: FloatArray, y: npt.NDArray[np.bool_], *, l2: float) -> tuple[FloatArray, float]:
    """(coefficients, intercept) maximising the log-likelihood minus l2/2 |coefficients|^2, by
    scipy's L-BFGS-B with the analytic gradient. The problem is convex, so this is the optimum;
    L-BFGS needs only matrix-vector products, where Newton's Hessian is a matrix product per step
    that costs far more on many rows."""
    n, d = x.shape
    target = y.astype(np.float64)
    base = float(np.clip(target.mean(), 1e-6, 1 - 1e-6))

    def loss(w: FloatArray) -> tuple[float, FloatArray]:
        z = x @ w[1:] + w[0]
        # log(1 + e^z) - y z, written so that no exponential overflows
        value = float(np.sum(np.logaddexp(0.0, z) - target * z)) + 0.5 * l2 * float(w[1:] @ w[1:])
        residual = _sigmoid(z) - target
        gradient = np.concatenate([[residual.sum()], x.T @ residual + l2 * w[1:]])
        return value / n, gradient / n

    start = np.zeros(d + 1)
    start[0] = np.log(base / (1 - base))
    result = minimize(
        loss, start, jac=True, method="L-BFGS-B", options={"maxiter": 2000, "gtol": 1e-9, "ftol": 1e-15, "maxcor": 30}
    )
    if not result.success and "ABNORMAL" not in str(result.message):
        raise FitError(f"the logistic regression did not converge: {result.message}")
    return np.asarray(result.x[1:], dtype=np.float64), float(result.x[0])


class Calibration(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["platt", "isotonic"]
    slope: float = 1.0  # platt: sigmoid(slope * logit + offset)
    offset: float = 0.0
    x: list[float] = Field(default_factory=list)  # isotonic: raw probabilities ...
    y: list[float] = Field(default_factory=list)  # ... and the calibrated ones, interpolated between

    def apply(self, logit: FloatArray) -> FloatArray:
        if self.method == "platt":
            return _sigmoid(self.slope * logit + self.offset)
        return np.asarray(np.interp(_sigmoid(logit), self.x, self.y), dtype=np.float64)


def platt(logit: FloatArray, y: npt.NDArray[np.bool_]) -> Calibration:
    coef, intercept = fit_logistic(logit[:, None], y, l2=1e-6)
    return Calibration(method="platt", slope=float(coef[0]), offset=intercept)


def isotonic(logit: FloatArray, y: npt.NDArray[np.bool_]) -> Calibration:
    """The non-decreasing function of the raw probability closest (least squares) to the outcomes,
    by pool-adjacent-violators (scipy), linear between the distinct raw probabilities and flat
    beyond them. People with the same raw probability are pooled first, so ties cannot make the
    function step backwards. Only the ends of each flat stretch are kept: the same function in far
    fewer points, which keeps the card small."""
    raw = _sigmoid(logit)
    xs, inverse, counts = np.unique(raw, return_inverse=True, return_counts=True)
    means = np.bincount(inverse, weights=y.astype(np.float64)) / counts
    fitted = np.asarray(isotonic_regression(means, weights=counts).x, dtype=np.float64)
    changes = np.flatnonzero(np.diff(fitted) != 0)
    keep = np.unique(np.concatenate([[0, len(xs) - 1], changes, changes + 1]))
    return Calibration(method="isotonic", x=xs[keep].tolist(), y=fitted[keep].tolist())


@dataclass(frozen=True)
class PropensityModel:
    spec: FeatureSpec
    mean: FloatArray
    scale: FloatArray
    coef: FloatArray
    intercept: float
    calibration: Calibration

    def logit(self, matrix: FloatArray) -> FloatArray:
        return np.asarray(((matrix - self.mean) / self.scale) @ self.coef + self.intercept, dtype=np.float64)

    def probability(self, matrix: FloatArray) -> FloatArray:
        return self.calibration.apply(self.logit(matrix))

    def top_features(self, k: int = 10) -> list[tuple[str, float]]:
        names = self.spec.names()
        order = np.argsort(-np.abs(self.coef), kind="mergesort")[:k]
        return [(names[i], round(float(self.coef[i]), 6)) for i in order]

    def drivers(self, matrix: FloatArray, k: int = 3) -> list[list[str]]:
        """Per person, the features that raised their score most against the average person."""
        contribution = ((matrix - self.mean) / self.scale) * self.coef
        names = self.spec.names()
        top = np.argsort(-contribution, axis=1, kind="mergesort")[:, :k]
        return [[names[j] for j in row if contribution[i, j] > 0] for i, row in enumerate(top)]

    def parameters(self) -> dict[str, Any]:
        return {
            "features": self.spec.model_dump(mode="json"),
            "names": self.spec.names(),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coefficients": self.coef.tolist(),
            "intercept": self.intercept,
            "calibration": self.calibration.model_dump(mode="json"),
        }

    @classmethod
    def from_parameters(cls, parameters: dict[str, Any]) -> PropensityModel:
        return cls(
            FeatureSpec.model_validate(parameters["features"]),
            np.asarray(parameters["mean"], dtype=np.float64),
            np.asarray(parameters["scale"], dtype=np.float64),
            np.asarray(parameters["coefficients"], dtype=np.float64),
            float(parameters["intercept"]),
            Calibration.model_validate(parameters["calibration"]),
        )


# ------------------------------------------------------------------------------ a run
class PropensitySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    goal_event: str = Field(min_length=1)
    window_days: int = Field(default=30, ge=7, le=120)
    outcome: Literal["does", "does_not"] = "does"  # "does_not": churn, as Braze defines it
    name: str | None = None  # the trait; default propensity_<goal>_<N>d (churn_<goal>_<N>d)
    order_event: str = "Order Completed"
    windows_days: tuple[int, ...] = (7, 30, 90)
    max_event_kinds: int = Field(default=20, ge=0, le=200)
    channels: dict[str, tuple[str, ...]] | None = None  # default: FeatureSpec's
    # Only people active in this many days before the cut-off are trained on and scored (Segment's
    # churn eligibility); None: everyone seen.
    eligible_active_days: int | None = Field(default=None, ge=1)
    l2: float = Field(default=1.0, ge=0.0)
    calibration: Literal["platt", "isotonic"] = "platt"
    calibration_share: float = Field(default=0.25, gt=0.0, lt=1.0)
    seed: int = 0

    @property
    def trait(self) -> str:
        if self.name:
            return self.name
        slug = re.sub(r"[^a-z0-9]+", "_", self.goal_event.lower()).strip("_")
        prefix = "churn" if self.outcome == "does_not" else "propensity"
        return f"{prefix}_{slug}_{self.window_days}d"


@dataclass(frozen=True)
class PropensityFit:
    model: PropensityModel
    quality: PropensityQuality
    scores: ScoreTable
    card: ModelCard


def _label(log: ActivityLog, settings: PropensitySettings, start: float) -> npt.NDArray[np.bool_]:
    did = outcome(log, settings.goal_event, start, start + settings.window_days)
    return ~did if settings.outcome == "does_not" else did


def _eligible(found: Features, settings: PropensitySettings) -> npt.NDArray[np.bool_]:
    if settings.eligible_active_days is None:
        return np.ones(len(found.rows), dtype=bool)
    return np.asarray(found.days_since_last_event <= settings.eligible_active_days, dtype=bool)


def _calibration_split(log: ActivityLog, rows: IntArray, settings: PropensitySettings) -> npt.NDArray[np.bool_]:
    """Who calibrates rather than trains: a seeded draw made in the order of the people's ids, so
    that the same data in another order splits the same way."""
    by_id = np.argsort(np.array([log.people[i] for i in rows], dtype=object), kind="mergesort")
    draw = np.empty(len(rows))
    draw[by_id] = np.random.default_rng(settings.seed).random(len(rows))
    return np.asarray(draw < settings.calibration_share, dtype=bool)


def _spec(log: ActivityLog, settings: PropensitySettings, cutoff: float) -> FeatureSpec:
    """The event kinds to count: the most frequent by the training cut-off (ties by name)."""
    counts = np.bincount(log.kind[log.at <= cutoff], minlength=len(log.kinds))
    ranked = sorted((k for k in range(len(log.kinds)) if counts[k]), key=lambda k: (-counts[k], log.kinds[k]))
    kinds = tuple(sorted(log.kinds[k] for k in ranked[: settings.max_event_kinds]))
    extra: dict[str, Any] = {} if settings.channels is None else {"channels": settings.channels}
    return FeatureSpec(order_event=settings.order_event, windows_days=settings.windows_days, event_kinds=kinds, **extra)


def fit_propensity(
    log: ActivityLog,
    settings: PropensitySettings,
    *,
    as_of: datetime,
    version: int,
    fitted_at: str,
    erased: set[str] | frozenset[str] = frozenset(),
) -> PropensityFit:
    """Train, calibrate, back-test and score (module docstring). Raises FitError when the goal is
    too rare or too common to learn from."""
    log = log.without(set(erased))
    end = days_since_epoch(as_of)
    n = settings.window_days
    holdout_cut, train_cut = end - n, end - 2 * n
    if log.code(settings.goal_event) < 0:
        raise FitError(f"no {settings.goal_event!r} event in the data")
    spec = _spec(log, settings, train_cut)

    train = features(log, spec, train_cut)
    keep = _eligible(train, settings)
    x, y = train.matrix[keep], _label(log, settings, train_cut)[train.rows[keep]]
    _enough(y, "training")
    calibrating = _calibration_split(log, train.rows[keep], settings)
    _enough(y[calibrating], "calibration")
    _enough(y[~calibrating], "training")
    mean = x[~calibrating].mean(axis=0)
    scale = x[~calibrating].std(axis=0)
    scale[scale == 0] = 1.0
    coef, intercept = fit_logistic((x[~calibrating] - mean) / scale, y[~calibrating], l2=settings.l2)
    uncalibrated = PropensityModel(spec, mean, scale, coef, intercept, Calibration(method="platt"))
    logit = uncalibrated.logit(x[calibrating])
    calibration = platt(logit, y[calibrating]) if settings.calibration == "platt" else isotonic(logit, y[calibrating])
    model = PropensityModel(spec, mean, scale, coef, intercept, calibration)

    held = features(log, spec, holdout_cut)
    keep_h = _eligible(held, settings)
    y_h = _label(log, settings, holdout_cut)[held.rows[keep_h]]
    _enough(y_h, "holdout")
    p_h = model.probability(held.matrix[keep_h])
    quality = evaluate(y_h, p_h, model)

    scoring = features(log, spec, end)
    keep_s = _eligible(scoring, settings)
    probability = model.probability(scoring.matrix[keep_s])
    card = new_card(
        "propensity",
        version,
        fitted_at,
        DataWindow(
            start=iso_day_of(float(log.at.min())) if len(log.at) else None,
            calibration_end=last_day_before(holdout_cut),
            holdout_end=last_day_before(end),
            unit="day",
            people=len(y),
            records=int((log.at <= holdout_cut).sum()),
            excluded_people=len(set(erased) & set(log.people)),
        ),
        model.parameters(),
        settings=settings.model_dump(mode="json"),
        quality=quality,
    )
    ids = tuple(log.people[i] for i in scoring.rows[keep_s])
    return PropensityFit(model, quality, ScoreTable(ids, {settings.trait: probability}, card.id), card)


def score(card: ModelCard, log: ActivityLog, *, as_of: datetime) -> ScoreTable:
    """Scores from a stored card (no refit)."""
    settings = PropensitySettings.model_validate(card.settings)
    model = PropensityModel.from_parameters(card.parameters)
    found = features(log, model.spec, days_since_epoch(as_of))
    keep = _eligible(found, settings)
    ids = tuple(log.people[i] for i in found.rows[keep])
    return ScoreTable(ids, {settings.trait: model.probability(found.matrix[keep])}, card.id)


def evaluate(y: npt.NDArray[np.bool_], p: FloatArray, model: PropensityModel) -> PropensityQuality:
    rows = metrics.deciles(y, p)
    area = metrics.auc(y, p)
    return PropensityQuality(
        people=len(y),
        positives=int(y.sum()),
        base_rate=float(y.mean()) if len(y) else 0.0,
        auc=area,
        gini=2 * area - 1,
        log_loss=metrics.log_loss(y, p),
        brier=metrics.brier(y, p),
        lift_top_decile=metrics.lift_top_decile(y, p),
        max_decile_error=max((abs(d.mean_predicted - d.observed_rate) for d in rows), default=0.0),
        deciles=[DecileRow(**vars(d)) for d in rows],
        top_features=model.top_features(),
    )


def _enough(y: npt.NDArray[np.bool_], where: str) -> None:
    positives = int(y.sum())
    if positives < MIN_OUTCOMES or len(y) - positives < MIN_OUTCOMES:
        raise FitError(
            f"{where} set has {positives} people with the outcome and {len(y) - positives} without;"
            f" at least {MIN_OUTCOMES} of each are needed"
        )
