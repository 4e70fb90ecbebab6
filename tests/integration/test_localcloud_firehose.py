"""The local cloud's Firehose: records buffered, partitioned by their JSON fields, converted to
Parquet in the archive's columns; malformed records set aside under the error prefix, never lost
and never blocking the rest; the API's limits and errors as Firehose gives them."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from infra.localcloud.firehose import Firehose
from infra.localcloud.model import DeliveryStreamSpec
from midstage.adapters import parquet
from midstage.logic.archive import records

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
STREAM = DeliveryStreamSpec(
    logical_id="ArchiveStream",
    name="archive",
    bucket="bucket",
    prefix="archive/kind=!{partitionKeyFromQuery:kind}/dt=!{partitionKeyFromQuery:dt}/",
    error_prefix="archive-errors/!{firehose:error-output-type}/dt=!{timestamp:yyyy-MM-dd}/",
    partition_keys=(("kind", "kind"), ("dt", "dt")),
    parquet=True,
    file_extension=".parquet",
    buffer_seconds=300,
    deaggregate=True,
)


def _firehose() -> tuple[Firehose, dict[str, bytes]]:
    objects: dict[str, bytes] = {}
    return Firehose([STREAM], lambda bucket, key, body: objects.__setitem__(f"{bucket}/{key}", body)), objects


def _line(number: int, day: int = 2) -> bytes:
    event = {
        "type": "track",
        "event": "Product Viewed",
        "messageId": f"m-{number}",
        "sourceId": "src_1",
        "timestamp": f"2026-03-0{day}T09:00:00.000Z",
        "userId": "u1",
    }
    return parquet.json_line(records.event_record(event, "p1", NOW))


def _put(firehose: Firehose, *lines: bytes, stream: str = "archive") -> tuple[int, dict]:
    body = {"DeliveryStreamName": stream, "Records": [{"Data": base64.b64encode(x).decode()} for x in lines]}
    status, _, answer = firehose.handle("PutRecordBatch", json.dumps(body).encode())
    return status, json.loads(answer)


def test_given_records_of_two_days_when_flushed_then_one_parquet_file_per_partition() -> None:
    firehose, objects = _firehose()
    status, answer = _put(firehose, _line(1), _line(2), _line(3, day=3))
    assert (status, answer["FailedPutCount"], len(answer["RequestResponses"])) == (200, 0, 3)
    assert firehose.pending == 3 and objects == {}  # buffered until the flush
    assert firehose.flush() == 2
    days = {key.split("/")[3]: parquet.decode(body) for key, body in objects.items()}
    assert sorted(days) == ["dt=2026-03-02", "dt=2026-03-03"]
    assert sorted(r["message_id"] for r in days["dt=2026-03-02"]) == ["m-1", "m-2"]
    assert all(key.startswith("bucket/archive/kind=event/") and key.endswith(".parquet") for key in objects)


def test_given_malformed_records_then_they_go_under_the_error_prefix_and_the_rest_is_archived() -> None:
    firehose, objects = _firehose()
    no_partition = b'{"kind": "event"}\n'  # no dt: partitioning fails
    bad_type = json.dumps({"kind": "event", "dt": "2026-03-02", "occurred_at": "never"}).encode()
    _put(firehose, b"not json", no_partition, bad_type, _line(1))
    firehose.flush()
    errors = {k: v for k, v in objects.items() if "/archive-errors/" in k}
    kept = [parquet.decode(v) for k, v in objects.items() if k.endswith(".parquet")]
    assert [r["message_id"] for rows in kept for r in rows] == ["m-1"]
    kinds = sorted(k.split("/")[2] for k in errors)
    assert kinds == ["format-conversion-failed", "partitioning-failed"]
    raw = [json.loads(line) for body in errors.values() for line in body.splitlines()]
    refused = sorted(base64.b64decode(r["rawData"]).strip() for r in raw)
    assert refused == sorted(line.strip() for line in (b"not json", no_partition, bad_type))


def test_given_an_unknown_stream_or_a_bad_batch_then_firehose_s_errors() -> None:
    firehose, _ = _firehose()
    status, answer = _put(firehose, _line(1), stream="nope")
    assert (status, answer["__type"]) == (400, "ResourceNotFoundException")
    status, answer = _put(firehose, *[_line(n) for n in range(501)])
    assert (status, answer["__type"]) == (400, "InvalidArgumentException")
    status, _, body = firehose.handle("PutRecordBatch", b"{not json")
    assert status == 400 and json.loads(body)["__type"] == "InvalidArgumentException"
    assert firehose.pending == 0


def test_given_lines_packed_in_one_record_when_flushed_then_each_line_is_partitioned_on_its_own() -> None:
    firehose, objects = _firehose()
    status, answer = _put(firehose, _line(1) + _line(2, day=3) + _line(3) + b"{broken")
    assert (status, answer["FailedPutCount"]) == (200, 0)
    firehose.flush()
    kept = {
        k.split("/")[3]: sorted(r["message_id"] for r in parquet.decode(v))
        for k, v in objects.items()
        if k.endswith(".parquet")
    }
    assert kept == {"dt=2026-03-02": ["m-1", "m-3"], "dt=2026-03-03": ["m-2"]}
    [error] = [v for k, v in objects.items() if "/archive-errors/partitioning-failed/" in k]
    assert base64.b64decode(json.loads(error)["rawData"]) == b"{broken"


def test_given_s3_failing_when_flushed_then_the_records_stay_buffered_for_the_next_flush() -> None:
    objects: dict[str, bytes] = {}
    failing = [True]

    def put(bucket: str, key: str, body: bytes) -> None:
        if failing[0]:
            raise ConnectionError("S3 is down")
        objects[key] = body

    firehose = Firehose([STREAM], put)
    _put(firehose, _line(1), _line(2, day=3))
    with pytest.raises(ConnectionError):
        firehose.flush()
    assert firehose.pending == 2 and objects == {}
    failing[0] = False
    assert firehose.flush() == 2 and firehose.pending == 0
    assert sorted(r["message_id"] for body in objects.values() for r in parquet.decode(body)) == ["m-1", "m-2"]
