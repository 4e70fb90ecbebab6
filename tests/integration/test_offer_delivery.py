"""Offer codes handed out by the deliver function on moto: a campaign naming an offer, its
template showing the code both as the campaign's variable and with `offer('<id>')`, and a
journey's message carrying its step's reference; redelivered, they take no second code. And 50
journey, campaign and template messages drawing at once on a pool of 40 codes. The rig and
builders are the campaign-run tests' own."""

from __future__ import annotations

import email
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from midstage.adapters.offer_store import OfferStore
from midstage.logic.timefmt import iso
from midstage.models.messaging import MessageRequest, OfferRef, Origin, Template
from midstage.models.offers import Offer
from midstage.models.profile import Profile
from midstage.services.offers import OfferIssuer, message_codes
from tests.integration.conftest import Context
from tests.integration.test_campaign_runs import (  # noqa: F401 - the fixtures are used by name
    CONSENT,
    ENTERED,
    NOW,
    Rig,
    campaign,
    rig,
    sqs_event,
)
from tests.integration.test_delivery_holds import Clock

PEOPLE = 12
CODES = [f"WINTER-{n:03d}" for n in range(10)]


@pytest.fixture
def world(rig: Rig) -> Rig:  # noqa: F811 - the campaign-run tests' rig, named for this module
    rig.stack.clients.sesv2().create_email_identity(EmailIdentity="example.com")
    store = offers(rig)
    store.create(Offer(id="winter-10", name="Winter 10 %", kind="percentage", value=10))
    assert store.upload("winter-10", CODES, NOW).added == len(CODES)
    html = (
        "<p>{% if vars.coupon %}Code {{ vars.coupon }}, again {{ offer('winter-10') }}"
        "{% else %}No code: {{ vars.coupon_refused }}{% endif %}</p>"
    )
    winter = Template(
        id="winter",
        name="Winter",
        channel="email",
        locales={"en": {"subject": "Winter sale", "html": html}},
        status="approved",
    )
    rig.config.save_template(winter, winter)
    rig.store(
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
    return rig


def offers(world: Rig) -> OfferStore:
    return OfferStore(world.profiles.table, client=world.stack.clients.dynamodb())


def html_of(sent: Any) -> str:
    """The HTML part of a raw message SES accepted, decoded."""
    parsed = email.message_from_string(str(sent.raw_data))
    html = ""
    for part in parsed.walk():
        payload = part.get_payload(decode=True) if part.get_content_type() == "text/html" else None
        if isinstance(payload, bytes):
            html += payload.decode()
    return html


def emails() -> dict[str, str]:
    """The HTML SES accepted, by recipient."""
    shown: dict[str, str] = {}
    for message in ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages:
        for to in set(message.destinations):
            shown[str(to)] = shown.get(str(to), "") + html_of(message)
    return shown


def test_given_a_campaign_naming_an_offer_when_delivered_twice_then_each_person_gets_one_code_or_the_reason(
    world: Rig,
) -> None:
    # Given a campaign to 12 people naming an offer with 10 codes
    message = {**campaign().message.model_dump(), "offer": {"id": "winter-10"}}
    world.define(campaign(variants=None, holdout_percent=0, message=message))
    world.runner(parts=1).start("winter-sale", NOW, NOW)
    [part] = world.part_messages()
    assert world.work(part).state == "done"
    bodies = world.drain(world.deliveries.queue_url)
    deliverer = world.stack.load("DeliverFunction", Clock(NOW + timedelta(minutes=1)))

    # When the deliver function takes them, and the queue redelivers every one
    assert deliverer.lambda_handler(sqs_event(bodies), Context()) == {"batchItemFailures": []}
    assert deliverer.lambda_handler(sqs_event(bodies), Context()) == {"batchItemFailures": []}

    # Then ten people were each given a different code, shown twice in their one email (the
    # campaign's variable and the template's offer() are the same held code), and two were told why not
    store = offers(world)
    assert store.pool("winter-10").next == len(CODES)
    shown = emails()
    assert len(shown) == PEOPLE
    coded = {to: re.findall(r"Code (WINTER-\d{3}), again (WINTER-\d{3})", html) for to, html in shown.items()}
    given = [pair[0] for pairs in coded.values() for pair in pairs]
    assert all(len(pairs) <= 1 for pairs in coded.values())
    assert all(a == b for pairs in coded.values() for a, b in pairs)
    assert sorted(given) == CODES
    refused = [to for to, html in shown.items() if "No code: pool_exhausted" in html]
    assert len(refused) == PEOPLE - len(CODES)
    # each holder's code was issued for the campaign (and re-read for the message)
    for n in range(PEOPLE):
        held = store.holding(f"p{n:02d}", "winter-10")
        if held.current is not None:
            assert held.count == 1 and held.causes is not None
            assert held.causes[f"campaign:winter-sale:p{n:02d}"] == held.current
    # and the two refusals are counted once each (offer() shows the campaign's answer, not a second
    # cause), for all the redeliveries
    assert store.stats("winter-10")["refused_pool_exhausted"] == PEOPLE - len(CODES)


def test_given_a_journey_message_with_its_steps_reference_when_redelivered_then_it_shows_one_code(
    world: Rig,
) -> None:
    cause = "journey:abandoned-cart:p00:1:issue-coupon:3"
    message = MessageRequest(
        key=cause.replace("issue-coupon:3", "send-coupon:4"),
        origin=Origin(kind="journey", id="abandoned-cart", version=1, step="send-coupon"),
        profile_id="p00",
        channels=["email"],
        template="winter",
        offers={"coupon": OfferRef(offer="winter-10", cause=cause)},
        requested_at=iso(NOW),
    )
    reminder = message.model_copy(update={"key": message.key.replace("send-coupon:4", "last-reminder:6")})
    deliverer = world.stack.load("DeliverFunction", Clock(NOW + timedelta(minutes=1)))
    body, later = message.model_dump_json(), reminder.model_dump_json()

    for batch in ([body], [body], [later]):
        assert deliverer.lambda_handler(sqs_event(batch), Context()) == {"batchItemFailures": []}

    sent = ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages
    shown = [re.findall(r"Code (WINTER-\d{3})", html_of(m)) for m in sent]
    assert shown == [[CODES[0]], [CODES[0]]]  # the email and its reminder, one code
    held = offers(world).holding("p00", "winter-10")
    assert held.count == 1 and held.causes is not None and held.causes[cause] == CODES[0]


def test_given_fifty_journey_campaign_and_template_messages_at_once_when_forty_codes_are_left_then_each_goes_once(
    world: Rig,
) -> None:
    # Given a pool of 40 codes, and 50 people's messages of three kinds naming its offer: a
    # journey's send after its issue_offer step, a campaign's message, a template's offer()
    store = offers(world)
    store.create(Offer(id="spring-40", name="Spring", kind="percentage", value=15))
    pool = [f"SPRING-{n:03d}" for n in range(40)]
    store.upload("spring-40", pool, NOW)
    issuer = OfferIssuer(store)
    people = [Profile(id=f"q{n:02d}", created_at=ENTERED) for n in range(50)]

    def deliver(n: int) -> str | None:
        """What the deliverer does just before rendering person n's message: its code, or None."""
        person = people[n]
        if n % 3 == 0:
            refs = {"coupon": OfferRef(offer="spring-40", cause=f"journey:spring:{person.id}:1:give:2")}
        elif n % 3 == 1:
            refs = {"coupon": OfferRef(offer="spring-40", cause=f"campaign:spring:{person.id}")}
        else:
            refs = {}
        named = [] if refs else ["spring-40"]
        variables, codes = message_codes(issuer, person, refs, named, f"msg_{person.id}", NOW)
        return variables.get("coupon") if refs else codes["spring-40"]

    # When all 50 are delivered at once, and then all again (the queue redelivers)
    with ThreadPoolExecutor(max_workers=50) as threads:
        first = list(threads.map(deliver, range(50)))
    with ThreadPoolExecutor(max_workers=50) as threads:
        again = list(threads.map(deliver, range(50)))

    # Then 40 people have a code each, every code of the pool once, 10 were refused with the
    # reason kept and counted once each, and the redelivery changed nothing
    given = [code for code in first if code is not None]
    assert sorted(given) == pool
    assert again == first
    assert store.pool("spring-40").next == 40
    assert store.stats("spring-40")["refused_pool_exhausted"] == 10
    refused = [n for n, code in enumerate(first) if code is None]
    assert len(refused) == 10
    causes = {
        0: lambda p: f"journey:spring:{p}:1:give:2",
        1: lambda p: f"campaign:spring:{p}",
        2: lambda p: f"message:msg_{p}",
    }
    for n in refused:
        kept = store.refusal(people[n].id, "spring-40", causes[n % 3](people[n].id))
        assert kept is not None and kept["reason"] == "pool_exhausted", n
