"""What a scheduled refit and a rescoring run call.

Customer value (BG/NBD + Gamma-Gamma):

- `fit_customer_value(orders, calibration_end=..., ...)`: fit on orders up to a date, score
  everyone as of that date, and measure the fit on the orders after it when there are any
  (the offline command line uses this).
- `refit_customer_value(orders, as_of=..., ...)`: the weekly job. A back-test first (fitted
  `holdout_days` before `as_of`, judged on the days up to `as_of`), then the model that scores,
  fitted on everything up to `as_of`; the card carries the second model's parameters and the
  back-test's quality.
- `rescore_customer_value(card, summary, ...)`: scores from a stored card's parameters, for
  runs between refits (a customer's T grows every day even when they buy nothing).

Each returns a `ScoreTable`; `traits.predicted_traits` turns it into what a profile stores.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from midstage.logic.predictions import bgnbd, gamma_gamma, holdout
from midstage.logic.predictions.bgnbd import BgNbd, FitError
from midstage.logic.predictions.cards import DataWindow, FrequencyBucket, ModelCard, PurchaseQuality, new_card
from midstage.logic.predictions.gamma_gamma import GammaGamma
from midstage.logic.predictions.summary import EPOCH, UNITS, Summary, Transactions, day_number, summarise
from midstage.logic.predictions.traits import ScoreTable


class CustomerValueSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    unit: Literal["day", "week", "month"] = "week"
    horizons_days: tuple[int, ...] = (30, 90, 365)  # expected purchases over each
    purchase_window_days: int = Field(default=30, ge=1)  # p_purchase_<n>d
    clv_months: int = Field(default=12, ge=1, le=120)
    annual_discount_rate: float = Field(default=0.10, gt=-1.0, le=10.0)
    margin: float = Field(default=1.0, gt=0.0, le=1.0)  # share of revenue counted as value
    holdout_days: int = Field(default=90, ge=7)  # back-test length in the weekly refit


@dataclass(frozen=True)
class CustomerValueFit:
    purchases: BgNbd
    spend: GammaGamma | None  # None when the data cannot identify it (see the card's notes)
    summary: Summary
    scores: ScoreTable
    card: ModelCard
    comparison: holdout.HoldoutComparison | None


def iso_day(day: int) -> str:
    return (EPOCH + timedelta(days=day)).isoformat()


def score_customer_value(
    purchases: BgNbd, spend: GammaGamma | None, summary: Summary, settings: CustomerValueSettings, model: str
) -> ScoreTable:
    per_unit = 1.0 / summary.unit_days
    columns = {
        f"expected_purchases_{d}d": purchases.expected_purchases(summary, d * per_unit) for d in settings.horizons_days
    }
    alive = purchases.p_alive(summary)
    columns["p_alive"] = alive
    columns["churn_risk"] = 1.0 - alive
    window = settings.purchase_window_days
    columns[f"p_purchase_{window}d"] = purchases.p_purchase(summary, window * per_unit)
    if spend is not None:
        columns["expected_order_value"] = spend.expected_value(summary)
        columns[f"clv_{settings.clv_months}m"] = gamma_gamma.clv(
            purchases,
            spend,
            summary,
            months=settings.clv_months,
            annual_discount_rate=settings.annual_discount_rate,
            margin=settings.margin,
        )
    return ScoreTable(summary.ids, columns, model)


def _fit_pair(summary: Summary) -> tuple[BgNbd, GammaGamma | None, list[str]]:
    purchases = bgnbd.fit(summary)
    try:
        return purchases, gamma_gamma.fit(summary), []
    except FitError as error:
        return purchases, None, [f"no spend model: {error}"]


def _quality(purchases: BgNbd, spend: GammaGamma | None, summary: Summary) -> PurchaseQuality:
    comparison = holdout.compare(purchases, summary)
    both = (summary.frequency > 0) & (summary.monetary > 0) & (summary.holdout_frequency > 0)
    spend_fields: dict[str, float | int | None] = {"spend_customers": int(both.sum())}
    if spend is not None and both.any():
        spend_fields["spend_actual_mean"] = float(summary.holdout_monetary[both].mean())
        spend_fields["spend_predicted_mean"] = float(spend.expected_value(summary.take(both)).mean())
    correlation = gamma_gamma.spend_frequency_correlation(summary)
    return PurchaseQuality(
        calibration_end=iso_day(summary.calibration_end),
        holdout_end=iso_day(summary.holdout_end),
        holdout_length=comparison.length,
        parameters={**purchases.parameters(), **(spend.parameters() if spend else {})},
        log_likelihood=purchases.log_likelihood,
        buckets=[FrequencyBucket(**vars(b)) for b in comparison.buckets],
        actual_total=comparison.actual_total,
        predicted_total=comparison.predicted_total,
        mean_absolute_error=comparison.mean_absolute_error,
        spend_frequency_correlation=None if np.isnan(correlation) else correlation,
        **spend_fields,
    )


def _parameters(purchases: BgNbd, spend: GammaGamma | None) -> dict[str, object]:
    return {
        "bgnbd": {**purchases.parameters(), "log_likelihood": purchases.log_likelihood},
        "gamma_gamma": None if spend is None else {**spend.parameters(), "customers": spend.customers},
    }


def fit_customer_value(
    orders: Transactions,
    *,
    calibration_end: date,
    holdout_end: date | None = None,
    settings: CustomerValueSettings | None = None,
    version: int = 1,
    fitted_at: str,
    excluded_people: int = 0,
) -> CustomerValueFit:
    """Fit on orders up to `calibration_end` (inclusive) and score everyone as of that day; with
    orders after it (up to `holdout_end`, default: the last order), measure the fit on them."""
    settings = settings or CustomerValueSettings()
    end = day_number(calibration_end)
    last = day_number(holdout_end) if holdout_end is not None else max(orders.last_day, end)
    summary = summarise(orders, end, unit_days=UNITS[settings.unit], holdout_end=last)
    purchases, spend, notes = _fit_pair(summary)
    comparison = holdout.compare(purchases, summary) if summary.holdout_end > end else None
    card = new_card(
        "customer_value",
        version,
        fitted_at,
        _window(orders, summary, settings, excluded_people, holdout=comparison is not None),
        _parameters(purchases, spend),
        settings=settings.model_dump(mode="json"),
        quality=_quality(purchases, spend, summary) if comparison is not None else None,
        notes=notes,
    )
    scores = score_customer_value(purchases, spend, summary, settings, card.id)
    return CustomerValueFit(purchases, spend, summary, scores, card, comparison)


def refit_customer_value(
    orders: Transactions,
    *,
    as_of: date,
    settings: CustomerValueSettings | None = None,
    version: int,
    fitted_at: str,
    erased: set[str] | frozenset[str] = frozenset(),
) -> CustomerValueFit:
    """The scheduled refit: back-test, then fit on everything up to `as_of` and score."""
    settings = settings or CustomerValueSettings()
    kept = orders.without(set(erased))
    excluded = len(set(erased) & set(orders.ids))
    unit_days = UNITS[settings.unit]
    end = day_number(as_of)
    notes: list[str] = []
    quality = None
    backtest_end = end - settings.holdout_days
    try:
        backtest = summarise(kept, backtest_end, unit_days=unit_days, holdout_end=end)
        back_purchases, back_spend, _ = _fit_pair(backtest)
        quality = _quality(back_purchases, back_spend, backtest)
    except FitError as error:
        notes.append(f"no back-test: {error}")
    summary = summarise(kept, end, unit_days=unit_days)
    purchases, spend, fit_notes = _fit_pair(summary)
    card = new_card(
        "customer_value",
        version,
        fitted_at,
        _window(kept, summary, settings, excluded, holdout=False),
        _parameters(purchases, spend),
        settings=settings.model_dump(mode="json"),
        quality=quality,
        notes=notes + fit_notes,
    )
    scores = score_customer_value(purchases, spend, summary, settings, card.id)
    return CustomerValueFit(purchases, spend, summary, scores, card, None)


def models_from_card(card: ModelCard) -> tuple[BgNbd, GammaGamma | None]:
    if card.kind != "customer_value":
        raise ValueError(f"{card.id} is not a customer-value model")
    p = card.parameters["bgnbd"]
    purchases = BgNbd(p["r"], p["alpha"], p["a"], p["b"], log_likelihood=p["log_likelihood"])
    g = card.parameters.get("gamma_gamma")
    spend = GammaGamma(g["p"], g["q"], g["v"], customers=g["customers"]) if g else None
    return purchases, spend


def rescore_customer_value(card: ModelCard, orders: Transactions, *, as_of: date) -> ScoreTable:
    """Everyone's scores as of `as_of` with the parameters of a stored card (no refit)."""
    settings = CustomerValueSettings.model_validate(card.settings)
    purchases, spend = models_from_card(card)
    summary = summarise(orders, day_number(as_of), unit_days=UNITS[settings.unit])
    return score_customer_value(purchases, spend, summary, settings, card.id)


def _window(
    orders: Transactions, summary: Summary, settings: CustomerValueSettings, excluded: int, *, holdout: bool
) -> DataWindow:
    return DataWindow(
        start=iso_day(int(orders.day.min())) if len(orders.day) else None,
        calibration_end=iso_day(summary.calibration_end),
        holdout_end=iso_day(summary.holdout_end) if holdout else None,
        unit=settings.unit,
        people=len(summary),
        records=summary.transactions,
        excluded_people=excluded,
    )
