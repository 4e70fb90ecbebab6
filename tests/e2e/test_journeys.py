"""The shipped journeys end to end: `midstage.cli apply library`, the five journeys switched on
through the admin API, people entering them over the tracking API, and the local cloud's clock
carrying them through their waits; what SES and SNS received, each person's instances and each
journey's stats are read back over HTTP.

Time. Every schedule fires at every occurrence (the minute timer sweep 1,440 times a day), so
the module has a cloud of its own, with its own manual clock, and walks ONE timeline of about
three days: every entry is made first, then the tests, in file order, move the clock forward
to the moment each one is about (never back) and check what must be true from then on.
Handlers read wall time except where the scheduler hands them its time (a timer's `dueAt`, the
sweeps' `scheduledTime`), so a wait counts from the wall time of its entry and ends at the
clock's time: entries made after the clock ran ahead would count from the wrong moment.

People. One person per path (frequency caps allow 3 marketing emails per person a week), all in
a zone where it is daytime now (quiet hours are judged on wall time) and with marketing consent.
The library's rules overlap the journeys (the welcome rule sends what welcome-series sends) and
are switched off here, as the journeys' descriptions ask.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from infra.localcloud.cloud import LocalCloud
from infra.localcloud.demo import bootstrap
from infra.localcloud.outbox import SentEmail
from midstage.cli import apply
from midstage.definitions import LIBRARY
from midstage.logic.timefmt import iso, parse_iso
from tests.e2e.conftest import Platform
from tests.e2e.test_rules_delivery import Scenario, wait_for, zone_at_local_hour

# Advancing the clock a day takes a few minutes of sweeps; the suite's 300 s default is too short.
pytestmark = pytest.mark.timeout(900)

JOURNEYS = ("welcome-series", "abandoned-cart", "birthday", "reactivation", "post-purchase-survey")
# Late enough that the clock's start, a few minutes back, is past 10:00; early enough that the
# module ends before 21:00 (the quiet window) wherever it runs.
DAYTIME_NOW = range(11, 16)
# A region of its own: moto keeps SES event destination names per region, not per configuration
# set, so a second cloud of this template in the shared cloud's region cannot create its own.
REGION = "eu-west-1"
# A timer is released by the first minute sweep of its minute; two minutes cover it.
MARGIN = timedelta(minutes=2)

# What each template's subject renders to with the journeys' vars: an email is counted by template.
SUBJECTS = {
    "Welcome aboard": "welcome-email",
    "You left something behind: 10% off to finish your order": "abandoned-cart-email",
    "Your cart is still here, and so is your 10% off": "abandoned-cart-reminder-email",
    "An early birthday present: 15% off": "birthday-email",
    "It has been a while": "reactivation-email",
    "15% off, to welcome you back": "reactivation-offer-email",
    "How is your order working out?": "post-purchase-survey-email",
    "Still two minutes for us?": "post-purchase-survey-reminder-email",
}
NUDGE_SMS = (
    "Hi Ann, welcome! In case our email went astray: new arrivals and offers are at https://shop.example.com/ "
    "Reply STOP to opt out."
)


class Person(Scenario):
    """One person of the timeline: a fresh user, email address and phone number."""

    def __init__(self, platform: Platform, number: int) -> None:
        super().__init__(platform)
        self.user = f"journey-{self.tag}"
        # Apart from the +1415555 numbers of the shared cloud's people, whatever its region.
        self.phone = f"+1206555{number:04d}"

    @property
    def ref(self) -> str:
        return f"user_id:{self.user}"

    def profile_id(self) -> str:
        return str(self.platform.profile(self.ref)["id"])

    def sent(self) -> Counter[str]:
        """Emails received, by template."""
        return Counter(SUBJECTS.get(email.subject or "", email.subject or "") for email in self.emails())

    def the_email(self, template: str) -> SentEmail:
        """The one email of this template the person received."""
        [email] = [e for e in self.emails() if SUBJECTS.get(e.subject or "") == template]
        return email

    def instances(self) -> dict[str, dict[str, Any]]:
        answer = self.platform.admin("GET", f"/v1/profiles/{self.ref}/journeys")
        assert answer.status == 200, answer.body
        return {doc["journey_id"]: doc for doc in answer.body["journeys"]}

    def instance(self, journey_id: str) -> dict[str, Any]:
        return self.instances()[journey_id]

    def ledger(self) -> list[tuple[str, str, str]]:
        return sorted((m["origin"], m["channel"], m["status"]) for m in self.messages())


def steps(instance: dict[str, Any]) -> list[tuple[str, str]]:
    """An instance's path as (step, outcome)."""
    return [(step, outcome) for step, _, outcome in instance["path"]]


def stamps(instance: dict[str, Any]) -> list[datetime]:
    return [parse_iso(at) for _, at, _ in instance["path"]]


@dataclass
class Timeline:
    platform: Platform
    zone: str
    people: dict[str, Person]
    entered_by: datetime  # the latest journey entry (wall time): every wait counts from then or earlier
    first_sweep: datetime  # the clock's start, when the hourly lifecycle sweep first ran
    sweep_entries: list[dict[str, Any]] = field(default_factory=list)  # journey.date events of that sweep
    sent_before_the_clock_moved: dict[str, Counter[str]] = field(default_factory=dict)

    @property
    def cloud(self) -> LocalCloud:
        return self.platform.cloud

    def advance_to(self, moment: datetime) -> None:
        """Move the clock to `moment` (firing every schedule on the way) unless it is there already."""
        clock = self.cloud.clock
        if clock.now() < moment:
            clock.advance(moment - clock.now(), max_firings=None)
        self.platform.settle()

    def after_entries(self, delay: timedelta) -> None:
        self.advance_to(self.entered_by + delay + MARGIN)

    def stats(self, journey_id: str) -> dict[str, Any]:
        answer = self.platform.admin("GET", f"/v1/journeys/{journey_id}/stats")
        assert answer.status == 200, answer.body
        body: dict[str, Any] = answer.body
        return body

    def wake(self, person: Person, journey_id: str) -> dict[str, Any]:
        """The `journey.wake` the timer sweep publishes when the person's current wait is due."""
        instance = person.instance(journey_id)
        wait = instance["wait"]
        detail = {
            "journeyId": journey_id,
            "profileId": person.profile_id(),
            "run": instance["run"],
            "timerId": wait["timer_id"],
            "dueAt": wait["until"],
        }
        return bus_event("journey.wake", detail)


def bus_event(detail_type: str, detail: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": "midstage",
        "account": "123456789012",
        "time": iso(datetime.now(UTC)),
        "region": REGION,
        "resources": [],
        "detail": detail,
    }


def identified(person: Person, zone: str, at: datetime, **traits: Any) -> list[dict[str, Any]]:
    """A person's identify (contact details, time zone) and marketing consent, as of `at`."""
    consent = {"channel": "*", "purpose": "marketing", "granted": True}
    traits = {"email": person.email, "phone": person.phone, "first_name": "Ann", **traits}
    return [
        {
            "type": "identify",
            "userId": person.user,
            "traits": traits,
            "context": {"timezone": zone},
            "timestamp": iso(at),
        },
        {
            "type": "track",
            "userId": person.user,
            "event": "Consent Updated",
            "properties": consent,
            "timestamp": iso(at),
        },
    ]


def tracked(person: Person, event: str, at: datetime | None = None, **properties: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "track", "userId": person.user, "event": event, "properties": properties}
    return body if at is None else {**body, "timestamp": iso(at)}


def send_batch(platform: Platform, events: list[dict[str, Any]]) -> None:
    """One tracking call for everyone (each person's events still make one profile write)."""
    answer = platform.track("/v1/batch", {"batch": events})
    assert answer.status == 200, answer.body
    platform.settle()


@pytest.fixture(scope="module")
def timeline() -> Iterator[Timeline]:
    # Its own stage, stack and region, so it runs beside the shared cloud without sharing a name.
    with LocalCloud(
        manual_clock=True,
        stack_name="midstage-journeys",
        parameters={"ConfigCacheSeconds": "0", "Stage": "journeys"},
        region=REGION,
    ) as cloud:
        source, admin_key = bootstrap(cloud, echo=False)
        platform = Platform(cloud, source.write_key, source.id, admin_key)
        report = apply(LIBRARY, platform.url, admin_key, echo=None)
        for step in report.steps:
            if step.document.kind == "rule":
                answer = platform.admin("PATCH", f"/v1/rules/{step.document.id}", {"enabled": False})
                assert answer.status == 200, answer.body
        for journey_id in JOURNEYS:
            answer = platform.admin("PATCH", f"/v1/journeys/{journey_id}", {"enabled": True})
            assert answer.status == 200, answer.body
            assert answer.body["enabled"] is True

        zone = zone_at_local_hour(DAYTIME_NOW)
        names = [
            "welcome_a",
            "welcome_b",
            "cart_a",
            "cart_b",
            "birthday",
            "reactivation_a",
            "reactivation_b",
            "survey_a",
            "survey_c",
        ]
        people = {name: Person(platform, number) for number, name in enumerate(names)}
        now = datetime.now(UTC)
        # The birthday is three days after the local date of the first hourly sweep, which runs
        # at the clock's start on its first advance (rate schedules fire when the cloud starts).
        first_sweep = cloud.clock.started_at
        birthday = first_sweep.astimezone(ZoneInfo(zone)).date() + timedelta(days=3)

        # Every entry now, before the clock moves: sign-ups, abandoned carts, orders, and two
        # customers imported with a history that stops 40 days ago (collect keeps any timestamp
        # with an offset), whom their first profile write finds silent.
        old, last_order = now - timedelta(days=45), now - timedelta(days=40)
        send_batch(
            platform,
            [
                *(
                    e
                    for n in ("welcome_a", "welcome_b", "cart_a", "cart_b", "survey_a", "survey_c")
                    for e in identified(people[n], zone, now)
                ),
                *identified(people["birthday"], zone, now, birthday=f"{birthday:%m-%d}"),
                *(tracked(people[n], "Signed Up", plan="pro") for n in ("welcome_a", "welcome_b")),
                *(
                    tracked(
                        people[n],
                        "Cart Abandoned",
                        cart_url=f"https://shop.example.com/cart/{n}",
                        total=59.9,
                        currency="USD",
                    )
                    for n in ("cart_a", "cart_b")
                ),
                tracked(people["survey_a"], "Order Completed", order_id="sa-1", revenue=80),
                tracked(people["survey_c"], "Order Completed", order_id="sc-1", revenue=80),
                *(
                    e
                    for n in ("reactivation_a", "reactivation_b")
                    for e in (
                        *identified(people[n], zone, old),
                        tracked(people[n], "Order Completed", last_order, order_id=f"old-{n}", revenue=40),
                    )
                ),
            ],
        )
        # Then, while their journeys wait: cart_b completes the order within the hour and
        # reactivation_b comes back to order (both journeys' goal)...
        assert people["reactivation_b"].sent() == Counter({"reactivation-email": 1})
        send_batch(
            platform,
            [
                tracked(people["cart_b"], "Order Completed", order_id="cb-1", revenue=59.9),
                tracked(people["reactivation_b"], "Order Completed", order_id="rb-1", revenue=35),
            ],
        )
        # ...and welcome_b opens the welcome email: the mail client loads its open pixel
        [welcome] = people["welcome_b"].emails()
        assert welcome.html is not None
        assert welcome.text is not None
        # the welcome pack: their own welcome-10 code
        assert len(re.findall(r"off your first order: (WELCOME-[0-9A-Z]{7})\s", welcome.text)) == 1, welcome.text
        pixel = welcome.html.split("/t/o/", 1)[1].split('"', 1)[0]
        opened = platform.request("GET", f"/t/o/{pixel}")
        assert opened.status == 200 and opened.headers["content-type"] == "image/gif"
        platform.settle()
        assert people["birthday"].instances() == {}  # a trait is no trigger: the sweep lets them in

        sent_before = {name: person.sent() for name, person in people.items()}
        cloud.clock.advance(timedelta(0))
        platform.settle()
        birthday_id = people["birthday"].profile_id()
        sweep_entries = [
            record.event["detail"]
            for record in cloud.invocations("RunJourneysFunction")
            if record.event.get("detail-type") == "journey.date" and record.event["detail"]["profileId"] == birthday_id
        ]
        entries = [parse_iso(doc["entered_at"]) for p in people.values() for doc in p.instances().values()]
        yield Timeline(platform, zone, people, max(entries), first_sweep, sweep_entries, sent_before)


# ---------------------------------------------------------------------------- at the start
def test_a_profile_shows_the_library_segments_its_person_is_in(timeline: Timeline) -> None:
    people = timeline.people
    expected = {
        "cart_a": {"cart-abandoners"},
        "cart_b": {"new-customers"},
        "survey_a": {"new-customers"},
        "reactivation_a": {"silent-customers"},
        "reactivation_b": set(),  # came back: active again, not new
        "welcome_a": set(),
    }
    shown = {name: set(timeline.platform.profile(people[name].ref).get("segments") or ()) for name in expected}
    assert shown == expected


def test_estimating_a_library_segment_counts_exactly_the_people_in_it(timeline: Timeline) -> None:
    # The module's cloud holds only the timeline's people, so every count is known.
    people = timeline.people
    expected = {
        "cart-abandoners": {"cart_a"},  # cart_b ordered
        "silent-customers": {"reactivation_a"},  # reactivation_b ordered again
        "new-customers": {"cart_b", "survey_a", "survey_c"},  # first seen lately, and ordered
        "high-value": set(),
    }
    for segment_id, names in expected.items():
        segment = timeline.platform.admin("GET", f"/v1/segments/{segment_id}")
        assert segment.status == 200, segment.body

        answer = timeline.platform.admin("POST", "/v1/segments/estimate", {"condition": segment.body["condition"]})

        assert answer.status == 200, answer.body
        assert answer.body["exact"] is True
        assert (answer.body["matched"], answer.body["estimated"]) == (len(names), len(names)), segment_id
        assert {s["id"] for s in answer.body["sample"]} == {people[n].profile_id() for n in names}, segment_id


def test_the_first_hourly_sweep_lets_the_birthday_person_in_three_days_ahead(timeline: Timeline) -> None:
    person = timeline.people["birthday"]
    # The sweep published one date entry, keyed by the person's local day at the sweep's time
    [entry] = timeline.sweep_entries
    local_day = timeline.first_sweep.astimezone(ZoneInfo(timeline.zone)).date()
    assert entry["journeyId"] == "birthday"
    assert entry["entryKey"] == f"date:{local_day.isoformat()}"
    assert parse_iso(entry["at"]) == timeline.first_sweep
    # and the person waits for 10:00 their time: they came in after 10:00, so the next day's
    instance = person.instance("birthday")
    assert instance["status"] == "waiting" and instance["step"] == "at-10am"
    until = parse_iso(instance["wait"]["until"]).astimezone(ZoneInfo(timeline.zone))
    assert (until.date(), until.time()) == (local_day + timedelta(days=1), time(10, 0))
    assert person.sent() == Counter()


def test_a_redelivered_entry_event_enters_nobody_twice(timeline: Timeline) -> None:
    person = timeline.people["welcome_a"]
    profile_id = person.profile_id()
    [signed_up] = [
        record.event
        for record in timeline.cloud.invocations("RunJourneysFunction")
        if record.event.get("detail-type") == "event.tracked"
        and record.event["detail"]["profileId"] == profile_id
        and record.event["detail"]["event"].get("event") == "Signed Up"
    ]

    result = timeline.cloud.invoke("RunJourneysFunction", signed_up)
    timeline.platform.settle()

    assert result.ok, result.error
    assert result.payload["entered"] == []
    assert result.payload["refused"]["welcome-series"].startswith("already entered")
    assert person.sent() == Counter({"welcome-email": 1})
    assert timeline.stats("welcome-series")["entered"] == 2


# ---------------------------------------------------------------------------- an hour on
def test_abandoned_cart_sends_the_coupon_an_hour_on_unless_an_order_reached_the_goal(timeline: Timeline) -> None:
    cart_a, cart_b = timeline.people["cart_a"], timeline.people["cart_b"]
    # cart_b ordered within the hour: out at once, on the goal
    exited = cart_b.instance("abandoned-cart")
    assert exited["status"] == "exited" and exited["exit_reason"] == "goal: Order Completed"
    assert steps(exited)[-1] == ("wait-1h", "exited: goal: Order Completed")

    timeline.after_entries(timedelta(hours=1))

    # Then cart_a has the coupon, linking back to the cart, and waits a day for the reminder
    assert cart_a.sent() == Counter({"abandoned-cart-email": 1})
    [coupon] = cart_a.emails()
    assert coupon.text is not None
    assert "You left your cart ($59.90) before checking out." in coupon.text
    # their own code of the library's cart-10 offer, issued to them for this run's step
    found = re.findall(r"Your code: (CART-[0-9A-Z]{7})\s", coupon.text)
    assert len(found) == 1, coupon.text
    [code] = found
    assert "Back to your cart: https://shop.example.com/cart/cart_a" in coupon.text
    [issued] = timeline.platform.admin("GET", "/v1/offers/cart-10/codes?state=issued").body["codes"]
    assert (issued["coupon"], issued["profileId"]) == (code, cart_a.profile_id())
    assert issued["cause"].startswith(f"journey:abandoned-cart:{cart_a.profile_id()}:1:issue-coupon:")
    instance = cart_a.instance("abandoned-cart")
    entered = parse_iso(instance["entered_at"])
    assert steps(instance)[1:] == [
        ("wait-1h", "timer fired"),
        ("not-ordered", "yes"),
        ("issue-coupon", "offer cart-10 named as vars.coupon_code"),
        ("send-coupon", "message requested"),
        ("wait-1d", f"waiting until {iso(entered + timedelta(hours=1, days=1))}"),
    ]
    assert stamps(instance)[1] == entered + timedelta(hours=1)
    # and cart_b nothing from this journey (an order starts post-purchase-survey, three days on)
    assert cart_b.sent() == Counter()
    assert cart_b.instance("abandoned-cart")["status"] == "exited"


def test_a_redelivered_wake_moves_nothing_and_sends_nothing_twice(timeline: Timeline) -> None:
    person = timeline.people["cart_a"]
    profile_id = person.profile_id()
    timeline.after_entries(timedelta(hours=1))
    [wake] = [
        record.event
        for record in timeline.cloud.invocations("RunJourneysFunction")
        if record.event.get("detail-type") == "journey.wake"
        and record.event["detail"]["profileId"] == profile_id
        and record.event["detail"]["timerId"].endswith(":1:1")  # run 1, the first step's wait
    ]
    before = person.instance("abandoned-cart")

    # When the same wake comes again (EventBridge delivers at least once)
    result = timeline.cloud.invoke("RunJourneysFunction", wake)
    timeline.platform.settle()

    # Then it is a stale timer: nothing moves, nothing is sent
    assert result.ok, result.error
    assert (result.payload["moved"], result.payload["messages"]) == ([], 0)
    assert person.instance("abandoned-cart") == before
    assert person.sent() == Counter({"abandoned-cart-email": 1})
    assert person.ledger() == [("journey#abandoned-cart", "email", "sent")]


# ---------------------------------------------------------------------------- the next morning
def test_birthday_sends_the_coupon_at_ten_in_the_persons_zone_and_completes(timeline: Timeline) -> None:
    person = timeline.people["birthday"]
    until = parse_iso(person.instance("birthday")["wait"]["until"])

    timeline.advance_to(until + MARGIN)

    assert person.sent() == Counter({"birthday-email": 1})
    [email] = person.emails()
    assert email.text is not None
    found = re.findall(r"Your code: (BDAY-[0-9A-Z]{7})\s", email.text)  # their own birthday-15 code
    assert len(found) == 1, email.text
    instance = person.instance("birthday")
    assert instance["status"] == "completed"
    assert steps(instance) == [
        ("at-10am", f"waiting until {iso(until)}"),
        ("at-10am", "timer fired"),
        ("give-coupon", "offer birthday-15 named as vars.coupon_code"),
        ("send-coupon", "message requested"),
        ("done", "completed"),
    ]
    # The send was asked for at 10:00:00 in the person's zone, by the clock
    sent_at = stamps(instance)[3].astimezone(ZoneInfo(timeline.zone))
    assert (sent_at.date(), sent_at.time()) == (until.astimezone(ZoneInfo(timeline.zone)).date(), time(10, 0))
    assert person.ledger() == [("journey#birthday", "email", "sent")]
    stats = timeline.stats("birthday")
    assert {k: stats[k] for k in ("entered", "completed", "exited", "in_progress")} == {
        "entered": 1,
        "completed": 1,
        "exited": 0,
        "in_progress": 0,
    }
    assert stats["steps"] == {"at-10am": 1, "give-coupon": 1, "send-coupon": 1, "done": 1}


# ---------------------------------------------------------------------------- a day on
def test_abandoned_cart_reminds_once_a_day_after_the_coupon_then_completes(timeline: Timeline) -> None:
    cart_a = timeline.people["cart_a"]

    timeline.after_entries(timedelta(days=1, hours=1))

    assert cart_a.sent() == Counter({"abandoned-cart-email": 1, "abandoned-cart-reminder-email": 1})
    reminder = cart_a.the_email("abandoned-cart-reminder-email")
    assert reminder.text is not None and "Finish your order: https://shop.example.com/cart/cart_a" in reminder.text
    # the same code as the first email: one per run and step, however many sends show it
    [code] = re.findall(r"Your code: (CART-[0-9A-Z]{7})\s", cart_a.the_email("abandoned-cart-email").text or "")
    assert f"code {code} still takes 10% off" in reminder.text
    offer = timeline.platform.admin("GET", "/v1/offers/cart-10/stats").body
    assert (offer["issued"], offer["redeemed"]) == (1, 0)
    instance = cart_a.instance("abandoned-cart")
    assert instance["status"] == "completed" and instance["exit_reason"] == "exit: done"
    assert steps(instance)[-3:] == [
        ("wait-1d", "timer fired"),
        ("last-reminder", "message requested"),
        ("done", "completed"),
    ]
    assert stamps(instance)[-1] == parse_iso(instance["entered_at"]) + timedelta(hours=1, days=1)
    assert cart_a.ledger() == [("journey#abandoned-cart", "email", "sent")] * 2
    stats = timeline.stats("abandoned-cart")
    assert {k: stats[k] for k in ("entered", "completed", "exited", "goal", "in_progress")} == {
        "entered": 2,
        "completed": 1,
        "exited": 1,
        "goal": 1,
        "in_progress": 0,
    }
    assert stats["steps"] == {
        "wait-1h": 2,
        "not-ordered": 1,
        "issue-coupon": 1,
        "send-coupon": 1,
        "wait-1d": 1,
        "last-reminder": 1,
        "done": 1,
    }


# ---------------------------------------------------------------------------- two days on
def test_welcome_series_nudges_by_sms_after_two_days_without_an_open_and_an_open_ends_it(
    timeline: Timeline,
) -> None:
    welcome_a, welcome_b = timeline.people["welcome_a"], timeline.people["welcome_b"]
    # The welcome email went out at once, before the clock moved
    assert timeline.sent_before_the_clock_moved["welcome_a"] == Counter({"welcome-email": 1})
    assert timeline.sent_before_the_clock_moved["welcome_b"] == Counter({"welcome-email": 1})

    timeline.after_entries(timedelta(days=2))

    # welcome_a opened nothing: the SMS nudge two days after the sign-up, then done
    assert welcome_a.sent() == Counter({"welcome-email": 1})
    [sms] = welcome_a.sms()
    assert sms.message == NUDGE_SMS
    assert sms.sms_type == "Promotional"
    instance = welcome_a.instance("welcome-series")
    entered = parse_iso(instance["entered_at"])
    assert instance["status"] == "completed"
    assert steps(instance) == [
        ("give-welcome-code", "offer welcome-10 named as vars.coupon_code"),
        ("send-welcome", "message requested"),
        ("wait-for-open", f"waiting until {iso(entered + timedelta(days=2))}"),
        ("wait-for-open", "timed out"),
        ("sms-nudge", "message requested"),
        ("done", "completed"),
    ]
    assert stamps(instance)[4] == entered + timedelta(days=2)
    assert welcome_a.ledger() == [
        ("journey#welcome-series", "email", "sent"),
        ("journey#welcome-series", "sms", "sent"),
    ]
    # welcome_b opened the welcome email (its pixel): done at the open, no SMS
    assert welcome_b.sent() == Counter({"welcome-email": 1})
    assert welcome_b.sms() == []
    instance = welcome_b.instance("welcome-series")
    assert instance["status"] == "completed"
    assert steps(instance)[3:] == [("wait-for-open", "event: Email Opened"), ("done", "completed")]
    assert stamps(instance)[3] < parse_iso(instance["entered_at"]) + timedelta(days=2)
    stats = timeline.stats("welcome-series")
    assert {k: stats[k] for k in ("entered", "completed", "exited", "in_progress")} == {
        "entered": 2,
        "completed": 2,
        "exited": 0,
        "in_progress": 0,
    }
    assert stats["steps"] == {"give-welcome-code": 2, "send-welcome": 2, "wait-for-open": 2, "sms-nudge": 1, "done": 2}


# ---------------------------------------------------------------------------- three days on
def test_reactivation_offers_15_off_to_whoever_is_still_silent_three_days_on(timeline: Timeline) -> None:
    reactivation_a, reactivation_b = timeline.people["reactivation_a"], timeline.people["reactivation_b"]
    assert timeline.sent_before_the_clock_moved["reactivation_a"] == Counter({"reactivation-email": 1})
    # reactivation_b ordered during the wait: out on the goal
    exited = reactivation_b.instance("reactivation")
    assert exited["status"] == "exited" and exited["exit_reason"] == "goal: Order Completed"
    assert steps(exited)[-1] == ("wait-3d", "exited: goal: Order Completed")

    timeline.after_entries(timedelta(days=3))

    # reactivation_a is still silent: the offer, then done
    offer_sent = Counter({"reactivation-email": 1, "reactivation-offer-email": 1})
    assert reactivation_a.sent() == offer_sent, reactivation_a.instance("reactivation")  # its path says why not
    offer = reactivation_a.the_email("reactivation-offer-email")
    assert offer.text is not None
    found = re.findall(r"Your code: (BACK-[0-9A-Z]{7})\s", offer.text)  # their own comeback-15 code
    assert len(found) == 1, offer.text
    instance = reactivation_a.instance("reactivation")
    entered = parse_iso(instance["entered_at"])
    assert instance["status"] == "completed"
    assert steps(instance) == [
        ("miss-you", "message requested"),
        ("wait-3d", f"waiting until {iso(entered + timedelta(days=3))}"),
        ("wait-3d", "timer fired"),
        ("still-silent", "yes"),
        ("give-offer", "offer comeback-15 named as vars.coupon_code"),
        ("send-offer", "message requested"),
        ("done", "completed"),
    ]
    # reactivation_b: no offer; their order started the post-purchase survey, sent three days on
    assert reactivation_b.sent() == Counter({"reactivation-email": 1, "post-purchase-survey-email": 1})
    assert reactivation_b.instance("reactivation")["status"] == "exited"
    stats = timeline.stats("reactivation")
    assert {k: stats[k] for k in ("entered", "completed", "exited", "goal", "in_progress")} == {
        "entered": 2,
        "completed": 1,
        "exited": 1,
        "goal": 1,
        "in_progress": 0,
    }
    assert stats["steps"] == {
        "miss-you": 2,
        "wait-3d": 2,
        "still-silent": 1,
        "give-offer": 1,
        "send-offer": 1,
        "done": 1,
    }


def test_post_purchase_survey_asks_three_days_on_and_an_answer_ends_it_without_a_reminder(
    timeline: Timeline,
) -> None:
    survey_a, survey_c = timeline.people["survey_a"], timeline.people["survey_c"]

    timeline.after_entries(timedelta(days=3))

    # Both were asked, with their order's id in the survey link
    for person, order in ((survey_a, "sa-1"), (survey_c, "sc-1")):
        [email] = person.emails()
        assert SUBJECTS.get(email.subject or "") == "post-purchase-survey-email"
        assert email.text is not None
        assert f"Answer the survey: https://survey.example.com/order?order={order}" in email.text
        assert person.instance("post-purchase-survey")["step"] == "wait-for-answer"
    asked = survey_a.instance("post-purchase-survey")
    assert stamps(asked)[1] == parse_iso(asked["entered_at"]) + timedelta(days=3)

    # When survey_a answers
    survey_a.track("Survey Completed", order_id="sa-1", score=9)

    # Then the journey is done for them, and no reminder follows
    instance = survey_a.instance("post-purchase-survey")
    assert instance["status"] == "completed"
    assert steps(instance)[-2:] == [("wait-for-answer", "event: Survey Completed"), ("done", "completed")]
    assert survey_a.sent() == Counter({"post-purchase-survey-email": 1})

    # survey_c does not answer. Four more days of minute sweeps would take the module past its
    # time budget, so the wake the sweep publishes when the wait times out is delivered directly.
    result = timeline.cloud.invoke("RunJourneysFunction", timeline.wake(survey_c, "post-purchase-survey"))
    timeline.platform.settle()

    assert result.ok, result.error
    assert survey_c.sent() == Counter({"post-purchase-survey-email": 1, "post-purchase-survey-reminder-email": 1})
    reminder = survey_c.the_email("post-purchase-survey-reminder-email")
    assert reminder.text is not None and "https://survey.example.com/order?order=sc-1" in reminder.text
    instance = survey_c.instance("post-purchase-survey")
    assert instance["status"] == "completed"
    assert steps(instance)[-3:] == [
        ("wait-for-answer", "timed out"),
        ("remind", "message requested"),
        ("done", "completed"),
    ]
    asked_at = stamps(instance)[2]
    assert stamps(instance)[-1] == asked_at + timedelta(days=4)
    # The two others who ordered (cart_b, reactivation_b) were asked too and are still waiting
    for name in ("cart_b", "reactivation_b"):
        assert timeline.people[name].instance("post-purchase-survey")["step"] == "wait-for-answer", name
    assert timeline.people["cart_b"].sent() == Counter({"post-purchase-survey-email": 1})
    stats = timeline.stats("post-purchase-survey")
    assert {k: stats[k] for k in ("entered", "completed", "exited", "goal", "in_progress")} == {
        "entered": 4,
        "completed": 2,
        "exited": 0,
        "goal": 0,
        "in_progress": 2,
    }
    assert stats["steps"] == {"wait-3d": 4, "ask": 4, "wait-for-answer": 4, "remind": 1, "done": 2}


# ---------------------------------------------------------------------------- last: an order with the code
def test_an_order_with_the_abandoned_cart_code_redeems_it_with_its_revenue(timeline: Timeline) -> None:
    # Last in the file: the order starts cart_a's post-purchase survey, which no test above counts.
    cart_a = timeline.people["cart_a"]
    [code] = re.findall(r"Your code: (CART-[0-9A-Z]{7})\s", cart_a.the_email("abandoned-cart-email").text or "")

    # When cart_a orders with the code the journey gave them
    cart_a.track("Order Completed", order_id="ca-1", coupon=code, revenue=59.9, discount=6)

    # Then the code is theirs and redeemed with the order's revenue, and the offer's figures say so
    def redeemed() -> dict[str, Any] | None:
        stats: dict[str, Any] = timeline.platform.admin("GET", "/v1/offers/cart-10/stats").body
        return stats if stats["redeemed"] == 1 else None

    stats = wait_for(redeemed, "the redemption")
    assert (stats["issued"], stats["redeemed"]) == (1, 1)
    assert stats["redemptions"] == {
        "redeemed": 1,
        "redeemed_by_other": 0,
        "redeemed_after_expiry": 0,
        "already_redeemed": 0,
    }
    assert (stats["revenue"], stats["discountCost"], stats["redemptionRate"]) == (59.9, 6, 1.0)
    [used] = timeline.platform.admin("GET", "/v1/offers/cart-10/codes?state=redeemed").body["codes"]
    assert (used["coupon"], used["redeemedBy"], used["outcome"]) == (code, cart_a.profile_id(), "redeemed")
