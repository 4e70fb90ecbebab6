"""Deliveries to destinations: a signed webhook, a Segment-compatible /v1/batch, an EventBridge
bus, a Kinesis Data Stream.

Every HTTP call goes through the webhooks' guarded opener: the host is resolved and every
address vetted at connect time (no private, link-local or metadata address; loopback only with
WEBHOOK_ALLOW_LOCAL, for the local cloud), no proxies, no redirects followed.

A failure is a ProviderError whose kind decides what the destination's queue does:
retryable (5xx, 408, 425, 429, timeouts) and configuration (401, 403, 404: the destination is
misconfigured, not the event) keep the events queued and retry them later; permanent (any other
4xx, an address refused) moves them to the destination's failed records.

Kinesis: PutRecords through a client of the stream's region. A call that partly fails is tried
again at once for its failed records only (a batch holds one record per person, so that keeps
each person's order), twice, a short pause between; what still fails after that is a retryable
failure that reports the records written, which leave the queue."""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from midstage.adapters import aws
from midstage.adapters.providers.errors import (
    CONFIGURATION,
    PERMANENT,
    RETRYABLE,
    ProviderError,
    brief,
    classify,
    client_error_parts,
)
from midstage.adapters.providers.errors import transport_error as aws_transport_error
from midstage.adapters.providers.webhooks import WebhookSender, guarded_opener
from midstage.logic import destinations as logic
from midstage.logic.destinations import DeliveryFailed, Entry
from midstage.models.destinations import Destination, stream_region

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_kinesis import KinesisClient

USER_AGENT = "Midstage-Destinations/1"
_RETRYABLE_STATUSES = frozenset({408, 425, 429})
_CONFIGURATION_STATUSES = frozenset({401, 403, 404})
KINESIS_TRIES = 3  # PutRecords calls per batch: the first, then twice for what failed
KINESIS_PAUSE_S = 0.1  # before trying failed records again, doubling
# Kinesis codes, of a whole call or of one record, that say the stream or its key is not ours to
# write (misconfigured: the events stay queued) or that it is busy.
_KINESIS_CONFIGURATION = frozenset(
    {
        "ResourceNotFoundException",
        "AccessDeniedException",
        "KMSAccessDeniedException",
        "KMSDisabledException",
        "KMSNotFoundException",
        "KMSInvalidStateException",
        "KMSOptInRequired",
    }
)
_KINESIS_RETRYABLE = frozenset(
    {"ProvisionedThroughputExceededException", "KMSThrottlingException", "LimitExceededException", "InternalFailure"}
)


class DestinationSender:
    def __init__(
        self,
        *,
        allow_local: bool = False,
        timeout: float = 10.0,
        opener: urllib.request.OpenerDirector | None = None,
        events_client: EventBridgeClient | None = None,
        kinesis_client: Callable[[str], KinesisClient] | None = None,
        pause: Callable[[float], None] = time.sleep,
    ) -> None:
        self.timeout = timeout
        self._urls = WebhookSender(allow_local=allow_local)
        self._opener = opener or guarded_opener(allow_local)
        self._events = events_client
        self._kinesis = kinesis_client  # a client by region; aws.kinesis when None
        self._pause = pause

    @property
    def events(self) -> EventBridgeClient:
        if self._events is None:
            self._events = aws.events()
        return self._events

    def check_url(self, url: str) -> None:
        """Raise ProviderError (permanent) for a URL no delivery will ever be made to."""
        self._urls.check_url(url)

    def deliver(self, destination: Destination, entries: Sequence[Entry], now: datetime) -> None:
        """Deliver one batch, all of it or none of it as far as the caller knows; raises DeliveryFailed."""
        try:
            self._deliver(destination, entries, now)
        except ProviderError as error:
            raise _failed(error, []) from error

    def _deliver(self, destination: Destination, entries: Sequence[Entry], now: datetime) -> None:
        if destination.kind == "webhook":
            assert destination.url is not None
            assert destination.secret is not None
            body = logic.webhook_body(entries, destination.id, now)
            self._post(
                destination.url,
                body,
                {
                    logic.SIGNATURE_HEADER: logic.sign(destination.secret, body, int(now.timestamp())),
                    logic.IDEMPOTENCY_HEADER: logic.idempotency_key(entries),
                },
            )
        elif destination.kind == "segment":
            assert destination.url is not None
            assert destination.write_key is not None
            body = logic.segment_body(entries, now)
            self._post(
                logic.segment_url(destination.url),
                body,
                {"Authorization": logic.basic_auth(destination.write_key)},
            )
        elif destination.kind == "kinesis":
            self._put_records(destination, entries)
        else:
            self._put_events(logic.eventbridge_entries(entries, destination))

    def _post(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        self.check_url(url)
        request = urllib.request.Request(  # noqa: S310 -- check_url allows only https (and local http)
            url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers},
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                status = int(response.status)
        except urllib.error.HTTPError as error:
            error.close()
            raise status_error(error.code) from error
        except urllib.error.URLError as error:
            code = "timeout" if isinstance(error.reason, TimeoutError) else "network"
            raise ProviderError(
                RETRYABLE, f"destination unreachable: {brief(str(error.reason)) or code}", code
            ) from error
        except ProviderError:  # the address guard's refusal, raised while connecting
            raise
        except (TimeoutError, OSError, http.client.HTTPException) as error:
            code = "timeout" if isinstance(error, TimeoutError) else "network"
            raise ProviderError(RETRYABLE, f"destination failed: {brief(str(error)) or code}", code) from error
        if not 200 <= status < 300:
            raise status_error(status)

    def _put_events(self, entries: list[dict[str, Any]]) -> None:
        try:
            answer = self.events.put_events(Entries=entries)  # type: ignore[arg-type]
        except ClientError as error:
            raise classify(error, "EventBridge") from error
        except BotoCoreError as error:
            raise aws_transport_error(error, "EventBridge") from error
        if answer.get("FailedEntryCount"):
            # Entries are not ordered by EventBridge anyway; the whole batch is tried again, and
            # its events carry their messageId, so a receiver drops what it already has.
            refused = [r for r in answer.get("Entries", []) if r.get("ErrorCode")]
            said = json.dumps(refused[:1])[:300]
            raise ProviderError(RETRYABLE, f"EventBridge refused {len(refused)} of {len(entries)} entries: {said}")

    def _put_records(self, destination: Destination, entries: Sequence[Entry]) -> None:
        """Raises DeliveryFailed itself, with the entries written, when a call partly fails."""
        assert destination.stream_arn is not None  # a kinesis destination has one (models/destinations.py)
        client = (self._kinesis or aws.kinesis)(stream_region(destination.stream_arn)[1])
        records = [logic.kinesis_record(e, destination.id) for e in entries]
        # Only a batch of one record per person may have its failed records tried alone; any other
        # is tried again whole (by the forwarder, later), its repeats carrying their messageIds.
        alone = len({e.profile_id for e in entries}) == len(entries)
        pending = list(range(len(entries)))
        written: list[Entry] = []
        refused: list[tuple[int, Any]] = []
        for attempt in range(KINESIS_TRIES):
            if attempt:
                self._pause(KINESIS_PAUSE_S * 2 ** (attempt - 1))
            try:
                answer = client.put_records(
                    StreamARN=destination.stream_arn,
                    Records=[records[i] for i in pending],  # type: ignore[misc]
                )
            except ClientError as error:
                raise _failed(kinesis_error(error), written if alone else []) from error
            except BotoCoreError as error:
                raise _failed(aws_transport_error(error, "Kinesis"), written if alone else []) from error
            results: list[Any] = list(answer.get("Records", []))
            results += [{"ErrorCode": "InternalFailure"}] * (len(pending) - len(results))  # never seen: not written
            refused = [(i, r) for i, r in zip(pending, results, strict=False) if r.get("ErrorCode")]
            written += [entries[i] for i, r in zip(pending, results, strict=False) if not r.get("ErrorCode")]
            if not refused:
                return
            pending = [i for i, _ in refused]
            if not alone:
                break
        codes = sorted({str(r["ErrorCode"]) for _, r in refused})
        said = brief(f"{refused[0][1]['ErrorCode']}: {refused[0][1].get('ErrorMessage', '')}")
        kind = CONFIGURATION if set(codes) & _KINESIS_CONFIGURATION else RETRYABLE
        reason = f"Kinesis refused {len(refused)} of {len(entries)} records ({said}) [{','.join(codes)}]"
        raise DeliveryFailed(kind, reason, written if alone else [])


def kinesis_error(error: ClientError) -> ProviderError:
    code, message, _ = client_error_parts(error)
    said = f"Kinesis answered {code}: {message}" if message else f"Kinesis answered {code}"
    if code in _KINESIS_CONFIGURATION:
        return ProviderError(CONFIGURATION, said, code)
    if code in _KINESIS_RETRYABLE:
        return ProviderError(RETRYABLE, said, code)
    return classify(error, "Kinesis")


def _failed(error: ProviderError, written: Sequence[Entry]) -> DeliveryFailed:
    said = f"{error.reason} [{error.code}]" if error.code else error.reason
    return DeliveryFailed(error.kind, said, written)


def status_error(status: int) -> ProviderError:
    if status in _RETRYABLE_STATUSES or status >= 500:
        return ProviderError(RETRYABLE, f"destination answered HTTP {status}", str(status))
    if status in _CONFIGURATION_STATUSES:
        return ProviderError(CONFIGURATION, f"destination answered HTTP {status}", str(status))
    if 300 <= status < 400:
        return ProviderError(PERMANENT, f"destination answered HTTP {status}; redirects are not followed", str(status))
    return ProviderError(PERMANENT, f"destination answered HTTP {status}", str(status))
