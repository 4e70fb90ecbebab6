"""The model card: one versioned, JSON-serialisable record per fit.

It holds what is needed to recompute every score from the data it names (the parameters, the
settings, the features and their scaling) and how the fit did on data it did not see. A card is
what a person's export points to beside their scores, and what a rescoring run rebuilds a model
from. Pure Python (pydantic): the runtime layer can read cards without numpy.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

CARD_SCHEMA = 1
ModelKind = Literal["customer_value", "propensity", "recommendations"]


class _Card(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataWindow(_Card):
    """The data a fit saw. Dates are ISO (YYYY-MM-DD), inclusive."""

    start: str | None  # the first record used
    calibration_end: str  # the model learnt from records up to here
    holdout_end: str | None = None  # its quality was measured on (calibration_end, holdout_end]
    unit: str = "day"
    people: int = Field(ge=0)
    records: int = Field(ge=0)  # transactions (same-day orders joined) or events
    excluded_people: int = Field(default=0, ge=0)  # erased before the fit


class FrequencyBucket(_Card):
    frequency: str
    customers: int
    actual: float
    predicted: float


class PurchaseQuality(_Card):
    """A back-test: the model fitted up to `data.calibration_end` of the back-test, then its
    expected holdout purchases per calibration-frequency bucket set beside the actual ones
    (Fader, Hardie and Lee 2005, figure 4)."""

    kind: Literal["purchases"] = "purchases"
    calibration_end: str
    holdout_end: str
    holdout_length: float  # in the card's unit
    parameters: dict[str, float]  # of the back-test fit
    log_likelihood: float
    buckets: list[FrequencyBucket]
    actual_total: float
    predicted_total: float
    mean_absolute_error: float  # per customer, over the buckets
    # Spend: mean value of the holdout transactions of customers who bought in both periods,
    # against the Gamma-Gamma expectation for them.
    spend_customers: int = 0
    spend_actual_mean: float | None = None
    spend_predicted_mean: float | None = None
    spend_frequency_correlation: float | None = None


class DecileRow(_Card):
    decile: int  # 1 = the highest scores
    people: int
    mean_predicted: float
    observed_rate: float


class PropensityQuality(_Card):
    """Scores at the holdout cut-off against what happened in the window after it."""

    kind: Literal["propensity"] = "propensity"
    people: int
    positives: int
    base_rate: float
    auc: float
    gini: float  # 2 AUC - 1: 0 for a random order, 1 for a perfect one
    log_loss: float
    brier: float
    lift_top_decile: float
    max_decile_error: float  # the largest |mean predicted - observed| over the deciles
    deciles: list[DecileRow]
    top_features: list[tuple[str, float]]  # standardised coefficients, largest magnitude first


class ModelCard(_Card):
    card_schema: int = CARD_SCHEMA
    id: str  # "<kind>.v<version>"
    kind: ModelKind
    version: int = Field(ge=1)
    fitted_at: str  # ISO timestamp from the caller's clock
    data: DataWindow
    parameters: dict[str, Any]
    settings: dict[str, Any] = Field(default_factory=dict)
    quality: Annotated[PurchaseQuality | PropensityQuality, Field(discriminator="kind")] | None = None
    notes: list[str] = Field(default_factory=list)
    digest: str = ""  # sha256 of the card without its digest: a card read back can be checked

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> ModelCard:
        card = cls.model_validate(document)
        if card.digest and card.digest != digest_of(card):
            raise ValueError(f"model card {card.id}: the digest does not match its content")
        return card


def digest_of(card: ModelCard) -> str:
    body = card.model_dump(mode="json", exclude={"digest"})
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def new_card(
    kind: ModelKind,
    version: int,
    fitted_at: str,
    data: DataWindow,
    parameters: dict[str, Any],
    *,
    settings: dict[str, Any] | None = None,
    quality: PurchaseQuality | PropensityQuality | None = None,
    notes: list[str] | None = None,
) -> ModelCard:
    card = ModelCard(
        id=f"{kind}.v{version}",
        kind=kind,
        version=version,
        fitted_at=fitted_at,
        data=data,
        parameters=parameters,
        settings=settings or {},
        quality=quality,
        notes=notes or [],
    )
    return card.model_copy(update={"digest": digest_of(card)})
