"""Archive records into the Kinesis Data Firehose stream that files them as Parquet.

On AWS the stream partitions each record by its `kind` and `dt` fields (dynamic partitioning)
and converts it to Parquet with the Glue table's schema (template.yaml `ArchiveStream`); the
local cloud's Firehose does the same into its S3. A producer only puts JSON lines
(`parquet.json_line`): it never carries a Parquet writer.

Lines are packed: one Firehose record holds up to 500 of them (at most 1,000 KiB), and the
stream's JSON deaggregation splits them again before partitioning. Firehose bills every record
as at least 5 KB and a line is about 1.4 KB, so packing cuts the ingest bill by about two thirds
(docs/capacity.md). PutRecordBatch takes at most 500 records and 4 MiB a call. A record refused
by the stream (throttling, an internal error) is retried with backoff; what is still refused
after the retries raises, so the caller's message goes back to its queue and is archived on
redelivery (records have stable ids: a repeat is recognisable, never a new fact).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from midstage.adapters import aws, parquet
from midstage.models.archive import ArchiveRecord
from midstage.observability import logger, tracer

MAX_RECORDS = 500  # records per PutRecordBatch
MAX_BATCH_BYTES = 4 * 1024 * 1024
MAX_RECORD_BYTES = 1000 * 1024
MAX_LINES_PER_RECORD = 500  # what JSON deaggregation splits out of one record
ATTEMPTS = 6


class ArchiveRefused(RuntimeError):
    """The stream still refused records after every retry."""


class FirehoseArchive:
    def __init__(self, stream: str, client: Any | None = None, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.stream = stream
        self._client = client
        self._sleep = sleep
        self.archived = 0
        self.oversized = 0

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = aws.firehose()
        return self._client

    @tracer.capture_method
    def put(self, records: Sequence[ArchiveRecord]) -> None:
        lines = []
        for record in records:
            line = parquet.json_line(record)
            if len(line) > MAX_RECORD_BYTES:
                # Only free text can make a record this large (properties, context): the stream
                # would refuse it and the batch with it. Counted and logged, not retried forever.
                self.oversized += 1
                logger.warning(
                    "archive record too large", kind=record.kind, record_id=record.record_id, bytes=len(line)
                )
                continue
            lines.append(line)
        for batch in _batches(_packed(lines)):
            self._put_batch(batch)
        self.archived += len(lines)

    def _put_batch(self, batch: list[bytes]) -> None:
        pending = batch
        for attempt in range(ATTEMPTS):
            answer = self.client.put_record_batch(
                DeliveryStreamName=self.stream, Records=[{"Data": line} for line in pending]
            )
            if not answer.get("FailedPutCount"):
                return
            responses = answer.get("RequestResponses", [])
            pending = [line for line, result in zip(pending, responses, strict=True) if result.get("ErrorCode")]
            self._sleep(0.05 * 2**attempt)
        raise ArchiveRefused(f"Firehose stream {self.stream} refused {len(pending)} archive records")


class NoArchive:
    """No stream configured: nothing is archived (a deployment without the analytics plane)."""

    def put(self, records: Sequence[ArchiveRecord]) -> None:
        return None


Archive = FirehoseArchive | NoArchive


def archive_sink(stream: str, client: Any | None = None) -> Archive:
    return FirehoseArchive(stream, client) if stream else NoArchive()


def _packed(lines: list[bytes]) -> list[bytes]:
    """Lines joined into records of at most MAX_LINES_PER_RECORD lines and MAX_RECORD_BYTES."""
    packed: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for line in lines:
        if current and (len(current) == MAX_LINES_PER_RECORD or size + len(line) > MAX_RECORD_BYTES):
            packed.append(b"".join(current))
            current, size = [], 0
        current.append(line)
        size += len(line)
    if current:
        packed.append(b"".join(current))
    return packed


def _batches(lines: list[bytes]) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    size = 0
    for line in lines:
        if batch and (len(batch) == MAX_RECORDS or size + len(line) > MAX_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(line)
        size += len(line)
    if batch:
        yield batch
