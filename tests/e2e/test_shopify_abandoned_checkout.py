"""The library's abandoned-checkout journey fed by Shopify's webhooks over HTTP on the local cloud:
a checkout started by a new email enters it, and Shopify's checkouts/update of it (the cart
changed) starts no second run; an hour on (the manual clock) the email with the
person's own cart-10 code and the link back to the checkout is what SES received; Shopify's order
for that checkout ends the run at its goal, so the day-later reminder never comes; the site's
later Segment identify with the same email is the same person. And a shopper who orders within
the hour gets no email at all.

Its own cloud (stack, stage, region), because the module moves the clock: an hour of minute
sweeps. Quiet hours are off in it: a shopper known only from Shopify has no time zone, and the
module must not depend on the hour of the day it runs at in UTC.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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
from tests.e2e.test_rules_delivery import _open
from tests.support.webhooks import SHOPIFY_SECRET, body_of, fixture, shopify_headers

pytestmark = pytest.mark.timeout(900)

JOURNEY = "abandoned-checkout"
# A region no other module's cloud uses: moto keeps SES event destinations per region.
REGION = "ap-southeast-2"
# A timer is released by the first minute sweep of its minute; two minutes cover it.
MARGIN = timedelta(minutes=2)
COUPON_SUBJECT = "You left something behind: 10% off to finish your order"
# The shop's time zone, as Shopify writes its times (with the shop's offset).
SHOP_ZONE = ZoneInfo("America/New_York")


@dataclass
class Shopper:
    """A Shopify customer with a new email, and the checkout they start."""

    platform: Platform
    source_id: str
    tag: str
    started: str | None = None  # the checkout's created_at, the same in each of its webhooks

    @property
    def email(self) -> str:
        return f"shopper-{self.tag}@example.com"

    @property
    def customer_id(self) -> int:
        return int(self.tag, 16)

    @property
    def checkout(self) -> str:
        return f"ck{self.tag}"

    @property
    def recovery_url(self) -> str:
        # Shopify's abandoned_checkout_url, on the shop's own domain (the journey's shop_url)
        return f"https://shop.example.com/548380009/checkouts/{self.checkout}/recover?key=example-secret-token"

    def deliver(self, topic: str, body: dict[str, Any]) -> None:
        """Shopify's delivery of one webhook, signed with the source's secret."""
        raw = body_of(body)
        headers = shopify_headers(raw, topic, f"wh-{uuid.uuid4()}")
        answer = self.platform.request("POST", f"/v1/webhooks/{self.source_id}", raw=raw, headers=headers)
        assert (answer.status, answer.body["topic"]) == (200, topic), answer.body

    def signs_up(self) -> None:
        """customers/create: Shopify's example customer, subscribed to email marketing."""
        customer = fixture("shopify", "customers_create")
        customer.update(id=self.customer_id, email=self.email, phone=None, first_name="Ann")
        self.deliver("customers/create", customer)

    def starts_checkout(self, topic: str = "checkouts/create", quantity: int = 2) -> None:
        """checkouts/create (or /update): Shopify's example checkout, started a moment ago."""
        body = fixture("shopify", "checkouts_create")
        self.started = self.started or shop_time(datetime.now(UTC) - timedelta(seconds=5))
        body.update(
            token=self.checkout,
            email=self.email,
            created_at=self.started,
            updated_at=shop_time(datetime.now(UTC)),
            abandoned_checkout_url=self.recovery_url,
        )
        body["customer"].update(id=self.customer_id, email=self.email, first_name="Ann")
        body["line_items"][0]["quantity"] = quantity
        self.deliver(topic, body)

    def orders(self) -> None:
        """orders/create: Shopify's example order, placed now from the checkout."""
        body = fixture("shopify", "orders_create")
        placed = shop_time(datetime.now(UTC))
        body.update(
            id=self.customer_id + 1,
            checkout_token=self.checkout,
            email=self.email,
            contact_email=self.email,
            created_at=placed,
            processed_at=placed,
            updated_at=placed,
        )
        body["customer"].update(id=self.customer_id, email=self.email)
        self.deliver("orders/create", body)

    @property
    def ref(self) -> str:
        return f"email:{self.email}"

    def emails(self) -> list[SentEmail]:
        return [e for e in self.platform.cloud.sent_emails() if self.email in e.recipients]

    def instances(self) -> list[dict[str, Any]]:
        answer = self.platform.admin("GET", f"/v1/profiles/{self.ref}/journeys")
        assert answer.status == 200, answer.body
        return [doc for doc in answer.body["journeys"] if doc["journey_id"] == JOURNEY]

    def instance(self) -> dict[str, Any]:
        [instance] = self.instances()
        return instance


def shop_time(moment: datetime) -> str:
    return moment.astimezone(SHOP_ZONE).isoformat(timespec="seconds")


def steps(instance: dict[str, Any]) -> list[tuple[str, str]]:
    return [(step, outcome) for step, _, outcome in instance["path"]]


@dataclass
class Shop:
    platform: Platform
    shoppers: dict[str, Shopper]

    def advance_to(self, moment: datetime) -> None:
        clock = self.platform.cloud.clock
        if clock.now() < moment:
            clock.advance(moment - clock.now(), max_firings=None)
        self.platform.settle()

    def stats(self) -> dict[str, Any]:
        answer = self.platform.admin("GET", f"/v1/journeys/{JOURNEY}/stats")
        assert answer.status == 200, answer.body
        body: dict[str, Any] = answer.body
        return body


@pytest.fixture(scope="module")
def shop() -> Iterator[Shop]:
    with LocalCloud(
        manual_clock=True,
        stack_name="midstage-shopcart",
        parameters={"ConfigCacheSeconds": "0", "Stage": "shopcart", "QuietHours": ""},
        region=REGION,
    ) as cloud:
        source, admin_key = bootstrap(cloud, echo=False)
        platform = Platform(cloud, source.write_key, source.id, admin_key)
        # Given the library applied, its rules off (the order survey would mail the orders), and
        # the abandoned-checkout journey switched on
        for step in apply(LIBRARY, platform.url, admin_key, echo=None).steps:
            if step.document.kind == "rule":
                assert platform.admin("PATCH", f"/v1/rules/{step.document.id}", {"enabled": False}).status == 200
        enabled = platform.admin("PATCH", f"/v1/journeys/{JOURNEY}", {"enabled": True})
        assert enabled.status == 200 and enabled.body["enabled"] is True, enabled.body
        # And a Shopify source
        created = platform.admin(
            "POST", "/v1/sources", {"name": "shop", "kind": "shopify", "signing_secret": SHOPIFY_SECRET}
        )
        assert created.status == 201, created.body
        shoppers = {name: Shopper(platform, created.body["id"], uuid.uuid4().hex[:8]) for name in ("leaves", "buys")}
        # When both sign up in the shop (consenting to email marketing) and start a checkout...
        for shopper in shoppers.values():
            shopper.signs_up()
            platform.settle()
            shopper.starts_checkout()
        platform.settle()
        # ...and one of them places the order within the hour
        shoppers["buys"].orders()
        platform.settle()
        yield Shop(platform, shoppers)


# ---------------------------------------------------------------------------- before the clock moves
def test_shopifys_update_of_a_checkout_starts_no_second_run(shop: Shop) -> None:
    leaves = shop.shoppers["leaves"]
    first = leaves.instance()
    until = iso(parse_iso(first["entered_at"]) + timedelta(hours=1))
    assert steps(first) == [("wait-1h", f"waiting until {until}")]
    # When the shopper changes the cart: Shopify sends checkouts/update (another webhook id)
    leaves.starts_checkout("checkouts/update", quantity=3)
    shop.platform.settle()
    # Then it is the same checkout: the one run waits on, and nothing is sent
    [instance] = leaves.instances()
    assert instance == first
    assert leaves.emails() == []
    assert shop.stats()["entered"] == 2


# ---------------------------------------------------------------------------- an hour on
def test_an_order_within_the_hour_ends_the_run_and_no_email_is_sent(shop: Shop) -> None:
    buys = shop.shoppers["buys"]
    # The order ended the run at once, at its goal
    instance = buys.instance()
    assert (instance["status"], instance["exit_reason"]) == ("exited", "goal: Order Completed")
    assert steps(instance)[-1] == ("wait-1h", "exited: goal: Order Completed")
    profile = shop.platform.profile(buys.ref)
    assert (profile["computed"]["orders"], profile["computed"]["revenue"]) == (1, 398.0)

    shop.advance_to(parse_iso(instance["entered_at"]) + timedelta(hours=1) + MARGIN)

    # An hour on, still nothing sent
    assert buys.emails() == []
    assert buys.instance()["path"] == instance["path"]


def test_an_abandoned_checkout_is_mailed_back_with_the_code_and_its_order_ends_the_run(shop: Shop) -> None:
    leaves = shop.shoppers["leaves"]
    entered = parse_iso(leaves.instance()["entered_at"])

    shop.advance_to(entered + timedelta(hours=1) + MARGIN)

    # An hour on: one email, with their own code of cart-10 and the link back to their checkout
    [email] = leaves.emails()
    assert email.subject == COUPON_SUBJECT
    assert email.text is not None and email.html is not None
    assert "Hi Ann," in email.text  # Shopify's first_name, as the firstName trait
    assert "You left your cart ($39.98) before checking out." in email.text
    [code] = re.findall(r"Your code: (CART-[0-9A-Z]{7})\s", email.text)
    assert f"Back to your cart: {leaves.recovery_url}" in email.text.splitlines()
    # (the HTML's link is the tracked one, which takes the click there)
    [link] = re.findall(r'<a href="([^"]+)">Back to your cart</a>', email.html)
    status, headers, _ = _open(link)
    assert (status, headers["location"]) == (302, leaves.recovery_url)
    profile_id = shop.platform.profile(leaves.ref)["id"]
    [issued] = shop.platform.admin("GET", "/v1/offers/cart-10/codes?state=issued").body["codes"]
    assert (issued["coupon"], issued["profileId"]) == (code, profile_id)
    instance = leaves.instance()
    assert steps(instance)[1:] == [
        ("wait-1h", "timer fired"),
        ("not-ordered", "yes"),
        ("issue-coupon", "offer cart-10 named as vars.coupon_code"),
        ("send-coupon", "message requested"),
        ("wait-1d", f"waiting until {iso(entered + timedelta(hours=25))}"),
    ]
    reminder_wake = wake(profile_id, instance)

    # When Shopify's order for that checkout comes
    leaves.orders()
    shop.platform.settle()

    # Then the run ends at its goal...
    instance = leaves.instance()
    assert (instance["status"], instance["exit_reason"]) == ("exited", "goal: Order Completed")
    assert steps(instance)[-1] == ("wait-1d", "exited: goal: Order Completed")
    # ...and the day-later wake the timer sweep would publish finds it over: no reminder. (A day
    # of minute sweeps would take minutes; the wake is what they would deliver.)
    result = shop.platform.cloud.invoke("RunJourneysFunction", reminder_wake)
    shop.platform.settle()
    assert result.ok, result.error
    assert (result.payload["moved"], result.payload["messages"]) == ([], 0)
    assert leaves.emails() == [email]
    assert leaves.instance()["path"] == instance["path"]
    stats = shop.stats()
    assert {k: stats[k] for k in ("entered", "completed", "exited", "goal", "in_progress")} == {
        "entered": 2,
        "completed": 0,
        "exited": 2,
        "goal": 2,
        "in_progress": 0,
    }

    # When the site later identifies the person with its own userId and the same email
    user_id = f"site-user-{leaves.tag}"
    identified = shop.platform.track("/v1/identify", {"userId": user_id, "traits": {"email": leaves.email}})
    assert identified.status == 200, identified.body
    shop.platform.settle()

    # Then it is the same person: the Shopify customer, the order, the journey's run
    person = shop.platform.profile(f"user_id:{user_id}")
    assert person["id"] == profile_id
    assert person["identities"]["x:shopify_customer_id"] == [str(leaves.customer_id)]
    assert (person["computed"]["orders"], person["computed"]["revenue"]) == (1, 398.0)
    runs = shop.platform.admin("GET", f"/v1/profiles/user_id:{user_id}/journeys").body["journeys"]
    assert [(r["journey_id"], r["exit_reason"]) for r in runs] == [(JOURNEY, "goal: Order Completed")]


def wake(profile_id: str, instance: dict[str, Any]) -> dict[str, Any]:
    """The `journey.wake` the timer sweep publishes when the instance's current wait is due."""
    wait = instance["wait"]
    detail = {
        "journeyId": JOURNEY,
        "profileId": profile_id,
        "run": instance["run"],
        "timerId": wait["timer_id"],
        "dueAt": wait["until"],
    }
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "journey.wake",
        "source": "midstage",
        "account": "123456789012",
        "time": iso(datetime.now(UTC)),
        "region": REGION,
        "resources": [],
        "detail": detail,
    }
