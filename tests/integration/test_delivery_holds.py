"""Pause and cancel at the delivery step: a campaign's messages already queued are delivered by
the real deliver function (its wiring, moto's DynamoDB, SQS and SES), and the campaign's state at
send time decides. The rig and builders are the campaign-run tests' own."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from midstage.models.messages import Delivery, parse_body
from midstage.models.messaging import Template
from midstage.models.profile import Profile
from midstage.services.timers import sweep
from tests.integration.conftest import Context
from tests.integration.test_campaign_runs import (  # noqa: F401 - the fixtures are used by name
    CONSENT,
    ENTERED,
    NOW,
    RUN,
    Rig,
    campaign,
    rig,
    sqs_event,
    template_read_once,
)

PEOPLE = 12


@pytest.fixture
def world(rig: Rig) -> Rig:  # noqa: F811 - the campaign-run tests' rig, named for this module
    return rig


class Clock:
    """The deliver function's clock: moved by the test, never by the host."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def sent_by_ses() -> Counter[str]:
    """How many emails SES accepted, by recipient."""
    sent = ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages
    # moto lists a raw message's recipient twice (the request's and the To header's): one per message.
    return Counter(str(to) for message in sent for to in set(message.destinations))


def queue_a_run(world: Rig) -> list[str]:
    """A one-time campaign to PEOPLE people in UTC (daytime at NOW), worked by its worker: the
    message requests it queued, read back from the delivery queue."""
    world.stack.clients.sesv2().create_email_identity(EmailIdentity="example.com")
    winter = Template(
        id="winter",
        name="Winter",
        channel="email",
        locales={"en": {"subject": "Winter sale", "html": "<p>Ten percent off</p>"}},
        status="approved",
    )
    world.config.save_template(winter, winter)
    world.define(campaign(variants=None, holdout_percent=0))
    world.store(
        Profile(
            id=f"p{n:02d}",
            created_at=ENTERED,
            traits={"email": f"p{n:02d}@example.org"},
            consent=CONSENT,
            timezone="UTC",
            segments={"vip": ENTERED},
        )
        for n in range(PEOPLE)
    )
    world.runner(parts=1).start("winter-sale", NOW, NOW)
    [part] = world.part_messages()
    assert world.work(part).state == "done"
    bodies = world.drain(world.deliveries.queue_url)
    assert len(bodies) == PEOPLE
    return bodies


def statuses(world: Rig, bodies: list[str]) -> Counter[str]:
    ids = [parse_body(Delivery, body).request.message_id for body in bodies]
    return Counter(str(record["status"]) for record in world.ledger.many(ids))


def counted(world: Rig) -> dict[str, int]:
    totals = world.counters.totals("campaign", "winter-sale").get(RUN, {})
    return {name: int(amount) for name, amount in totals.items() if amount}


def test_given_a_campaigns_queued_messages_when_it_is_cancelled_and_the_queue_drains_then_none_is_sent(
    world: Rig,
) -> None:
    bodies = queue_a_run(world)
    world.set_status("winter-sale", "cancelled")  # what POST /v1/campaigns/{id}/cancel saves
    deliverer = world.stack.load("DeliverFunction", Clock(NOW + timedelta(minutes=1)))

    first = deliverer.lambda_handler(sqs_event(bodies), Context())
    again = deliverer.lambda_handler(sqs_event(bodies), Context())  # the queue redelivers the lot

    assert first == again == {"batchItemFailures": []}
    assert sent_by_ses() == Counter()
    assert statuses(world, bodies) == Counter({"cancelled": PEOPLE})
    assert counted(world) == {"cancelled": PEOPLE}  # once per message, whatever the redeliveries


def test_given_a_campaign_paused_with_messages_queued_when_resumed_then_each_is_sent_once_after_the_resume(
    world: Rig,
) -> None:
    bodies = queue_a_run(world)
    world.set_status("winter-sale", "paused")
    clock = Clock(NOW + timedelta(minutes=1))
    deliverer = world.stack.load("DeliverFunction", clock)

    assert deliverer.lambda_handler(sqs_event(bodies), Context()) == {"batchItemFailures": []}
    assert sent_by_ses() == Counter()
    assert statuses(world, bodies) == Counter({"deferred": PEOPLE})
    assert counted(world) == {}  # a hold is not the person's deferral

    # Still paused when the timers first bring them back: held again, nothing lost.
    clock.at += timedelta(minutes=6)
    assert sweep(world.timers, world.deliveries, clock()) == PEOPLE
    assert deliverer.lambda_handler(sqs_event(world.drain(world.deliveries.queue_url)), Context()) == {
        "batchItemFailures": []
    }
    assert sent_by_ses() == Counter() and statuses(world, bodies) == Counter({"deferred": PEOPLE})

    world.set_status("winter-sale", "running")  # resumed
    clock.at += timedelta(minutes=6)
    assert sweep(world.timers, world.deliveries, clock()) == PEOPLE
    released = world.drain(world.deliveries.queue_url)
    deliverer.lambda_handler(sqs_event(released), Context())
    deliverer.lambda_handler(sqs_event(released + bodies), Context())  # and every copy again

    assert sent_by_ses() == Counter({f"p{n:02d}@example.org": 1 for n in range(PEOPLE)})
    assert statuses(world, bodies) == Counter({"sent": PEOPLE})
    assert counted(world) == {"sent": PEOPLE}
