"""The audit log's chain (logic/audit.py) and its listing (services/admin/audit.py) over an
in-memory log: canonical hashing, and every kind of tampering found at the right entry."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from midstage.errors import InvalidInput
from midstage.logic import audit
from midstage.models.admin import Caller, RoleRank
from midstage.services.admin.audit import AuditAdmin, AuditCall, AuditFilter, parse_filter


def fields(n: int, **overrides: Any) -> dict[str, Any]:
    base = {
        "at": f"2026-12-07T10:00:{n:02d}.000Z",
        "actor": "key_admin" if n % 2 else "key_marketer",
        "role": "admin",
        "requestId": f"req-{n}",
        "correlationId": None,
        "kind": "write",
        "action": "PUT /v1/rules/{rule_id}",
        "target": f"rule_id=r{n}",
        "bodyDigest": audit.digest(f"body {n}"),
        "resultDigest": None,
        "status": 200,
    }
    return {**base, **overrides}


def chain(length: int) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    prev = audit.GENESIS
    for n in range(1, length + 1):
        entries.append(audit.chained(fields(n), n, prev))
        prev = entries[-1]["hash"]
    return entries


def head_of(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"seq": entries[-1]["seq"], "hash": entries[-1]["hash"]}


class MemoryLog:
    """The AuditLog port in memory (the DynamoDB one is tested on moto)."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def head(self) -> dict[str, Any] | None:
        return head_of(self.entries) if self.entries else None

    def append(self, values: Mapping[str, Any]) -> dict[str, Any]:
        head = self.head()
        entry = audit.chained(values, len(self.entries) + 1, head["hash"] if head else audit.GENESIS)
        self.entries.append(entry)
        return entry

    def newest(self, *, before: int | None, limit: int) -> list[dict[str, Any]]:
        older = [e for e in self.entries if before is None or e["seq"] < before]
        return list(reversed(older))[:limit]

    def walk(self, until: int) -> Iterator[dict[str, Any]]:
        yield from (e for e in self.entries if e["seq"] <= until)


# ------------------------------------------------------------------------------ hashing
def test_the_hash_is_sha256_over_sorted_compact_ascii_json_of_every_field_but_itself() -> None:
    entry = audit.chained({"b": "é", "a": None, "status": 200}, 1, audit.GENESIS)

    expected = b'{"a":null,"b":"\\u00e9","prev":"' + audit.GENESIS.encode() + b'","seq":1,"status":200}'
    assert audit.canonical(entry) == expected
    assert entry["hash"] == hashlib.sha256(expected).hexdigest()


def test_the_same_fields_written_in_another_order_hash_the_same() -> None:
    one = audit.chained({"actor": "k", "status": 1}, 3, "ab")
    other = audit.chained({"status": 1, "actor": "k"}, 3, "ab")

    assert one["hash"] == other["hash"]


def test_each_entry_carries_the_hash_of_the_one_before_it() -> None:
    entries = chain(3)

    assert entries[0]["prev"] == audit.GENESIS
    assert [e["prev"] for e in entries[1:]] == [e["hash"] for e in entries[:-1]]


# ------------------------------------------------------------------------------ verification
def test_an_untouched_chain_verifies() -> None:
    entries = chain(5)

    verdict = audit.verify(entries, head_of(entries))

    assert verdict.broken is None
    assert (verdict.checked, verdict.last_seq) == (5, 5)


def test_an_empty_chain_without_a_head_verifies() -> None:
    assert audit.verify([], None).broken is None


@pytest.mark.parametrize("field", ["actor", "status", "target", "at", "resultDigest"])
def test_an_altered_field_is_found_at_its_entry(field: str) -> None:
    entries = chain(5)
    entries[2] = {**entries[2], field: 500 if field == "status" else "someone-else"}

    broken = audit.verify(entries, head_of(entries)).broken

    assert broken == audit.Break(3, "its hash does not match its content")


def test_an_altered_entry_rehashed_breaks_the_link_to_the_next() -> None:
    entries = chain(5)
    forged = {**entries[1], "actor": "key_innocent"}
    entries[1] = {**forged, "hash": audit.entry_hash(forged)}

    broken = audit.verify(entries, head_of(entries)).broken

    assert broken == audit.Break(3, "its prev is not the hash of the entry before it")


def test_a_deleted_entry_is_named() -> None:
    entries = chain(5)
    del entries[2]

    broken = audit.verify(entries, head_of(entries)).broken

    assert broken is not None
    assert (broken.seq, broken.reason) == (3, "entry 3 is missing (the next one found is 4)")


def test_a_deleted_last_entry_is_found_against_the_head() -> None:
    entries = chain(5)
    head = head_of(entries)

    broken = audit.verify(entries[:-1], head).broken

    assert broken == audit.Break(5, "the chain ends at 4, its head says 5")


def test_reordered_entries_are_found() -> None:
    entries = chain(5)
    entries[1], entries[2] = entries[2], entries[1]

    broken = audit.verify(entries, head_of(entries)).broken

    assert broken is not None and broken.seq == 2


def test_entries_renumbered_after_a_reorder_are_found() -> None:
    entries = chain(5)
    second, third = entries[1], entries[2]
    entries[1], entries[2] = {**third, "seq": 2}, {**second, "seq": 3}

    broken = audit.verify(entries, head_of(entries)).broken

    assert broken is not None and broken.seq == 2


def test_a_chain_whose_head_is_gone_is_refused() -> None:
    broken = audit.verify(chain(2), None).broken

    assert broken == audit.Break(2, "the chain has entries but no head")


def test_a_rewritten_tail_is_found_against_the_head() -> None:
    entries = chain(4)
    head = head_of(entries)
    forged = {**entries[3], "status": 204}
    entries[3] = {**forged, "hash": audit.entry_hash(forged)}

    broken = audit.verify(entries, head).broken

    assert broken == audit.Break(4, "the chain's head does not match its last entry")


# ------------------------------------------------------------------------------ targets
def test_a_personal_routes_parameters_are_kept_only_as_digests() -> None:
    params = {"channel": "email", "address": "ann@example.com"}

    target = audit.target(params, personal=True)

    assert target == f"channel={audit.digest('email')}/address={audit.digest('ann@example.com')}"
    assert "ann@example.com" not in (target or "")
    assert audit.target({"rule_id": "r1"}, personal=False) == "rule_id=r1"
    assert audit.target({}, personal=True) is None


def test_writes_and_personal_reads_are_audited_other_reads_are_not() -> None:
    assert audit.audited("PUT", personal=False)
    assert audit.audited("GET", personal=True)
    assert not audit.audited("GET", personal=False)


# ------------------------------------------------------------------------------ the service
def admin_over(log: MemoryLog) -> AuditAdmin:
    return AuditAdmin(log, clock=lambda: datetime(2026, 12, 7, 10, 0, tzinfo=UTC))


def call(n: int, actor: str = "key_a", target: str | None = None) -> AuditCall:
    return AuditCall(
        caller=Caller(key_id=actor, role=RoleRank.admin),
        kind="write",
        action="POST /v1/rules",
        target=target,
        request_id=f"req-{n}",
        correlation_id="corr",
        body='{"id": "r1"}',
        result=None,
        status=201,
    )


def test_a_recorded_call_keeps_digests_not_bodies() -> None:
    log = MemoryLog()

    entry = admin_over(log).record(call(1))

    assert entry["bodyDigest"] == audit.digest('{"id": "r1"}')
    assert entry["resultDigest"] is None
    assert (entry["seq"], entry["prev"], entry["actor"], entry["role"]) == (1, audit.GENESIS, "key_a", "admin")
    assert set(entry) == {*audit.FIELDS, "hash"}


def test_the_listing_pages_newest_first_through_the_whole_chain() -> None:
    log = MemoryLog()
    admin = admin_over(log)
    for n in range(7):
        admin.record(call(n))

    seen: list[int] = []
    cursor: str | None = None
    while True:
        page = admin.entries(AuditFilter(), 3, cursor)
        seen += [e["seq"] for e in page["entries"]]
        cursor = page["cursor"]
        if cursor is None:
            break

    assert seen == [7, 6, 5, 4, 3, 2, 1]


def test_the_listing_filters_by_actor_and_by_a_target_given_as_written() -> None:
    log = MemoryLog()
    admin = admin_over(log)
    admin.record(call(1, "key_a", audit.target({"profile_ref": "email:ann@example.com"}, personal=True)))
    admin.record(call(2, "key_b", "rule_id=r1"))
    admin.record(call(3, "key_a", "rule_id=r10"))

    by_actor = admin.entries(AuditFilter(actor="key_a"), 50, None)["entries"]
    by_person = admin.entries(AuditFilter(target="email:ann@example.com"), 50, None)["entries"]
    by_rule = admin.entries(AuditFilter(target="r1"), 50, None)["entries"]

    assert [e["seq"] for e in by_actor] == [3, 1]
    assert [e["seq"] for e in by_person] == [1]
    assert [e["seq"] for e in by_rule] == [2]


def test_the_service_verifies_and_names_the_first_broken_link() -> None:
    log = MemoryLog()
    admin = admin_over(log)
    for n in range(4):
        admin.record(call(n))
    assert admin.verify()["valid"] is True

    log.entries[1] = {**log.entries[1], "status": 200}

    assert admin.verify() == {
        "valid": False,
        "checked": 1,
        "head": head_of(log.entries),
        "firstBroken": {"seq": 2, "reason": "its hash does not match its content"},
    }


@pytest.mark.parametrize(
    "query",
    [
        {"since": "yesterday"},
        {"until": "2026-12-01T00:00:00"},  # no zone
        {"kind": "delete"},
        {"actor": "x" * 401},
        {"target": "\ud800"},
        {"action": "GET\n/v1/audit"},
    ],
)
def test_filters_it_cannot_use_are_a_400(query: dict[str, str]) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_filter(query)
    assert refused.value.code == "invalid_query"


@pytest.mark.parametrize("cursor", ["0", "abc", "-1", "1" * 13, "E#000000000001"])
def test_a_cursor_the_listing_did_not_give_is_a_400(cursor: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        admin_over(MemoryLog()).entries(AuditFilter(), 10, cursor)
    assert refused.value.code == "invalid_cursor"


def test_since_and_until_bound_the_listing() -> None:
    log = MemoryLog()
    for n in range(1, 6):
        log.append(fields(n))
    admin = admin_over(log)

    wanted = parse_filter({"since": "2026-12-07T10:00:02Z", "until": "2026-12-07T10:00:04Z"})

    assert [e["seq"] for e in admin.entries(wanted, 50, None)["entries"]] == [3, 2]


@pytest.mark.parametrize("head", ["42", "x:" + "a" * 64, "42:abc", "42:" + "z" * 64])
def test_the_verify_command_refuses_a_head_it_cannot_read(head: str, capsys: pytest.CaptureFixture[str]) -> None:
    from midstage import cli

    assert cli.main(["audit", "verify", "--table", "t", "--expect-head", head]) == 2
    assert "--expect-head is <seq>:<64 hex digits>" in capsys.readouterr().err


def test_a_personal_target_is_one_digest_however_the_path_was_spelled() -> None:
    spelled = [" email:ann@example.com", "email%3Aann%40example.com", "email:ann@example.com"]
    targets = {audit.target({"profile_ref": value}, personal=True) for value in spelled}
    assert targets == {"profile_ref=" + audit.digest("email:ann@example.com")}
    assert audit.target({"rule_id": "welcome"}, personal=False) == "rule_id=welcome"
