"""Configuration as validated models, read once per cold start from the environment.

Each function reads only the settings it needs; a missing or malformed variable fails the cold
start with a message naming it, instead of failing later on a request.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from functools import cache
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from midstage.errors import ConfigurationError as ConfigurationError


class _EnvModel(BaseModel):
    # Built on first use: a function validates its own settings only, not the other fifteen.
    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        source = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name, field in cls.model_fields.items():
            variable = (field.alias or name).upper()
            if variable in source:
                values[name] = source[variable]
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            raise ConfigurationError(f"{cls.__name__}: {error}") from error


def _json_or_value(value: Any) -> Any:
    if isinstance(value, str) and value.strip().startswith(("{", "[")):
        return json.loads(value)
    return value


class StoreSettings(_EnvModel):
    data_table: str
    config_table: str
    stage: str = "dev"
    config_cache_seconds: float = Field(default=30.0, ge=0, le=3600)
    # The analytics archive's Firehose stream (docs/analytics.md); empty: nothing is archived.
    archive_stream: str = ""
    # The fastest one rule or campaign is expected to send (messages/s): it sets how many shards
    # its message references and its counters are spread over (logic/sharding.py). Writers and readers must agree,
    # so every function gets it from one template parameter; raise it, never lower it (references
    # in the shards a lower count drops would no longer be listed).
    origin_peak_sends_per_second: int = Field(default=20_000, ge=1, le=25_000)
    # The global control group held out of all marketing (docs/experiments.md): the deliverer
    # blocks marketing to it and experiments leave it out; every function gets the same two
    # values from the template's parameters, so they agree on who is in it.
    global_control_share: float = Field(default=0.0, ge=0.0, lt=1.0)
    global_control_salt: str = Field(default="", max_length=64)

    @property
    def origin_shards(self) -> int:
        from midstage.logic.sharding import shards_for  # on first use: most functions never need it

        return shards_for(self.origin_peak_sends_per_second)

    @property
    def stats_shards(self) -> int:
        """Shards of a campaign's or journey's counters at that rate (80 at 20,000 msg/s)."""
        from midstage.logic.sharding import counter_shards_for

        return counter_shards_for(self.origin_peak_sends_per_second)


class IdentitySettings(_EnvModel):
    """OneID rules, in the manner of Segment's identity resolution settings."""

    # Most identifier types may hold five values per profile; a profile has one userId.
    identity_limits: dict[str, int] = Field(default_factory=lambda: {"user_id": 1})
    default_identity_limit: int = Field(default=5, ge=1, le=100)
    blocked_values: frozenset[str] = frozenset(
        {"", "null", "none", "nil", "undefined", "0", "-1", "anonymous", "unknown", "n/a", "test"}
    )
    # When a merge must pick a survivor, or an event must pick one of several profiles.
    identity_priority: tuple[str, ...] = (
        "user_id",
        "email",
        "phone",
        "external",
        "device_id",
        "anonymous_id",
    )

    _decode = field_validator("identity_limits", "blocked_values", "identity_priority", mode="before")(_json_or_value)

    def limit_for(self, id_type: str) -> int:
        return self.identity_limits.get(id_type, self.default_identity_limit)

    def is_blocked(self, value: str) -> bool:
        return value.strip().lower() in self.blocked_values


class ComputedTraitSettings(_EnvModel):
    """Thresholds behind RFM scores, lifecycle stages and value tiers."""

    # Ascending bin edges: a value below edges[0] scores 1 (recency: days since last order,
    # where fewer days score higher), at or above edges[-1] scores len(edges) + 1.
    rfm_recency_days: tuple[int, ...] = (7, 30, 90, 180)
    rfm_frequency_orders: tuple[int, ...] = (2, 3, 5, 10)
    rfm_monetary: tuple[float, ...] = (50.0, 200.0, 500.0, 1000.0)
    lifecycle_new_days: int = Field(default=30, ge=1)
    lifecycle_silent_days: int = Field(default=30, ge=1)
    lifecycle_churned_days: int = Field(default=90, ge=1)
    # Lifetime revenue thresholds: below the first is "low", then "medium", "high", "vip".
    value_tiers: tuple[float, ...] = (100.0, 1000.0, 5000.0)
    count_windows_days: tuple[int, ...] = (7, 30, 90)
    # The currency revenue traits, value tiers and RFM are reckoned in; an order without a
    # `currency` is taken to be in it. `currency_rates` converts others: code -> the value of one
    # unit in `currency` (e.g. {"EUR": 1.08}); an order in a currency with no rate is kept apart.
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    currency_rates: dict[str, float] = Field(default_factory=dict)

    _decode = field_validator(
        "rfm_recency_days",
        "rfm_frequency_orders",
        "rfm_monetary",
        "value_tiers",
        "count_windows_days",
        "currency_rates",
        mode="before",
    )(_json_or_value)

    @field_validator("currency_rates")
    @classmethod
    def _rates(cls, rates: dict[str, float]) -> dict[str, float]:
        for code, rate in rates.items():
            if not re.fullmatch(r"[A-Z]{3}", code) or not (0 < rate < 1e9):
                raise ValueError(f"a rate is a 3-letter currency code and a positive number: {code}={rate}")
        return rates


class CollectSettings(StoreSettings):
    ingest_queue_url: str
    quarantine_retention_days: int = Field(default=30, ge=1, le=365)
    max_event_bytes: int = 32 * 1024
    max_batch_bytes: int = 500 * 1024
    max_batch_events: int = 2500
    # An event time further than this past its receipt is replaced by the receipt (docs/api.md).
    future_tolerance_seconds: int = Field(default=300, ge=0, le=366 * 86_400)


class ImportSettings(CollectSettings):
    """The bulk import function (functions/run_imports): the intake's settings and its own."""

    import_bucket: str
    import_queue_url: str
    # Bytes of (decompressed) file per part: one part is one invocation, well within its time.
    import_part_bytes: int = Field(default=8 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024)
    # Erasure (services/erasure.py): the archive's objects under this prefix of the bucket are
    # rewritten without the person; each store's pass is appended to the audit log.
    archive_prefix: str = "archive/"
    audit_table: str = ""


class ProfileSettings(StoreSettings):
    event_bus_name: str
    # Where the events an invocation had no time for go back to, as a new message.
    ingest_queue_url: str = ""
    default_timezone: str = "UTC"
    dedupe_window_hours: int = Field(default=24, ge=1, le=168)
    timeline_retention_days: int = Field(default=90, ge=1, le=3650)
    # The destinations feed (adapters/destination_feed.py); empty: no destinations.
    destinations_queue_url: str = ""


class ForwarderSettings(StoreSettings):
    """The destinations forwarder (services/destinations.py)."""

    webhook_allow_local: bool = False
    # How long an event may wait for a failing destination before it joins the failed records.
    destination_retry_hours: float = Field(default=72, gt=0, le=14 * 24)


class AnalyticsSettings(StoreSettings):
    """Where the archive is read (analytics_wiring): DuckDB over a local copy of the bucket's
    partitions, or Athena over the Glue tables. Without a bucket, reading answers 503."""

    analytics_engine: Literal["duckdb", "athena"] = "duckdb"
    archive_bucket: str = ""
    archive_prefix: str = "archive/"
    athena_workgroup: str = ""
    athena_database: str = ""
    analytics_cache_dir: str = "/tmp/midstage-archive"  # noqa: S108 -- Lambda's only writable place


class AdminSettings(AnalyticsSettings):
    audit_table: str  # the audit log (docs/privacy.md): required, an admin API without it is refused
    ingest_queue_url: str = ""
    delivery_queue_url: str = ""
    refresh_queue_url: str = ""
    campaign_queue_url: str = ""
    import_queue_url: str = ""  # bulk imports (POST /v1/imports) are planned by functions/run_imports
    # EventBridge Scheduler: campaign schedules invoke the runner with this role.
    campaign_runner_arn: str = ""
    scheduler_role_arn: str = ""
    schedule_group: str = "default"
    default_timezone: str = "UTC"
    refresh_parts: int = Field(default=8, ge=1, le=1000)
    # Dead letters (services/dead_letters.py): every dead-letter queue, and the bus events go back to.
    dead_letter_queues: str = ""
    event_bus_name: str = ""
    # How long a report's answer is reused (the function's memory); 0 turns the cache off.
    analytics_cache_seconds: float = Field(default=300.0, ge=0, le=86_400)
    # Destinations: plain http to localhost is accepted only in local development.
    webhook_allow_local: bool = False
    # The asset library (docs/assets.md): files in this bucket, published ones served under this
    # base URL (the stack's CloudFront distribution; the local cloud's S3 locally). Without a base
    # URL a published file is answered as a presigned GET.
    assets_bucket: str = ""
    assets_base_url: str = ""


class FrequencyCap(BaseModel):
    """At most `limit` sends on `channel` ("*" = all channels) of `category` within `days`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    channel: str = "*"
    category: str = "marketing"
    limit: int = Field(ge=0, le=10_000)
    days: float = Field(gt=0, le=90)


class RulesSettings(StoreSettings):
    ingest_queue_url: str
    delivery_queue_url: str
    # Rules set off by rules' own events stop at this depth: a loop cannot run away.
    max_rule_depth: int = Field(default=3, ge=1, le=10)


class DeliverySettings(StoreSettings):
    ingest_queue_url: str
    delivery_queue_url: str
    email_sender: str = Field(default="no-reply@example.com", min_length=3)
    ses_configuration_set: str = ""
    public_base_url: str = Field(default="", description="where open, click and unsubscribe links point")
    sms_sender_id: str = ""
    push_applications: dict[str, str] = Field(default_factory=dict, description="platform -> SNS application ARN")
    # Marketing needs consent given ("opt_in") or only the absence of a refusal ("opt_out").
    marketing_consent: str = Field(default="opt_in", pattern="^(opt_in|opt_out)$")
    frequency_caps: tuple[FrequencyCap, ...] = (
        FrequencyCap(channel="email", category="marketing", limit=3, days=7),
        FrequencyCap(channel="sms", category="marketing", limit=2, days=7),
        FrequencyCap(channel="*", category="marketing", limit=5, days=7),
    )
    quiet_hours: str = Field(default="21:00-08:00", pattern=r"^(|\d{2}:\d{2}-\d{2}:\d{2})$")
    default_timezone: str = "UTC"
    webhook_allow_local: bool = False
    send_lease_seconds: int = Field(default=120, ge=5, le=3600)

    _decode = field_validator("frequency_caps", "push_applications", mode="before")(_json_or_value)


class FeedbackSettings(StoreSettings):
    ingest_queue_url: str


class TimerSettings(StoreSettings):
    delivery_queue_url: str
    event_bus_name: str


class JourneySettings(StoreSettings):
    ingest_queue_url: str
    delivery_queue_url: str
    default_timezone: str = "UTC"


class RefreshSettings(ProfileSettings):
    refresh_queue_url: str


class SweepSettings(StoreSettings):
    refresh_queue_url: str
    # Parts of the hourly sweep: each refresh worker scans 1/parts of the profiles.
    sweep_parts: int = Field(default=8, ge=1, le=1000)


class PredictionSettings(AnalyticsSettings):
    """The weekly refit (functions/refit_predictions, docs/predictions.md): it reads the archive
    as the reports do and hands the scores to the profile updater through the ingest queue."""

    ingest_queue_url: str
    # The archive window the models learn from, and the customer-value options (refit.py).
    prediction_lookback_days: int = Field(default=730, ge=30, le=3650)
    prediction_annual_discount_rate: float = Field(default=0.10, gt=-1.0, le=10.0)
    prediction_unit: Literal["day", "week", "month"] = "week"


class CampaignSettings(AnalyticsSettings):
    delivery_queue_url: str
    campaign_queue_url: str
    default_timezone: str = "UTC"
    # Parallel workers per run: each scans 1/parts of the profiles, holding 1/parts of the send rate.
    campaign_parts: int = Field(default=8, ge=1, le=1000)


@cache
def identity_settings() -> IdentitySettings:
    return IdentitySettings.from_env()


@cache
def computed_trait_settings() -> ComputedTraitSettings:
    return ComputedTraitSettings.from_env()
