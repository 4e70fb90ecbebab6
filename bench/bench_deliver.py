"""What delivering one message costs on one core: `services.delivery.deliver` end to end.

Every request is an email marketing message to a person who consented, with the default caps
(3 email / 5 any per 7 days) far from reached and quiet hours checked but not in force (noon
UTC). The provider is stubbed: the channel fake renders the approved template with the real
`midstage.logic.templates.render` (as `adapters.channels.ChannelSenders` does) and returns an
id, so the figures are the platform's own work per message:

1. in-memory ports (ledger, caps, suppressions, profiles, templates, timers), with
   (a) a small email template, (b) a 5 KB HTML newsletter, (c) the same with the real click
   tracking and open pixel (`midstage.logic.links.track_links`, `sign`, `add_open_pixel`);
2. the real MessageLedger, CapStore and SuppressionStore on moto in-process (`mock_aws`, a
   DataTable created from template.yaml's declaration), to show what the stores cost. moto
   emulates DynamoDB in this process: these are NOT AWS figures (on Lambda each of those calls
   is a network round trip of a few milliseconds instead).

Medians of several timed repeats, spread (min-max) beside them.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from bench.bench_profile_updater import data_table_definition, local_cloud
from midstage.adapters.channels import render_context
from midstage.adapters.messaging_store import CapStore, MessageLedger, SuppressionStore
from midstage.config import DeliverySettings
from midstage.logic import keyring, links
from midstage.logic import templates as template_logic
from midstage.logic.delivery import (
    SENT,
    Address,
    Policy,
    parse_quiet_hours,
    zone_of,
)
from midstage.logic.timefmt import iso
from midstage.models.messaging import MessageRequest, Origin, Template
from midstage.models.profile import Profile
from midstage.services.delivery import Ports, deliver
from tests.support.fakes import MemoryCaps, MemoryLedger, MemoryProfiles

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # noon UTC: outside the default quiet hours
MESSAGES = 400  # per in-memory repeat
REPEATS = 7
MOTO_MESSAGES = 150  # per moto repeat
MOTO_REPEATS = 3
PEOPLE = 200  # messages go round-robin: at most 2 per person per repeat, under every cap
# Links are signed as the product signs them: with a key ring's current key, named in the token.
SECRET = keyring.new_ring("links", b"bench-link-secret-0123456789", datetime(2026, 1, 1, tzinfo=UTC)).current
BASE_URL = "https://t.example.com"
_DEFAULTS = DeliverySettings(
    data_table="DataTable", config_table="ConfigTable", ingest_queue_url="q", delivery_queue_url="q"
)
POLICY = Policy(
    marketing_consent="opt_in",
    caps=_DEFAULTS.frequency_caps,
    quiet_hours=parse_quiet_hours(_DEFAULTS.quiet_hours),
    default_timezone="UTC",
)

SMALL_EMAIL = {
    "subject": "{{ person.first_name }}, your {{ vars.discount }}% {{ computed.value_tier }} offer",
    "html": (
        "<html><body><p>Hi {{ person.first_name }},</p>"
        '<p>Use <b>{{ vars.coupon }}</b> before Sunday: <a href="https://shop.example.com/deals">see the deals</a>.</p>'
        '<p><a href="{{ links.unsubscribe }}">Unsubscribe</a></p></body></html>'
    ),
    "text": "Hi {{ person.first_name }}, use {{ vars.coupon }} before Sunday: https://shop.example.com/deals",
}
_PRODUCT = (
    '<tr><td style="padding:12px;border-bottom:1px solid #eee">'
    '<a href="https://shop.example.com/p/{{ p.sku }}?utm_source=newsletter&amp;utm_medium=email">'
    '<img src="https://cdn.example.com/img/{{ p.sku }}.jpg" width="120" height="120" alt="{{ p.name }}"></a></td>'
    '<td style="padding:12px;border-bottom:1px solid #eee;font-family:Helvetica,Arial,sans-serif">'
    '<a href="https://shop.example.com/p/{{ p.sku }}?utm_source=newsletter&amp;utm_medium=email" '
    'style="color:#222;font-size:16px;text-decoration:none">{{ p.name }}</a>'
    '<p style="margin:6px 0;color:#666;font-size:13px">{{ p.blurb }}</p>'
    '<p style="margin:0;font-weight:bold">{{ p.price | money("EUR") }}</p></td></tr>'
)
NEWSLETTER_EMAIL = {
    "subject": "{{ person.first_name }}, this week's picks",
    "html": (
        '<html><head><meta charset="utf-8"><title>This week</title></head>'
        '<body style="margin:0;padding:0;background:#f6f6f6">'
        '<table width="100%" cellpadding="0" cellspacing="0" style="max-width:640px;margin:0 auto;background:#fff">'
        '<tr><td colspan="2" style="padding:24px;font-family:Helvetica,Arial,sans-serif">'
        '<a href="https://shop.example.com/?utm_source=newsletter"><img src="https://cdn.example.com/logo.png" '
        'width="160" alt="Shop"></a><h1 style="font-size:22px">Hello {{ person.first_name }}</h1>'
        "<p>Picked for a {{ computed.value_tier }} customer: {{ vars.products | length }} things we think you will "
        "like, and {{ vars.discount }}% off with <b>{{ vars.coupon }}</b> until Sunday.</p></td></tr>"
        "{% for p in vars.products %}" + _PRODUCT + "{% endfor %}"
        '<tr><td colspan="2" style="padding:24px;font-size:12px;color:#999;font-family:Helvetica,Arial,sans-serif">'
        'You receive this because you subscribed at shop.example.com. <a href="https://shop.example.com/account/'
        'preferences">Preferences</a> · <a href="{{ links.unsubscribe }}">Unsubscribe</a> · '
        '<a href="mailto:help@example.com">Help</a></td></tr></table></body></html>'
    ),
    "text": "Hello {{ person.first_name }}, this week's picks: https://shop.example.com/",
}
PRODUCTS = [
    {
        "sku": f"sku_{n:04d}",
        "name": f"Trail runner model {n}",
        "blurb": "Light, grippy and built for long days on rocky paths.",
        "price": 89.99 + n,
    }
    for n in range(6)
]


def template(template_id: str, locales: dict[str, str]) -> Template:
    return Template(
        id=template_id,
        name=template_id,
        channel="email",
        locales={"en": locales},
        status="approved",
        sender="Shop <news@shop.example.com>",
    )


TEMPLATES = {"small": template("small", SMALL_EMAIL), "newsletter": template("newsletter", NEWSLETTER_EMAIL)}


# ------------------------------------------------------------------------ in-memory ports
class NoSuppressions:
    def suppression(self, channel: str, address: str) -> Mapping[str, Any] | None:
        return None


class Approved:
    def approved(self, template_id: str) -> Template | None:
        return TEMPLATES.get(template_id)


class NoTimers:
    def schedule(self, at: datetime, timer_id: str, payload: Mapping[str, Any]) -> None:
        raise AssertionError("nothing is deferred at noon UTC")


class StubbedEmail:
    """ChannelSenders.send for email with the provider call taken out: render, then (optionally)
    click tracking and the open pixel, as `adapters.channels` does before calling SES."""

    def __init__(self, *, track: bool) -> None:
        self.track = track
        self.sent = 0
        self.html_bytes = 0

    def send(
        self,
        channel: str,
        request: MessageRequest,
        profile: Profile,
        address: Address,
        template: Template | None,
        offers: Mapping[str, str | None] | None = None,
        before_call: Callable[[], None] | None = None,
    ) -> str:
        assert template is not None
        assert channel == "email"
        unsubscribe = f"{BASE_URL}/u/" + links.sign(
            links.unsubscribe_payload(request.message_id, profile.id, address.value, channel), SECRET
        )
        context = render_context(request, profile, zone_of(profile, "UTC").key, unsubscribe, offers)
        rendered = template_logic.render(
            template.channel,
            template.locales,
            template.variables,
            locale=profile.locale,
            default_locale=template.default_locale,
            context=context,
            timer=time.monotonic,
        ).fields
        html = rendered["html"]
        if self.track:

            def click_url(url: str) -> str:
                return f"{BASE_URL}/t/c/{links.sign(links.click_payload(request.message_id, url), SECRET)}"

            html, _ = links.track_links(html, click_url, keep=(unsubscribe,))
            html = links.add_open_pixel(
                html, f"{BASE_URL}/t/o/{links.sign(links.open_payload(request.message_id), SECRET)}"
            )
        if before_call is not None:
            before_call()
        self.sent += 1
        self.html_bytes = len(html.encode())
        return f"0100019a-{self.sent:08d}"


# ------------------------------------------------------------------------ the workload
def people() -> dict[str, Profile]:
    consent = {"email:marketing": {"granted": True, "stamp": "2026-10-01T09:00:00.000Z|m-1|src_shop", "source": "src"}}
    found = {}
    for n in range(PEOPLE):
        profile_id = f"prof_{n:05d}"
        found[profile_id] = Profile(
            id=profile_id,
            created_at="2026-01-01T00:00:00.000Z",
            identities={"user_id": [f"user_{n:05d}"], "email": [f"person{n}@example.com"]},
            traits={"email": f"person{n}@example.com", "first_name": "Ada", "plan": "pro"},
            consent=consent,
            timezone="Europe/Paris",
            locale="en",
            computed={"value_tier": "high", "lifecycle_stage": "active"},
        )
    return found


def requests(template_id: str, count: int, tag: str) -> list[MessageRequest]:
    vars_ = {"coupon": "VIP20", "discount": 20, "products": PRODUCTS}
    return [
        MessageRequest(
            key=f"bench:{tag}:{n}",
            origin=Origin(kind="campaign", id="bench", version=1, step="send"),
            profile_id=f"prof_{n % PEOPLE:05d}",
            channels=["email"],
            category="marketing",
            template=template_id,
            vars=vars_,
            requested_at=iso(NOW),
        )
        for n in range(count)
    ]


def memory_ports(everyone: Mapping[str, Profile], channels: StubbedEmail) -> Ports:
    return Ports(
        MemoryLedger(snapshot=dict),
        MemoryProfiles(*everyone.values()),
        NoSuppressions(),
        MemoryCaps(),
        Approved(),
        NoTimers(),
        channels,
    )


def run_all(batch: Sequence[MessageRequest], ports: Ports) -> float:
    started = time.perf_counter()
    for message in batch:
        outcome = deliver(message, ports, POLICY, NOW)
        if outcome.status != SENT:
            raise AssertionError(f"{outcome.status}: {outcome.reason}")
    return time.perf_counter() - started


def figures(samples: list[float]) -> str:
    median = statistics.median(samples)
    return (
        f"{1 / median:>9,.0f} msgs/s  ({1 / max(samples):,.0f}-{1 / min(samples):,.0f})"
        f"   {median * 1e6:7.1f} µs/msg  ({min(samples) * 1e6:.1f}-{max(samples) * 1e6:.1f})"
    )


def in_memory(template_id: str, *, track: bool) -> tuple[list[float], int]:
    everyone = people()
    warm = StubbedEmail(track=track)
    run_all(requests(template_id, 50, "warm"), memory_ports(everyone, warm))  # compile the template, warm caches
    samples = []
    for repeat in range(REPEATS):
        channels = StubbedEmail(track=track)
        batch = requests(template_id, MESSAGES, f"r{repeat}")
        samples.append(run_all(batch, memory_ports(everyone, channels)) / MESSAGES)
        assert channels.sent == MESSAGES
    return samples, warm.html_bytes


# ------------------------------------------------------------------------ moto
@contextmanager
def counted_calls(client: Any) -> Iterator[dict[str, int]]:
    calls: dict[str, int] = {}

    def count(model: Any, **_: Any) -> None:
        calls[model.name] = calls.get(model.name, 0) + 1

    client.meta.events.register("before-call.dynamodb", count)
    try:
        yield calls
    finally:
        client.meta.events.unregister("before-call.dynamodb", count)


def on_moto(template_id: str) -> tuple[list[float], dict[str, int]]:
    everyone = people()
    with local_cloud() as (dynamodb, _events):

        def ports(channels: StubbedEmail) -> Ports:
            """Stores on a fresh DataTable, so every repeat starts with no sends and no caps used."""
            table = f"DataTable-{uuid.uuid4().hex[:8]}"
            dynamodb.create_table(TableName=table, **data_table_definition())
            return Ports(
                MessageLedger(table, client=dynamodb),
                MemoryProfiles(*everyone.values()),
                SuppressionStore(table, client=dynamodb),
                CapStore(table, client=dynamodb),
                Approved(),
                NoTimers(),
                channels,
            )

        run_all(requests(template_id, 20, "warm"), ports(StubbedEmail(track=True)))
        samples: list[float] = []
        calls: dict[str, int] = {}
        for repeat in range(MOTO_REPEATS):
            batch = requests(template_id, MOTO_MESSAGES, f"moto{repeat}")
            wired = ports(StubbedEmail(track=True))
            with counted_calls(dynamodb) as counted:
                samples.append(run_all(batch, wired) / MOTO_MESSAGES)
            calls = counted
    return samples, {k: v // MOTO_MESSAGES for k, v in calls.items()}


def main() -> None:
    print(
        f"   deliver(): email marketing with consent, caps not reached, quiet hours checked (noon UTC), provider "
        f"stubbed; one core, median of {REPEATS} repeats x {MESSAGES} messages (min-max)"
    )
    cases: list[tuple[str, Callable[[], tuple[list[float], int]]]] = [
        ("(a) small email template, no tracking", lambda: in_memory("small", track=False)),
        ("(b) 5 KB HTML newsletter, no tracking", lambda: in_memory("newsletter", track=False)),
        ("(c) 5 KB HTML newsletter + click tracking + pixel", lambda: in_memory("newsletter", track=True)),
    ]
    print("   1. in-memory ports")
    medians = {}
    for label, case in cases:
        samples, html_bytes = case()
        medians[label[:3]] = statistics.median(samples)
        print(f"      {label:<50} {figures(samples)}   html {html_bytes:,} B")
    rewrite = (medians["(c)"] - medians["(b)"]) * 1e6
    print(f"      link rewriting + signed tokens + pixel on the 5 KB body: {rewrite:.1f} µs/msg of (c)")

    print(
        f"   2. moto in-process, NOT AWS: real MessageLedger + CapStore + SuppressionStore on mock_aws "
        f"(median of {MOTO_REPEATS} x {MOTO_MESSAGES}), case (c)"
    )
    samples, calls = on_moto("newsletter")
    per_call = ", ".join(f"{name} {count}" for name, count in sorted(calls.items()))
    print(f"      {'stores on moto + (c)':<50} {figures(samples)}")
    store_cost = (statistics.median(samples) - medians["(c)"]) * 1e6
    print(
        f"      DynamoDB calls per message: {per_call} ({sum(calls.values())} in all); "
        f"moto's emulation adds {store_cost:,.0f} µs/msg"
    )
    print(
        "      moto figures measure moto's Python emulation, not DynamoDB: on Lambda each call is a network round trip"
    )
