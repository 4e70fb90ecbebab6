"""The weekly refit's wiring (functions/refit_predictions): the archive's engine, the privacy
suppressions, the card store and the ingest queue (the handler keeps them per container)."""

from __future__ import annotations

from dataclasses import dataclass

from midstage.adapters.handoff import SqsHandoff
from midstage.adapters.model_cards import ModelCardStore
from midstage.adapters.privacy_store import PersonSuppressions, Salt
from midstage.analytics_wiring import analytics_engine
from midstage.config import PredictionSettings
from midstage.logic.predictions.refit import CustomerValueSettings
from midstage.services.analytics import Engine
from midstage.services.predictions import RefitSettings


@dataclass(frozen=True)
class RefitWiring:
    engine: Engine
    suppressions: PersonSuppressions
    cards: ModelCardStore
    events: SqsHandoff
    settings: RefitSettings


def refit_wiring() -> RefitWiring:
    settings = PredictionSettings.from_env()
    value = CustomerValueSettings(
        unit=settings.prediction_unit, annual_discount_rate=settings.prediction_annual_discount_rate
    )
    return RefitWiring(
        engine=analytics_engine(settings),  # Athena on AWS (no DuckDB in the function); DuckDB locally
        # Never made here: without a salt no request was ever made, so nobody is suppressed.
        suppressions=PersonSuppressions(settings.data_table, Salt(settings.config_table)),
        cards=ModelCardStore(settings.config_table),
        events=SqsHandoff(settings.ingest_queue_url),
        settings=RefitSettings(lookback_days=settings.prediction_lookback_days, customer_value=value),
    )
