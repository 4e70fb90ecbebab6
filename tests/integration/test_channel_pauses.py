"""A channel that pauses itself on an account-level error and resumes when it clears: the real
deliver function (its wiring) on moto's SES, which refuses a sender whose identity is not
verified, with the timer sweep bringing held messages back and the admin API showing the pause."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from midstage.adapters.config_store import ConfigStore
from midstage.adapters.messaging_store import MessageLedger
from midstage.adapters.profile_store import ProfileStore
from midstage.adapters.queues import MessageQueue
from midstage.adapters.timer_store import TimerStore
from midstage.logic.timefmt import iso
from midstage.models.messaging import MessageRequest, Origin, Template
from midstage.models.profile import Profile, WritePlan
from midstage.services.timers import sweep
from tests.integration.conftest import Context, Stack
from tests.integration.test_admin_messaging import Api
from tests.integration.test_campaign_runs import sqs_event

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
PEOPLE = 6
SENDER = "no-reply@example.com"  # the stack's default EMAIL_SENDER


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def sent_by_ses() -> Counter[str]:
    sent = ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages
    # moto lists a raw message's recipient twice (the request's and the To header's): one per message.
    return Counter(str(to) for message in sent for to in set(message.destinations))


def receipt(n: int) -> MessageRequest:
    return MessageRequest(
        key=f"api:receipts:{n}",
        origin=Origin(kind="api", id="receipts"),
        profile_id=f"p{n}",
        channels=["email"],
        template={"email": "receipt"},
        category="transactional",
        requested_at=iso(NOW),
    )


@pytest.fixture
def world(stack: Stack) -> tuple[Stack, Clock, Api]:
    dynamodb = stack.clients.dynamodb()
    config = ConfigStore(stack.output("ConfigTableName"), client=dynamodb)
    receipt_template = Template(
        id="receipt",
        name="Receipt",
        channel="email",
        locales={"en": {"subject": "Your receipt", "text": "Thank you"}},
        status="approved",
    )
    config.save_template(receipt_template, receipt_template)
    config.create_api_key("viewer", "viewer", "msk_viewer", now=NOW)
    profiles = ProfileStore(stack.output("DataTableName"), client=dynamodb)
    for n in range(PEOPLE):
        profiles.save(WritePlan(Profile(id=f"p{n}", created_at=iso(NOW), traits={"email": f"p{n}@example.org"})))
    clock = Clock(NOW)
    return stack, clock, Api(stack, stack.load("AdminFunction", clock))


def test_given_an_unverified_sender_when_messages_are_delivered_then_the_channel_pauses_and_resumes_once_verified(
    world: tuple[Stack, Clock, Api],
) -> None:
    stack, clock, api = world
    table, dynamodb = stack.output("DataTableName"), stack.clients.dynamodb()
    ledger, timers = MessageLedger(table, client=dynamodb), TimerStore(table, client=dynamodb)
    queue = MessageQueue(stack.output("DeliveryQueueUrl"), client=stack.clients.sqs())
    deliverer = stack.load("DeliverFunction", clock)
    requests = [receipt(n) for n in range(PEOPLE)]
    bodies = [r.model_dump_json() for r in requests]

    def statuses() -> Counter[str]:
        return Counter(str(record["status"]) for record in ledger.many([r.message_id for r in requests]))

    def bring_back_after(minutes: int) -> int:
        """Time passes; the timer sweep puts the held messages on the queue; they are delivered."""
        clock.at += timedelta(minutes=minutes)
        sweep(timers, queue, clock())
        released: list[str] = []
        sqs = stack.clients.sqs()
        while got := sqs.receive_message(QueueUrl=queue.queue_url, MaxNumberOfMessages=10).get("Messages"):
            released += [m["Body"] for m in got]
            for m in got:
                sqs.delete_message(QueueUrl=queue.queue_url, ReceiptHandle=m["ReceiptHandle"])
        if released:
            assert deliverer.lambda_handler(sqs_event(released), Context()) == {"batchItemFailures": []}
        return len(released)

    # SES refuses the unverified sender: the first message pauses email, none fails.
    assert deliverer.lambda_handler(sqs_event(bodies), Context()) == {"batchItemFailures": []}
    assert statuses() == Counter({"deferred": PEOPLE})
    assert sent_by_ses() == Counter()
    record = ledger.get(requests[-1].message_id)
    assert record is not None and record["reason"].startswith("channel_paused: email sending is paused since ")
    paused = api.get("/v1/settings/channels", role="viewer")
    assert paused.status == 200
    email = paused["channels"][0]
    assert (email["channel"], email["paused"], email["since"], email["failures"]) == ("email", True, iso(NOW), 1)
    assert f"verify the sender identity {SENDER}" in email["reason"]
    assert email["probe_at"] == iso(NOW + timedelta(minutes=1))
    assert [c["paused"] for c in paused["channels"][1:]] == [False] * 4

    # Still unverified at the probe: one message tries, the pause holds with a longer backoff.
    assert bring_back_after(3) == PEOPLE
    assert statuses() == Counter({"deferred": PEOPLE}) and sent_by_ses() == Counter()
    email = api.get("/v1/settings/channels", role="viewer")["channels"][0]
    assert (email["paused"], email["failures"]) == (True, 2)

    # Verified: the next probe goes through, the pause clears, every message is sent once.
    stack.clients.sesv2().create_email_identity(EmailIdentity="example.com")
    assert bring_back_after(5) == PEOPLE
    bring_back_after(5)  # any message held again behind the probe would come back now (none is)
    assert deliverer.lambda_handler(sqs_event(bodies), Context()) == {"batchItemFailures": []}  # redelivered

    assert statuses() == Counter({"sent": PEOPLE})
    assert sent_by_ses() == Counter({f"p{n}@example.org": 1 for n in range(PEOPLE)})
    email = api.get("/v1/settings/channels", role="viewer")["channels"][0]
    assert (email["paused"], email["failures"], "cleared_at" in email, "probe_at" in email) == (False, 2, True, False)
