"""The audit log through the real admin handler on moto: what an admin write and a read of a
person's data leave in it, the listing and its filters, one unbroken chain under concurrent
appends, tampering with a stored item found by `GET /v1/audit/verify` and by
`python -m midstage.cli audit verify`, and the failure policy (a personal read fails closed, a write stands)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from midstage import cli
from midstage.adapters.audit_store import AuditStore
from midstage.adapters.config_store import ConfigStore
from midstage.http import to_json
from midstage.logic import audit
from tests.integration.conftest import Stack
from tests.integration.test_admin_messaging import ROLES, Api
from tests.support.concurrency import race

ADDRESS = "ann@example.com"


@pytest.fixture
def api(stack: Stack) -> Api:
    config = ConfigStore(stack.output("ConfigTableName"), client=stack.clients.dynamodb())
    for role in ROLES:
        config.create_api_key(role, role, f"msk_{role}", now=datetime.now(UTC))
    return Api(stack, stack.load("AdminFunction"))


def key_id(api: Api, role: str) -> str:
    config = ConfigStore(api.stack.output("ConfigTableName"), client=api.stack.clients.dynamodb())
    found = config.api_key(f"msk_{role}")
    assert found is not None
    return found.id


def store(stack: Stack) -> AuditStore:
    return AuditStore(stack.output("AuditTableName"), client=stack.clients.dynamodb())


def entries(stack: Stack) -> list[dict[str, Any]]:
    log = store(stack)
    head = log.head()
    return list(log.walk(head["seq"] if head else 0))


def test_an_admin_write_is_recorded_with_who_what_and_digests(api: Api) -> None:
    # Given a data operator's key
    body = {"reason": "complaint", "scope": "all"}
    # When they suppress an address
    answer = api.put(f"/v1/suppressions/email/{ADDRESS}", body, role="data_operator")
    assert answer.status == 200
    # Then one entry records it: the key, its role, the route's template, the address only as
    # a digest, the body's and the answer's digests, the status, and the chain's first link
    (entry,) = entries(api.stack)
    assert entry["actor"] == key_id(api, "data_operator")
    assert entry["role"] == "data_operator"
    assert entry["kind"] == "write"
    assert entry["action"] == "PUT /v1/suppressions/{channel}/{address}"
    assert entry["target"] == f"channel={audit.digest('email')}/address={audit.digest(ADDRESS)}"
    assert entry["bodyDigest"] == audit.digest(json.dumps(body))
    assert entry["resultDigest"] == audit.digest(to_json(answer.body))
    assert entry["status"] == 200
    assert (entry["seq"], entry["prev"]) == (1, audit.GENESIS)
    assert entry["requestId"] == "req"
    # And nothing in the stored item spells the address
    raw = api.stack.clients.dynamodb().scan(TableName=api.stack.output("AuditTableName"))["Items"]
    assert ADDRESS not in json.dumps(raw)


def test_a_read_of_personal_data_is_recorded_and_an_ordinary_read_is_not(api: Api) -> None:
    assert api.put(f"/v1/suppressions/email/{ADDRESS}", {}, role="data_operator").status == 200
    # When a viewer reads the suppression (a person's data) and the rules (nobody's)
    read = api.get(f"/v1/suppressions/email/{ADDRESS}", role="viewer")
    assert api.get("/v1/rules", role="viewer").status == 200
    # Then the personal read is the second entry, and the list of rules left none
    assert read.status == 200
    write, personal = entries(api.stack)
    assert personal["kind"] == "read"
    assert personal["action"] == "GET /v1/suppressions/{channel}/{address}"
    assert personal["actor"] == key_id(api, "viewer")
    assert personal["resultDigest"] == audit.digest(to_json(read.body))
    assert personal["prev"] == write["hash"]


def test_a_refused_write_is_recorded_with_its_status_and_a_caller_refused_entry_is_not(api: Api) -> None:
    # When a write is refused by the route (no such source) and another by the guard (role)
    assert api.delete("/v1/sources/none-such", role="admin").status == 404
    assert api.delete("/v1/sources/none-such", role="marketer").status == 403
    # Then the route's refusal is an entry; the guard's is not (the caller was never admitted)
    (entry,) = entries(api.stack)
    assert entry["action"] == "DELETE /v1/sources/{source_id}"
    assert (entry["target"], entry["status"]) == ("source_id=none-such", 404)


def test_the_listing_filters_and_pages_and_only_an_admin_reads_it(api: Api) -> None:
    for n in range(5):
        assert api.put(f"/v1/suppressions/email/p{n}@example.com", {}, role="data_operator").status == 200
    assert api.get("/v1/suppressions/email/p3@example.com", role="viewer").status == 200

    first = api.get("/v1/audit", query={"limit": "2"})
    second = api.get("/v1/audit", query={"limit": "2", "cursor": first["cursor"]})
    reads = api.get("/v1/audit", query={"kind": "read"})
    of_p3 = api.get("/v1/audit", query={"target": "p3@example.com"})
    of_viewer = api.get("/v1/audit", query={"actor": key_id(api, "viewer")})
    later = api.get("/v1/audit", query={"since": "2999-01-01T00:00:00Z"})

    assert [e["seq"] for e in first["entries"]] == [6, 5]
    assert [e["seq"] for e in second["entries"]] == [4, 3]
    assert [e["seq"] for e in reads["entries"]] == [6]
    assert [e["seq"] for e in of_p3["entries"]] == [6, 4]
    assert [e["seq"] for e in of_viewer["entries"]] == [6]
    assert later["entries"] == []
    assert api.get("/v1/audit", role="data_operator").status == 403
    assert api.get("/v1/audit", query={"since": "last week"}).status == 400
    assert api.get("/v1/audit", query={"cursor": "E#1"}).status == 400


def test_concurrent_appends_keep_one_unbroken_chain(stack: Stack) -> None:
    # Given the audit table and eight writers released at once, each appending three entries
    log = store(stack)

    def write(n: int) -> list[int]:
        own = AuditStore(stack.output("AuditTableName"), client=stack.clients.dynamodb())
        return [own.append({"actor": f"writer-{n}", "status": r})["seq"] for r in range(3)]

    numbers = race(8, write)

    # Then every append got its own number, with no gap, and the chain verifies
    assert sorted(seq for taken in numbers for seq in taken) == list(range(1, 25))
    head = log.head()
    assert head is not None and head["seq"] == 24
    verdict = audit.verify(log.walk(24), head)
    assert verdict.broken is None and verdict.checked == 24


def test_tampering_with_a_stored_entry_is_found_by_the_api_and_the_command(
    api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    for n in range(4):
        assert api.put(f"/v1/suppressions/email/p{n}@example.com", {}, role="data_operator").status == 200
    assert api.get("/v1/audit/verify")["valid"] is True
    table = api.stack.output("AuditTableName")
    dynamodb = api.stack.clients.dynamodb()
    # When someone rewrites who made the second change, straight in the table
    item = dynamodb.get_item(TableName=table, Key={"pk": {"S": "AUDIT"}, "sk": {"S": "E#000000000002"}})["Item"]
    dynamodb.put_item(TableName=table, Item={**item, "actor": {"S": "someone-else"}})

    # Then the API names the entry and why
    verdict = api.get("/v1/audit/verify")
    assert verdict["valid"] is False
    assert verdict["firstBroken"] == {"seq": 2, "reason": "its hash does not match its content"}
    assert verdict["checked"] == 1
    # And so does the command, exiting 1
    assert cli.main(["audit", "verify", "--table", table]) == 1
    printed = json.loads(capsys.readouterr().out)
    assert printed["firstBroken"] == {"seq": 2, "reason": "its hash does not match its content"}


def test_a_deleted_entry_is_found_by_the_command(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    for n in range(3):
        assert api.put(f"/v1/suppressions/email/p{n}@example.com", {}, role="data_operator").status == 200
    table = api.stack.output("AuditTableName")
    assert cli.main(["audit", "verify", "--table", table]) == 0
    head = json.loads(capsys.readouterr().out)["head"]

    api.stack.clients.dynamodb().delete_item(TableName=table, Key={"pk": {"S": "AUDIT"}, "sk": {"S": "E#000000000002"}})

    assert cli.main(["audit", "verify", "--table", table, "--expect-head", f"{head['seq']}:{head['hash']}"]) == 1
    assert json.loads(capsys.readouterr().out)["firstBroken"] == {
        "seq": 2,
        "reason": "entry 2 is missing (the next one found is 3)",
    }


def test_without_its_audit_log_a_personal_read_is_withheld_and_a_write_stands(api: Api) -> None:
    assert api.put(f"/v1/suppressions/email/{ADDRESS}", {}, role="data_operator").status == 200
    # Given the admin function's audit table out of reach
    wiring = api.admin._wiring()
    wiring.audit.log.table = "no-such-table"
    # When a person's suppression is read, then the answer is withheld
    read = api.get(f"/v1/suppressions/email/{ADDRESS}", role="viewer")
    assert (read.status, read["code"]) == (503, "audit_unavailable")
    assert ADDRESS not in json.dumps(read.body)
    # When it is lifted, then the change stands and is answered
    assert api.delete(f"/v1/suppressions/email/{ADDRESS}", role="data_operator").status == 204
    wiring.audit.log.table = api.stack.output("AuditTableName")
    assert api.get(f"/v1/suppressions/email/{ADDRESS}", role="viewer").status == 404
