"""Scheduled weekly: refit the predictive models on the archive and rescore everyone.

BG/NBD and Gamma-Gamma on each person's orders, the item-to-item model on purchases and views;
people a privacy request suppressed are left out of both. Each fit is stored as a versioned model
card (ConfigTable), and every person's `predicted.*` traits go to the profile updater as one
platform identify (services/predictions.py). numpy and scipy come from this function's own layer
(docs/predictions.md), never the shared runtime layer."""

from __future__ import annotations

import os
from functools import cache
from typing import Any

# The fits make many small matrix-vector products: one BLAS thread is an order of magnitude
# faster than several fighting over the cores (docs/predictions.md). Set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from midstage.clock import Clock, from_environment
from midstage.logic.timefmt import parse_iso
from midstage.observability import correlate_schedule, logger, metrics, tracer
from midstage.predictions_wiring import RefitWiring, refit_wiring
from midstage.services.predictions import refit


@cache
def _clock() -> Clock:
    """The time this function goes by (part of its wiring: a test gives a fixed one)."""
    return from_environment()


@cache
def _wiring() -> RefitWiring:
    return refit_wiring()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    correlate_schedule(event, context)
    wiring = _wiring()
    scheduled = event.get("scheduledTime")
    # As of the occurrence, so a late or repeated firing scores as of the same moment.
    now = parse_iso(scheduled) if isinstance(scheduled, str) and scheduled[:1].isdigit() else _clock()()
    summary = refit(wiring.engine, wiring.suppressions, wiring.cards, wiring.events, now=now, settings=wiring.settings)
    metrics.add_metric(name="PeopleScored", unit=MetricUnit.Count, value=summary.scored)
    metrics.add_metric(name="PeopleExcludedFromModels", unit=MetricUnit.Count, value=summary.excluded)
    logger.info("predictions refitted", **summary.to_json())
    return summary.to_json()
