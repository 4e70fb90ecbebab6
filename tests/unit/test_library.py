"""The shipped rule and template library, and `midstage.cli apply`: local checks with file
locations, and the planner's diffing against a fake admin API."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from midstage import cli
from midstage.cli import Document, LibraryInvalid, Step, apply, load_documents, plan, referenced_templates
from midstage.config import ComputedTraitSettings
from midstage.logic import profile as profile_logic
from midstage.logic import templates
from midstage.logic.conditions import Facts
from midstage.logic.rules import compile_rule, judge
from midstage.logic.timefmt import iso
from midstage.models.messaging import Rule, Template, TemplateBody
from midstage.models.profile import Profile

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
RULES = {"welcome", "order-satisfaction", "vip-winback", "churn-risk-survey"}
TEMPLATES = {"welcome-email", "welcome-sms", "order-satisfaction-email", "vip-winback-email", "churn-risk-survey-email"}


@pytest.fixture(scope="module")
def library() -> list[Document]:
    return load_documents(cli.LIBRARY)


def by_id(documents: list[Document], kind: str) -> dict[str, Document]:
    return {d.id: d for d in documents if d.kind == kind}


# ------------------------------------------------------------------------------ the library
def test_every_library_file_is_a_valid_document_named_after_its_id(library: list[Document]) -> None:
    assert set(by_id(library, "rule")) == RULES
    assert set(by_id(library, "template")) == TEMPLATES
    for document in library:
        assert Path(document.file).stem == document.id
        assert document.file.startswith(("rules/", "templates/"))
    assert all(d.approve for d in library if d.kind == "template")
    assert all(d.body["enabled"] for d in library if d.kind == "rule")


def test_library_rules_compile_and_library_templates_check_clean(library: list[Document]) -> None:
    for document in by_id(library, "rule").values():
        compile_rule(Rule(**document.body, id=document.id))
    for document in by_id(library, "template").values():
        body = TemplateBody.model_validate(document.body)
        issues = templates.check_template(
            body.channel, body.locales, body.variables, default_locale=body.default_locale
        )
        assert issues == [], (document.id, issues)


def test_each_rule_sends_templates_of_the_library_on_their_own_channel(library: list[Document]) -> None:
    shipped = by_id(library, "template")
    used = set()
    for document in by_id(library, "rule").values():
        for channel, template_id, _ in referenced_templates(document):
            assert template_id in shipped, (document.id, template_id)
            assert shipped[template_id].body["channel"] == channel
            used.add(template_id)
    assert used == TEMPLATES  # and none is left over


def test_each_rule_gives_its_templates_every_required_variable(library: list[Document]) -> None:
    shipped = by_id(library, "template")
    for document in by_id(library, "rule").values():
        for index, action in enumerate(document.body["actions"]):
            names = [action["template"]] if isinstance(action["template"], str) else action["template"].values()
            for name in names:
                required = [p for p, s in shipped[name].body["variables"].items() if s.get("required")]
                for path in required:
                    assert path.startswith("vars."), path
                    assert path.removeprefix("vars.") in action["vars"], (document.id, index, path)


def render(document: Document, **context: Any) -> dict[str, str]:
    body = TemplateBody.model_validate(document.body)
    return templates.render(
        body.channel,
        body.locales,
        body.variables,
        locale=None,
        default_locale=body.default_locale,
        context=templates.RenderContext(**context),
    ).fields


def vars_for(library: list[Document], rule_id: str) -> dict[str, Any]:
    return by_id(library, "rule")[rule_id].body["actions"][0]["vars"]  # type: ignore[no-any-return]


def test_templates_greet_by_first_name_or_there(library: list[Document]) -> None:
    for document in by_id(library, "template").values():
        rule_vars = {"survey_url": "https://s.example/x", "coupon_code": "C1", "discount": "20%", "shop_url": "u"}
        named = render(document, person={"first_name": "Ann"}, vars=rule_vars)
        anonymous = render(document, person={}, vars=rule_vars)
        text = named.get("text") or named["body"]
        assert "Hi Ann," in text
        assert "Hi there," in (anonymous.get("text") or anonymous["body"])
        assert "{{" not in json.dumps(named)


def test_the_satisfaction_survey_shows_the_order_total_as_money_and_links_the_survey(library: list[Document]) -> None:
    survey = by_id(library, "template")["order-satisfaction-email"]
    event = {"name": "Order Completed", "properties": {"revenue": 1234.5, "currency": "EUR", "order_id": "A 7"}}
    fields = render(
        survey,
        person={"first_name": "Ann"},
        event=event,
        vars=vars_for(library, "order-satisfaction"),
        links={"unsubscribe": "https://u.example/1"},
    )
    assert "your order of €1,234.50." in fields["text"]
    assert "https://survey.example.com/order?order=A%207" in fields["html"]
    assert "https://u.example/1" in fields["text"] and "https://u.example/1" in fields["html"]
    # `total` when there is no revenue, USD by default, and no amount at all when neither is given
    fields = render(survey, event={"properties": {"total": "99"}}, vars=vars_for(library, "order-satisfaction"))
    assert "your order of $99.00." in fields["text"]
    fields = render(survey, event={"properties": {}}, vars=vars_for(library, "order-satisfaction"))
    assert "Thank you for your order. Did" in fields["text"] and "Unsubscribe" not in fields["text"]


def test_the_vip_email_carries_the_coupon_from_the_rule(library: list[Document]) -> None:
    fields = render(by_id(library, "template")["vip-winback-email"], person={}, vars=vars_for(library, "vip-winback"))
    assert fields["subject"] == "A thank-you for you: 20% off your next order"
    assert "VIPBACK20" in fields["text"] and "VIPBACK20" in fields["html"]


def person(*events: tuple[str, timedelta, dict[str, Any]]) -> Profile:
    """A profile built from (event name, how long ago, properties), computed as of NOW."""
    profile = Profile(id="p1", created_at=iso(NOW - timedelta(days=400)))
    for n, (name, ago, properties) in enumerate(events):
        event = {"type": "track", "event": name, "properties": properties, "messageId": f"m{n}", "sourceId": "s"}
        profile_logic.apply_event(profile, {**event, "timestamp": iso(NOW - ago)})
    profile.computed = profile_logic.compute(profile, NOW, ComputedTraitSettings())
    return profile


def matches(library: list[Document], rule_id: str, profile: Profile, event: dict[str, Any] | None = None) -> bool:
    document = by_id(library, "rule")[rule_id]
    return judge(compile_rule(Rule(**document.body, id=rule_id)), Facts(profile, event, NOW)).matched


def test_vip_winback_is_for_silent_high_value_customers_without_a_recent_order(library: list[Document]) -> None:
    big_order = ("Order Completed", timedelta(days=40), {"revenue": 1500})
    silent_vip = person(big_order, ("Page Viewed", timedelta(days=35), {}))
    assert silent_vip.computed["value_tier"] == "high" and silent_vip.computed["lifecycle_stage"] == "silent"
    assert matches(library, "vip-winback", silent_vip)
    # still around: not silent
    assert not matches(library, "vip-winback", person(big_order, ("Page Viewed", timedelta(days=1), {})))
    # silent but small spender
    assert not matches(library, "vip-winback", person(("Order Completed", timedelta(days=40), {"revenue": 50})))


def test_churn_survey_is_for_the_churned_and_for_lapsed_repeat_buyers(library: list[Document]) -> None:
    churned = person(("Order Completed", timedelta(days=100), {"revenue": 30}))
    assert churned.computed["lifecycle_stage"] == "churned"
    assert matches(library, "churn-risk-survey", churned)
    lapsed = person(
        ("Order Completed", timedelta(days=250), {"revenue": 30}),
        ("Order Completed", timedelta(days=200), {"revenue": 30}),
        ("Page Viewed", timedelta(days=40), {}),
    )
    assert lapsed.computed["lifecycle_stage"] == "silent" and lapsed.computed["rfm"]["recency"] == 1
    assert matches(library, "churn-risk-survey", lapsed)
    once = person(("Order Completed", timedelta(days=250), {"revenue": 30}), ("Page Viewed", timedelta(days=40), {}))
    assert not matches(library, "churn-risk-survey", once)


def test_event_rules_ignore_backfilled_events(library: list[Document]) -> None:
    profile = person(("Signed Up", timedelta(days=1), {}))
    for rule_id, name in (("welcome", "Signed Up"), ("order-satisfaction", "Order Completed")):
        fresh = {"type": "track", "event": name, "timestamp": iso(NOW - timedelta(hours=2))}
        old = {"type": "track", "event": name, "timestamp": iso(NOW - timedelta(days=40))}
        assert matches(library, rule_id, profile, fresh)
        assert not matches(library, rule_id, profile, old)


def test_refire_policies(library: list[Document]) -> None:
    refire = {d.id: d.body["refire"] for d in by_id(library, "rule").values()}
    assert refire == {
        "welcome": {"mode": "once", "days": None},
        "order-satisfaction": {"mode": "cooldown", "days": 7},
        "vip-winback": {"mode": "cooldown", "days": 30},
        "churn-risk-survey": {"mode": "cooldown", "days": 90},
    }


# ------------------------------------------------------------------------------ local checks
def write(folder: Path, name: str, text: str) -> None:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())


RULE = """
    id: {id}
    name: A rule
    trigger:
      type: event
      event: Browsed
    actions:
      - type: send
        channels: [{channel}]
        template: {template}
"""
TEMPLATE = """
    id: {id}
    name: A template
    channel: email
    approve: {approve}
    locales:
      en:
        subject: Hello
        text: |
          Hi {{{{ person.first_name | default("there") }}}}
          {text}
"""


def folder_with(tmp_path: Path, *, text: str = "", approve: str = "true", channel: str = "email") -> Path:
    write(tmp_path, "templates/note.yaml", TEMPLATE.format(id="note", approve=approve, text=text))
    write(tmp_path, "rules/browse.yaml", RULE.format(id="browse", channel=channel, template="note"))
    return tmp_path


def problems(folder: Path) -> list[str]:
    with pytest.raises(LibraryInvalid) as caught:
        load_documents(folder)
    return [str(i) for i in caught.value.issues]


def test_a_folder_of_valid_files_loads(tmp_path: Path) -> None:
    documents = load_documents(folder_with(tmp_path))
    assert [(d.kind, d.id, d.file, d.approve) for d in documents] == [
        ("template", "note", "templates/note.yaml", True),
        ("rule", "browse", "rules/browse.yaml", False),
    ]
    # defaults are filled in, as the API returns them
    assert documents[1].body["refire"] == {"mode": "once", "days": None}
    assert documents[1].body["actions"][0]["category"] == "marketing"


def test_issues_name_the_file_the_line_and_the_place(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, text="{{ person.first_name }")
    write(
        folder,
        "rules/bad.yaml",
        """
        id: bad
        name: Bad
        trigger:
          type: event
          event: Browsed
        conditions:
          all:
            - path: traits.plan
              op: equals
              value: pro
        actions:
          - type: add_tag
            tag: x
        """,
    )
    write(folder, "rules/broken.yaml", "id: broken\nname: [unclosed\n")
    write(folder, "rules/shape.yaml", "id: shape\nname: S\ntrigger: {type: event}\nactions: []\n")
    write(folder, "rules/list.yaml", "- id: x\n")
    write(folder, "rules/notes.txt", "not a document, ignored")
    (folder / "rules/binary.yaml").write_bytes(b"\xff\xfe")
    found = problems(folder)
    assert found.pop(2) == "rules/binary.yaml: not UTF-8 text"
    assert found[0] == "templates/note.yaml:10: /locales/en/text: unexpected '}'"
    assert "rules/bad.yaml:9: /conditions/all/0/op: unknown operator 'equals'" in found[1]
    assert found[2].startswith("rules/broken.yaml:3: not valid YAML:")
    assert found[3] == "rules/list.yaml:1: must hold one rule as a YAML mapping, with an `id`"
    assert found[4] == "rules/shape.yaml:3: /trigger: a event trigger needs `event`"
    assert found[5].startswith("rules/shape.yaml:4: /actions: List should have at least 1 item")
    assert len(found) == 6


def test_a_rule_sending_a_template_on_another_channel_and_duplicate_ids_are_refused(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, channel="sms")
    write(folder, "rules/again.yaml", RULE.format(id="browse", channel="email", template="note"))
    assert problems(folder) == [
        "rules/browse.yaml:1: /id: rule 'browse' is also in rules/again.yaml",
        "rules/browse.yaml: /actions/0/template: template 'note' is for email, not sms",
    ]


def test_approve_must_be_a_boolean_and_unknown_keys_are_refused(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, approve='"later"')
    write(folder, "rules/extra.yaml", RULE.format(id="extra", channel="email", template="note") + "    approve: true\n")
    assert problems(folder) == [
        "templates/note.yaml:4: /approve: must be true or false",
        "rules/extra.yaml:10: /approve: Extra inputs are not permitted",
    ]


def test_a_folder_without_rules_or_templates_is_refused(tmp_path: Path) -> None:
    assert problems(tmp_path) == [f"{tmp_path}: has neither a rules/ nor a templates/ folder"]


# ------------------------------------------------------------------------------ planning
class FakeApi:
    """The admin API's rule and template routes, in memory, answering as the real ones do."""

    def __init__(self) -> None:
        self.rules: dict[str, dict[str, Any]] = {}
        self.templates: dict[str, dict[str, Any]] = {}
        self.writes: list[tuple[str, str, Any, int | None]] = []

    def get(self, path: str) -> dict[str, Any] | None:
        _, _, kind, name = path.split("/")
        if kind == "rules":
            return self.rules.get(name)
        entry = self.templates.get(name)
        return None if entry is None else {"id": name, **entry}

    def send(self, method: str, path: str, body: Any, *, if_match: int | None = None) -> dict[str, Any]:
        self.writes.append((method, path, body, if_match))
        parts = path.split("/")
        kind, name = parts[2], parts[3] if len(parts) > 3 else body["id"]
        if kind == "rules":
            version = 1 if method == "POST" else self.rules[name]["version"] + 1
            assert if_match in (None, version - 1)
            fields = {k: v for k, v in body.items() if k != "id"}
            self.rules[name] = Rule(**fields, id=name, version=version, created_at="t").model_dump(mode="json")
            return self.rules[name]
        if path.endswith("/approve"):
            entry = self.templates[name]
            assert body["version"] == entry["latest"]["version"]
            entry["approved"] = {**entry["latest"], "status": "approved"}
            return {"id": name, **entry}
        entry = self.templates.setdefault(name, {"latest": None, "approved": None})
        version = 1 if method == "POST" else entry["latest"]["version"] + 1
        assert if_match in (None, version - 1)
        fields = {k: v for k, v in body.items() if k != "id"}
        entry["latest"] = Template(**fields, id=name, version=version).model_dump(mode="json")
        return {"id": name, **entry}


def actions(steps: list[Step]) -> list[tuple[str, str, str]]:
    return [(s.document.kind, s.document.id, s.action) for s in steps]


def test_a_fresh_api_gets_everything_created_templates_first_and_approved(library: list[Document]) -> None:
    api = FakeApi()
    report = apply(cli.LIBRARY, "http://unused", "k", api=api, echo=None)
    kinds = [s.document.kind for s in report.steps]
    assert kinds == ["template"] * 5 + ["rule"] * 4
    assert {s.action for s in report.steps} == {"create"}
    assert report.counts()["create"] == 9
    approvals = [(m, p) for m, p, _, _ in api.writes if p.endswith("/approve")]
    assert len(approvals) == 5
    assert all(entry["approved"]["version"] == 1 for entry in api.templates.values())
    assert set(api.rules) == RULES and all(r["enabled"] for r in api.rules.values())
    assert "welcome-email" in report.done[3] and "created v1, approved" in report.done[3]


def test_applying_the_same_documents_again_writes_nothing(library: list[Document]) -> None:
    api = FakeApi()
    apply(cli.LIBRARY, "http://unused", "k", api=api, echo=None)
    api.writes.clear()
    report = apply(cli.LIBRARY, "http://unused", "k", api=api, echo=None)
    assert {s.action for s in report.steps} == {"unchanged"}
    assert api.writes == []
    assert report.summary() == "4 rule(s), 5 template(s): 0 created, 0 updated, 0 approved, 9 unchanged"


def test_a_changed_or_disabled_rule_is_replaced_with_if_match(library: list[Document]) -> None:
    api = FakeApi()
    apply(cli.LIBRARY, "http://unused", "k", api=api, echo=None)
    api.rules["welcome"].update(priority=5, version=3)
    api.rules["vip-winback"]["enabled"] = False
    steps = plan(library, api)
    changed = {s.document.id: s for s in steps if s.action == "update"}
    assert set(changed) == {"welcome", "vip-winback"}
    assert changed["welcome"].version == 3 and changed["welcome"].changed == ("priority",)
    assert changed["vip-winback"].changed == ("enabled",)
    api.writes.clear()
    cli.execute(steps, api)
    puts = [(m, p, v) for m, p, _, v in api.writes]
    assert puts == [("PUT", "/v1/rules/vip-winback", 1), ("PUT", "/v1/rules/welcome", 3)]
    assert api.rules["welcome"]["priority"] == 0 and api.rules["welcome"]["version"] == 4


def test_templates_are_approved_when_unapproved_and_replaced_and_approved_when_changed(
    library: list[Document],
) -> None:
    api = FakeApi()
    apply(cli.LIBRARY, "http://unused", "k", api=api, echo=None)
    api.templates["welcome-sms"]["approved"] = None  # created elsewhere, never approved
    api.templates["welcome-email"]["latest"]["locales"]["en"]["subject"] = "Edited in the UI"
    steps = {s.document.id: s for s in plan(library, api)}
    assert (steps["welcome-sms"].action, steps["welcome-sms"].version) == ("approve", 1)
    email = steps["welcome-email"]
    assert (email.action, email.version, email.approve, email.changed) == ("update", 1, True, ("locales",))
    api.writes.clear()
    done = cli.execute(list(steps.values()), api)
    assert api.templates["welcome-email"]["latest"]["version"] == 2
    assert api.templates["welcome-email"]["approved"]["version"] == 2
    assert api.templates["welcome-sms"]["approved"]["version"] == 1
    assert any("welcome-email" in line and "updated v1 -> v2 (locales), approved" in line for line in done)
    assert any("welcome-sms" in line and line.endswith("approved v1") for line in done)


def test_approve_false_leaves_a_new_template_a_draft(tmp_path: Path) -> None:
    api = FakeApi()
    apply(folder_with(tmp_path, approve="false"), "http://unused", "k", api=api, echo=None)
    assert api.templates["note"]["approved"] is None
    assert not any(p.endswith("/approve") for _, p, _, _ in api.writes)
    assert {s.action for s in plan(load_documents(tmp_path), api)} == {"unchanged"}


def test_a_dry_run_reads_and_reports_but_writes_nothing(tmp_path: Path) -> None:
    api = FakeApi()
    lines: list[str] = []
    report = apply(folder_with(tmp_path), "http://unused", "k", api=api, dry_run=True, echo=lines.append)
    assert api.writes == []
    assert [line.split() for line in lines[:2]] == [
        ["template", "note", "would", "create", "and", "approve"],
        ["rule", "browse", "would", "create"],
    ]
    assert lines[-1] == report.summary() and lines[-1].endswith("(dry run: nothing was sent)")


def test_a_rule_may_name_a_template_that_is_only_on_the_server(tmp_path: Path) -> None:
    write(tmp_path, "rules/browse.yaml", RULE.format(id="browse", channel="email", template="elsewhere"))
    with pytest.raises(LibraryInvalid) as caught:
        plan(load_documents(tmp_path), FakeApi())
    assert [str(i) for i in caught.value.issues] == [
        "rules/browse.yaml: /actions/0/template: no template 'elsewhere' in this folder or on the server"
    ]
    api = FakeApi()
    api.send("POST", "/v1/templates", {"id": "elsewhere", **_note_body()})
    assert actions(plan(load_documents(tmp_path), api)) == [("rule", "browse", "create")]


def _note_body() -> dict[str, Any]:
    return TemplateBody(name="n", channel="email", locales={"en": {"subject": "s", "text": "t"}}).model_dump(
        mode="json"
    )


# ------------------------------------------------------------------------------ the command
def test_the_command_prints_every_issue_and_fails_without_calling_the_api(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = folder_with(tmp_path, channel="sms")
    code = cli.main(["apply", str(folder), "--url", "http://127.0.0.1:9", "--key", "k"])
    assert code == 1
    err = capsys.readouterr().err
    assert "rules/browse.yaml: /actions/0/template: template 'note' is for email, not sms" in err
    assert err.strip().endswith("1 problem(s); nothing was sent")


def test_the_command_applies_and_prints_what_it_did(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    api = FakeApi()
    monkeypatch.setattr(cli, "HttpAdminApi", lambda url, key: api)
    assert cli.main(["apply", str(folder_with(tmp_path)), "--url", "http://api.example", "--key", "k"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split() for line in out[:2]] == [
        ["template", "note", "created", "v1,", "approved"],
        ["rule", "browse", "created", "v1"],
    ]
    assert out[2] == "1 rule(s), 1 template(s): 2 created, 0 updated, 0 approved, 0 unchanged"


def test_the_command_stops_at_the_first_refusal_and_shows_the_api_issues(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    class Refusing(FakeApi):
        def send(self, method: str, path: str, body: Any, *, if_match: int | None = None) -> dict[str, Any]:
            if path == "/v1/rules":
                issues = [{"location": "/trigger/where", "message": "too slow"}]
                raise cli.ApiError(method, path, 400, {"code": "invalid_rule", "message": "invalid", "issues": issues})
            return super().send(method, path, body, if_match=if_match)

    api = Refusing()
    monkeypatch.setattr(cli, "HttpAdminApi", lambda url, key: api)
    assert cli.main(["apply", str(folder_with(tmp_path)), "--url", "http://api.example", "--key", "k"]) == 1
    captured = capsys.readouterr()
    assert "note" in captured.out and "browse" not in captured.out  # the template was done first
    assert captured.err.splitlines() == [
        "stopped: POST /v1/rules answered 400 invalid_rule: invalid",
        "  /trigger/where: too slow",
    ]


def test_the_command_needs_a_key_and_an_http_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MIDSTAGE_API_KEY", raising=False)
    assert cli.main(["apply", "library", "--url", "http://x"]) == 2
    assert cli.main(["apply", "library", "--url", "file:///etc", "--key", "k"]) == 2
    assert "must be http(s)" in capsys.readouterr().err


def test_an_unreachable_api_is_named_as_such() -> None:
    error = cli.ApiError("GET", "/v1/rules/welcome", 0, "<urlopen error [Errno 111] Connection refused>")
    assert str(error) == "GET /v1/rules/welcome could not reach the API: <urlopen error [Errno 111] Connection refused>"
