"""Deliveries to destinations: a signed webhook, a Segment-compatible /v1/batch, an EventBridge bus.

Every HTTP call goes through the webhooks' guarded opener: the host is resolved and every
address vetted at connect time (no private, link-local or metadata address; loopback only with
WEBHOOK_ALLOW_LOCAL, for the local cloud), no proxies, no redirects followed.

A failure is a ProviderError whose kind decides what the destination's queue does:
retryable (5xx, 408, 425, 429, timeouts) and configuration (401, 403, 404: the destination is
misconfigured, not the event) keep the events queued and retry them later; permanent (any other
4xx, an address refused) moves them to the destination's failed records."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from midstage.adapters import aws
from midstage.adapters.providers.errors import CONFIGURATION, PERMANENT, RETRYABLE, ProviderError, brief, classify
from midstage.adapters.providers.errors import transport_error as aws_transport_error
from midstage.adapters.providers.webhooks import WebhookSender, guarded_opener
from midstage.logic import destinations as logic
from midstage.logic.destinations import DeliveryFailed, Entry
from midstage.models.destinations import Destination

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient

USER_AGENT = "Midstage-Destinations/1"
_RETRYABLE_STATUSES = frozenset({408, 425, 429})
_CONFIGURATION_STATUSES = frozenset({401, 403, 404})


class DestinationSender:
    def __init__(
        self,
        *,
        allow_local: bool = False,
        timeout: float = 10.0,
        opener: urllib.request.OpenerDirector | None = None,
        events_client: EventBridgeClient | None = None,
    ) -> None:
        self.timeout = timeout
        self._urls = WebhookSender(allow_local=allow_local)
        self._opener = opener or guarded_opener(allow_local)
        self._events = events_client

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
            said = f"{error.reason} [{error.code}]" if error.code else error.reason
            raise DeliveryFailed(error.kind, said) from error

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


def status_error(status: int) -> ProviderError:
    if status in _RETRYABLE_STATUSES or status >= 500:
        return ProviderError(RETRYABLE, f"destination answered HTTP {status}", str(status))
    if status in _CONFIGURATION_STATUSES:
        return ProviderError(CONFIGURATION, f"destination answered HTTP {status}", str(status))
    if 300 <= status < 400:
        return ProviderError(PERMANENT, f"destination answered HTTP {status}; redirects are not followed", str(status))
    return ProviderError(PERMANENT, f"destination answered HTTP {status}", str(status))
