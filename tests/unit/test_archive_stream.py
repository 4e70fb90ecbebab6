"""The archive's producer side: records into Firehose batches within the stream's limits, refused
records retried, what cannot be a record counted; the template's table matching the records."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from midstage.adapters.archive_stream import (
    MAX_BATCH_BYTES,
    MAX_RECORD_BYTES,
    MAX_RECORDS,
    ArchiveRefused,
    FirehoseArchive,
    NoArchive,
    archive_sink,
)
from midstage.logic.archive import records
from midstage.models.archive import COLUMNS, KINDS
from midstage.models.messaging import MessageRequest

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


class FakeFirehose:
    """Firehose's PutRecordBatch contract: refuses what `refuse` says, answers per record."""

    def __init__(self, refuse: int = 0) -> None:
        self.calls: list[list[bytes]] = []
        self.refuse = refuse

    def put_record_batch(self, DeliveryStreamName: str, Records: list[dict[str, bytes]]) -> dict[str, Any]:
        assert len(Records) <= MAX_RECORDS
        assert sum(len(r["Data"]) for r in Records) <= MAX_BATCH_BYTES
        self.calls.append([r["Data"] for r in Records])
        refused = min(self.refuse, len(Records))
        self.refuse -= refused
        answers = [
            {"ErrorCode": "ServiceUnavailableException"} if i < refused else {"RecordId": "r"}
            for i in range(len(Records))
        ]
        return {"FailedPutCount": refused, "RequestResponses": answers}


def _event(number: int, **extra: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Product Viewed",
        "messageId": f"m-{number}",
        "sourceId": "src_1",
        "timestamp": "2026-03-02T09:00:00.000Z",
        "userId": "u1",
        "properties": {"sku": "A1", **extra},
    }


def _records(count: int, **extra: Any) -> list[records.ArchiveRecord]:
    return [records.event_record(_event(n, **extra), "p1", NOW) for n in range(count)]


def _lines(call: list[bytes]) -> list[dict[str, Any]]:
    return [json.loads(line) for record in call for line in record.splitlines()]


def test_given_1201_records_when_put_then_they_are_packed_500_lines_to_a_firehose_record_each_once() -> None:
    firehose = FakeFirehose()
    FirehoseArchive("s", firehose, sleep=lambda _: None).put(_records(1201))
    assert [[len(record.splitlines()) for record in call] for call in firehose.calls] == [[500, 500, 201]]
    ids = [line["record_id"] for call in firehose.calls for line in _lines(call)]
    assert len(ids) == len(set(ids)) == 1201


def test_given_large_records_when_put_then_a_firehose_record_stays_under_1000_kib_and_a_call_under_4_mib() -> None:
    firehose = FakeFirehose()
    FirehoseArchive("s", firehose, sleep=lambda _: None).put(_records(12, blob="x" * 600_000))
    assert all(len(record) <= MAX_RECORD_BYTES for call in firehose.calls for record in call)
    # one 600 KB line a record (two would pass 1,000 KiB), six records a call (seven would pass 4 MiB)
    assert [len(call) for call in firehose.calls] == [6, 6]
    assert all(sum(len(record) for record in call) <= MAX_BATCH_BYTES for call in firehose.calls)
    assert sum(len(_lines(call)) for call in firehose.calls) == 12


def test_given_refused_records_when_put_then_only_they_are_retried() -> None:
    firehose = FakeFirehose(refuse=2)
    FirehoseArchive("s", firehose, sleep=lambda _: None).put(_records(4, blob="x" * 600_000))
    assert [len(call) for call in firehose.calls] == [4, 2]
    assert firehose.calls[1] == firehose.calls[0][:2]  # the two refused, as they were


def test_given_a_stream_that_keeps_refusing_when_put_then_it_raises_for_the_queue_to_retry() -> None:
    with pytest.raises(ArchiveRefused):
        FirehoseArchive("s", FakeFirehose(refuse=10**6), sleep=lambda _: None).put(_records(2))


def test_given_a_record_over_the_stream_limit_when_put_then_it_is_counted_and_the_rest_go() -> None:
    firehose = FakeFirehose()
    archive = FirehoseArchive("s", firehose, sleep=lambda _: None)
    archive.put([*_records(1, blob="x" * 1_100_000), *_records(2)[1:]])
    assert (archive.oversized, sum(len(c) for c in firehose.calls)) == (1, 1)


def test_given_no_stream_configured_then_nothing_is_archived() -> None:
    assert isinstance(archive_sink(""), NoArchive)
    assert NoArchive().put(_records(1)) is None


def test_given_a_unit_then_events_merges_and_segment_transitions_become_records() -> None:
    merge = {
        "profile_id": "p1",
        "merged_profile_id": "p0",
        "at": "2026-03-02T09:00:00.000Z",
        "identifiers": ["email:a@example.org"],
        "trigger_message_id": "m-0",
        "trigger_source_id": "src_1",
    }
    entered = {"profileId": "p1", "segmentId": "vip", "at": "2026-03-02T09:00:00.000Z", "occurrence": "o1"}
    domain = [("event.tracked", {}), ("identity.merged", merge), ("segment.entered", entered), ("profile.updated", {})]
    batch = records.unit_records("p1", [_event(0), _event(1)], domain, NOW)
    assert [r.kind for r in batch.records] == ["event", "event", "identity_merged", "segment_transition"]
    assert batch.refused == []


def test_given_a_fact_that_cannot_be_a_record_then_it_is_refused_and_the_rest_kept() -> None:
    broken = {**_event(1), "timestamp": "not a time"}
    batch = records.unit_records("p1", [_event(0), broken], [], NOW)
    assert [r.message_id for r in batch.records] == ["m-0"]  # type: ignore[attr-defined]
    assert len(batch.refused) == 1 and batch.refused[0].startswith("event_record")


@pytest.mark.parametrize(
    ("status", "kinds"),
    [
        ("sent", ["message_requested", "message_sent"]),
        ("blocked", ["message_requested", "message_blocked"]),
        ("duplicate", ["message_requested"]),
    ],
)
def test_given_a_delivery_outcome_then_the_request_and_the_outcome_are_records(status: str, kinds: list[str]) -> None:
    request = MessageRequest.model_validate(
        {
            "key": "campaign:spring:p1",
            "profile_id": "p1",
            "channels": ["email"],
            "template": "welcome",
            "category": "marketing",
            "origin": {"kind": "campaign", "id": "spring", "version": 2},
            "requested_at": "2026-03-02T09:00:00.000Z",
        }
    )
    batch = records.delivery_records(request, status, "no_consent: marketing [email]", "email", NOW, NOW)
    assert [r.kind for r in batch.records] == kinds
    if status == "blocked":
        assert batch.records[1].guard == "no_consent"  # type: ignore[attr-defined]


def _template() -> dict[str, Any]:
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    return yaml.load((ROOT / "template.yaml").read_text(), Loader=Loader)  # noqa: S506 -- SafeLoader subclass


def test_given_the_template_then_the_glue_table_is_the_archive_s_columns_and_partitions() -> None:
    resources = _template()["Resources"]
    table = resources["ArchiveTable"]["Properties"]["TableInput"]
    assert [(c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]] == [(n, g) for n, _, g in COLUMNS]
    assert [k["Name"] for k in table["PartitionKeys"]] == ["kind", "dt"]
    assert table["Parameters"]["projection.kind.values"].split(",") == list(KINDS)
    stream = resources["ArchiveStream"]["Properties"]["ExtendedS3DestinationConfiguration"]
    assert stream["Prefix"] == "archive/kind=!{partitionKeyFromQuery:kind}/dt=!{partitionKeyFromQuery:dt}/"
