"""Rules and delivery end to end: tracked events set rules off, and what SES and SNS received is
read back from the local cloud; each guard's block is read back from the message ledger."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from infra.localcloud.outbox import SentEmail
from tests.e2e.conftest import Platform


def zone_at_local_hour(hours: range) -> str:
    """An IANA zone where the local hour is now in `hours` (Etc/GMT-N is UTC+N)."""
    hour = datetime.now(UTC).hour
    for offset in range(-12, 15):
        if (hour + offset) % 24 in hours:
            return "Etc/UTC" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"
    raise AssertionError("no zone found")


DAYTIME = range(10, 17)  # far from the 21:00-08:00 quiet window whatever minute the test runs


def wait_for(probe: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Scenario:
    """One fresh person per test, and helpers to define templates and rules for them."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.tag = uuid.uuid4().hex[:8]
        self.user = f"user-{self.tag}"
        self.email = f"{self.tag}@example.org"
        self.phone = "+1415555" + str(int(self.tag, 16) % 10_000).zfill(4)
        self.rules: list[str] = []  # removed when the test ends: the cloud is shared by every test

    def template(self, template_id: str, channel: str, content: dict[str, str], **extra: Any) -> None:
        body = {"id": template_id, "name": template_id, "channel": channel, "locales": {"en": content}, **extra}
        created = self.platform.admin("POST", "/v1/templates", body)
        assert created.status == 201, created.body
        approved = self.platform.admin("POST", f"/v1/templates/{template_id}/approve", {"version": 1})
        assert approved.status == 200, approved.body

    def rule(self, rule_id: str, event: str, actions: list[dict[str, Any]], **extra: Any) -> None:
        body = {"id": rule_id, "name": rule_id, "trigger": {"type": "event", "event": event}, "actions": actions}
        created = self.platform.admin("POST", "/v1/rules", {**body, **extra})
        assert created.status == 201, created.body
        self.rules.append(rule_id)

    def identify(self, timezone: str, *, consent: bool = True, **traits: Any) -> None:
        traits = {"email": self.email, "phone": self.phone, "first_name": "Ann", **traits}
        event = {"userId": self.user, "traits": traits, "context": {"timezone": timezone}}
        assert self.platform.track("/v1/identify", event).status == 200
        if consent:
            granted = {"channel": "*", "purpose": "marketing", "granted": True}
            assert (
                self.platform.track(
                    "/v1/track", {"userId": self.user, "event": "Consent Updated", "properties": granted}
                ).status
                == 200
            )
        self.platform.settle()

    def track(self, event: str, **properties: Any) -> None:
        # Each call its own messageId, as SDKs send: the same event tracked twice is two events.
        body = {"userId": self.user, "event": event, "properties": properties, "messageId": uuid.uuid4().hex}
        answer = self.platform.track("/v1/track", body)
        assert answer.status == 200
        self.platform.settle()

    def messages(self) -> list[dict[str, Any]]:
        answer = self.platform.admin("GET", f"/v1/profiles/user_id:{self.user}/messages")
        assert answer.status == 200, answer.body
        return answer.body["messages"]  # type: ignore[no-any-return]

    def emails(self) -> list[SentEmail]:
        return [e for e in self.platform.cloud.sent_emails() if self.email in e.recipients]

    def sms(self) -> list[Any]:
        return [s for s in self.platform.cloud.sent_sms() if s.phone_number == self.phone]


@pytest.fixture
def scenario(platform: Platform) -> Iterator[Scenario]:
    scene = Scenario(platform)
    yield scene
    # A rule left enabled would act on the next tests' people too (a "Signed Up" rule emails
    # everyone who signs up): each test's rules go with it.
    for rule_id in scene.rules:
        gone = platform.admin("DELETE", f"/v1/rules/{rule_id}")
        assert gone.status in (204, 404), gone.body


def test_a_tracked_event_sends_the_rendered_email_with_unsubscribe_headers_and_the_sms(scenario: Scenario) -> None:
    # Given approved email and SMS templates and a sign-up rule using both
    t = scenario.tag
    scenario.template(
        f"welcome-email-{t}",
        "email",
        {
            "subject": "Welcome, {{ person.first_name }}",
            "html": '<p>Hi {{ person.first_name }}, see <a href="https://shop.example.com/new">new in</a>.</p>',
            "text": "Hi {{ person.first_name }}",
        },
    )
    scenario.template(f"welcome-sms-{t}", "sms", {"body": "Hi {{ person.first_name }}, welcome!"})
    scenario.rule(
        f"welcome-{t}",
        "Signed Up",
        [
            {"type": "send", "channels": ["email"], "template": f"welcome-email-{t}"},
            {"type": "send", "channels": ["sms"], "template": f"welcome-sms-{t}"},
        ],
    )
    scenario.identify(zone_at_local_hour(DAYTIME))

    # When the person signs up
    scenario.track("Signed Up", plan="pro")

    # Then SES received the rendered email, with RFC 8058 one-click unsubscribe headers
    [email] = wait_for(scenario.emails, "the welcome email")
    assert email.subject == "Welcome, Ann"
    assert email.text is not None and "Hi Ann" in email.text
    assert email.html is not None and "Hi Ann" in email.html
    assert "/t/c/" in email.html and 'href="https://shop.example.com/new"' not in email.html
    assert "/t/o/" in email.html  # the open pixel
    base = scenario.platform.url
    assert email.headers["List-Unsubscribe"].startswith(f"<{base}/u/")
    assert email.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert email.configuration_set
    # and SNS the SMS, as a promotional message
    [sms] = wait_for(scenario.sms, "the welcome SMS")
    assert sms.message == "Hi Ann, welcome!"
    assert sms.sms_type == "Promotional"
    # and the ledger shows both sent
    statuses = sorted((m["channel"], m["status"]) for m in scenario.messages())
    assert statuses == [("email", "sent"), ("sms", "sent")]


def test_each_guard_blocks_with_its_recorded_reason(scenario: Scenario) -> None:
    t = scenario.tag
    scenario.template(f"promo-{t}", "email", {"subject": "Sale", "text": "Sale on now"})
    scenario.rule(
        f"promo-{t}",
        "Viewed Sale",
        [{"type": "send", "channels": ["email"], "template": f"promo-{t}"}],
        refire={"mode": "every"},
    )
    # No consent recorded: marketing is opt-in by default
    scenario.identify(zone_at_local_hour(DAYTIME), consent=False)
    scenario.track("Viewed Sale", n=1)
    reasons = [m["reason"] for m in scenario.messages()]
    assert len(reasons) == 1 and reasons[0].startswith("no_consent:"), reasons

    # Consent given, but the address is suppressed
    granted = {"channel": "email", "purpose": "marketing", "granted": True}
    scenario.platform.track("/v1/track", {"userId": scenario.user, "event": "Consent Updated", "properties": granted})
    put = scenario.platform.admin(
        "PUT", f"/v1/suppressions/email/{scenario.email}", {"reason": "manual", "scope": "all"}
    )
    assert put.status == 200, put.body
    scenario.track("Viewed Sale", n=2)
    blocked = [m["reason"] for m in scenario.messages() if m["status"] == "blocked"]
    assert any(r.startswith("suppressed:") and "manual" in r for r in blocked), blocked

    # Suppression lifted: three marketing emails pass the 3-per-7-days cap, the fourth is capped
    assert scenario.platform.admin("DELETE", f"/v1/suppressions/email/{scenario.email}").status in (200, 204)
    for n in range(3, 7):
        scenario.track("Viewed Sale", n=n)
    records = scenario.messages()
    assert sum(1 for m in records if m["status"] == "sent") == 3
    capped = [m for m in records if m["reason"].startswith("frequency_cap:")]
    assert len(capped) == 1 and "3 marketing message(s) per 7 days on email" in capped[0]["reason"]
    assert len(wait_for(scenario.emails, "the three emails")) == 3


def test_quiet_hours_defer_to_the_window_end_and_send_when_the_clock_passes_it(scenario: Scenario) -> None:
    t = scenario.tag
    scenario.template(f"night-{t}", "email", {"subject": "Good morning", "text": "Fresh deals"})
    scenario.rule(f"night-{t}", "Browsed", [{"type": "send", "channels": ["email"], "template": f"night-{t}"}])
    # Given a person for whom it is 06:xx now: inside the 21:00-08:00 quiet window
    scenario.identify(zone_at_local_hour(range(6, 7)))

    scenario.track("Browsed")

    [record] = scenario.messages()
    assert record["status"] == "deferred" and record["reason"].startswith("quiet_hours:"), record
    assert scenario.emails() == []
    # When the clock passes the end of the window, the timer sweep releases the send
    scenario.platform.cloud.clock.advance(timedelta(minutes=125))
    scenario.platform.settle()
    [email] = wait_for(scenario.emails, "the deferred email")
    assert email.subject == "Good morning"
    [record] = scenario.messages()
    assert record["status"] == "sent"


def _request(scenario: Scenario, key: str, template: str, category: str = "marketing") -> str:
    profile = scenario.platform.profile(f"user_id:{scenario.user}")
    return json.dumps(
        {
            "key": key,
            "origin": {"kind": "api", "id": "e2e"},
            "profile_id": profile["id"],
            "channels": ["email"],
            "category": category,
            "template": template,
            "requested_at": datetime.now(UTC).isoformat(),
        }
    )


def test_redelivered_and_concurrent_duplicate_requests_send_once(scenario: Scenario) -> None:
    t = scenario.tag
    scenario.template(f"receipt-{t}", "email", {"subject": "Your receipt", "text": "Thanks"})
    scenario.identify(zone_at_local_hour(DAYTIME))
    queue = scenario.platform.cloud.outputs["DeliveryQueueUrl"]
    sqs = scenario.platform.cloud.client("sqs")
    body = _request(scenario, f"dup-{t}", f"receipt-{t}", "transactional")

    # When the same request is queued eight times at once (redelivery, retries, duplicates)
    threads = [
        threading.Thread(target=sqs.send_message, kwargs={"QueueUrl": queue, "MessageBody": body}) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    scenario.platform.settle()
    time.sleep(1.0)
    scenario.platform.settle()

    # Then SES was called once
    assert len(scenario.emails()) == 1
    [record] = scenario.messages()
    assert record["status"] == "sent"


def test_concurrent_sends_past_a_cap_pass_exactly_cap_many(scenario: Scenario) -> None:
    t = scenario.tag
    scenario.template(f"flash-{t}", "email", {"subject": "Flash sale", "text": "Now"})
    scenario.identify(zone_at_local_hour(DAYTIME))
    queue = scenario.platform.cloud.outputs["DeliveryQueueUrl"]
    sqs = scenario.platform.cloud.client("sqs")
    bodies = [_request(scenario, f"flash-{t}-{n}", f"flash-{t}") for n in range(12)]

    # When twelve different marketing emails for one person are delivered concurrently
    for start in range(0, 12, 6):
        entries = [{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies[start : start + 6])]
        sqs.send_message_batch(QueueUrl=queue, Entries=entries)
    scenario.platform.settle()

    # Then exactly three pass the 3-per-7-days email cap and nine are blocked by it
    records = wait_for(lambda: [m for m in scenario.messages() if m["status"] in ("sent", "blocked")], "outcomes")
    records = wait_for(lambda: len(scenario.messages()) == 12 and scenario.messages(), "all twelve")
    assert sum(1 for m in records if m["status"] == "sent") == 3
    assert sum(1 for m in records if m["reason"].startswith("frequency_cap:")) == 9
    assert len(scenario.emails()) == 3


def test_a_hard_bounce_suppresses_the_address_and_marks_the_message(scenario: Scenario) -> None:
    t = scenario.tag
    scenario.template(f"order-{t}", "email", {"subject": "Order shipped", "text": "On its way"})
    scenario.rule(
        f"order-{t}",
        "Order Shipped",
        [{"type": "send", "channels": ["email"], "template": f"order-{t}", "category": "transactional"}],
        refire={"mode": "every"},
    )
    scenario.identify(zone_at_local_hour(DAYTIME), consent=False)
    scenario.track("Order Shipped")
    [email] = wait_for(scenario.emails, "the shipping email")

    # When SES reports a permanent bounce for it
    scenario.platform.cloud.simulate_ses_event("Bounce", email.message_id, scenario.email)
    scenario.platform.settle()

    # Then the address is suppressed for everything, the message is marked bounced
    suppression = scenario.platform.admin("GET", f"/v1/suppressions/email/{scenario.email}")
    assert suppression.status == 200 and suppression.body["reason"] == "hard_bounce", suppression.body
    [record] = scenario.messages()
    assert record["status"] == "bounced"
    # and even transactional mail to it is blocked from now on
    scenario.track("Order Shipped")
    blocked = [m for m in scenario.messages() if m["status"] == "blocked"]
    assert len(blocked) == 1 and blocked[0]["reason"].startswith("suppressed:")
    assert len(scenario.emails()) == 1


def _open(url: str, method: str = "GET", data: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def test_click_open_and_one_click_unsubscribe_close_the_loop(scenario: Scenario) -> None:
    t = scenario.tag
    scenario.template(
        f"news-{t}",
        "email",
        {"subject": "News", "html": '<html><body><a href="https://shop.example.com/a?x=1">read</a></body></html>'},
    )
    scenario.rule(
        f"news-{t}",
        "Read Article",
        [{"type": "send", "channels": ["email"], "template": f"news-{t}"}],
        refire={"mode": "every"},
    )
    scenario.identify(zone_at_local_hour(DAYTIME))
    scenario.track("Read Article")
    [email] = wait_for(scenario.emails, "the newsletter")
    assert email.html is not None
    click = email.html.split('href="', 1)[1].split('"', 1)[0]
    pixel = email.html.split("/t/o/", 1)[1].split('"', 1)[0]

    # A click redirects to the original URL; a tampered token goes nowhere
    status, headers, _ = _open(click)
    assert status == 302 and headers["location"] == "https://shop.example.com/a?x=1"
    assert _open(click[:-2] + ("AA" if not click.endswith("AA") else "BB"))[0] == 400
    # The pixel is a GIF
    status, headers, body = _open(f"{scenario.platform.url}/t/o/{pixel}")
    assert status == 200 and body.startswith(b"GIF89a")

    # One-click unsubscribe, as a mail client does it (RFC 8058)
    unsubscribe = email.headers["List-Unsubscribe"].strip("<>")
    assert _open(unsubscribe)[0] == 200  # the confirmation page
    status, _, page = _open(unsubscribe, "POST", b"List-Unsubscribe=One-Click")
    assert status == 200 and b"unsubscribed" in page
    scenario.platform.settle()

    # Then the click and the unsubscribe are on the profile, consent is withdrawn, and the next
    # marketing email is blocked
    timeline = scenario.platform.admin("GET", f"/v1/profiles/user_id:{scenario.user}/timeline")
    names = {e.get("event") for e in timeline.body["events"]}
    assert {"Email Link Clicked", "Email Opened", "Unsubscribed"} <= names, names
    history = [
        h["status"]
        for h in scenario.platform.admin("GET", f"/v1/messages/{scenario.messages()[0]['id']}").body["history"]
    ]
    assert "clicked" in history and "unsubscribed" in history
    scenario.track("Read Article")
    blocked = [m for m in scenario.messages() if m["status"] == "blocked"]
    assert len(blocked) == 1 and blocked[0]["reason"].startswith(("no_consent:", "suppressed:"))


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    received: list[tuple[dict[str, str], bytes]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()


def test_a_webhook_action_posts_a_signed_body_once(scenario: Scenario, receiver: Any) -> None:
    url, received = receiver
    t = scenario.tag
    scenario.rule(f"hook-{t}", "Order Completed", [{"type": "webhook", "url": url}])
    scenario.identify(zone_at_local_hour(DAYTIME), consent=False)

    scenario.track("Order Completed", revenue=42)

    wait_for(lambda: received, "the webhook call")
    time.sleep(0.5)
    assert len(received) == 1
    headers, body = received[0]
    payload = json.loads(body)
    assert payload["event"]["event"] == "Order Completed" and payload["traits"]["first_name"] == "Ann"
    secret = bytes.fromhex(scenario.platform.admin("GET", "/v1/settings/webhook-secret").body["secret"])
    stamp, signature = (part.split("=", 1)[1] for part in headers["midstage-signature"].split(","))
    expected = hmac.new(secret, f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(signature, expected)


def test_rule_actions_tag_the_person_and_set_a_trait(scenario: Scenario) -> None:
    t = scenario.tag
    scenario.rule(
        f"vip-{t}",
        "Order Completed",
        [{"type": "add_tag", "tag": "buyer"}, {"type": "set_trait", "trait": "segment_hint", "value": "buyer"}],
        conditions={"path": "event.properties.revenue", "op": "gte", "value": 100},
    )
    scenario.identify(zone_at_local_hour(DAYTIME), consent=False)
    scenario.track("Order Completed", revenue=20)
    assert "buyer" not in scenario.platform.profile(f"user_id:{scenario.user}").get("tags", [])

    scenario.track("Order Completed", revenue=250)
    scenario.platform.settle()

    profile = scenario.platform.profile(f"user_id:{scenario.user}")
    assert "buyer" in profile["tags"]
    assert profile["traits"]["segment_hint"] == "buyer"


def test_hostile_rules_and_templates_are_refused(platform: Platform) -> None:
    redos = {
        "id": "redos",
        "name": "x",
        "trigger": {
            "type": "event",
            "event": "X",
            "where": {"path": "event.properties.q", "op": "regex", "value": "(a+)+$"},
        },
        "actions": [{"type": "add_tag", "tag": "x"}],
    }
    answer = platform.admin("POST", "/v1/rules", redos)
    assert answer.status == 400 and answer.body["issues"][0]["location"].startswith("/trigger/where")
    template = {
        "id": "evil",
        "name": "evil",
        "channel": "email",
        "locales": {"en": {"subject": "{{ ''.__class__.__mro__ }}", "text": "x"}},
    }
    answer = platform.admin("POST", "/v1/templates", template)
    assert answer.status == 400, answer.body
