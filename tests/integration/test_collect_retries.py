"""A client's retry and a client's wrong clock, through the real collect function and profile updater."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from midstage.adapters.profile_store import ProfileStore
from midstage.clock import fixed
from tests.integration.conftest import Context, Stack, sample
from tests.integration.test_handlers import demo_source, drain

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
AUTHORIZATION = "Basic " + base64.b64encode(b"wk_local_demo:").decode()


def post(stack: Stack, path: str, body: dict[str, Any], at: datetime) -> dict[str, Any]:
    """One tracking request as API Gateway delivers it, answered by the collect function at `at`."""
    request = sample("collect", "track")
    request["rawPath"] = request["requestContext"]["http"]["path"] = path
    request["routeKey"] = request["requestContext"]["routeKey"] = f"POST {path}"
    request["headers"]["authorization"] = AUTHORIZATION
    request["body"] = json.dumps(body)
    answer: dict[str, Any] = stack.load("CollectFunction", fixed(at)).lambda_handler(request, Context())
    assert answer["statusCode"] == 200, answer
    return answer


def apply(stack: Stack, at: datetime) -> None:
    """Everything queued, through the profile updater at `at`."""
    answer = stack.load("ProfileUpdaterFunction", fixed(at)).lambda_handler({"Records": drain(stack)}, Context())
    assert answer == {"batchItemFailures": []}


def ann(stack: Stack) -> Any:
    store = ProfileStore(stack.output("DataTableName"), client=stack.clients.dynamodb())
    owner = store.identity_owners([("user_id", "ann")])[("user_id", "ann")]
    return store.profile(owner)


def test_a_client_retry_without_message_ids_is_counted_once(stack: Stack) -> None:
    # Given a client that sends no messageIds: a batch, then the same batch again after a 503
    demo_source(stack)
    events = [
        {"type": "track", "event": "Signed Up", "userId": "ann", "properties": {"plan": "pro"}},
        {"type": "track", "event": "Invited", "userId": "ann", "timestamp": "2026-11-22T09:58:00Z"},
    ]
    post(stack, "/v1/batch", {"batch": events, "sentAt": "2026-11-22T10:00:00Z"}, NOW)
    post(stack, "/v1/batch", {"batch": events, "sentAt": "2026-11-22T10:00:04Z"}, NOW + timedelta(seconds=4))
    # And the dated event once more, alone on /v1/track, a minute later
    single = {k: v for k, v in events[1].items() if k != "type"}
    post(stack, "/v1/track", single, NOW + timedelta(minutes=1))
    # When the profile updater applies everything that was queued
    apply(stack, NOW + timedelta(minutes=2))
    # Then each event counted once
    assert ann(stack).event_counts == {"Signed Up": 1, "Invited": 1}


def test_an_event_dated_a_year_ahead_does_not_move_last_seen_past_now(stack: Stack) -> None:
    # Given a device whose clock is a year ahead, sending an event with no sentAt
    demo_source(stack)
    ahead = {"type": "track", "event": "Opened", "userId": "ann", "timestamp": "2027-11-22T10:00:00Z"}
    post(stack, "/v1/batch", {"batch": [ahead]}, NOW)
    apply(stack, NOW)
    # Then the profile was last seen when the event arrived, not in a year
    assert ann(stack).last_seen == "2026-11-22T10:00:00.000Z"


def test_a_device_two_hours_fast_is_placed_at_the_right_time(stack: Stack) -> None:
    # Given a device 2 hours fast that made an event at (its) 12:00:00 and sent it at (its) 12:00:10
    demo_source(stack)
    fast = {"type": "track", "event": "Opened", "userId": "ann", "timestamp": "2026-11-22T12:00:00Z"}
    post(stack, "/v1/batch", {"batch": [fast], "sentAt": "2026-11-22T12:00:10Z"}, NOW)
    apply(stack, NOW)
    # Then the event happened 10 seconds before it arrived
    assert ann(stack).last_seen == "2026-11-22T09:59:50.000Z"
