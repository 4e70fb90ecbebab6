"""Hostile input through the real handlers on moto: what an API fuzzer and hand-made requests
found. Bad input gets a clear 4xx, one bad event never sinks the others, nothing acknowledged
is lost afterwards, and no answer is anything but strict JSON."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from jinja2.filters import FILTERS

from midstage.adapters.config_store import ConfigStore
from midstage.adapters.profile_store import ProfileStore
from midstage.models.admin import Source, stamp
from tests.integration.conftest import Context, Stack

CREATED = datetime(2026, 1, 5, 9, tzinfo=UTC)  # when the fixture's source and keys were made
ROLES = ("viewer", "marketer", "data_operator", "admin")
SECRET_LOCAL = "zqxjkvwb.secret"
SECRET_EMAIL = f"{SECRET_LOCAL}@example.org"
SECRET_PHONE = "+14155559876"


def _strict(text: str) -> Any:
    """Parse as a browser's JSON.parse would: NaN and Infinity are not JSON."""

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


class Http:
    """Payload-2.0 events for the collect and admin handlers, answers parsed strictly."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        config = ConfigStore(stack.output("ConfigTableName"), client=stack.clients.dynamodb())
        config.create_source(
            Source(id="src_localdemo", name="demo", write_key="wk_local_demo", created_at=stamp(CREATED))
        )
        for role in ROLES:
            config.create_api_key(role, role, f"msk_{role}", now=CREATED)
        self.collect = stack.load("CollectFunction")
        self.admin = stack.load("AdminFunction")
        self.updater = stack.load("ProfileUpdaterFunction")

    @staticmethod
    def event(method: str, path: str, body: str | bytes | None, headers: dict[str, str]) -> dict[str, Any]:
        binary = isinstance(body, bytes)
        return {
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": path,
            "rawQueryString": "",
            "headers": {"content-type": "application/json", **headers},
            "requestContext": {
                "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7"},
                "requestId": "req",
                "routeKey": "$default",
                "stage": "$default",
            },
            "body": base64.b64encode(body).decode() if isinstance(body, bytes) else body,
            "isBase64Encoded": binary,
        }

    def track(self, endpoint: str, raw: str) -> tuple[int, Any]:
        auth = "Basic " + base64.b64encode(b"wk_local_demo:").decode()
        answer = self.collect.lambda_handler(
            self.event("POST", f"/v1/{endpoint}", raw, {"authorization": auth}), Context()
        )
        return answer["statusCode"], _strict(answer["body"])

    def call(self, method: str, path: str, body: str | bytes | None = None, role: str = "admin") -> tuple[int, Any]:
        event = self.event(method, path, body, {"authorization": f"Bearer msk_{role}"})
        answer = self.admin.lambda_handler(event, Context())
        text = answer.get("body") or ""
        return answer["statusCode"], _strict(text) if text else None

    def apply_queued(self) -> dict[str, Any]:
        """Run the profile updater over everything on the ingest queue, as its mapping would."""
        url = self.stack.queue_urls[next(q.arn for q in self.stack.model.queues if q.logical_id == "IngestQueue")]
        sqs = self.stack.clients.sqs()
        records: list[dict[str, Any]] = []
        while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
            for message in messages:
                records.append(
                    {
                        "messageId": message["MessageId"],
                        "receiptHandle": message["ReceiptHandle"],
                        "body": message["Body"],
                        "attributes": {"ApproximateReceiveCount": "1"},
                        "messageAttributes": {},
                        "eventSource": "aws:sqs",
                        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
                        "awsRegion": "us-east-1",
                    }
                )
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        if not records:
            return {"batchItemFailures": []}
        return dict(self.updater.lambda_handler({"Records": records}, Context()))

    def profiles(self) -> ProfileStore:
        return ProfileStore(self.stack.output("DataTableName"), client=self.stack.clients.dynamodb())


@pytest.fixture
def http(stack: Stack) -> Http:
    return Http(stack)


# ====================================================================================== 1. UTF-8
ADMIN_WRITES = [
    ("POST", "/v1/sources"),
    ("PATCH", "/v1/sources/src_localdemo"),
    ("POST", "/v1/api-keys"),
    ("POST", "/v1/rules"),
    ("POST", "/v1/rules/validate"),
    ("PUT", "/v1/rules/r1"),
    ("PATCH", "/v1/rules/r1"),
    ("POST", "/v1/rules/r1/dry-run"),
    ("POST", "/v1/templates"),
    ("PUT", "/v1/templates/t1"),
    ("POST", "/v1/templates/t1/approve"),
    ("POST", "/v1/templates/t1/preview"),
    ("POST", "/v1/messages"),
    ("PUT", "/v1/profiles/user_id:ann/consent"),
    ("POST", "/v1/profiles/user_id:ann/inbox/read"),
    ("PUT", "/v1/suppressions/email/ann%40example.com"),
    ("POST", "/v1/segments"),
    ("POST", "/v1/segments/estimate"),
    ("PUT", "/v1/segments/s1"),
    ("POST", "/v1/segments/s1/import"),
    ("POST", "/v1/campaigns"),
    ("PUT", "/v1/campaigns/c1"),
    ("POST", "/v1/journeys"),
    ("POST", "/v1/journeys/validate"),
    ("PUT", "/v1/journeys/j1"),
    ("PATCH", "/v1/journeys/j1"),
]


def test_an_admin_body_that_is_not_utf8_is_400_invalid_json_on_every_write_route(http: Http) -> None:
    answers = {(m, p): http.call(m, p, b'{"name": "\xff\xfe caf\xe9"}') for m, p in ADMIN_WRITES}
    wrong = {
        route: answer for route, answer in answers.items() if (answer[0], answer[1]["code"]) != (400, "invalid_json")
    }
    assert wrong == {}


# ====================================================================================== 2, 3, 5. text at intake
POISONED = [
    # (where, the event as raw JSON text, code)
    ("user id", '{"type":"track","userId":"x\\ud800","event":"E"}', "invalid_text"),
    ("event name", '{"type":"track","userId":"p1","event":"Bad \\udfff"}', "invalid_text"),
    ("property key", '{"type":"track","userId":"p2","event":"E","properties":{"k\\ud83d":1}}', "invalid_text"),
    (
        "nested property value",
        '{"type":"track","userId":"p3","event":"E","properties":{"items":[{"name":"a\\ud800b"}]}}',
        "invalid_text",
    ),
    ("trait value", '{"type":"identify","userId":"p4","traits":{"nickname":"\\udc00"}}', "invalid_text"),
    (
        "context value",
        '{"type":"track","userId":"p5","event":"E","context":{"page":{"title":"\\ud800"}}}',
        "invalid_text",
    ),
    ("huge number", '{"type":"track","userId":"p6","event":"E","properties":{"revenue":1e999999}}', "invalid_number"),
    ("NaN literal", '{"type":"track","userId":"p7","event":"E","properties":{"score":NaN}}', "invalid_number"),
    ("Infinity literal", '{"type":"identify","userId":"p8","traits":{"ltv":-Infinity}}', "invalid_number"),
]


def test_unstorable_text_and_numbers_are_refused_per_event_and_the_rest_is_applied(http: Http) -> None:
    good = [
        '{"type":"identify","userId":"good","traits":{"name":"Zo\\u00eb \\ud83d\\ude00","email":"good@example.com"}}',
        '{"type":"track","userId":"good","event":"Order Completed","properties":{"revenue":12.5}}',
    ]
    raw = '{"batch":[' + ",".join([good[0], *(event for _, event, _ in POISONED), good[1]]) + "]}"
    status, body = http.track("batch", raw)
    assert status == 200, body
    assert body["accepted"] == 2
    assert [(r["index"], r["code"]) for r in body["rejected"]] == [
        (index, code) for index, (_, _, code) in enumerate(POISONED, start=1)
    ]
    assert all(r["message"] for r in body["rejected"])

    # The quarantine keeps each of them with its reason, the bad text stored escaped.
    status, quarantine = http.call("GET", "/v1/sources/src_localdemo/quarantine", role="data_operator")
    assert status == 200, quarantine
    kept = sorted(quarantine["entries"], key=lambda e: e["index"])
    assert [(e["index"], e["code"]) for e in kept] == [(i, c) for i, (_, _, c) in enumerate(POISONED, start=1)]
    assert "\\ud800" in kept[0]["payload"]

    # Nothing after the acknowledgement fails: the updater applies every accepted event.
    assert http.apply_queued() == {"batchItemFailures": []}
    status, profile = http.call("GET", "/v1/profiles/user_id:good", role="data_operator")
    assert status == 200, profile
    assert profile["traits"]["name"] == "Zo\u00eb \U0001f600"
    assert profile["computed"]["orders"] == 1
    status, timeline = http.call("GET", "/v1/profiles/user_id:good/timeline")
    assert sorted(e["type"] for e in timeline["events"]) == ["identify", "track"]


def test_a_single_call_with_unstorable_input_is_a_400_not_a_retry(http: Http) -> None:
    wrong = {}
    for where, event, code in POISONED:
        endpoint = re.search(r'"type":"(\w+)"', event).group(1)  # type: ignore[union-attr]
        status, body = http.track(endpoint, event)
        if (status, body.get("code")) != (400, code):
            wrong[where] = (status, body)
    assert wrong == {}


def test_a_write_key_in_the_body_that_is_not_text_is_refused_as_unknown(http: Http) -> None:
    raw = '{"writeKey":"wk_\\ud800","batch":[{"type":"track","userId":"u","event":"E"}]}'
    event = http.event("POST", "/v1/batch", raw, {})
    answer = http.collect.lambda_handler(event, Context())
    assert (answer["statusCode"], _strict(answer["body"])["code"]) == (401, "unauthorized")


ADMIN_POISON = [
    (
        "template text",
        "POST",
        "/v1/templates",
        '{"id":"t1","name":"T","channel":"sms","locales":{"en":{"body":"Hi \\ud800"}}}',
        "invalid_text",
    ),
    (
        "rule condition value",
        "POST",
        "/v1/rules",
        '{"id":"r1","name":"R","trigger":{"type":"event","event":"E"},'
        '"conditions":{"path":"traits.score","op":"gt","value":NaN},"actions":[{"type":"add_tag","tag":"x"}]}',
        "invalid_number",
    ),
    (
        "rule trait value",
        "POST",
        "/v1/rules",
        '{"id":"r2","name":"R","trigger":{"type":"event","event":"E"},'
        '"actions":[{"type":"set_trait","name":"score","value":1e999999}]}',
        "invalid_number",
    ),
    (
        "consent source",
        "PUT",
        "/v1/profiles/user_id:ann/consent",
        '{"channel":"email","purpose":"marketing","granted":true,"source":"form \\udc00"}',
        "invalid_text",
    ),
    ("source name", "POST", "/v1/sources", '{"name":"Web \\ud800"}', "invalid_text"),
    (
        "segment key",
        "POST",
        "/v1/segments/estimate",
        '{"condition":{"path":"traits.x","op":"eq","value":{"\\ud800":1}}}',
        "invalid_text",
    ),
    (
        "message vars",
        "POST",
        "/v1/messages",
        '{"profile":"user_id:ann","channels":["sms"],"template":"t1","category":"transactional","vars":{"n":Infinity}}',
        "invalid_number",
    ),
    ("validate", "POST", "/v1/journeys/validate", '{"id":"j","name":"\\ud800"}', "invalid_text"),
]


def test_admin_bodies_with_unstorable_values_are_refused(http: Http) -> None:
    answers = {where: http.call(method, path, raw) for where, method, path, raw, _ in ADMIN_POISON}
    expected = {where: (400, code) for where, _, _, _, code in ADMIN_POISON}
    assert {where: (status, body["code"]) for where, (status, body) in answers.items()} == expected
    assert all(body["message"] for _, body in answers.values())


def test_a_pinpoint_import_row_with_unstorable_values_is_rejected_alone(http: Http) -> None:
    segment = {"id": "imported", "name": "Imported", "kind": "static"}
    assert http.call("POST", "/v1/segments", json.dumps(segment), role="marketer")[0] == 201
    lines = [
        json.dumps({"Id": "e1", "ChannelType": "EMAIL", "Address": "one@example.com", "User": {"UserId": "one"}}),
        '{"Id":"e2","ChannelType":"EMAIL","Address":"two@example.com","User":{"UserId":"two",'
        '"UserAttributes":{"score":[NaN]}}}',
        '{"Id":"e3","ChannelType":"EMAIL","Address":"three@example.com","User":{"UserId":"thr\\ud800ee"}}',
    ]
    request = {"format": "pinpoint-json", "data": "\n".join(lines)}
    status, report = http.call("POST", "/v1/segments/imported/import", json.dumps(request), role="marketer")
    assert status == 202, report
    assert report["people"] == 1
    assert [r["line"] for r in report["rejected"]] == [2, 3]
    assert http.apply_queued() == {"batchItemFailures": []}


def test_answers_are_strict_json_even_over_values_stored_before_the_checks(http: Http) -> None:
    status, _ = http.track("identify", '{"userId":"old","traits":{"plan":"pro"}}')
    assert status == 200
    assert http.apply_queued() == {"batchItemFailures": []}
    store = http.profiles()
    profile_id = store.identity_owners([("user_id", "old")])[("user_id", "old")]
    profile = store.profile(profile_id)
    assert profile is not None
    profile.traits.update(score=float("nan"), ltv=float("inf"))
    assert store.put_profile_if_unchanged(profile)  # as a version without the intake checks wrote it
    status, shown = http.call("GET", "/v1/profiles/user_id:old")
    assert status == 200, shown
    assert shown["traits"]["score"] is None
    assert shown["traits"]["ltv"] is None


# ====================================================================================== 7. missing bodies
BODY_REQUIRED = [
    ("POST", "/v1/rules/validate"),
    ("POST", "/v1/journeys/validate"),
    ("POST", "/v1/templates/t1/preview"),
    ("POST", "/v1/rules/r1/dry-run"),
    ("PUT", "/v1/suppressions/email/ann%40example.com"),
    ("PUT", "/v1/profiles/user_id:ann/consent"),
]


def test_routes_whose_body_is_required_refuse_a_missing_one(http: Http) -> None:
    answers = {(m, p, repr(b)): http.call(m, p, b) for m, p in BODY_REQUIRED for b in (None, "", "  ")}
    assert {route: (status, body["code"]) for route, (status, body) in answers.items()} == {
        route: (400, "empty_body") for route in answers
    }


def test_a_suppression_without_a_body_records_nothing(http: Http) -> None:
    assert http.call("PUT", "/v1/suppressions/email/ann%40example.com", None)[0] == 400
    status, _ = http.call("GET", "/v1/suppressions/email/ann%40example.com")
    assert status == 404


def test_a_revoked_key_stops_working_at_once(http: Http) -> None:
    status, created = http.call("POST", "/v1/api-keys", json.dumps({"name": "temp", "role": "viewer"}))
    assert status == 201
    secret = created["secret"]

    def with_key() -> int:
        event = http.event("GET", "/v1/rules", None, {"authorization": f"Bearer {secret}"})
        return int(http.admin.lambda_handler(event, Context())["statusCode"])

    assert with_key() == 200  # the key is now known to this container
    assert http.call("DELETE", f"/v1/api-keys/{created['id']}")[0] == 200
    assert with_key() == 401


# ====================================================================================== 4. masking
FILTER_ARGUMENTS = {
    "attr": "('upper')",
    "batch": "(3)",
    "center": "(60)",
    "format": "('x')",
    "groupby": "('real')",
    "indent": "(2)",
    "join": "(',')",
    "map": "('upper')",
    "rejectattr": "('real')",
    "replace": "('@', ' at ')",
    "selectattr": "('real')",
    "slice": "(3)",
    "sum": "(start='')",
    "truncate": "(200)",
    "wordwrap": "(5)",
}


def _filter_calls(value: str) -> list[str]:
    """Every built-in filter applied to `value` (with arguments where one is needed), as is and
    made into a list, so that lazy results are printed too."""
    calls = []
    for name in sorted(FILTERS):
        call = f"{value}|{name}{FILTER_ARGUMENTS.get(name, '')}"
        calls += [f"{{{{ {call} }}}}", f"{{{{ ({call})|list }}}}"]
    return calls


COMPOSITIONS = [
    "{{ person.email|reverse }}",
    "{{ person.email|list|join('-') }}",
    "{{ person.email|list|reverse|join }}",
    "{{ person.email[::-1] }}",
    "{{ person.email[1:] }}",
    "{{ person.email[1:8] }}",
    "{{ person.email|replace('@', ' at ')|upper }}",
    "{{ person.email|urlencode }}",
    "{{ person.email|map('upper')|join }}",
    "{{ person.email.split('@')|first }}",
    "{{ person.email.encode('utf-8') }}",
    "{{ person.email|batch(2)|map('join')|join('|') }}",
    "{% for c in person.email %}{{ c }}.{% endfor %}",
    "{% for c in person.email|reverse %}{{ c }}{% endfor %}",
    "{{ person|tojson }}",
    "{{ person|dictsort }}",
    "{{ person|xmlattr }}",
    "{{ person.items()|list }}",
    "{{ person.values()|map('string')|map('reverse')|join(',') }}",
    "{{ person.phone|reverse }}",
    "{{ person.phone|list|join(' ') }}",
    "{{ person.phone[3:] }}",
    "{{ person.contact.email|reverse }}",
    "{{ person.backup|replace('.', '')|reverse }}",
]


def _leaks(text: str) -> list[str]:
    """Signs of the secret email or phone in any arrangement a filter can produce."""
    squeezed = "".join(ch for ch in text.lower() if ch.isalnum())
    signs = {"zqxjkvwb", "qxjkvwb", "55598", "59876"}
    found = [s for s in signs if s in squeezed or s[::-1] in squeezed]
    unquoted = text.replace("%40", "@").lower()
    found += [s for s in (SECRET_EMAIL, SECRET_PHONE) if s in unquoted or s[::-1] in unquoted]
    return found


def test_no_filter_or_composition_recovers_masked_contact_data(http: Http) -> None:
    identify = {
        "userId": "secret-person",
        "traits": {
            "email": SECRET_EMAIL,
            "phone": SECRET_PHONE,
            "contact": {"email": SECRET_EMAIL.upper()},
            "backup": f"write to {SECRET_EMAIL}",
        },
    }
    assert http.track("identify", json.dumps(identify))[0] == 200
    assert http.apply_queued() == {"batchItemFailures": []}
    sources = (
        [*_filter_calls("person.email"), *_filter_calls("person.phone"), *COMPOSITIONS]
        + [f"{{{{ person|{name} }}}}" for name in ("dictsort", "xmlattr", "tojson", "list", "string", "pprint")]
        + [f"{{{{ person.items()|{name} }}}}" for name in ("list", "string", "first", "last")]
    )
    rendered: list[tuple[str, str]] = []
    for number, source in enumerate(sources):
        template = {"id": f"probe-{number}", "name": "probe", "channel": "sms", "locales": {"en": {"body": source}}}
        status, _ = http.call("POST", "/v1/templates", json.dumps(template), role="marketer")
        if status != 201:
            continue  # refused at save time: cannot be previewed at all
        status, preview = http.call(
            "POST",
            f"/v1/templates/probe-{number}/preview",
            json.dumps({"profile": "user_id:secret-person"}),
            role="marketer",
        )
        if status == 200:
            rendered.append((source, preview["fields"]["body"]))
        else:
            assert status == 422, (source, preview)  # a render refused (wrong type...) shows nothing
    leaks = [(source, body, _leaks(body)) for source, body in rendered if _leaks(body)]
    assert leaks == []
    assert len(rendered) > len(FILTERS)  # most filters really rendered something

    # The data operator sees the clear values through the same preview.
    reverse_source = next(i for i, s in enumerate(sources) if s == "{{ person.email|reverse }}")
    status, clear = http.call(
        "POST",
        f"/v1/templates/probe-{reverse_source}/preview",
        json.dumps({"profile": "user_id:secret-person"}),
        role="data_operator",
    )
    assert clear["fields"]["body"] == SECRET_EMAIL[::-1]


def test_the_timeline_and_profile_mask_contact_data_wherever_it_occurs(http: Http) -> None:
    identify = {"userId": "tl", "traits": {"email": SECRET_EMAIL, "note": f"reach me at {SECRET_EMAIL}"}}
    receipt = {"userId": "tl", "event": "Receipt Sent", "properties": {"to": SECRET_EMAIL.upper()}}
    assert http.track("identify", json.dumps(identify))[0] == 200
    assert http.track("track", json.dumps(receipt))[0] == 200
    assert http.apply_queued() == {"batchItemFailures": []}
    for role in ("viewer", "marketer"):
        for path in ("/v1/profiles/user_id:tl", "/v1/profiles/user_id:tl/timeline"):
            status, body = http.call("GET", path, role=role)
            assert status == 200
            assert not _leaks(json.dumps(body)), (role, path, body)
    status, body = http.call("GET", "/v1/profiles/user_id:tl/timeline", role="data_operator")
    assert SECRET_EMAIL.upper() in json.dumps(body)
    status, body = http.call("GET", "/v1/profiles/user_id:tl", role="data_operator")
    assert body["traits"]["note"] == f"reach me at {SECRET_EMAIL}"
