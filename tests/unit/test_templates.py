"""Message templates: locale fallback, variables and defaults, escaping, the sandbox, filters."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import pytest

from midstage.logic import templates
from midstage.logic.templates import (
    Issue,
    RenderContext,
    RenderError,
    check_template,
    checks,
    choose_locale,
    format_date,
    format_datetime,
    format_money,
    normalize_locale,
    preview,
    render,
    rendering,
    sandbox,
)
from midstage.models.messaging import VariableSpec
from midstage.models.profile import Profile

NBSP, NNBSP = "\u00a0", "\u202f"


def sms(
    body: str,
    *,
    variables: Mapping[str, VariableSpec] | None = None,
    locale: str | None = "en",
    **context: Any,
) -> str:
    rendered = render(
        "sms",
        {"en": {"body": body}},
        variables or {},
        locale=locale,
        default_locale="en",
        context=RenderContext(**context),
        timer=time.monotonic,
    )
    return rendered.fields["body"]


def fails(body: str, **context: Any) -> RenderError:
    with pytest.raises(RenderError) as caught:
        sms(body, **context)
    return caught.value


def messages(issues: list[Issue]) -> str:
    return " | ".join(f"{issue.location}: {issue.message}" for issue in issues)


# ------------------------------------------------------------------------------- locales
LOCALES = {"en": {"body": "Hello"}, "pt": {"body": "Olá"}, "pt-BR": {"body": "Oi"}, "fr-CA": {"body": "Allo"}}


@pytest.mark.parametrize(
    ("wanted", "chosen"),
    [
        ("pt-BR", "pt-BR"),  # exact
        ("pt-PT", "pt"),  # the language
        ("pt_br", "pt-BR"),  # as devices spell it
        ("fr-FR", "fr-CA"),  # the same language elsewhere beats the default
        ("de-DE", "en"),  # the default
        (None, "en"),
        ("not a locale!", "en"),
    ],
)
def test_given_content_in_some_locales_when_rendering_then_the_closest_locale_is_chosen(
    wanted: str | None, chosen: str
) -> None:
    rendered = render(
        "sms", LOCALES, {}, locale=wanted, default_locale="en", context=RenderContext(), timer=time.monotonic
    )
    assert rendered.locale == chosen
    assert rendered.fields["body"] == LOCALES[chosen]["body"]


def test_given_no_match_and_no_default_content_when_choosing_then_it_fails() -> None:
    with pytest.raises(RenderError, match="default locale"):
        choose_locale(["fr"], "de", "en")


def test_given_a_more_specific_tag_when_choosing_then_tags_are_shortened_one_part_at_a_time() -> None:
    assert choose_locale(["zh", "zh-Hant", "en"], "zh-Hant-TW", "en") == "zh-Hant"


@pytest.mark.parametrize(
    ("raw", "tag"),
    [("en", "en"), ("EN-us", "en-US"), ("en_US.UTF-8", "en-US"), ("zh-hant-tw", "zh-Hant-TW"), ("es-419", "es-419")],
)
def test_given_a_loosely_written_locale_when_normalizing_then_it_is_canonical(raw: str, tag: str) -> None:
    assert normalize_locale(raw) == tag


@pytest.mark.parametrize("raw", [None, "", "english", "1234", "e"])
def test_given_garbage_when_normalizing_a_locale_then_there_is_none(raw: str | None) -> None:
    assert normalize_locale(raw) is None


# ------------------------------------------------------------------------------- variables
def test_given_a_missing_variable_without_default_when_rendering_then_it_fails_naming_it() -> None:
    error = fails("Hello {{ person.first_name }},")
    assert error.message == "missing variable person.first_name"
    assert error.variable == "person.first_name"
    assert error.field == "body" and error.locale == "en"


def test_given_a_missing_parent_when_rendering_then_the_whole_path_is_named() -> None:
    assert fails("{{ person.address.city }}").message == "missing variable person.address.city"
    assert fails("{{ event.properties.items[0].sku }}").message == "missing variable event.properties.items[0].sku"


def test_given_a_missing_key_inside_a_list_item_when_rendering_then_its_position_is_named() -> None:
    error = fails("{% for p in vars.items %}{{ p.sku }}{% endfor %}", vars={"items": [{"sku": "a"}, {"name": "b"}]})
    assert error.message == "missing variable vars.items[1].sku"


@pytest.mark.parametrize("first_name", [None, "", "   "])
def test_given_a_declared_default_when_the_value_is_missing_null_or_blank_then_the_default_is_used(
    first_name: str | None,
) -> None:
    person = {} if first_name == "" else {"first_name": first_name}
    body = sms(
        "Hello {{ person.first_name }},", variables={"person.first_name": VariableSpec(default="there")}, person=person
    )
    assert body == "Hello there,"


def test_given_a_declared_default_when_the_value_is_present_then_the_value_wins() -> None:
    spec = {"person.first_name": VariableSpec(default="there")}
    assert sms("Hello {{ person.first_name }}", variables=spec, person={"first_name": "Ann"}) == "Hello Ann"


def test_given_a_default_under_a_missing_parent_when_rendering_then_the_parent_is_created() -> None:
    spec = {"person.address.city": VariableSpec(default="your city")}
    assert sms("In {{ person.address.city }}", variables=spec) == "In your city"


def test_given_a_required_variable_when_it_is_missing_then_the_render_fails_even_if_unused() -> None:
    spec = {"vars.coupon": VariableSpec(required=True)}
    with pytest.raises(RenderError, match=r"^missing variable vars\.coupon$"):
        sms("{% if false %}{{ vars.coupon }}{% endif %}Hi", variables=spec)
    assert sms("Hi", variables={"vars.coupon": VariableSpec(required=True, default="WELCOME")}) == "Hi"


def test_given_missing_variables_when_tested_or_defaulted_in_the_template_then_it_renders() -> None:
    body = "{% if person.plan %}x{% endif %}{% if person.plan == 'pro' %}p{% endif %}{{ person.nick | default('you') }}"
    assert sms(body) == "you"
    assert sms("{{ person.nick is defined }}") == "False"


def test_given_arithmetic_or_comparison_on_a_missing_variable_when_rendering_then_it_fails_naming_it() -> None:
    assert fails("{{ computed.orders + 1 }}").variable == "computed.orders"
    assert fails("{% if computed.orders > 1 %}x{% endif %}").variable == "computed.orders"
    assert fails("{{ nowhere() }}").variable == "nowhere"


def test_given_missing_variables_when_previewing_then_they_render_empty_and_are_listed() -> None:
    rendered = preview(
        "push",
        {"en": {"title": "Hi {{ person.first_name }}", "body": "{{ vars.code }} {{ person.first_name }}"}},
        {"person.last_name": VariableSpec(required=True)},
        locale="en",
        default_locale="en",
        context=RenderContext(),
        timer=time.monotonic,
    )
    assert rendered.fields == {"title": "Hi", "body": " "}
    assert rendered.missing == ["person.last_name", "person.first_name", "vars.code"]


def test_given_an_unsubscribe_link_when_passed_then_links_unsubscribe_renders_and_otherwise_fails() -> None:
    assert sms("{{ links.unsubscribe }}", unsubscribe_url="https://t.example/u/x") == "https://t.example/u/x"
    assert fails("{{ links.unsubscribe }}").variable == "links.unsubscribe"


def test_given_named_links_when_rendering_then_they_are_available_and_never_click_tracked() -> None:
    rendered = email(
        {
            "en": {
                "subject": "s",
                "html": '<a href="{{ links.preferences }}">prefs</a><a href="https://a.example">a</a>',
            }
        },
        links={"preferences": "https://t.example/p/tok"},
        click_url=lambda url: "https://t.example/c",
    )
    assert rendered.fields["html"] == '<a href="https://t.example/p/tok">prefs</a><a href="https://t.example/c">a</a>'
    assert rendered.links == ["https://a.example"]


def test_given_data_keys_named_like_dict_methods_when_rendering_then_the_data_wins() -> None:
    body = sms("{% for i in vars.items %}{{ i }}{% endfor %} {{ vars.keys }}", vars={"items": ["a", "b"], "keys": "k"})
    assert body == "ab k"


def test_given_a_profile_when_building_person_then_traits_come_with_id_email_and_phone() -> None:
    profile = Profile(
        id="p1",
        created_at="2026-01-01T00:00:00.000Z",
        identities={"email": ["ann@example.com"], "phone": ["+33612345678"], "user_id": ["u1"]},
        traits={"first_name": "Ann", "email": None},
        tags=["vip"],
        timezone="Europe/Paris",
    )
    person = templates.person_context(profile)
    assert person["first_name"] == "Ann"
    assert person["id"] == "u1" and person["profile_id"] == "p1"
    assert person["email"] == "ann@example.com" and person["phone"] == "+33612345678"
    assert person["tags"] == ["vip"] and person["timezone"] == "Europe/Paris"


def test_given_segments_firstname_and_lastname_traits_when_building_person_then_they_are_first_and_last_name() -> None:
    # As Segment's spec and the Shopify mapping name them; a first_name given as such wins
    shopper = Profile(id="p1", created_at="2026-01-01T00:00:00.000Z", traits={"firstName": "Ann", "lastName": "Lee"})
    person = templates.person_context(shopper)
    assert (person["first_name"], person["last_name"], person["firstName"]) == ("Ann", "Lee", "Ann")
    both = Profile(id="p2", created_at="2026-01-01T00:00:00.000Z", traits={"firstName": "Ann", "first_name": "Annie"})
    assert templates.person_context(both)["first_name"] == "Annie"


def test_given_a_slim_track_event_when_building_event_then_it_has_name_properties_and_timestamp() -> None:
    slim = {
        "type": "track",
        "event": "Order Completed",
        "properties": {"total": 5},
        "timestamp": "2026-11-20T10:00:00.000Z",
    }
    event = templates.event_context(slim)
    assert event["name"] == "Order Completed" and event["properties"] == {"total": 5}
    assert event["timestamp"] == "2026-11-20T10:00:00.000Z"


# ------------------------------------------------------------------------------- escaping per field
HOSTILE_NAME = '<script>alert("x")</script> & co'


def email(locales: Mapping[str, Mapping[str, str]], **context: Any) -> templates.Rendered:
    return render(
        "email", locales, {}, locale="en", default_locale="en", context=RenderContext(**context), timer=time.monotonic
    )


def test_given_a_hostile_trait_when_rendering_html_then_it_is_escaped() -> None:
    rendered = email(
        {"en": {"subject": "Hi", "html": "<p>Hi {{ person.first_name }}</p>"}}, person={"first_name": HOSTILE_NAME}
    )
    assert "<script>" not in rendered.fields["html"]
    assert rendered.fields["html"] == "<p>Hi &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; co</p>"


def test_given_a_hostile_trait_when_rendering_text_fields_then_it_is_kept_verbatim() -> None:
    rendered = email(
        {"en": {"subject": "Hi {{ person.first_name }}", "text": "Hi {{ person.first_name }}"}},
        person={"first_name": HOSTILE_NAME},
    )
    assert rendered.fields["subject"] == f"Hi {HOSTILE_NAME}"
    assert rendered.fields["text"] == f"Hi {HOSTILE_NAME}"


def test_given_a_newline_in_a_subject_when_rendering_then_the_subject_stays_on_one_line() -> None:
    rendered = email(
        {"en": {"subject": "Hi {{ person.first_name }}\n", "text": "a\nb"}}, person={"first_name": "A\r\nBcc: x"}
    )
    assert rendered.fields["subject"] == "Hi A Bcc: x"
    assert rendered.fields["text"] == "a\nb"


def test_given_a_webhook_body_when_values_hold_quotes_then_the_json_stays_valid() -> None:
    body = (
        '{"name": "{{ person.first_name }}", "orders": {{ computed.orders }}, '
        '"vip": {{ computed.vip }}, "p": {{ vars }}}'
    )
    rendered = render(
        "webhook",
        {"en": {"body": body}},
        {},
        locale=None,
        default_locale="en",
        context=RenderContext(
            person={"first_name": 'Ann "the" \\ one'}, computed={"orders": 3, "vip": True}, vars={"a": [1]}
        ),
        timer=time.monotonic,
    )
    assert rendered.fields["body"] == '{"name": "Ann \\"the\\" \\\\ one", "orders": 3, "vip": true, "p": {"a": [1]}}'


def test_given_a_webhook_body_that_renders_invalid_json_when_rendering_then_it_fails() -> None:
    with pytest.raises(RenderError, match="not JSON"):
        render(
            "webhook",
            {"en": {"body": '{"name": {{ person.first_name }}}'}},
            {},
            locale=None,
            default_locale="en",
            context=RenderContext(person={"first_name": "Ann"}),
            timer=time.monotonic,
        )


def test_given_content_without_a_required_field_when_rendering_then_it_fails_before_sending() -> None:
    with pytest.raises(RenderError, match="no subject"):
        email({"en": {"text": "hi"}})
    with pytest.raises(RenderError, match="no html or text"):
        email({"en": {"subject": "hi", "html": "  "}})


def test_given_tracking_hooks_when_rendering_html_then_links_and_pixel_are_added_but_unsubscribe_is_kept() -> None:
    html = '<a href="https://shop.example/p/1">p</a><a href="{{ links.unsubscribe }}">stop</a></body>'
    rendered = email(
        {"en": {"subject": "s", "html": html, "text": "https://shop.example/p/1"}},
        unsubscribe_url="https://t.example/u/tok",
        click_url=lambda url: "https://t.example/c/" + url.rsplit("/", 1)[-1],
        open_pixel_url="https://t.example/o/tok",
    )
    assert rendered.links == ["https://shop.example/p/1"]
    assert '<a href="https://t.example/c/1">p</a>' in rendered.fields["html"]
    assert '<a href="https://t.example/u/tok">stop</a>' in rendered.fields["html"]
    assert rendered.fields["html"].endswith(
        '<img src="https://t.example/o/tok" width="1" height="1" alt="" border="0"'
        ' style="display:block;width:1px;height:1px;border:0;margin:0;padding:0">'
        "</body>"
    )
    assert rendered.fields["text"] == "https://shop.example/p/1"


# ------------------------------------------------------------------------------- the sandbox
REFUSED_AT_SAVE = {
    "{{ ''.__class__.__mro__ }}": "names starting with _",
    "{{ cycler.__init__.__globals__ }}": "names starting with _",
    "{{ person['__class__'] }}": "names starting with _",
    "{{ person|attr('__class__') }}": "names starting with _",
    "{{ vars.list|map(attribute='__class__')|list }}": "names starting with _",
    "{% include 'other.html' %}": "{% include %} is not available",
    "{% extends 'base.html' %}": "{% extends %} is not available",
    "{% import 'macros.html' as m %}": "{% import %} is not available",
    "{% from 'macros.html' import button %}": "{% from ... import %} is not available",
    "{% macro m() %}x{% endmacro %}": "{% macro %} is not available",
    "{% call range(1) %}x{% endcall %}": "{% call %} is not available",
    "{% block b %}{{ self.b() }}{% endblock %}": "{% block %} is not available",
    "{% for x in vars.tree recursive %}{{ loop(x.children) }}{% endfor %}": "recursive loops",
    "{% for a in range(2) %}{% for b in range(2) %}{% for c in range(2) %}{% endfor %}{% endfor %}{% endfor %}": (
        "nested at most 2 deep"
    ),
}


@pytest.mark.parametrize(("source", "reason"), REFUSED_AT_SAVE.items())
def test_given_a_hostile_construct_when_checking_then_it_is_refused_with_its_line(source: str, reason: str) -> None:
    issues = check_template("sms", {"en": {"body": f"ok\n{source}"}}, {})
    assert reason in messages(issues)
    assert issues[0].line == 2 and issues[0].location == "locales.en.body:2"


@pytest.mark.parametrize(("source", "reason"), REFUSED_AT_SAVE.items())
def test_given_a_hostile_construct_that_skipped_the_check_when_rendering_then_it_is_refused(
    source: str, reason: str
) -> None:
    assert reason in fails(source, vars={"list": [1], "tree": []}).message


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''|attr('_' ~ '_class__') }}",
        "{{ cycler|attr('__in' ~ 'it__') }}",
        "{{ ''['_' ~ '_class__'] }}",
        "{{ [].append(1) }}",
        "{{ vars.d.update({'a': 1}) }}",
    ],
)
def test_given_an_escape_the_static_check_cannot_see_when_rendering_then_the_sandbox_refuses_it(source: str) -> None:
    error = fails(source, vars={"d": {}})
    assert "not allowed" in error.message or "unsafe" in error.message


DENIAL_OF_SERVICE = [
    "{% for i in range(10**9) %}x{% endfor %}",
    "{{ 'x' * 10**9 }}",
    "{{ 10**9 * 'x' }}",
    "{{ [0] * 10**9 }}",
    "{{ 2 ** 1000000 }}",
    "{{ 'x'|center(10**9) }}",
    "{{ 'x'.rjust(10**9) }}",
    "{{ 'x'|indent(10**9) }}",
    "{{ '{:>999999999}'.format(1) }}",
    "{{ '{0}{0}{0}{0}'.format('x' * 100000) }}",
    "{{ '%999999999d' % 1 }}",
    "{{ '%*d' % (10**9, 1) }}",
    "{{ (1).to_bytes(10**9, 'big') }}",
    "{{ range(1000)|join('x' * 1000) }}",
    "{{ ('x' * 1000).join(range(1000)|map('string')) }}",
    "{{ ('x' * 1000)|replace('', 'y' * 1000) }}",
    "{{ ('x' * 1000).replace('x', 'y' * 1000) }}",
    "{{ ('\t' * 1000).expandtabs(1000) }}",
    "{{ ('a' * 1000).translate({97: 'x' * 1000}) }}",
    "{{ ('a ' * 1000)|wordwrap(1, wrapstring='x' * 1000) }}",
    "{{ [1]|batch(10**9, 'x')|list }}",
    "{{ [1]|slice(10**9, 'x')|list }}",
    "{% set a = 'x' * 200000 %}{{ [a, a, a, a, a] }}",
    "{% set a = 'x' * 200000 %}{{ a ~ a ~ a }}",
    "{% set a = 'x' * 200000 %}{{ {'a': a, 'b': a} }}",
    "{% set a = 'x' * 200000 %}{{ (a, a) }}",
    "{% set ns = namespace(s='xxxxxxxx') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
    "{% set ns = namespace(n=2) %}{% for i in range(60) %}{% set ns.n = ns.n * ns.n %}{% endfor %}",
    "{% set x %}{% for i in range(1000) %}{{ 'y' * 1000 }}{% endfor %}{% endset %}{{ x|length }}",
    "{% for a in range(1000) %}{% for b in range(1000) %}{% endfor %}{% endfor %}",
    "{{ 'a\tb'.expandtabs(200000) * 2 }}",
    "{{ vars.big|tojson(indent=1000) }}",
]


@pytest.mark.parametrize("source", DENIAL_OF_SERVICE)
def test_given_a_resource_bomb_when_rendering_then_it_fails_fast_with_a_render_error(source: str) -> None:
    started = time.monotonic()
    error = fails(source, vars={"big": {"a": 1}})
    assert time.monotonic() - started < 1.0
    assert not error.message.startswith("could not render")  # a guard stopped it, not an accident


def test_given_output_past_the_cap_when_rendering_then_it_fails() -> None:
    error = fails("{% for i in range(1000) %}{{ 'x' * 1000 }}{% endfor %}")
    assert "larger than 256 KB" in error.message
    assert len(sms("{% for i in range(200) %}{{ 'x' * 1000 }}{% endfor %}")) == 200_000


def test_given_a_render_past_its_deadline_when_looping_then_it_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rendering, "MAX_RENDER_SECONDS", -1.0)
    assert "longer than" in fails("{% for i in range(3) %}{{ i }}{% endfor %}").message


def test_given_a_timer_that_runs_past_the_budget_when_looping_then_the_render_fails_without_waiting() -> None:
    # Given a stopwatch that moves 0.4 s at every reading (the budget is 1 s per field)
    readings = iter(i * 0.4 for i in range(1000))

    def timer() -> float:
        return next(readings)

    # When a loop of ten renders on it
    with pytest.raises(RenderError) as caught:
        render(
            "sms",
            {"en": {"body": "{% for i in range(10) %}{{ i }}{% endfor %}"}},
            {},
            locale="en",
            default_locale="en",
            context=RenderContext(),
            timer=timer,
        )
    # Then the field stops at its third tick, named, with the budget in the message
    assert caught.value.message == "rendering took longer than 1 s"
    assert caught.value.field == "body"


def test_given_a_timer_that_stands_still_when_looping_then_the_budget_never_runs_out() -> None:
    rendered = render(
        "sms",
        {"en": {"body": "{% for i in range(500) %}{{ i % 10 }}{% endfor %}"}},
        {},
        locale="en",
        default_locale="en",
        context=RenderContext(),
        timer=lambda: 0.0,
    )
    assert rendered.fields["body"] == "0123456789" * 50


def test_given_everyday_constructs_when_rendering_then_the_guards_leave_them_alone() -> None:
    body = (
        "{% set ns = namespace(total=0) %}{% for p in vars.products if p.qty %}{% set ns.total = ns.total + p.qty %}"
        "{{ loop.index }}/{{ loop.length }} {{ p.name|title }} x{{ p.qty }}{{ ', ' if not loop.last }}{% endfor %}"
        " = {{ ns.total }} | {{ vars.products|map(attribute='name')|join(', ') }} | {{ '%05.1f'|format(3.14159) }}"
        " | {{ '{:,}'.format(1234567) }} | {{ 'Hi %s' % person.first_name }} | {{ 'ab' ~ 1 ~ [2] }} | {{ 2 ** 10 }}"
        " | {{ 'long text here'|truncate(9, leeway=0) }} | {{ 'x'|center(5) }}|"
    )
    products = [{"name": "mug", "qty": 2}, {"name": "hat", "qty": 0}, {"name": "pen", "qty": 3}]
    assert sms(body, vars={"products": products}, person={"first_name": "Ann"}) == (
        "1/2 Mug x2, 2/2 Pen x3 = 5 | mug, hat, pen | 003.1 | 1,234,567 | Hi Ann | ab1[2] | 1024 | long... |   x  |"
    )


# ------------------------------------------------------------------------------- check_template
def test_given_a_clean_template_when_checking_then_there_are_no_issues() -> None:
    locales = {
        "en": {"subject": "Hi {{ person.first_name }}", "html": "<p>{{ event.properties.total|money('EUR') }}</p>"},
        "pt-BR": {"subject": "Oi", "text": "{% for p in vars.items %}{{ p }}{% endfor %}{{ computed.orders }}"},
    }
    variables = {"person.first_name": VariableSpec(default="there"), "vars.items": VariableSpec(required=True)}
    assert check_template("email", locales, variables, default_locale="en") == []


def test_given_a_syntax_error_when_checking_then_it_is_reported_with_its_line() -> None:
    issues = check_template("sms", {"en": {"body": "one\ntwo\n{{ person.first_name "}}, {})
    assert [(i.location, i.line) for i in issues] == [("locales.en.body:3", 3)]


def test_given_unknown_filters_when_checking_then_they_are_reported() -> None:
    assert "No filter named 'shout'" in messages(check_template("sms", {"en": {"body": "{{ 'a'|shout }}"}}, {}))


@pytest.mark.parametrize(
    ("channel", "content", "expected"),
    [
        ("email", {"html": "x"}, "locales.en.subject: is required"),
        ("email", {"subject": "x"}, "locales.en: needs at least one of html or text"),
        ("email", {"subject": "x", "text": "x", "body": "x"}, "locales.en.body: not a field of email templates"),
        ("push", {"title": "x"}, "locales.en.body: is required"),
        ("inbox", {"body": "x"}, "locales.en.title: is required"),
        ("sms", {"body": "   "}, "locales.en.body: is required"),
        ("sms", {"body": 3}, "locales.en.body: must be text"),
        ("fax", {"body": "x"}, "channel: unknown channel 'fax'"),
    ],
)
def test_given_missing_or_unknown_fields_when_checking_then_they_are_reported(
    channel: str, content: dict[str, Any], expected: str
) -> None:
    assert expected in messages(check_template(channel, {"en": content}, {}))


def test_given_too_many_locales_or_bad_tags_when_checking_then_they_are_reported() -> None:
    many = {f"l{chr(97 + i // 26)}{chr(97 + i % 26)}": {"body": "x"} for i in range(21)}
    assert "21 locales; at most 20" in messages(check_template("sms", many, {}))
    found = messages(check_template("sms", {"en_gb": {"body": "x"}, "english": {"body": "x"}}, {}))
    assert "locales.en_gb: not a locale tag like en, en-GB or pt-BR (write 'en-GB')" in found
    assert "locales.english: not a locale tag" in found
    assert "default_locale: 'fr'" in messages(check_template("sms", {"en": {"body": "x"}}, {}, default_locale="fr"))


def test_given_a_field_over_100_kb_when_checking_then_it_is_refused_and_render_refuses_it_too() -> None:
    source = "x" * (100 * 1024 + 1)
    assert "the limit is 100 KB" in messages(check_template("sms", {"en": {"body": source}}, {}))
    assert "limited to 100 KB" in fails(source).message


def test_given_variables_outside_the_known_roots_when_checking_then_they_are_reported() -> None:
    issues = check_template(
        "sms",
        {"en": {"body": "{% set local = 1 %}{{ local }}{{ coupon }} {{ person.x }}"}},
        {"coupon": VariableSpec(), "promo.code": VariableSpec(), "person": VariableSpec(), "person._x": VariableSpec()},
    )
    found = messages(issues)
    assert "locales.en.body:1: unknown variable 'coupon'" in found
    assert "'local'" not in found
    assert "variables.coupon: must start with one of person., event., computed., vars., links." in found
    assert "variables.promo.code: must start with one of" in found
    assert "variables.person: name a value below person" in found
    assert "variables.person._x: not a dotted variable path" in found


def test_given_a_template_when_rendered_twice_then_it_is_compiled_once(monkeypatch: pytest.MonkeyPatch) -> None:
    environment = sandbox.ENVIRONMENTS["text"]
    parses = []
    original = environment.parse
    monkeypatch.setattr(environment, "parse", lambda source, *a, **k: parses.append(source) or original(source))
    source = "compiled once {{ person.first_name }} " + str(time.monotonic_ns())
    assert sms(source, person={"first_name": "A"}) != sms(source, person={"first_name": "B"})
    assert parses == [source]


def test_given_more_templates_than_the_cache_holds_when_compiling_then_the_cache_stays_bounded() -> None:
    for i in range(templates.CACHE_SIZE + 5):
        checks.compile_template("text", f"bounded cache {i}")
    assert len(checks.COMPILED._items) == templates.CACHE_SIZE


# ------------------------------------------------------------------------------- money and dates
@pytest.mark.parametrize(
    ("amount", "currency", "locale", "text"),
    [
        (1234.5, "USD", "en", "$1,234.50"),
        ("1234567.891", "USD", "en-US", "$1,234,567.89"),
        (1234.5, "EUR", "en", "€1,234.50"),
        (1234.5, "GBP", "en-GB", "£1,234.50"),
        (1234.5, "JPY", "en", "¥1,235"),
        (1234.5, "JPY", "ja", "￥1,235"),
        (1234.5, "EUR", "fr", f"1{NNBSP}234,50{NBSP}€"),
        (1234.5, "EUR", "de-DE", f"1.234,50{NBSP}€"),
        (1234.5, "EUR", "es", f"1234,50{NBSP}€"),
        (12345.5, "EUR", "es", f"12.345,50{NBSP}€"),
        (1234.5, "BRL", "pt-BR", f"R${NBSP}1.234,50"),
        (1234.5, "USD", "en-CA", "US$1,234.50"),
        (1234.5, "CAD", "en-CA", "$1,234.50"),
        (10, "CHF", "en", f"CHF{NBSP}10.00"),
        (-5.555, "USD", "en", "-$5.56"),
        (-0.001, "USD", "en", "$0.00"),
        (7, "XYZ", "en", f"XYZ{NBSP}7.00"),
    ],
)
def test_given_an_amount_when_formatting_money_then_symbol_decimals_and_separators_follow_the_locale(
    amount: Any, currency: str, locale: str, text: str
) -> None:
    assert format_money(amount, currency, locale) == text


@pytest.mark.parametrize(
    ("amount", "currency"), [("abc", "USD"), (True, "USD"), (1e30, "USD"), ("nan", "USD"), (1, "$$")]
)
def test_given_a_bad_amount_or_currency_when_formatting_money_then_it_fails(amount: Any, currency: str) -> None:
    with pytest.raises(RenderError, match="money"):
        format_money(amount, currency)


def test_given_french_content_when_using_money_in_a_template_then_the_recipient_locale_formats_it() -> None:
    locales = {"en": {"body": "{{ vars.total|money('EUR') }}"}, "fr": {"body": "{{ vars.total|money('EUR') }}"}}
    for wanted, text in [("fr-CA", f"1{NNBSP}234,50{NBSP}€"), ("de", "€1,234.50")]:
        rendered = render(
            "sms",
            locales,
            {},
            locale=wanted,
            default_locale="en",
            context=RenderContext(vars={"total": 1234.5}),
            timer=time.monotonic,
        )
        assert rendered.fields["body"] == text  # German readers get the English content, formatted the English way


@pytest.mark.parametrize(
    ("moment", "zone", "text"),
    [
        # Paris moves from UTC+1 to UTC+2 at 01:00 UTC on 29 March 2026.
        ("2026-03-29T00:30:00Z", "Europe/Paris", "2026-03-29T01:30:00+01:00"),
        ("2026-03-29T01:30:00Z", "Europe/Paris", "2026-03-29T03:30:00+02:00"),
        # New York moves back from UTC-4 to UTC-5 at 06:00 UTC on 1 November 2026.
        ("2026-11-01T05:30:00.000Z", "America/New_York", "2026-11-01T01:30:00-04:00"),
        ("2026-11-01T06:30:00.000Z", "America/New_York", "2026-11-01T01:30:00-05:00"),
        ("2026-11-01T06:30:00+00:00", "Mars/Olympus_Mons", "2026-11-01T06:30:00+00:00"),  # unknown: UTC
        ("2026-11-01T06:30:00", None, "2026-11-01T06:30:00+00:00"),  # naive: UTC
    ],
)
def test_given_an_iso_timestamp_when_formatting_then_it_is_shown_in_the_recipients_zone(
    moment: str, zone: str | None, text: str
) -> None:
    assert format_datetime(moment, "iso", tz=zone) == text


@pytest.mark.parametrize(
    ("fmt", "locale", "text"),
    [
        ("short", "en", "3/29/26, 3:30 AM"),
        ("medium", "en-US", "Mar 29, 2026, 3:30 AM"),
        ("long", "en-GB", "29 March 2026, 03:30"),
        ("medium", "fr", "29 mars 2026 03:30"),
        ("long", "de", "29. März 2026, 03:30"),
        ("long", "es", "29 de marzo de 2026, 3:30"),
        ("long", "ja", "2026年3月29日 3:30"),
        ("medium", "ko", "2026-03-29 03:30"),
        ("%d/%m %H:%M", "en", "29/03 03:30"),
    ],
)
def test_given_a_named_or_strftime_format_when_formatting_a_datetime_then_the_locale_shapes_it(
    fmt: str, locale: str, text: str
) -> None:
    assert format_datetime("2026-03-29T01:30:00Z", fmt, locale=locale, tz="Europe/Paris") == text


def test_given_a_time_near_midnight_when_formatting_a_date_then_the_day_is_the_recipients() -> None:
    assert format_date("2026-11-22T23:30:00Z", "medium", tz="Asia/Tokyo") == "Nov 23, 2026"
    assert format_date("2026-11-22T23:30:00Z", "medium", tz="UTC") == "Nov 22, 2026"


def test_given_a_calendar_date_when_formatting_then_it_is_not_shifted_by_the_zone() -> None:
    assert format_date("1990-05-01", "long", tz="Pacific/Kiritimati") == "May 1, 1990"
    assert format_datetime("1990-05-01", "long", tz="America/Los_Angeles") == "May 1, 1990"


def test_given_a_template_when_using_date_filters_then_the_context_zone_and_locale_apply() -> None:
    body = "{{ event.timestamp|date }} / {{ event.timestamp|datetime('short') }} / {{ event.timestamp|date('iso') }}"
    text = sms(body, locale="en-GB", event={"timestamp": "2026-03-29T22:30:00.000Z"}, tz="Australia/Sydney")
    assert text == "30 Mar 2026 / 30/03/2026, 09:30 / 2026-03-30"


@pytest.mark.parametrize(
    ("value", "fmt"), [("yesterday", "medium"), ("2026-03-29", "weird"), ("2026-03-29", "%Y" * 200)]
)
def test_given_a_bad_value_or_format_when_formatting_a_date_then_it_fails(value: str, fmt: str) -> None:
    with pytest.raises(RenderError, match="date"):
        format_date(value, fmt)


def test_given_a_persons_recommendations_when_rendering_then_recommendations_n_lists_the_first_n() -> None:
    body = "{% for item in recommendations(2) %}[{{ item }}]{% endfor %} {{ recommendations(5) | length }}"
    assert sms(body, recommendations=["socks", "scarf", "hat"]) == "[socks][scarf] 3"


def test_given_no_recommendations_when_rendering_then_the_list_is_empty_and_a_preview_shows_placeholders() -> None:
    assert sms("{{ recommendations(3) | join(',') }}.") == "."
    rendered = preview(
        "sms",
        {"en": {"body": "{{ recommendations(2) | join(' ') }}"}},
        {},
        locale="en",
        default_locale="en",
        context=RenderContext(),
        timer=time.monotonic,
    )
    assert rendered.fields == {"body": "[recommendation 1] [recommendation 2]"}


@pytest.mark.parametrize("argument", ["0", "51", "'3'", "true", "2.5"])
def test_given_a_bad_count_when_asking_for_recommendations_then_it_fails_saying_what_it_takes(argument: str) -> None:
    error = fails(f"{{{{ recommendations({argument}) }}}}", recommendations=["socks"])
    assert "recommendations() takes a whole number from 1 to 50" in str(error)
