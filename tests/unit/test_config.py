"""Settings are read once from the environment; a bad value names itself at cold start."""

from __future__ import annotations

import pytest

from midstage.config import CollectSettings, ComputedTraitSettings, ConfigurationError, IdentitySettings


def test_identity_rules_are_configurable_with_json() -> None:
    settings = IdentitySettings.from_env(
        {
            "IDENTITY_LIMITS": '{"user_id": 1, "email": 2}',
            "DEFAULT_IDENTITY_LIMIT": "10",
            "BLOCKED_VALUES": '["guest", "nobody"]',
        }
    )
    assert settings.limit_for("email") == 2
    assert settings.limit_for("anonymous_id") == 10
    assert settings.is_blocked(" Guest ")
    assert not settings.is_blocked("null")  # the list replaces the defaults


def test_computed_trait_thresholds_are_configurable() -> None:
    settings = ComputedTraitSettings.from_env({"VALUE_TIERS": "[10, 20, 30]", "LIFECYCLE_CHURNED_DAYS": "180"})
    assert settings.value_tiers == (10.0, 20.0, 30.0)
    assert settings.lifecycle_churned_days == 180


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DATA_TABLE": "d", "CONFIG_TABLE": "c"}, "ingest_queue_url"),
        (
            {"DATA_TABLE": "d", "CONFIG_TABLE": "c", "INGEST_QUEUE_URL": "q", "QUARANTINE_RETENTION_DAYS": "0"},
            "quarantine_retention_days",
        ),
    ],
)
def test_missing_or_bad_settings_fail_with_the_variable_named(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigurationError) as failed:
        CollectSettings.from_env(env)
    assert named in failed.value.message


def test_malformed_json_settings_are_refused() -> None:
    with pytest.raises(ConfigurationError) as failed:
        IdentitySettings.from_env({"IDENTITY_LIMITS": "{not json"})
    assert "identity_limits" in failed.value.message
