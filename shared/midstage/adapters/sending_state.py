"""What delivery reads about the sender's side at send time: the state of a message's campaign,
whether its channel is paused, and whether the provider's send rate has a token left."""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from midstage import keys
from midstage.adapters import aws
from midstage.adapters import dynamo as ddb
from midstage.adapters.config_store import ConfigStore
from midstage.logic.delivery import ChannelPause, shard_limits, whole_rate
from midstage.logic.timefmt import iso, parse_iso
from midstage.models.campaigns import Campaign
from midstage.observability import count

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_ses import SESClient

# How stale a campaign's status may be when delivery acts on it: a pause or cancel takes effect on
# every deliverer at most this long after it was saved.
CAMPAIGN_STATUS_TTL_S = 5.0
# The same bound for a channel's pause: a container may send up to this long after another paused
# the channel (those sends fail the same way and are held too), or hold a message this long after
# a probe cleared it (it comes back at its next look).
CHANNEL_PAUSE_TTL_S = 5.0
# The SES account's send rate is read again this often.
SEND_RATE_TTL_S = 300.0
# A second's send counters are kept this long (DynamoDB's TTL removes them within days after).
SEND_RATE_KEEP_S = 3600


class CampaignStates:
    """Campaign statuses for the delivery step, read from the config table and cached per
    container for `ttl_seconds` (a campaign's thousands of messages cost one read per TTL)."""

    def __init__(
        self,
        config: ConfigStore,
        *,
        ttl_seconds: float = CAMPAIGN_STATUS_TTL_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.ttl_seconds = ttl_seconds
        self.monotonic = monotonic
        self._seen: dict[str, tuple[float, str | None]] = {}

    def campaign_status(self, campaign_id: str) -> str | None:
        """The campaign's status, or None when it no longer exists."""
        now = self.monotonic()
        hit = self._seen.get(campaign_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        campaign = self.config.find_document(keys.CAMPAIGN_PK, campaign_id, Campaign)
        status = campaign.status if campaign is not None else None
        self._seen[campaign_id] = (now + self.ttl_seconds, status)
        return status


class ChannelPauses(ddb.Table):
    """Each channel's pause in one DataTable item (`CHANNEL#<channel>` / `PAUSE`): `paused`,
    `reason`, `since`, `probeAt` (epoch s), `failures`, `clearedAt`. Reads for delivery are cached
    per container for `ttl_seconds`; every change is a conditional update, so concurrent
    deliverers start one pause, take one probe and clear it once."""

    def __init__(
        self,
        table: str,
        client: DynamoDBClient | None = None,
        *,
        ttl_seconds: float = CHANNEL_PAUSE_TTL_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(table, client)
        self.ttl_seconds = ttl_seconds
        self.monotonic = monotonic
        self._seen: dict[str, tuple[float, ChannelPause | None]] = {}

    def paused(self, channel: str) -> ChannelPause | None:
        now = self.monotonic()
        hit = self._seen.get(channel)
        if hit is not None and hit[0] > now:
            return hit[1]
        pause = self.state(channel)
        self._remember(channel, pause)
        return pause

    def state(self, channel: str) -> ChannelPause | None:
        """The pause as stored now (None: the channel sends)."""
        item = self._get(keys.channel_pause_key(channel))
        return _pause_of(channel, item) if item and item.get("paused", {}).get("BOOL") else None

    def record(self, channel: str) -> dict[str, Any]:
        """The channel's stored record for reading (the admin API): paused or not, and why."""
        item = self._get(keys.channel_pause_key(channel)) or {}
        view: dict[str, Any] = {"channel": channel, "paused": bool(item.get("paused", {}).get("BOOL"))}
        if item:
            view.update(
                reason=item["reason"]["S"],
                since=item["since"]["S"],
                failures=int(item["failures"]["N"]),
            )
            if view["paused"]:
                view["probe_at"] = iso(datetime.fromtimestamp(int(item["probeAt"]["N"]), UTC))
            elif "clearedAt" in item:
                view["cleared_at"] = item["clearedAt"]["S"]
        return view

    def pause(self, channel: str, reason: str, now: datetime, probe_at: datetime) -> ChannelPause:
        """Pause the channel, unless it is paused already (then that pause stands, as stored)."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key=ddb.key(keys.channel_pause_key(channel)),
                UpdateExpression=(
                    "SET paused = :true, reason = :reason, since = :now, probeAt = :probe, failures = :one,"
                    " updatedAt = :now REMOVE clearedAt"
                ),
                ConditionExpression="attribute_not_exists(pk) OR paused = :false",
                ExpressionAttributeValues={
                    ":true": {"BOOL": True},
                    ":false": {"BOOL": False},
                    ":reason": ddb.s(reason[:1000]),
                    ":now": ddb.s(iso(now)),
                    ":probe": ddb.n(int(probe_at.timestamp())),
                    ":one": ddb.n(1),
                },
            )
        except ClientError as error:
            if not ddb.condition_failed(error):
                raise
            current = self.state(channel)
            if current is None:
                return self.pause(channel, reason, now, probe_at)  # cleared in between: pause it again
        else:
            count(ChannelPauses=1)
            current = ChannelPause(channel, reason[:1000], now, _whole(probe_at), 1)
        self._remember(channel, current)
        return current

    def take_probe(self, channel: str, now: datetime, hold_until: datetime) -> bool:
        """True for the one deliverer that may try the provider now; the probe is its own until
        `hold_until` (a probe that dies with its deliverer is taken again then)."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key=ddb.key(keys.channel_pause_key(channel)),
                UpdateExpression="SET probeAt = :hold, updatedAt = :stamp",
                ConditionExpression="paused = :true AND probeAt <= :now",
                ExpressionAttributeValues={
                    ":true": {"BOOL": True},
                    ":now": ddb.n(int(now.timestamp())),
                    ":hold": ddb.n(int(hold_until.timestamp())),
                    ":stamp": ddb.s(iso(now)),
                },
            )
        except ClientError as error:
            if not ddb.condition_failed(error):
                raise
            self._seen.pop(channel, None)  # another deliverer moved it on: read it afresh
            return False
        return True

    def probe_failed(self, channel: str, reason: str, now: datetime, failures: int, probe_at: datetime) -> ChannelPause:
        answer = self.client.update_item(
            TableName=self.table,
            Key=ddb.key(keys.channel_pause_key(channel)),
            UpdateExpression="SET reason = :reason, probeAt = :probe, failures = :failures, updatedAt = :now",
            ExpressionAttributeValues={
                ":reason": ddb.s(reason[:1000]),
                ":probe": ddb.n(int(probe_at.timestamp())),
                ":failures": ddb.n(failures),
                ":now": ddb.s(iso(now)),
            },
            ReturnValues="ALL_NEW",
        )
        pause = _pause_of(channel, answer["Attributes"])
        self._remember(channel, pause)
        return pause

    def clear(self, channel: str, now: datetime) -> bool:
        """End the pause (a probe went through); False when it had ended already."""
        self._remember(channel, None)
        try:
            self.client.update_item(
                TableName=self.table,
                Key=ddb.key(keys.channel_pause_key(channel)),
                UpdateExpression="SET paused = :false, clearedAt = :now, updatedAt = :now REMOVE probeAt",
                ConditionExpression="paused = :true",
                ExpressionAttributeValues={":true": {"BOOL": True}, ":false": {"BOOL": False}, ":now": ddb.s(iso(now))},
            )
        except ClientError as error:
            if not ddb.condition_failed(error):
                raise
            return False
        return True

    def _remember(self, channel: str, pause: ChannelPause | None) -> None:
        self._seen[channel] = (self.monotonic() + self.ttl_seconds, pause)


def _whole(moment: datetime) -> datetime:
    return datetime.fromtimestamp(int(moment.timestamp()), UTC)


def _pause_of(channel: str, item: Mapping[str, Any]) -> ChannelPause:
    return ChannelPause(
        channel=channel,
        reason=item["reason"]["S"],
        since=parse_iso(item["since"]["S"]),
        probe_at=datetime.fromtimestamp(int(item["probeAt"]["N"]), UTC),
        failures=int(item["failures"]["N"]),
    )


class SesSendRate:
    """The SES account's MaxSendRate (GetSendQuota), read again every `ttl_seconds`: raising the
    quota in SES reaches delivery within that time."""

    def __init__(
        self,
        client: SESClient | None = None,
        *,
        ttl_seconds: float = SEND_RATE_TTL_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self.ttl_seconds = ttl_seconds
        self.monotonic = monotonic
        self._seen: tuple[float, int] | None = None

    @property
    def client(self) -> SESClient:
        if self._client is None:
            self._client = aws.ses()
        return self._client

    def rate(self) -> int:
        now = self.monotonic()
        if self._seen is not None and self._seen[0] > now:
            return self._seen[1]
        rate = whole_rate(float(self.client.get_send_quota()["MaxSendRate"]))
        self._seen = (now + self.ttl_seconds, rate)
        return rate


class SendRateBucket(ddb.Table):
    """Send tokens per channel and second, shared by every deliverer: a counter item per shard and
    second (`SENDRATE#<channel>#<second>#<shard>` / `RATE`) takes grants up to its limit with one
    conditional ADD each. The shards' limits add up to the rate, so no second grants more than
    the rate, whatever the concurrency. `rates` maps each paced channel to its rate source."""

    def __init__(
        self, table: str, rates: Mapping[str, Callable[[], int]], client: DynamoDBClient | None = None
    ) -> None:
        super().__init__(table, client)
        self.rates = dict(rates)

    def take(self, channel: str, now: datetime, message_id: str) -> datetime | None:
        source = self.rates.get(channel)
        if source is None:
            return None
        second = math.floor(now.timestamp())
        limits = shard_limits(source())
        # Each message starts at its own shard, so concurrent deliverers spread over them.
        first = zlib.crc32(message_id.encode()) % len(limits)
        for step in range(len(limits)):
            shard = (first + step) % len(limits)
            try:
                self.client.update_item(
                    TableName=self.table,
                    Key=ddb.key(keys.send_rate_key(channel, second, shard)),
                    UpdateExpression="ADD #n :one SET expiresAt = :expires",
                    ConditionExpression="attribute_not_exists(#n) OR #n < :limit",
                    ExpressionAttributeNames={"#n": "n"},
                    ExpressionAttributeValues={
                        ":one": ddb.n(1),
                        ":limit": ddb.n(limits[shard]),
                        ":expires": ddb.n(second + SEND_RATE_KEEP_S),
                    },
                )
            except ClientError as error:
                if not ddb.condition_failed(error):
                    raise
                continue
            return None
        return datetime.fromtimestamp(second + 1, UTC)
