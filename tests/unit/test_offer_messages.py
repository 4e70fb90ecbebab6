"""Offer codes in messages: a journey's issue_offer step, a campaign's offer and a template's
`offer('<id>')` all become codes at delivery, after every guard, once per person and cause."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from midstage.logic import templates
from midstage.logic.campaigns import plan_recipient
from midstage.logic.delivery import BLOCKED, SENT, ProviderFailure, RetryLater
from midstage.logic.journeys import advance
from midstage.logic.templates import RenderContext, RenderError, check_template, offers_named
from midstage.models.messaging import OfferRef, Template
from tests.support.fakes import MemoryOffers, MemoryProfiles
from tests.unit import test_campaigns as campaigns
from tests.unit.test_delivery_guards import NOON, FakeChannels, FakeTemplates, Rig, person, request, template
from tests.unit.test_journeys import EXIT, NOW, compiled, fire, run, send, wait

VIP = OfferRef(offer="vip-20", cause="journey:welcome:p1:1:give:2")


def email(template_id: str, html: str, subject: str = "Hi") -> Template:
    return Template(
        id=template_id,
        name=template_id,
        channel="email",
        locales={"en": {"subject": subject, "html": html}},
        status="approved",
    )


def rig(**codes: list[str]) -> Rig:
    templates_ = FakeTemplates(
        template("promo", "email"),
        email("coded", "<p>Your code: {{ offer('vip-20') }}</p>", subject="{{ offer('vip-20') }} inside"),
    )
    return Rig(templates=templates_, offers=MemoryOffers(**codes))


# ============================================================================== delivery
def test_given_an_offer_reference_when_delivered_then_the_code_is_in_the_vars_it_renders_with() -> None:
    rig_ = rig(**{"vip-20": ["VIP-1", "VIP-2"]})
    outcome = rig_.deliver(request(offers={"coupon": VIP}, vars={"discount": "20%"}))
    assert outcome.status == SENT
    assert rig_.channels.rendered_with == [({"discount": "20%", "coupon": "VIP-1"}, {})]
    assert rig_.offers is not None and rig_.offers.calls == [("vip-20", "p1", VIP.cause)]


def test_given_two_messages_naming_the_same_cause_when_delivered_then_both_show_one_code() -> None:
    # a journey's two emails after one issue_offer step
    rig_ = rig(**{"vip-20": ["VIP-1", "VIP-2"]})
    rig_.deliver(request("first", offers={"coupon": VIP}))
    rig_.deliver(request("reminder", offers={"coupon": VIP}))
    assert [given["coupon"] for given, _ in rig_.channels.rendered_with] == ["VIP-1", "VIP-1"]


def test_given_a_provider_error_when_the_message_is_delivered_again_then_it_shows_the_same_code() -> None:
    rig_ = rig(**{"vip-20": ["VIP-1", "VIP-2"]})
    rig_.channels = FakeChannels(failures=[ProviderFailure("retryable", "throttled")])
    message = request(offers={"coupon": VIP})
    with pytest.raises(RetryLater):
        rig_.deliver(message)
    assert rig_.deliver(message, NOON + timedelta(minutes=1)).status == SENT
    assert [given["coupon"] for given, _ in rig_.channels.rendered_with] == ["VIP-1", "VIP-1"]
    assert rig_.offers is not None and rig_.offers.codes["vip-20"] == ["VIP-2"]  # one code taken


def test_given_no_code_left_or_no_such_offer_when_delivered_then_the_var_says_why() -> None:
    rig_ = rig(**{"vip-20": []})
    gone = OfferRef(offer="gone", cause="campaign:c1:p1")
    rig_.deliver(request(offers={"coupon": VIP, "gift": gone}))
    [(given, _)] = rig_.channels.rendered_with
    assert given == {"coupon_refused": "pool_exhausted", "gift_refused": "offer_not_found"}


def test_given_a_template_that_needs_the_code_when_the_offer_gives_none_then_the_message_is_blocked_with_why() -> None:
    # the birthday, reactivation and win-back emails: the code is the point of the email
    needs = Template(
        id="needs-code",
        name="needs-code",
        channel="email",
        locales={"en": {"subject": "Yours", "html": "<p>{{ vars.coupon }}</p>"}},
        variables={"vars.coupon": {"required": True}},
        status="approved",
    )
    rig_ = Rig(templates=FakeTemplates(needs), offers=MemoryOffers(**{"vip-20": ["VIP-1"]}))
    first = rig_.deliver(request("first", template="needs-code", offers={"coupon": VIP}))
    other = OfferRef(offer="vip-20", cause="journey:welcome:p2:1:give:2")
    rig_.profiles = MemoryProfiles(person("p2"))
    second = rig_.deliver(request("second", template="needs-code", profile_id="p2", offers={"coupon": other}))
    assert first.status == SENT
    assert (second.status, second.reason) == (BLOCKED, "offer_refused: pool_exhausted (the template needs vars.coupon)")
    assert len(rig_.channels.calls) == 1
    # a template that can do without it (no `required`) is still sent, and shows why
    rig_.templates = FakeTemplates(template("promo", "email"))
    third = rig_.deliver(request("third", profile_id="p2", offers={"coupon": other}))
    assert third.status == SENT


def test_given_a_blocked_message_when_delivered_then_no_code_is_taken() -> None:
    rig_ = rig(**{"vip-20": ["VIP-1"]}).with_person(person(consent={}))
    assert rig_.deliver(request(offers={"coupon": VIP})).status == BLOCKED
    assert rig_.offers is not None and rig_.offers.calls == []


def test_given_a_template_naming_an_offer_when_delivered_then_it_is_issued_for_the_message() -> None:
    rig_ = rig(**{"vip-20": ["VIP-1", "VIP-2"]})
    message = request(template={"email": "coded"})
    assert rig_.deliver(message).status == SENT
    assert rig_.channels.rendered_with == [({}, {"vip-20": "VIP-1"})]
    assert rig_.offers is not None and rig_.offers.calls == [("vip-20", "p1", f"message:{message.message_id}")]
    # a template that names no offer issues nothing
    rig_.deliver(request("plain"))
    assert len(rig_.offers.calls) == 1


def test_given_a_template_naming_the_offer_its_message_carries_when_delivered_then_it_is_asked_once() -> None:
    rig_ = rig(**{"vip-20": []})
    rig_.deliver(request(template={"email": "coded"}, offers={"coupon": VIP}))
    assert rig_.channels.rendered_with == [({"coupon_refused": "pool_exhausted"}, {"vip-20": None})]
    assert rig_.offers is not None and rig_.offers.calls == [("vip-20", "p1", VIP.cause)]


def test_given_no_offers_port_when_delivered_then_references_are_left_alone() -> None:
    rig_ = Rig()
    assert rig_.deliver(request(offers={"coupon": VIP})).status == SENT
    assert rig_.channels.rendered_with == [({}, {})]


# ============================================================================== templates
def render_sms(body: str, offers: dict[str, str | None], *, preview: bool = False) -> str:
    run_ = templates.preview if preview else templates.render
    rendered = run_(
        "sms",
        {"en": {"body": body}},
        {},
        locale="en",
        default_locale="en",
        context=RenderContext(offers=offers),
        timer=time.monotonic,
    )
    return rendered.fields["body"]


def test_given_an_issued_code_when_rendered_then_offer_shows_it_and_a_refusal_shows_nothing() -> None:
    body = "{% if offer('vip-20') %}Code {{ offer('vip-20') }}{% else %}No code{% endif %}"
    assert render_sms(body, {"vip-20": "VIP-1"}) == "Code VIP-1"
    assert render_sms(body, {"vip-20": None}) == "No code"


def test_given_an_offer_not_issued_when_rendered_then_it_fails_by_name_and_a_preview_shows_a_placeholder() -> None:
    with pytest.raises(RenderError, match="offer\\('vip-20'\\): no code was issued"):
        render_sms("{{ offer('vip-20') }}", {})
    assert render_sms("Code {{ offer('vip-20') }}", {}, preview=True) == "Code [vip-20 code]"


@pytest.mark.parametrize(
    "body",
    ["{{ offer(vars.which) }}", "{{ offer() }}", "{{ offer('vip-20', 'x') }}", "{{ offer('VIP 20') }}"],
)
def test_given_an_offer_call_without_one_literal_id_when_saved_then_it_is_refused(body: str) -> None:
    issues = check_template("sms", {"en": {"body": body}}, {})
    assert [issue.message for issue in issues] == ["offer() takes one offer id in quotes, like offer('vip-20')"]


def test_given_a_template_when_its_offers_are_listed_then_each_literal_id_comes_once_in_order() -> None:
    assert check_template("sms", {"en": {"body": "{{ offer('vip-20') }}"}}, {}) == []
    content = {"subject": "{{ offer('b') }}", "html": "{{ offer('a') }} {{ offer('b') }} {{ vars.offer }}"}
    assert offers_named("email", content) == ["b", "a"]
    assert offers_named("email", {"subject": "offer ends soon", "html": "<p>{{ offer( }}</p>"}) == []


# ============================================================================== journeys
def test_given_an_issue_offer_step_when_run_then_the_sends_after_it_carry_one_reference_across_waits() -> None:
    flow = compiled(
        start="hello",
        steps={
            "hello": send("hello", "give"),
            "give": {"type": "issue_offer", "offer": "vip-20", "next": "first"},
            "first": send("first", "pause"),
            "pause": wait("1d", "second"),
            "second": send("second", "done"),
            "done": EXIT,
        },
    )
    ann = person()
    first = run(flow, ann)
    cause = f"journey:j1:p1:1:give:{first.instance.seq - 2}"
    hello, coupon = first.messages
    assert hello.offers == {}  # before the step
    assert coupon.offers == {"coupon": OfferRef(offer="vip-20", cause=cause)}
    assert ("give", "offer vip-20 named as vars.coupon") in [(s, o) for s, _, o in first.instance.path]
    later = advance(flow, first.instance, ann, fire(first), NOW + timedelta(days=1))
    [reminder] = later.messages
    assert reminder.offers == coupon.offers
    # a redelivered wake runs the same steps under the same numbers: the same cause
    again = run(flow, ann)
    assert again.messages[1].offers == coupon.offers
    # the instance keeps it as stored
    restored = type(first.instance).from_doc(first.instance.to_doc())
    assert restored.offers == {"coupon": {"offer": "vip-20", "cause": cause}}


def test_given_an_issue_offer_step_with_a_bad_offer_id_when_parsed_then_it_is_refused() -> None:
    with pytest.raises(ValueError, match="offer"):
        compiled(steps={"welcome": {"type": "issue_offer", "offer": "VIP 20", "next": "done"}, "done": EXIT})


# ============================================================================== campaigns
def test_given_a_campaign_naming_an_offer_when_planned_then_each_message_carries_one_cause_per_person() -> None:
    body = campaigns.body()
    body["message"]["offer"] = {"id": "vip-20", "var": "code"}
    winter = campaigns.campaign(**body)
    fired = NOW
    first = plan_recipient(winter, campaigns.person("p1"), "run-1", fired)
    second_run = plan_recipient(winter, campaigns.person("p1"), "run-2", fired + timedelta(days=7))
    other = plan_recipient(winter, campaigns.person("p2"), "run-1", fired)
    assert first.request is not None and second_run.request is not None and other.request is not None
    assert first.request.offers == {"code": OfferRef(offer="vip-20", cause="campaign:winter-sale:p1")}
    assert second_run.request.offers == first.request.offers  # every run re-reads the same code
    assert other.request.offers == {"code": OfferRef(offer="vip-20", cause="campaign:winter-sale:p2")}
    without = plan_recipient(campaigns.campaign(), campaigns.person("p1"), "run-1", fired)
    assert without.request is not None and without.request.offers == {}


def test_given_a_campaign_offer_with_a_bad_var_when_parsed_then_it_is_refused() -> None:
    body = campaigns.body()
    body["message"]["offer"] = {"id": "vip-20", "var": "Code!"}
    with pytest.raises(ValueError, match="var"):
        campaigns.campaign(**body)
