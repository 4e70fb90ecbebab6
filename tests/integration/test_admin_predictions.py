"""GET /v1/predictions/cards/{kind}: the model cards the weekly refit stores, through the admin
function on moto's ConfigTable (the store is the refit's own, adapters/model_cards.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from midstage.adapters.config_store import ConfigStore
from midstage.adapters.model_cards import ModelCardStore
from midstage.logic.predictions.cards import DataWindow, ModelCard, new_card
from tests.integration.conftest import Stack
from tests.integration.test_admin_messaging import ROLES, Api


@pytest.fixture
def api(stack: Stack) -> Api:
    config = ConfigStore(stack.output("ConfigTableName"), client=stack.clients.dynamodb())
    for role in ROLES:
        config.create_api_key(role, role, f"msk_{role}", now=datetime.now(UTC))
    return Api(stack, stack.load("AdminFunction"))


def card(version: int) -> ModelCard:
    window = DataWindow(start="2025-01-01", calibration_end="2026-11-23", unit="week", people=40, records=990)
    parameters = {
        "bgnbd": {"r": 0.24, "alpha": 4.41, "a": 0.79, "b": 2.43, "log_likelihood": -9582.4},
        "gamma_gamma": None,
    }
    return new_card(
        "customer_value", version, f"2026-11-{16 + 7 * (version - 1):02d}T03:00:00.000Z", window, parameters
    )


def test_a_card_is_read_latest_or_by_version_and_what_was_never_fitted_is_404(stack: Stack, api: Api) -> None:
    # Given nothing fitted yet
    missing = api.get("/v1/predictions/cards/customer_value", role="viewer")
    assert (missing.status, missing.body["code"]) == (404, "not_found")
    assert "the weekly refit has not fitted it" in missing.body["message"]

    # When the refit stores two versions
    store = ModelCardStore(stack.output("ConfigTableName"), client=stack.clients.dynamodb())
    assert store.save(card(1)) and store.save(card(2))
    assert not store.save(card(2))  # a version is stored once

    # Then the latest is answered, and each version by number, digest intact
    latest = api.get("/v1/predictions/cards/customer_value", role="viewer")
    assert latest.status == 200 and latest.body["card"]["id"] == "customer_value.v2"
    assert ModelCard.from_json(latest.body["card"]) == card(2)
    first = api.get("/v1/predictions/cards/customer_value", role="viewer", query={"version": "1"})
    assert first.status == 200 and first.body["card"]["fitted_at"] == "2026-11-16T03:00:00.000Z"
    assert api.get("/v1/predictions/cards/customer_value", query={"version": "3"}).status == 404
    assert api.get("/v1/predictions/cards/recommendations").status == 404
    unknown = api.get("/v1/predictions/cards/churn")
    assert (
        unknown.status == 404 and "the kinds are customer_value, propensity, recommendations" in unknown.body["message"]
    )


@pytest.mark.parametrize("version", ["0", "x", "-1", "1.5", "1000001", "\u0661"])
def test_a_version_that_is_not_a_whole_number_in_range_is_400(api: Api, version: str) -> None:
    answer = api.get("/v1/predictions/cards/customer_value", query={"version": version})
    assert (answer.status, answer.body["code"]) == (400, "invalid_query")
