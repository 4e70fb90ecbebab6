"""The admin API's messaging routes, through the real handler on moto: rules, templates,
messages, consent, inbox, suppressions and the webhook secret. Success and refusal paths."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from types import ModuleType
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from midstage.adapters.config_store import ConfigStore
from midstage.adapters.messaging_store import FireRecords, InboxStore, MessageLedger
from midstage.adapters.profile_store import ProfileStore
from midstage.logic.timefmt import iso
from midstage.models.messages import Delivery, parse_body
from midstage.models.messaging import MessageRequest, Origin
from tests.integration.conftest import Context, Stack, sample
from tests.integration.test_campaign_runs import sqs_event

ROLES = ("viewer", "marketer", "data_operator", "admin")
ANN = "user_id:ann"


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str]

    def __getitem__(self, name: str) -> Any:
        return self.body[name]


class Api:
    def __init__(self, stack: Stack, admin: ModuleType) -> None:
        self.stack = stack
        self.admin = admin

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        role: str | None = "admin",
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        raw: str | None = None,
    ) -> Answer:
        sent = {"content-type": "application/json", **(headers or {})}
        if role is not None:
            sent["authorization"] = f"Bearer msk_{role}"
        event = {
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": path,
            "rawQueryString": urlencode(query or {}),
            "queryStringParameters": query,
            "headers": sent,
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "abc123",
                "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
                "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7"},
                "requestId": "req",
                "routeKey": "$default",
                "stage": "$default",
                "time": "22/Nov/2026:10:00:00 +0000",
                "timeEpoch": 1795341600000,
            },
            "body": raw if raw is not None else (json.dumps(body) if body is not None else None),
            "isBase64Encoded": False,
        }
        answer = self.admin.lambda_handler(event, Context())
        text = answer.get("body") or ""
        headers = answer.get("headers") or {}
        if str(headers.get("Content-Type", "")).startswith("text/csv"):
            return Answer(answer["statusCode"], text, headers)  # a CSV export, read as text
        return Answer(answer["statusCode"], json.loads(text) if text else None, headers)

    def get(self, path: str, **kwargs: Any) -> Answer:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Answer:
        return self.call("POST", path, body, **kwargs)

    def put(self, path: str, body: Any = None, **kwargs: Any) -> Answer:
        return self.call("PUT", path, body, **kwargs)

    def patch(self, path: str, body: Any = None, **kwargs: Any) -> Answer:
        return self.call("PATCH", path, body, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Answer:
        return self.call("DELETE", path, **kwargs)

    # -------------------------------------------------------------- direct store access
    @property
    def data_table(self) -> str:
        return self.stack.output("DataTableName")

    def ledger(self) -> MessageLedger:
        return MessageLedger(self.data_table, client=self.stack.clients.dynamodb())

    def inbox(self) -> InboxStore:
        return InboxStore(self.data_table, client=self.stack.clients.dynamodb())

    def profiles(self) -> ProfileStore:
        return ProfileStore(self.data_table, client=self.stack.clients.dynamodb())

    def queue(self, logical_id: str) -> list[dict[str, Any]]:
        """Every message on a queue (received and deleted)."""
        url = self.stack.queue_urls[next(q.arn for q in self.stack.model.queues if q.logical_id == logical_id)]
        sqs = self.stack.clients.sqs()
        found: list[dict[str, Any]] = []
        while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
            for message in messages:
                found.append(dict(message))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return found

    def ann_id(self) -> str:
        owners = self.profiles().identity_owners([("user_id", "ann")])
        return owners[("user_id", "ann")]


@pytest.fixture
def api(stack: Stack) -> Api:
    config = ConfigStore(stack.output("ConfigTableName"), client=stack.clients.dynamodb())
    for role in ROLES:
        config.create_api_key(role, role, f"msk_{role}", now=datetime.now(UTC))
    stack.load("ProfileUpdaterFunction").lambda_handler(sample("profile_updater", "sqs-batch"), Context())
    return Api(stack, stack.load("AdminFunction"))


def welcome_rule(rule_id: str = "welcome", **changes: Any) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "id": rule_id,
        "name": "Welcome pro buyers",
        "trigger": {"type": "event", "event": "Order Completed"},
        "conditions": {"all": [{"path": "traits.plan", "op": "eq", "value": "pro"}]},
        "actions": [{"type": "send", "channels": ["email"], "template": "welcome-email"}],
        "refire": {"mode": "once"},
    }
    rule.update(changes)
    return rule


def email_template(template_id: str = "welcome-email", **changes: Any) -> dict[str, Any]:
    template: dict[str, Any] = {
        "id": template_id,
        "name": "Welcome",
        "channel": "email",
        "locales": {
            "en": {"subject": "Welcome {{ person.name }}", "text": "Hi {{ person.first_name }}, {{ person.email }}"},
            "fr": {"subject": "Bienvenue {{ person.name }}", "text": "Bonjour {{ person.first_name }}"},
        },
    }
    template.update(changes)
    return template


def approved_template(api: Api, template_id: str = "welcome-email") -> None:
    assert api.post("/v1/templates", email_template(template_id)).status == 201
    assert api.post(f"/v1/templates/{template_id}/approve", {"version": 1}).status == 200


# ====================================================================================== auth
def test_every_route_needs_a_valid_key(api: Api) -> None:
    missing = api.get("/v1/rules", role=None)
    assert (missing.status, missing["code"]) == (401, "unauthorized")
    unknown = api.get("/v1/templates", role="nobody")
    assert (unknown.status, unknown["code"]) == (401, "unauthorized")


@pytest.mark.parametrize(
    ("method", "path", "body", "allowed"),
    [
        ("POST", "/v1/rules", welcome_rule(), "marketer"),
        ("POST", "/v1/rules/validate", welcome_rule(), "marketer"),
        ("PUT", "/v1/rules/welcome", welcome_rule(), "marketer"),
        ("PATCH", "/v1/rules/welcome", {"enabled": False}, "marketer"),
        ("DELETE", "/v1/rules/welcome", None, "marketer"),
        ("POST", "/v1/rules/welcome/dry-run", {}, "marketer"),
        ("POST", "/v1/templates", email_template(), "marketer"),
        ("PUT", "/v1/templates/welcome-email", email_template(), "marketer"),
        ("POST", "/v1/templates/welcome-email/preview", {}, "marketer"),
        ("POST", "/v1/templates/welcome-email/approve", {"version": 1}, "data_operator"),
        ("POST", "/v1/messages", {}, "marketer"),
        ("PUT", f"/v1/profiles/{ANN}/consent", {}, "data_operator"),
        ("GET", f"/v1/profiles/{ANN}/consent", None, "data_operator"),
        ("POST", f"/v1/profiles/{ANN}/inbox/read", {"all": True}, "marketer"),
        ("PUT", "/v1/suppressions/email/ann%40example.com", {}, "data_operator"),
        ("DELETE", "/v1/suppressions/email/ann%40example.com", None, "data_operator"),
        ("GET", "/v1/settings/webhook-secret", None, "admin"),
        ("GET", "/v1/settings/secrets", None, "admin"),
        ("POST", "/v1/settings/secrets/links/rotate", {}, "admin"),
        ("DELETE", "/v1/settings/secrets/links/keys/k0", None, "admin"),
    ],
)
def test_writes_need_their_minimum_role(api: Api, method: str, path: str, body: Any, allowed: str) -> None:
    for role in ROLES[: ROLES.index(allowed)]:
        answer = api.call(method, path, body, role=role)
        assert (answer.status, answer["code"]) == (403, "forbidden"), (role, answer.body)
        assert allowed in answer["message"]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/rules",
        "/v1/templates",
        f"/v1/profiles/{ANN}/messages",
        f"/v1/profiles/{ANN}/inbox",
    ],
)
def test_viewers_can_read(api: Api, path: str) -> None:
    assert api.get(path, role="viewer").status == 200


# ====================================================================================== rules
def test_rule_lifecycle_create_read_replace_patch_delete(api: Api) -> None:
    created = api.post("/v1/rules", welcome_rule(), role="marketer")
    assert created.status == 201, created.body
    assert (created["id"], created["version"], created["updated_by"]) == ("welcome", 1, created["updated_by"])
    assert created["updated_by"]  # the marketer key's id
    assert api.get("/v1/rules/welcome", role="viewer")["name"] == "Welcome pro buyers"

    again = api.post("/v1/rules", welcome_rule())
    assert (again.status, again["code"]) == (409, "conflict")

    body = {k: v for k, v in welcome_rule().items() if k != "id"}
    replaced = api.put("/v1/rules/welcome", {**body, "name": "Welcome v2"}, headers={"if-match": "1"})
    assert (replaced.status, replaced["version"], replaced["name"]) == (200, 2, "Welcome v2")
    assert replaced["created_at"] == created["created_at"]

    stale = api.put("/v1/rules/welcome", body, headers={"if-match": "1"})
    assert (stale.status, stale["code"]) == (409, "version_mismatch")
    garbage = api.put("/v1/rules/welcome", body, headers={"if-match": "latest"})
    assert (garbage.status, garbage["code"]) == (400, "invalid_if_match")
    weak_etag = api.patch("/v1/rules/welcome", {"enabled": False}, headers={"if-match": 'W/"2"'})
    assert (weak_etag.status, weak_etag["version"], weak_etag["enabled"]) == (200, 3, False)
    priority = api.patch("/v1/rules/welcome", {"priority": 7})
    assert (priority["version"], priority["priority"], priority["enabled"]) == (4, 7, False)

    assert api.post("/v1/rules", welcome_rule("second")).status == 201
    listed = api.get("/v1/rules", role="viewer")
    assert [r["id"] for r in listed["rules"]] == ["welcome", "second"]  # priority 7 runs first
    enabled = api.get("/v1/rules", query={"enabled": "true"})
    assert [r["id"] for r in enabled["rules"]] == ["second"]
    assert [r["id"] for r in api.get("/v1/rules", query={"enabled": "false"})["rules"]] == ["welcome"]
    bad_filter = api.get("/v1/rules", query={"enabled": "yes"})
    assert (bad_filter.status, bad_filter["code"]) == (400, "invalid_query")

    versions = api.get("/v1/rules/welcome/versions", role="viewer")
    assert [v["version"] for v in versions["versions"]] == [4, 3, 2, 1]
    assert versions["deleted"] is False

    assert api.delete("/v1/rules/welcome").status == 204
    gone = api.get("/v1/rules/welcome")
    assert (gone.status, gone["code"]) == (404, "not_found")
    assert api.delete("/v1/rules/welcome").status == 404
    history = api.get("/v1/rules/welcome/versions")
    assert (history["deleted"], len(history["versions"])) == (True, 4)
    reused = api.post("/v1/rules", welcome_rule())
    assert (reused.status, reused["code"]) == (409, "conflict")
    assert "not reused" in reused["message"]


def test_unknown_rules_are_404(api: Api) -> None:
    body = {k: v for k, v in welcome_rule().items() if k != "id"}
    for answer in (
        api.get("/v1/rules/nope"),
        api.put("/v1/rules/nope", body),
        api.patch("/v1/rules/nope", {"enabled": True}),
        api.get("/v1/rules/nope/versions"),
        api.get("/v1/rules/nope/messages"),
        api.post("/v1/rules/nope/dry-run", {}),
    ):
        assert (answer.status, answer["code"]) == (404, "not_found")


def test_an_unknown_operator_is_refused_with_its_exact_location(api: Api) -> None:
    rule = welcome_rule(
        conditions={
            "all": [
                {"path": "traits.plan", "op": "eq", "value": "pro"},
                {"path": "traits.age", "op": "bigger", "value": 3},
            ]
        }
    )
    refused = api.post("/v1/rules", rule)
    assert (refused.status, refused["code"]) == (400, "invalid_rule"), refused.body
    assert refused["issues"][0]["location"] == "/conditions/all/1/op"
    assert "bigger" in refused["issues"][0]["message"]
    assert api.get("/v1/rules/welcome").status == 404  # nothing was saved

    checked = api.post("/v1/rules/validate", rule, role="marketer")
    assert checked.status == 200
    assert checked["valid"] is False
    assert checked["issues"] == refused["issues"]

    assert api.post("/v1/rules", welcome_rule()).status == 201
    body = {k: v for k, v in rule.items() if k != "id"}
    on_replace = api.put("/v1/rules/welcome", body)
    assert (on_replace.status, on_replace["code"]) == (400, "invalid_rule")
    assert api.get("/v1/rules/welcome")["version"] == 1


def test_validate_maps_schema_errors_to_pointers(api: Api) -> None:
    assert api.post("/v1/rules/validate", welcome_rule()).body == {"valid": True, "issues": []}
    broken = welcome_rule(
        trigger={"type": "event"},
        actions=[{"type": "send", "template": "welcome-email"}, {"type": "fly"}],
        priority=5000,
    )
    checked = api.post("/v1/rules/validate", broken)
    assert checked["valid"] is False
    locations = {i["location"] for i in checked["issues"]}
    assert {"/trigger", "/actions/0/channels", "/actions/1", "/priority"} <= locations, checked["issues"]
    not_json = api.post("/v1/rules/validate", raw="{nope")
    assert (not_json.status, not_json["code"]) == (400, "invalid_json")

    created = api.post("/v1/rules", broken)
    assert (created.status, created["code"]) == (400, "invalid_body")
    assert {"/trigger", "/actions/0/channels"} <= {i["location"] for i in created["issues"]}


def test_hostile_rule_definitions_are_refused(api: Api) -> None:
    huge = welcome_rule(description="x" * (300 * 1024))
    too_large = api.post("/v1/rules", huge)
    assert (too_large.status, too_large["code"]) == (413, "body_too_large")

    nested_json = api.post("/v1/rules", raw="[" * 5000 + "]" * 5000)  # past the parser's own limit
    assert (nested_json.status, nested_json["code"]) == (400, "too_deeply_nested")
    nested: dict[str, Any] = {}
    for _ in range(100):
        nested = {"a": nested}
    nested_vars = api.post(
        "/v1/rules/validate",
        welcome_rule(description="x", actions=[{"type": "emit_event", "event": "x", "properties": nested}]),
    )
    assert (nested_vars.status, nested_vars["code"]) == (400, "too_deeply_nested")
    unterminated = api.post("/v1/rules", raw='{"name": "' + '\\"' * 100_000)
    assert (unterminated.status, unterminated["code"]) == (400, "invalid_json")

    condition: dict[str, Any] = {"path": "traits.plan", "op": "eq", "value": "pro"}
    for _ in range(20):
        condition = {"not": condition}
    deep = api.post("/v1/rules", welcome_rule(conditions=condition))
    assert (deep.status, deep["code"]) == (400, "invalid_rule")
    assert deep["issues"][0]["location"].startswith("/conditions/not")

    redos = api.post("/v1/rules", welcome_rule(conditions={"path": "traits.name", "op": "regex", "value": "(a+)+$"}))
    assert (redos.status, redos["code"]) == (400, "invalid_rule")
    assert redos["issues"][0]["location"].startswith("/conditions")
    assert "nested quantifiers" in redos["issues"][0]["message"]

    wide = {"any": [{"path": "traits.plan", "op": "eq", "value": str(n)} for n in range(600)]}
    too_wide = api.post("/v1/rules", welcome_rule(conditions=wide))
    assert (too_wide.status, too_wide["code"]) == (400, "invalid_rule")
    assert api.get("/v1/rules")["rules"] == []


def test_dry_run_explains_a_saved_or_an_inline_rule(api: Api) -> None:
    assert api.post("/v1/rules", welcome_rule()).status == 201
    event = {"event": "Order Completed", "properties": {"revenue": 30}, "timestamp": "2026-11-22T10:00:00Z"}
    run = api.post("/v1/rules/welcome/dry-run", {"profile": ANN, "event": event}, role="marketer")
    assert run.status == 200, run.body
    assert run["wouldFire"] is True
    assert (run["saved"], run["profileId"], run["fireRecord"]) == (True, api.ann_id(), None)
    assert run["conditions"]["matched"] is True
    assert run["actions"][0]["channels"] == ["email"]

    other = api.post("/v1/rules/welcome/dry-run", {"profile": ANN, "event": {**event, "event": "Signed Up"}})
    assert other["wouldFire"] is False
    assert other["trigger"]["matched"] is False

    FireRecords(api.data_table, client=api.stack.clients.dynamodb()).record(
        api.ann_id(), "welcome", "x", datetime(2026, 11, 1, tzinfo=UTC), None
    )
    fired = api.post("/v1/rules/welcome/dry-run", {"profile": ANN, "event": event})
    assert fired["wouldFire"] is False
    assert fired["fireRecord"]["count"] == 1
    assert fired["refire"]["allowed"] is False

    inline = {k: v for k, v in welcome_rule(conditions={"path": "traits.plan", "op": "eq", "value": "free"}).items()}
    inline.pop("id")
    unsaved = api.post("/v1/rules/draft-rule/dry-run", {"profile": ANN, "event": event, "rule": inline})
    assert unsaved.status == 200, unsaved.body
    assert (unsaved["saved"], unsaved["version"], unsaved["wouldFire"]) == (False, 0, False)
    assert "does not match" in unsaved["verdict"]

    bad_inline = {**inline, "conditions": {"path": "traits.plan", "op": "like", "value": "x"}}
    refused = api.post("/v1/rules/draft-rule/dry-run", {"rule": bad_inline})
    assert (refused.status, refused["code"]) == (400, "invalid_rule")
    assert refused["issues"][0]["location"] == "/conditions/op"

    no_zone = api.post("/v1/rules/welcome/dry-run", {"event": {**event, "timestamp": "2026-11-22T10:00:00"}})
    assert (no_zone.status, no_zone["code"]) == (400, "invalid_body")
    assert no_zone["issues"][0]["location"] == "/event/timestamp"
    nobody = api.post("/v1/rules/welcome/dry-run", {"profile": "user_id:nobody"})
    assert (nobody.status, nobody["code"]) == (404, "not_found")


def test_dry_run_masks_contact_data_below_data_operator(api: Api) -> None:
    rule = welcome_rule(conditions={"path": "traits.email", "op": "eq", "value": "ann@example.com"})
    assert api.post("/v1/rules", rule).status == 201
    shown = json.dumps(api.post("/v1/rules/welcome/dry-run", {"profile": ANN}, role="marketer").body)
    assert "ann@example.com" not in shown
    assert "a***@example.com" in shown
    full = json.dumps(api.post("/v1/rules/welcome/dry-run", {"profile": ANN}, role="data_operator").body)
    assert "ann@example.com" in full


def record_message(api: Api, key: str, origin: Origin, profile_id: str, at: datetime, status: str = "sent") -> str:
    """A ledger record and its listing references, written by the ledger as the deliver
    function writes them (claimed, then finished unless `status` is "sending")."""
    request = MessageRequest(
        key=key,
        origin=origin,
        profile_id=profile_id,
        channels=["email"],
        template="welcome-email",
        requested_at=iso(at),
    )
    ledger = api.ledger()
    assert ledger.claim(request, at, 60).state == "claimed"
    if status != "sending":
        ledger.finish(request.message_id, status, f"{status} by email", at, channel="email", address="ann@example.com")
    return request.message_id


def test_rule_messages_list_the_ledger_records_of_a_rule(api: Api) -> None:
    assert api.post("/v1/rules", welcome_rule()).status == 201
    ann = api.ann_id()
    ids = [
        record_message(
            api,
            f"rule:welcome:0:{n}:{ann}",
            Origin(kind="rule", id="welcome", version=1),
            ann,
            datetime(2026, 11, 22, 10, n, tzinfo=UTC),
        )
        for n in range(3)
    ]
    page = api.get("/v1/rules/welcome/messages", query={"limit": "2"}, role="viewer")
    assert page.status == 200, page.body
    assert [m["id"] for m in page["messages"]] == [ids[2], ids[1]]  # newest first
    assert page["messages"][0]["status"] == "sent"
    assert [h["status"] for h in page["messages"][0]["history"]] == ["sending", "sent"]
    assert page["messages"][0]["address"] == "a***@example.com"
    assert "request" not in page["messages"][0]
    rest = api.get("/v1/rules/welcome/messages", query={"limit": "2", "cursor": page["cursor"]})
    assert [m["id"] for m in rest["messages"]] == [ids[0]]
    assert rest["messages"][0]["address"] == "ann@example.com"  # admin: unmasked
    bad = api.get("/v1/rules/welcome/messages", query={"cursor": "P#x/../../"})
    assert (bad.status, bad["code"]) == (400, "invalid_cursor")
    bad_limit = api.get("/v1/rules/welcome/messages", query={"limit": "0"})
    assert (bad_limit.status, bad_limit["code"]) == (400, "invalid_limit")


# ====================================================================================== templates
def test_template_versions_drafts_and_approval(api: Api) -> None:
    created = api.post("/v1/templates", email_template(), role="marketer")
    assert created.status == 201, created.body
    assert (created["latest"]["version"], created["latest"]["status"], created["approved"]) == (1, "draft", None)
    duplicate = api.post("/v1/templates", email_template())
    assert (duplicate.status, duplicate["code"]) == (409, "conflict")

    approved = api.post("/v1/templates/welcome-email/approve", {"version": 1}, role="data_operator")
    assert approved.status == 200, approved.body
    assert approved["approved"]["version"] == 1
    assert approved["approved"]["approved_by"]
    assert approved["latest"]["status"] == "approved"

    body = {k: v for k, v in email_template().items() if k != "id"}
    body["locales"]["en"]["subject"] = "Hello {{ person.name }}"
    draft = api.put("/v1/templates/welcome-email", body, role="marketer", headers={"if-match": "1"})
    assert draft.status == 200, draft.body
    assert (draft["latest"]["version"], draft["latest"]["status"]) == (2, "draft")
    assert draft["approved"]["version"] == 1  # still the version that sends
    stale = api.put("/v1/templates/welcome-email", body, headers={"if-match": "1"})
    assert (stale.status, stale["code"]) == (409, "version_mismatch")
    channel = api.put("/v1/templates/welcome-email", {**body, "channel": "sms", "locales": {"en": {"body": "x"}}})
    assert (channel.status, channel["code"]) == (400, "invalid_template")
    assert channel["issues"][0]["location"] == "/channel"
    assert api.put("/v1/templates/welcome-email", body).status == 200  # version 3

    shown = api.get("/v1/templates/welcome-email", role="viewer")
    assert (shown["latest"]["version"], shown["approved"]["version"]) == (3, 1)
    listed = api.get("/v1/templates", role="viewer")
    assert listed["templates"] == [
        {
            "id": "welcome-email",
            "name": "Welcome",
            "channel": "email",
            "latestVersion": 3,
            "approvedVersion": 1,
            "updatedAt": shown["latest"]["created_at"],
            "updatedBy": shown["latest"]["updated_by"],
        }
    ]

    first = api.get("/v1/templates/welcome-email/versions", query={"limit": "2"}, role="viewer")
    assert [(v["version"], v["status"]) for v in first["versions"]] == [(3, "draft"), (2, "draft")]
    rest = api.get("/v1/templates/welcome-email/versions", query={"limit": "2", "cursor": first["cursor"]})
    assert ([(v["version"], v["status"]) for v in rest["versions"]], rest["cursor"]) == ([(1, "approved")], None)
    bad_cursor = api.get("/v1/templates/welcome-email/versions", query={"cursor": "99"})
    assert (bad_cursor.status, bad_cursor["code"]) == (400, "invalid_cursor")

    assert api.post("/v1/templates/welcome-email/approve", {"version": 3}).status == 200
    after = api.get("/v1/templates/welcome-email/versions")
    assert [(v["version"], v["status"]) for v in after["versions"]] == [(3, "approved"), (2, "draft"), (1, "archived")]
    again = api.post("/v1/templates/welcome-email/approve", {"version": 3})
    assert (again.status, again["approved"]["version"]) == (200, 3)
    missing = api.post("/v1/templates/welcome-email/approve", {"version": 99})
    assert (missing.status, missing["code"]) == (404, "not_found")
    bad = api.post("/v1/templates/welcome-email/approve", {"version": 0})
    assert (bad.status, bad["code"]) == (400, "invalid_body")
    for answer in (
        api.get("/v1/templates/nope"),
        api.put("/v1/templates/nope", body),
        api.get("/v1/templates/nope/versions"),
        api.post("/v1/templates/nope/approve", {"version": 1}),
        api.post("/v1/templates/nope/preview", {}),
    ):
        assert (answer.status, answer["code"]) == (404, "not_found")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ ''.__class__ }}", "names starting with _"),
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "names starting with _"),
        ("{% include 'secrets.txt' %}", "not available"),
        ("{% extends 'base.html' %}", "not available"),
        ("{% for x in y %}", "unexpected end of template"),
        ("{{ config }}", "unknown variable"),
    ],
)
def test_hostile_templates_are_refused(api: Api, text: str, expected: str) -> None:
    template = email_template(locales={"en": {"subject": "Hi", "text": "ok", "html": f"<p>{text}</p>"}})
    refused = api.post("/v1/templates", template)
    assert (refused.status, refused["code"]) == (400, "invalid_template"), refused.body
    assert refused["issues"][0]["location"] == "/locales/en/html"
    assert refused["issues"][0]["line"] == 1
    assert expected in refused["issues"][0]["message"].lower() or expected in refused["message"].lower()
    assert api.get("/v1/templates/welcome-email").status == 404


def test_template_schema_errors_point_into_the_body(api: Api) -> None:
    refused = api.post("/v1/templates", email_template(channel="fax", default_locale="de"))
    assert (refused.status, refused["code"]) == (400, "invalid_body")
    assert "/channel" in {i["location"] for i in refused["issues"]}
    missing = api.post("/v1/templates", email_template(locales={"en": {"text": "no subject"}}))
    assert (missing.status, missing["code"]) == (400, "invalid_template")
    assert missing["issues"][0]["location"] == "/locales/en/subject"


def test_preview_renders_with_missing_variables_listed(api: Api) -> None:
    assert api.post("/v1/templates", email_template()).status == 201
    preview = api.post("/v1/templates/welcome-email/preview", {"profile": ANN}, role="data_operator")
    assert preview.status == 200, preview.body
    assert preview["fields"]["subject"] == "Welcome Ann Lee"
    assert preview["locale"] == "en"  # the profile's en-US falls back to en
    assert preview["missing"] == ["person.first_name"]
    assert "ann@example.com" in preview["fields"]["text"]

    french = api.post(
        "/v1/templates/welcome-email/preview",
        {"profile": ANN, "locale": "fr", "version": 1},
        role="marketer",
    )
    assert (french["locale"], french["fields"]["subject"]) == ("fr", "Bienvenue Ann Lee")
    masked = api.post("/v1/templates/welcome-email/preview", {"profile": ANN}, role="marketer")
    assert "ann@example.com" not in json.dumps(masked.body)
    assert "a***@example.com" in masked["fields"]["text"]

    anonymous = api.post("/v1/templates/welcome-email/preview", {"vars": {"x": 1}})
    assert set(anonymous["missing"]) == {"person.name", "person.first_name", "person.email"}
    no_version = api.post("/v1/templates/welcome-email/preview", {"version": 9})
    assert (no_version.status, no_version["code"]) == (404, "not_found")
    bad_locale = api.post("/v1/templates/welcome-email/preview", {"locale": "not a locale"})
    assert (bad_locale.status, bad_locale["code"]) == (400, "invalid_body")


# ====================================================================================== messages
def test_send_message_is_idempotent_per_key_and_person(api: Api) -> None:
    approved_template(api)
    request = {
        "profile": ANN,
        "channels": ["email"],
        "template": "welcome-email",
        "category": "transactional",
        "vars": {"code": "123456"},
        "idempotencyKey": "order-1001",
    }
    first = api.post("/v1/messages", request, role="marketer")
    assert first.status == 202, first.body
    assert first["messageId"].startswith("msg_")
    assert (first["status"], first["duplicate"]) == ("queued", False)
    second = api.post("/v1/messages", request, role="marketer")
    assert second.status == 202
    assert second["messageId"] == first["messageId"]
    bodies = [m["Body"] for m in api.queue("DeliveryQueue")]
    queued = [json.loads(body) for body in bodies]
    assert {q["key"] for q in queued} == {f"api:order-1001:{api.ann_id()}"}
    assert queued[0]["origin"]["kind"] == "api"
    assert queued[0]["vars"] == {"code": "123456"}

    # Once the deliverer has recorded it, a retry is answered from the ledger and not queued.
    sent = parse_body(Delivery, bodies[0]).request
    record_message(api, sent.key, sent.origin, sent.profile_id, datetime.now(UTC), status="sending")
    third = api.post("/v1/messages", request)
    assert (third["messageId"], third["duplicate"], third["status"]) == (first["messageId"], True, "sending")
    assert api.queue("DeliveryQueue") == []

    fresh = api.post("/v1/messages", {k: v for k, v in request.items() if k != "idempotencyKey"})
    assert fresh.status == 202
    assert fresh["messageId"] != first["messageId"]


def test_send_message_refusals(api: Api) -> None:
    base = {"profile": ANN, "channels": ["email"], "template": "welcome-email", "category": "marketing"}
    unknown = api.post("/v1/messages", base)
    assert (unknown.status, unknown["code"]) == (400, "unknown_template")
    assert api.post("/v1/templates", email_template()).status == 201
    draft = api.post("/v1/messages", base)
    assert (draft.status, draft["code"]) == (400, "template_not_approved")
    api.post("/v1/templates/welcome-email/approve", {"version": 1})
    wrong_channel = api.post("/v1/messages", {**base, "channels": ["sms"]})
    assert (wrong_channel.status, wrong_channel["code"]) == (400, "invalid_body")
    nobody = api.post("/v1/messages", {**base, "profile": "email:nobody@example.com"})
    assert (nobody.status, nobody["code"]) == (404, "not_found")
    webhook = api.post("/v1/messages", {**base, "channels": ["webhook"]})
    assert (webhook.status, webhook["code"]) == (400, "invalid_body")
    assert webhook["issues"][0]["location"] == "/channels/0"
    no_category = api.post("/v1/messages", {k: v for k, v in base.items() if k != "category"})
    assert (no_category.status, no_category["code"]) == (400, "invalid_body")
    assert no_category["issues"][0]["location"] == "/category"
    per_channel = api.post(
        "/v1/messages", {**base, "channels": ["email", "sms"], "template": {"email": "welcome-email"}}
    )
    assert (per_channel.status, per_channel["code"]) == (400, "invalid_body")
    bad_key = api.post("/v1/messages", {**base, "idempotencyKey": "has spaces"})
    assert (bad_key.status, bad_key["code"]) == (400, "invalid_body")
    assert api.queue("DeliveryQueue") == []


def test_message_records_by_id_and_by_profile(api: Api) -> None:
    ann = api.ann_id()
    at = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    first = record_message(api, f"api:a:{ann}", Origin(kind="api", id="key"), ann, at)
    second = record_message(api, f"api:b:{ann}", Origin(kind="api", id="key"), ann, at.replace(minute=5))

    shown = api.get(f"/v1/messages/{first}", role="viewer")
    assert shown.status == 200, shown.body
    assert (shown["id"], shown["status"], shown["profileId"]) == (first, "sent", ann)
    assert shown["request"]["key"] == f"api:a:{ann}"
    assert [h["status"] for h in shown["history"]] == ["sending", "sent"]
    assert shown["address"] == "a***@example.com"
    assert api.get(f"/v1/messages/{first}", role="data_operator")["address"] == "ann@example.com"
    for missing in ("msg_000000000000000000000000", "not-a-message-id"):
        answer = api.get(f"/v1/messages/{missing}")
        assert (answer.status, answer["code"]) == (404, "not_found")

    page = api.get(f"/v1/profiles/{ANN}/messages", query={"limit": "1"}, role="viewer")
    assert page.status == 200, page.body
    assert (page["profileId"], [m["id"] for m in page["messages"]]) == (ann, [second])
    rest = api.get(f"/v1/profiles/{ANN}/messages", query={"cursor": page["cursor"]})
    assert [m["id"] for m in rest["messages"]] == [first]
    bad = api.get(f"/v1/profiles/{ANN}/messages", query={"cursor": "INBOX#2026"})
    assert (bad.status, bad["code"]) == (400, "invalid_cursor")
    nobody = api.get("/v1/profiles/user_id:nobody/messages")
    assert (nobody.status, nobody["code"]) == (404, "not_found")


# ====================================================================================== consent
def test_consent_goes_through_the_event_plane(api: Api) -> None:
    change = {"channel": "email", "purpose": "marketing", "granted": True, "source": "support call"}
    accepted = api.put(f"/v1/profiles/{ANN}/consent", change, role="data_operator")
    assert accepted.status == 202, accepted.body
    assert (accepted["profileId"], accepted["event"], accepted["granted"]) == (api.ann_id(), "Consent Updated", True)

    messages = api.queue("IngestQueue")
    assert len(messages) == 1
    (event,) = json.loads(messages[0]["Body"])["events"]
    assert (event["type"], event["event"], event["userId"]) == ("track", "Consent Updated", "ann")
    assert event["properties"] == change
    assert event["messageId"] == accepted["messageId"]

    record = {
        "messageId": "consent-1",
        "receiptHandle": "r",
        "body": messages[0]["Body"],
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
        "awsRegion": "us-east-1",
    }
    assert api.stack.load("ProfileUpdaterFunction").lambda_handler({"Records": [record]}, Context()) == {
        "batchItemFailures": []
    }
    profile = api.profiles().profile(api.ann_id())
    assert profile is not None
    assert profile.consent["email:marketing"]["granted"] is True

    for wrong in ({**change, "channel": "fax"}, {**change, "granted": "yes"}, {"channel": "email"}):
        refused = api.put(f"/v1/profiles/{ANN}/consent", wrong)
        assert (refused.status, refused["code"]) == (400, "invalid_body")
    nobody = api.put("/v1/profiles/user_id:nobody/consent", change)
    assert (nobody.status, nobody["code"]) == (404, "not_found")
    assert api.queue("IngestQueue") == []


def apply_ingest_queue(api: Api) -> int:
    """Hand everything on the ingest queue to the profile updater, as its event source would."""
    messages = [message["Body"] for message in api.queue("IngestQueue")]
    update(api, *messages)
    return len(messages)


def update(api: Api, *bodies: str) -> None:
    updater = api.stack.load("ProfileUpdaterFunction")
    assert updater.lambda_handler(sqs_event(bodies), Context()) == {"batchItemFailures": []}


def shown(consents: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    return [(c["channel"], c["state"], c["at"], c["source"]) for c in consents]


def test_an_imported_opt_out_outlives_older_and_blanket_grants_and_is_read_with_its_provenance(api: Api) -> None:
    # Given Ann opted out of email in Pinpoint (effective 2025-06-10), imported through the API
    assert api.post("/v1/segments", {"id": "migrated", "name": "From Pinpoint", "kind": "static"}).status == 201
    endpoint = {
        "Id": "ep-ann-email",
        "ChannelType": "EMAIL",
        "Address": "ann@example.com",
        "EndpointStatus": "ACTIVE",
        "OptOut": "ALL",
        "EffectiveDate": "2025-06-10T08:00:00.000Z",
        "User": {"UserId": "ann"},
    }
    imported = api.post("/v1/segments/migrated/import", {"format": "pinpoint-json", "data": json.dumps(endpoint)})
    assert imported.status == 202, imported.body
    apply_ingest_queue(api)
    # When the team records the grant it holds from 2024 (the guide's advice), then a blanket grant now
    dated = {
        "channel": "email",
        "purpose": "marketing",
        "granted": True,
        "source": "crm",
        "timestamp": "2024-03-01T10:00:00+01:00",
    }
    accepted = api.put(f"/v1/profiles/{ANN}/consent", dated, role="data_operator")
    assert (accepted.status, accepted["timestamp"], accepted["source"]) == (202, "2024-03-01T09:00:00.000Z", "crm")
    blanket = api.put(f"/v1/profiles/{ANN}/consent", {"channel": "*", "purpose": "marketing", "granted": True})
    assert blanket.status == 202 and blanket["source"] == "admin-api"
    assert apply_ingest_queue(api) == 2
    # Then the opt-out stands for email, with where and when it was made; other channels have the grant
    read = api.get(f"/v1/profiles/{ANN}/consent", role="data_operator")
    assert read.status == 200, read.body
    assert read["profileId"] == api.ann_id()
    assert shown(read["consents"]) == [
        ("*", "granted", blanket["timestamp"], "admin-api"),
        ("email", "refused", "2025-06-10T08:00:00.000Z", f"import:{imported['import_id']}"),
    ]
    assert [(e["channel"], e["state"], e["decidedBy"]) for e in read["effective"]] == [
        ("email", "refused", "email:marketing"),
        ("sms", "granted", "*:marketing"),
        ("push", "granted", "*:marketing"),
        ("inbox", "granted", "*:marketing"),
    ]
    # And only Ann choosing email again, after her opt-out, lifts it; replaying the old grant changes nothing
    again = {**dated, "source": "preference_center", "timestamp": "2026-01-15T12:00:00Z"}
    assert api.put(f"/v1/profiles/{ANN}/consent", again).status == 202
    assert api.put(f"/v1/profiles/{ANN}/consent", dated).status == 202
    apply_ingest_queue(api)
    email = next(c for c in api.get(f"/v1/profiles/{ANN}/consent")["consents"] if c["channel"] == "email")
    assert (email["state"], email["at"], email["source"]) == (
        "granted",
        "2026-01-15T12:00:00.000Z",
        "preference_center",
    )


def test_consent_is_read_by_data_operators_through_any_reference_to_the_person(api: Api) -> None:
    # Given an anonymous visitor who refused SMS, and who then turns out to be Ann (a merge)
    visitor = {"anonymousId": "anon-merged", "sourceId": "src_localdemo", "receivedAt": "2026-11-22T10:00:01.000Z"}
    refusal = {
        **visitor,
        "type": "track",
        "event": "Consent Updated",
        "messageId": "visitor-consent",
        "timestamp": "2026-11-22T10:00:00.000Z",
        "properties": {"channel": "sms", "purpose": "marketing", "granted": False, "source": "sms_stop"},
    }
    body = {"version": 1, "kind": "profile.events", "events": [refusal]}
    update(api, json.dumps(body))
    owners = api.profiles().identity_owners([("anonymous_id", "anon-merged")])
    visitor_id = owners[("anonymous_id", "anon-merged")]
    merge = {
        **visitor,
        "type": "identify",
        "userId": "ann",
        "messageId": "visitor-is-ann",
        "timestamp": "2026-11-22T10:00:02.000Z",
    }
    update(api, json.dumps({**body, "events": [merge]}))
    survivor = api.ann_id()
    merged_away = visitor_id if visitor_id != survivor else api.profiles().profile(survivor).merged_from[0]  # type: ignore[union-attr]
    assert merged_away != survivor
    # When the consent is read by the merged-away id, by an identifier, or by the survivor's id
    answers = [api.get(f"/v1/profiles/{ref}/consent") for ref in (merged_away, "anonymous_id:anon-merged", survivor)]
    # Then each answers for the surviving person, with the visitor's refusal on it
    for answer in answers:
        assert answer.status == 200, answer.body
        assert answer["profileId"] == survivor
        assert shown(answer["consents"]) == [("sms", "refused", "2026-11-22T10:00:00.000Z", "sms_stop")]
    # And below data_operator it is forbidden; an unknown person is 404
    for role in ("viewer", "marketer"):
        forbidden = api.get(f"/v1/profiles/{ANN}/consent", role=role)
        assert (forbidden.status, forbidden["code"]) == (403, "forbidden")
    nobody = api.get("/v1/profiles/user_id:nobody/consent")
    assert (nobody.status, nobody["code"]) == (404, "not_found")


def test_a_consent_dated_in_the_future_or_without_a_zone_is_refused_and_queues_nothing(api: Api) -> None:
    change = {"channel": "email", "purpose": "marketing", "granted": True}
    for timestamp in ("2099-01-01T00:00:00Z", "2026-11-22T10:00:00", "0001-01-01T00:00:00+05:00", "yesterday", 1e12):
        refused = api.put(f"/v1/profiles/{ANN}/consent", {**change, "timestamp": timestamp})
        assert (refused.status, refused["code"]) == (400, "invalid_body"), (timestamp, refused.body)
        assert refused["issues"][0]["location"] == "/timestamp"
    unpaired = api.put(f"/v1/profiles/{ANN}/consent", {**change, "timestamp": "\udcff"})
    assert (unpaired.status, unpaired["code"]) == (400, "invalid_text")
    assert api.queue("IngestQueue") == []


# ====================================================================================== inbox
def test_inbox_lists_newest_first_and_marks_read(api: Api) -> None:
    ann = api.ann_id()
    store = api.inbox()
    for n in range(3):
        store.put(
            ann, f"msg_{n:024d}", f"Title {n}", "Your code: ann@example.com", datetime(2026, 11, 22, 10, n, tzinfo=UTC)
        )
    page = api.get(f"/v1/profiles/{ANN}/inbox", query={"limit": "2"}, role="viewer")
    assert page.status == 200, page.body
    assert [e["title"] for e in page["entries"]] == ["Title 2", "Title 1"]
    assert page["entries"][0]["readAt"] is None
    assert "ann@example.com" not in json.dumps(page.body)  # masked for viewers
    rest = api.get(f"/v1/profiles/{ANN}/inbox", query={"limit": "2", "cursor": page["cursor"]})
    assert [e["title"] for e in rest["entries"]] == ["Title 0"]

    one = page["entries"][0]["cursor"]
    marked = api.post(f"/v1/profiles/{ANN}/inbox/read", {"cursors": [one, "INBOX#nope"]}, role="marketer")
    assert marked.status == 200, marked.body
    assert (marked["marked"], marked["notFound"]) == (1, ["INBOX#nope"])
    everything = api.post(f"/v1/profiles/{ANN}/inbox/read", {"all": True})
    assert everything["marked"] == 2
    entries = api.get(f"/v1/profiles/{ANN}/inbox")["entries"]
    assert all(e["readAt"] for e in entries)
    assert entries[0]["body"] == "Your code: ann@example.com"  # admin: unmasked

    wrongs: list[dict[str, Any]] = [{}, {"all": False}, {"all": True, "cursors": [one]}, {"cursors": []}]
    for wrong in wrongs:
        refused = api.post(f"/v1/profiles/{ANN}/inbox/read", wrong)
        assert (refused.status, refused["code"]) == (400, "invalid_body"), wrong
    bad_cursor = api.get(f"/v1/profiles/{ANN}/inbox", query={"cursor": "MREF#x"})
    assert (bad_cursor.status, bad_cursor["code"]) == (400, "invalid_cursor")


# ====================================================================================== suppressions
def test_suppressions_are_kept_per_normalised_address(api: Api) -> None:
    path = f"/v1/suppressions/email/{quote('Ann@Example.com', safe='')}"
    put = api.put(path, {"reason": "manual", "scope": "marketing", "detail": "asked by phone"}, role="data_operator")
    assert put.status == 200, put.body
    assert (put["address"], put["scope"], put["reason"]) == ("ann@example.com", "marketing", "manual")
    shown = api.get("/v1/suppressions/email/ann%40example.com", role="viewer")
    assert (shown.status, shown["detail"]) == (200, "asked by phone")
    widened = api.put(path, {"scope": "all"})
    assert widened["scope"] == "all"
    narrowed = api.put(path, {"scope": "marketing"})  # a stronger scope is never narrowed
    assert narrowed["scope"] == "all"

    phone = api.put(f"/v1/suppressions/sms/{quote('+1 415 555 0100', safe='')}", {})
    assert (phone.status, phone["address"], phone["scope"]) == (200, "+14155550100", "all")
    assert api.get("/v1/suppressions/sms/%2B14155550100").status == 200
    assert api.put("/v1/suppressions/push/apns-token-abc", {"reason": "hard_bounce"}).status == 200

    assert api.delete(path, role="data_operator").status == 204
    gone = api.get(path)
    assert (gone.status, gone["code"]) == (404, "not_found")
    again = api.delete(path)
    assert (again.status, again["code"]) == (404, "not_found")

    for wrong, code in (
        ("/v1/suppressions/fax/123", "invalid_channel"),
        ("/v1/suppressions/email/not-an-email", "invalid_address"),
        ("/v1/suppressions/sms/12", "invalid_address"),
    ):
        answer = api.put(wrong, {})
        assert (answer.status, answer["code"]) == (400, code)
        assert api.get(wrong)["code"] == code
    bad_body = api.put(path, {"scope": "some"})
    assert (bad_body.status, bad_body["code"]) == (400, "invalid_body")
    assert bad_body["issues"][0]["location"] == "/scope"


# ====================================================================================== settings
def test_webhook_secret_is_stable_and_admin_only(api: Api) -> None:
    first = api.get("/v1/settings/webhook-secret")
    assert first.status == 200
    assert len(bytes.fromhex(first["secret"])) == 32
    assert api.get("/v1/settings/webhook-secret")["secret"] == first["secret"]


def test_signing_secrets_rotate_through_the_api_and_old_keys_stay_listed_until_removed(api: Api) -> None:
    # Given the secrets as first made: one key each, k0
    before = api.get("/v1/settings/webhook-secret")
    listed = api.get("/v1/settings/secrets")
    assert listed.status == 200
    assert [(s["name"], s["currentKeyId"]) for s in listed["secrets"]] == [("links", "k0"), ("webhooks", "k0")]
    assert before["keyId"] == "k0"
    assert "secret" not in json.dumps(listed.body).replace('"secrets"', "")  # no key material listed

    # When the webhook secret is rotated, keeping the old key two days
    rotated = api.post("/v1/settings/secrets/webhooks/rotate", {"keepOldKeyDays": 2})

    # Then the new key signs, the old one still verifies, and the webhook-secret route shows both
    assert rotated.status == 200
    assert rotated["currentKeyId"] == "k1"
    assert [(k["id"], k["state"]) for k in rotated["keys"]] == [("k0", "retired"), ("k1", "current")]
    assert rotated["keys"][0]["expiresAt"] is not None
    after = api.get("/v1/settings/webhook-secret")
    assert after["secret"] != before["secret"]
    assert [(k["keyId"], k["secret"]) for k in after["keys"]] == [("k1", after["secret"]), ("k0", before["secret"])]

    # And removing the retired key leaves the new one alone
    removed = api.delete("/v1/settings/secrets/webhooks/keys/k0")
    assert (removed.status, [k["id"] for k in removed["keys"]]) == (200, ["k1"])
    assert [k["keyId"] for k in api.get("/v1/settings/webhook-secret")["keys"]] == ["k1"]


def test_signing_secret_refusals_are_clear(api: Api) -> None:
    unknown = api.post("/v1/settings/secrets/passwords/rotate", {})
    current = api.delete("/v1/settings/secrets/links/keys/k0")
    missing = api.delete("/v1/settings/secrets/links/keys/k7")
    negative = api.post("/v1/settings/secrets/links/rotate", {"keepOldKeyDays": -1})
    extra = api.post("/v1/settings/secrets/links/rotate", {"keep": 3})

    assert (unknown.status, unknown["code"]) == (404, "secret_not_found")
    assert (current.status, current["code"]) == (409, "key_ring_conflict")
    assert (missing.status, missing["code"]) == (404, "key_not_found")
    assert (negative.status, negative["code"], negative["issues"][0]["location"]) == (
        400,
        "invalid_body",
        "/keepOldKeyDays",
    )
    assert (extra.status, extra["code"]) == (400, "invalid_body")
    assert api.get("/v1/settings/secrets")["secrets"][0]["currentKeyId"] == "k0"  # nothing changed
