"""providers/errors.py `once`: what a provider call is tried again for, and for how long."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from midstage.adapters.providers.errors import SEND_ATTEMPTS, once


def answer(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "x"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


class Calls:
    """A provider call that fails with `errors` in turn, then answers; the clock moves `step` a call."""

    def __init__(self, *errors: Exception, step: float = 0.0) -> None:
        self.errors = list(errors)
        self.made = 0
        self.now = 0.0
        self.step = step

    def __call__(self) -> str:
        self.made += 1
        self.now += self.step
        if self.errors:
            raise self.errors.pop(0)
        return "ok"

    def clock(self) -> float:
        return self.now


def run(calls: Calls, **options: Any) -> str:
    return once(calls, sleep=lambda pause: setattr(calls, "now", calls.now + pause), clock=calls.clock, **options)


@pytest.mark.parametrize(
    "error",
    [
        answer("Throttling", 400),
        answer("ServiceUnavailable", 503),
        answer("SlowDown", 429),
        EndpointConnectionError(endpoint_url="x"),
    ],
)
def test_what_the_provider_did_not_take_is_tried_again(error: Exception) -> None:
    calls = Calls(error, error)
    assert run(calls) == "ok" and calls.made == 3


@pytest.mark.parametrize(
    "error", [answer("InternalFailure", 500), answer("BadGateway", 502), ReadTimeoutError(endpoint_url="x")]
)
def test_what_the_provider_may_have_taken_is_not_sent_again_but_an_idempotent_call_is(error: Exception) -> None:
    calls = Calls(error)
    with pytest.raises(type(error)):
        run(calls)
    assert calls.made == 1
    again = Calls(error)
    assert run(again, idempotent=True) == "ok" and again.made == 2


def test_retries_stop_at_the_budget_and_after_the_last_attempt() -> None:
    slow = answer("Throttling", 400)
    calls = Calls(*[slow] * SEND_ATTEMPTS, step=2.0)  # each attempt takes 2 s before its answer
    with pytest.raises(ClientError):
        run(calls, budget_s=5.0)
    assert calls.made == 3 and calls.now < 5.0 + 2.0 + 1.0  # the third attempt began inside the budget
    calls = Calls(*[slow] * SEND_ATTEMPTS)
    with pytest.raises(ClientError):
        run(calls)
    assert calls.made == SEND_ATTEMPTS
