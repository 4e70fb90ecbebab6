"""Destinations: where the event stream is forwarded (docs/integrations.md, Destinations).

A destination is a configuration document (the ConfigTable, kind DESTINATION) holding its kind,
its target, an optional filter in the condition language and an optional JMESPath projection.
Its credential (a webhook's signing secret, a Segment write key) is kept on the document and
never answered by the API after creation, as a webhook source's signing secret is."""

from __future__ import annotations

import secrets
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator

DESTINATION_KIND = "DESTINATION"
DestinationKind = Literal["webhook", "segment", "eventbridge", "kinesis"]
DESTINATION_KINDS: tuple[str, ...] = ("webhook", "segment", "eventbridge", "kinesis")

# What one call carries at most: PutEvents takes 10 entries, PutRecords 500 records (and 5 MiB,
# which logic/destinations.py's batching keeps to).
MAX_BATCH = {"webhook": 100, "segment": 100, "eventbridge": 10, "kinesis": 500}
MAX_BATCH_SIZE = max(MAX_BATCH.values())
NEEDS = {"webhook": ("url",), "segment": ("url", "write_key"), "eventbridge": ("bus_arn",), "kinesis": ("stream_arn",)}
DESTINATION_ID = r"^dst_[A-Za-z0-9_-]{8,40}$"
_BUS_ARN = r"^arn:aws[a-z-]*:events:[a-z0-9-]+:\d{12}:event-bus/[A-Za-z0-9._/-]{1,256}$"
# A Kinesis Data Stream: its region (the forwarder writes through a client of that region) and
# its name (1-128 of [a-zA-Z0-9_.-], as CreateStream allows).
STREAM_ARN = r"^arn:aws(-cn|-us-gov)?:kinesis:[a-z]{2}(-[a-z]+)+-\d{1,2}:\d{12}:stream/[A-Za-z0-9_.-]{1,128}$"
_PARTITION_REGIONS = {"aws-cn": "cn-", "aws-us-gov": "us-gov-"}
_SECRET_KEYS = {"secret", "write_key"}


def stream_region(stream_arn: str) -> tuple[str, str]:
    """A stream ARN's (partition, region)."""
    parts = stream_arn.split(":")
    return parts[1], parts[3]


def new_destination_id() -> str:
    return "dst_" + secrets.token_urlsafe(12)


def new_destination_secret() -> str:
    return "dsec_" + secrets.token_urlsafe(32)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DestinationSettings(_Body):
    """What an admin may set: everything but the id, the version and the creation time."""

    name: str = Field(min_length=1, max_length=200)
    kind: DestinationKind
    enabled: StrictBool = True
    filter: dict[str, Any] | None = Field(default=None, description="a condition; absent: every event")
    transform: str | None = Field(default=None, min_length=1, max_length=2000, description="a JMESPath projection")
    batch_size: StrictInt = Field(default=20, ge=1, le=MAX_BATCH_SIZE)
    url: str | None = Field(default=None, max_length=2000, description="webhook: the endpoint; segment: the API base")
    secret: str | None = Field(default=None, min_length=16, max_length=512, description="webhook signing secret")
    write_key: str | None = Field(default=None, min_length=1, max_length=512, description="segment write key")
    bus_arn: str | None = Field(default=None, pattern=_BUS_ARN, description="eventbridge: the target bus")
    stream_arn: str | None = Field(default=None, pattern=STREAM_ARN, description="kinesis: the target data stream")
    source: str = Field(default="midstage.destinations", min_length=1, max_length=256, pattern=r"^[A-Za-z0-9._-]+$")

    @model_validator(mode="after")
    def _target(self) -> DestinationSettings:
        missing = [name for name in NEEDS[self.kind] if getattr(self, name) is None]
        if missing:
            raise ValueError(f"a {self.kind} destination needs {' and '.join(missing)}")
        if self.stream_arn is not None:
            partition, region = stream_region(self.stream_arn)
            prefix = _PARTITION_REGIONS.get(partition)
            others = tuple(_PARTITION_REGIONS.values())
            if not (region.startswith(prefix) if prefix else not region.startswith(others)):
                raise ValueError(f"stream_arn: region {region} is not in partition {partition}")
        if self.batch_size > MAX_BATCH[self.kind]:
            raise ValueError(f"a {self.kind} destination's batch_size is at most {MAX_BATCH[self.kind]}")
        return self


class DestinationCreate(DestinationSettings):
    """A new destination; a webhook without a `secret` gets one, answered once."""


class DestinationUpdate(_Body):
    """Fields to change; absent fields keep their value, `null` clears filter or transform."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    enabled: StrictBool | None = None
    filter: dict[str, Any] | None = None
    transform: str | None = Field(default=None, min_length=1, max_length=2000)
    batch_size: StrictInt | None = Field(default=None, ge=1, le=MAX_BATCH_SIZE)
    url: str | None = Field(default=None, max_length=2000)
    secret: str | None = Field(default=None, min_length=16, max_length=512)
    write_key: str | None = Field(default=None, min_length=1, max_length=512)
    bus_arn: str | None = Field(default=None, pattern=_BUS_ARN)
    stream_arn: str | None = Field(default=None, pattern=STREAM_ARN)
    source: str | None = Field(default=None, min_length=1, max_length=256, pattern=r"^[A-Za-z0-9._-]+$")


class Destination(DestinationSettings):
    """The stored document."""

    id: str = Field(pattern=DESTINATION_ID)
    version: int = 1
    created_at: str
    updated_at: str

    def public(self) -> dict[str, Any]:
        """The document as the API answers it: credentials never leave after creation."""
        shown = self.model_dump(mode="json", exclude=_SECRET_KEYS)
        shown["secret_set"] = self.secret is not None
        if self.kind == "segment":
            shown["write_key_set"] = self.write_key is not None
        return shown


class DestinationStats(BaseModel):
    """Delivery figures of one destination (adapters/destination_store.py keeps them)."""

    delivered: int = 0
    failed: int = 0
    retried: int = 0
    filtered: int = 0
    pending: int = 0  # events waiting in the destination's queue
    failed_records: int = 0  # events kept in its failed records, for a redrive
    attempts: int = 0  # consecutive failed attempts of the current retry, 0 when healthy
    last_error: str | None = None
    last_error_at: str | None = None
    last_delivered_at: str | None = None
    next_attempt_at: str | None = None
    oldest_pending_at: str | None = None
    lag_seconds: float = 0.0  # how long the oldest waiting event has waited
