"""The collect use case with in-memory ports: acknowledged means durable."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from midstage.config import CollectSettings, IdentitySettings
from midstage.errors import PayloadTooLarge, Unavailable
from midstage.models.admin import Source
from midstage.services import collect

SETTINGS = CollectSettings(data_table="d", config_table="c", ingest_queue_url="q")
SOURCE = Source(id="src_1", name="web", write_key="wk_1", rate_limit=100, created_at="2026-11-22T10:00:00+00:00")


class Sources:
    def source_for_write_key(self, write_key: str) -> Source | None:
        return SOURCE if write_key == SOURCE.write_key else None


class Intake:
    def __init__(self, fail_quarantine: bool = False) -> None:
        self.quarantined: list[dict[str, Any]] = []
        self.fail_quarantine = fail_quarantine

    def take_rate(self, source_id: str, epoch_second: int, events: int, limit: int) -> bool:
        return True

    def quarantine(self, entries: list[dict[str, Any]], expires_at: int) -> None:
        if self.fail_quarantine:
            raise ConnectionError("DynamoDB unreachable")
        self.quarantined.extend(entries)


class Handoff:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[dict[str, Any]] = []
        self.fail = fail

    def send(self, groups: dict[str, list[dict[str, Any]]]) -> int:
        if self.fail:
            raise ConnectionError("SQS unreachable")
        self.sent.extend(e for events in groups.values() for e in events)
        return len(groups)


def request(batch: list[dict[str, Any]]) -> collect.CollectRequest:
    return collect.CollectRequest(
        endpoint="batch",
        body=json.dumps({"batch": batch}),
        is_base64=False,
        headers={"authorization": "Basic " + base64.b64encode(b"wk_1:").decode()},
        source_ip="198.51.100.1",
        received_at=datetime(2026, 11, 22, tzinfo=UTC),
    )


GOOD = {"type": "track", "event": "x", "userId": "u"}
BAD = {"type": "track", "event": "x"}


def test_a_failed_hand_off_is_not_acknowledged() -> None:
    with pytest.raises(Unavailable) as refused:
        collect.handle(request([GOOD]), SETTINGS, IdentitySettings(), Sources(), Intake(), Handoff(fail=True))
    assert refused.value.status == 503


def test_a_failed_quarantine_is_not_acknowledged_either() -> None:
    handoff = Handoff()
    with pytest.raises(Unavailable):
        collect.handle(request([GOOD, BAD]), SETTINGS, IdentitySettings(), Sources(), Intake(True), handoff)
    assert handoff.sent == []  # nothing half-done: the client's retry sends everything again


def test_accepted_events_are_handed_off_and_rejects_quarantined() -> None:
    intake, handoff = Intake(), Handoff()
    answer = collect.handle(request([GOOD, BAD, GOOD]), SETTINGS, IdentitySettings(), Sources(), intake, handoff)
    assert answer.accepted == 2
    assert len(handoff.sent) == 2
    assert [e["index"] for e in intake.quarantined] == [1]


def test_a_batch_larger_than_the_rate_limit_is_refused_whole() -> None:
    with pytest.raises(PayloadTooLarge) as refused:
        collect.handle(request([GOOD] * 101), SETTINGS, IdentitySettings(), Sources(), Intake(), Handoff())
    assert refused.value.code == "over_rate_limit"
