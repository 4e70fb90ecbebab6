"""The local cloud's Kinesis Data Firehose: DirectPut streams into a template bucket.

moto's Firehose writes each PutRecordBatch as one object, at once, under the prefix taken
literally. The archive stream in template.yaml relies on what Firehose does beyond that, so the
local cloud answers `Firehose_20150804.PutRecord` / `PutRecordBatch` itself, as AWS would:

- **buffering**: records wait in memory and are written every `flush_s` (1 s by default rather
  than the template's `IntervalInSeconds`, so a local report sees what was just done; the stream's
  own interval is in the model) or when `flush()` is called (`LocalCloud.wait_idle` waits for it);
- **deaggregation**: with a `RecordDeAggregation` processor of JSON sub-records, a record holding
  several JSON objects (the archive packs up to 500 lines in one) is split before partitioning;
- **dynamic partitioning**: the `{key:.field,...}` metadata query is evaluated on each record and
  `!{partitionKeyFromQuery:key}` in the prefix replaced; a record that is not a JSON object or
  lacks a key goes under the error prefix (`!{firehose:error-output-type}` =
  `partitioning-failed`), as Firehose does;
- **record format conversion**: with a ParquetSerDe, each partition's records become one Parquet
  file written by the archive's own writer (`midstage.adapters.parquet`, the archive's COLUMNS,
  ZSTD) — the same columns the Glue table gives Firehose, in the same layout;
- object names as Firehose makes them: `<stream>-1-<YYYY-MM-DD-HH-MM-SS>-<uuid><FileExtension>`.

What is not emulated: Firehose's 5 KB billing rounding, throttling, and durability of the
buffer across a `kill -9` (at most `flush_s` of records is lost then; the archive is a copy).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import tempfile
import threading
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from infra.localcloud.model import DeliveryStreamSpec

LOG = logging.getLogger("infra.localcloud")
Answer = tuple[int, list[tuple[str, str]], bytes]
PutObject = Callable[[str, str, bytes], None]
TARGET_PREFIX = "Firehose_20150804."
MAX_BATCH_RECORDS = 500
MAX_RECORD_BYTES = 1000 * 1024
_EXPRESSION = re.compile(r"!\{([A-Za-z]+):([^}]*)\}")


class Firehose:
    """The template's delivery streams, buffered and flushed into S3 by `put_object`."""

    def __init__(
        self,
        streams: Sequence[DeliveryStreamSpec],
        put_object: PutObject,
        *,
        flush_s: float = 1.0,
        region: str = "us-east-1",
        account_id: str = "123456789012",
        guard: Callable[[], Any] | None = None,
    ) -> None:
        self.streams = {stream.name: stream for stream in streams}
        self._put_object = put_object
        self._flush_s = flush_s
        self._region = region
        self._account = account_id
        self._guard = guard  # the state store's gate: a flush is one request, never cut in half
        self._lock = threading.Lock()
        self._buffers: dict[tuple[str, str], list[bytes]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.records_in = 0
        self.objects_out = 0
        self._converter = _Converter()

    # ------------------------------------------------------------------ life cycle
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="firehose", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self.flush()
        self._converter.close()

    def _run(self) -> None:
        while not self._stop.wait(self._flush_s):
            try:
                self.flush()
            except Exception:  # the next tick tries again; the records stay buffered
                LOG.exception("the local Firehose could not write its buffer")

    @property
    def pending(self) -> int:
        with self._lock:
            return sum(len(lines) for lines in self._buffers.values())

    # ------------------------------------------------------------------ the API
    def handle(self, operation: str, body: bytes) -> Answer:
        request_id = str(uuid.uuid4())
        try:
            request = json.loads(body or b"{}")
            if operation == "PutRecord":
                stream = self._stream(request)
                record_id = self._accept(stream, _data(request.get("Record")))
                return _ok(request_id, {"RecordId": record_id, "Encrypted": False})
            if operation == "PutRecordBatch":
                stream = self._stream(request)
                records = request.get("Records")
                if not isinstance(records, list) or not 1 <= len(records) <= MAX_BATCH_RECORDS:
                    raise _Invalid(f"Records must hold 1 to {MAX_BATCH_RECORDS} records")
                datas = [_data(record) for record in records]
                answers = [{"RecordId": self._accept(stream, data)} for data in datas]
                return _ok(request_id, {"FailedPutCount": 0, "Encrypted": False, "RequestResponses": answers})
            if operation == "ListDeliveryStreams":
                names = sorted(self.streams)
                return _ok(request_id, {"DeliveryStreamNames": names, "HasMoreDeliveryStreams": False})
            if operation == "DescribeDeliveryStream":
                stream = self._stream(request)
                return _ok(request_id, {"DeliveryStreamDescription": self._describe(stream)})
            raise _Invalid(f"the local cloud's Firehose does not serve {operation}")
        except _NotFound as error:
            return _error(request_id, "ResourceNotFoundException", str(error))
        except (_Invalid, ValueError, TypeError) as error:
            return _error(request_id, "InvalidArgumentException", str(error))

    def _stream(self, request: dict[str, Any]) -> DeliveryStreamSpec:
        name = request.get("DeliveryStreamName")
        stream = self.streams.get(name) if isinstance(name, str) else None
        if stream is None:
            raise _NotFound(f"Firehose {name} under account {self._account} not found.")
        return stream

    def _describe(self, stream: DeliveryStreamSpec) -> dict[str, Any]:
        return {
            "DeliveryStreamName": stream.name,
            "DeliveryStreamARN": f"arn:aws:firehose:{self._region}:{self._account}:deliverystream/{stream.name}",
            "DeliveryStreamStatus": "ACTIVE",
            "DeliveryStreamType": "DirectPut",
            "VersionId": "1",
            "Destinations": [],
            "HasMoreDestinations": False,
        }

    def _accept(self, stream: DeliveryStreamSpec, data: bytes) -> str:
        now = datetime.now(UTC)
        parts = _sub_records(data) if stream.deaggregate else [data]
        placed = [(self._prefix_for(stream, part, now), part) for part in parts]
        with self._lock:
            for prefix, part in placed:
                self._buffers.setdefault((stream.name, prefix), []).append(part)
            self.records_in += 1
        return uuid.uuid4().hex * 2

    def _prefix_for(self, stream: DeliveryStreamSpec, data: bytes, now: datetime) -> str:
        if not stream.partition_keys:
            return _evaluate(stream.prefix, {}, now)
        try:
            document = json.loads(data)
        except ValueError:
            document = None
        values: dict[str, str] = {}
        if isinstance(document, dict):
            for key, field in stream.partition_keys:
                value = document.get(field)
                if isinstance(value, str | int | float) and not isinstance(value, bool) and str(value):
                    values[key] = str(value)
        if len(values) != len(stream.partition_keys):
            return _ERROR + _evaluate(stream.error_prefix, {}, now, error_type="partitioning-failed")
        return _evaluate(stream.prefix, values, now)

    # ------------------------------------------------------------------ writing
    def flush(self) -> int:
        """Write every buffered record; returns the objects written."""
        with self._lock:
            buffers, self._buffers = self._buffers, {}
        written = 0
        pending = sorted(buffers.items())
        index = 0
        try:
            for index, ((name, prefix), lines) in enumerate(pending):  # noqa: B007 -- read after a failure
                written += self._flush_one(name, prefix, lines)
        except Exception:
            # What was not written goes back to the buffer for the next flush (a repeat of the
            # partition that failed midway is possible, as with Firehose's own retries).
            with self._lock:
                for key, lines in pending[index:]:
                    self._buffers.setdefault(key, [])[:0] = lines
            raise
        finally:
            self.objects_out += written
        return written

    def _flush_one(self, name: str, prefix: str, lines: list[bytes]) -> int:
        stream = self.streams[name]
        if prefix.startswith(_ERROR):
            return self._write(stream, prefix[len(_ERROR) :], lines, "partitioning-failed")
        if not stream.parquet:
            return self._write(stream, prefix, lines, "")
        written = 0
        converted, refused = self._converter.parquet(lines)
        if converted:
            self._put(stream, self._key(stream, prefix, stream.file_extension), converted)
            written += 1
        if refused:
            now = datetime.now(UTC)
            error_prefix = _evaluate(stream.error_prefix, {}, now, error_type="format-conversion-failed")
            written += self._write(stream, error_prefix, refused, "format-conversion-failed")
        return written

    def _write(self, stream: DeliveryStreamSpec, prefix: str, lines: list[bytes], error: str) -> int:
        body = b"".join(_error_line(line, error) for line in lines) if error else b"".join(lines)
        self._put(stream, self._key(stream, prefix, "" if error else stream.file_extension), body)
        return 1

    def _key(self, stream: DeliveryStreamSpec, prefix: str, extension: str) -> str:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d-%H-%M-%S")
        return f"{prefix}{stream.name}-1-{stamp}-{uuid.uuid4()}{extension}"

    def _put(self, stream: DeliveryStreamSpec, key: str, body: bytes) -> None:
        if self._guard is None:
            self._put_object(stream.bucket, key, body)
            return
        with self._guard():
            self._put_object(stream.bucket, key, body)


_ERROR = "\x00error\x00"


class _Invalid(Exception):
    pass


class _NotFound(Exception):
    pass


def _data(record: Any) -> bytes:
    if not isinstance(record, dict) or not isinstance(record.get("Data"), str):
        raise _Invalid("each record needs its Data")
    data = base64.b64decode(record["Data"], validate=True)
    if len(data) > MAX_RECORD_BYTES:
        raise _Invalid(f"a record holds at most {MAX_RECORD_BYTES} bytes")
    return data


def _sub_records(data: bytes) -> list[bytes]:
    """JSON deaggregation: the JSON objects one record holds back to back (whitespace between
    them). What does not parse is kept whole, and fails partitioning as one record would."""
    text = data.decode("utf-8", errors="replace")
    decoder = json.JSONDecoder()
    parts: list[bytes] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            return parts or [data]
        try:
            _, end = decoder.raw_decode(text, position)
        except ValueError:
            return [*parts, text[position:].encode()]
        parts.append(text[position:end].encode() + b"\n")
        position = end


def _evaluate(prefix: str, values: dict[str, str], now: datetime, *, error_type: str = "") -> str:
    def replace(match: re.Match[str]) -> str:
        namespace, argument = match.group(1), match.group(2)
        if namespace == "partitionKeyFromQuery":
            return values.get(argument, "")
        if namespace == "timestamp":
            return _java_time(now, argument)
        if namespace == "firehose" and argument == "error-output-type":
            return error_type
        if namespace == "firehose" and argument == "random-string":
            return uuid.uuid4().hex[:11]
        return match.group(0)

    return _EXPRESSION.sub(replace, prefix)


def _java_time(now: datetime, pattern: str) -> str:
    """The few Java DateTimeFormatter letters a prefix uses."""
    for java, python in (("yyyy", "%Y"), ("MM", "%m"), ("dd", "%d"), ("HH", "%H"), ("mm", "%M"), ("ss", "%S")):
        pattern = pattern.replace(java, python)
    return now.strftime(pattern)


def _error_line(data: bytes, error: str) -> bytes:
    """Firehose's error record: the raw data, base64, with why it failed."""
    code = {
        "partitioning-failed": "DynamicPartitioning.MetadataExtractionFailed",
        "format-conversion-failed": "DataFormatConversion.MalformedData",
    }[error]
    entry = {"rawData": base64.b64encode(data).decode(), "errorCode": code, "errorMessage": error}
    return json.dumps(entry).encode() + b"\n"


class _Converter:
    """JSON lines into Parquet on one DuckDB connection, kept for the stream's life: opening a
    connection costs several times what a second's records take to convert."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connection: Any = None

    def parquet(self, lines: list[bytes]) -> tuple[bytes, list[bytes]]:
        """One Parquet file of the records that convert, and the records that do not (each tried
        alone once the batch fails, as Firehose sets aside only the malformed records)."""
        try:
            return self._convert(lines), []
        except Exception:
            if len(lines) == 1:
                return b"", lines
        good: list[bytes] = []
        bad: list[bytes] = []
        for line in lines:
            try:
                self._convert([line])
                good.append(line)
            except Exception:
                bad.append(line)
        return (self._convert(good) if good else b""), bad

    def _convert(self, lines: list[bytes]) -> bytes:
        import duckdb

        from midstage.adapters.parquet import write_ndjson_as_parquet

        with self._lock, tempfile.TemporaryDirectory(prefix="localcloud-firehose-") as scratch:
            if self._connection is None:
                self._connection = duckdb.connect(":memory:")
                self._connection.execute("SET threads TO 1")
                self._connection.execute("SET autoinstall_known_extensions = false")
            source, target = Path(scratch) / "records.ndjson", Path(scratch) / "records.parquet"
            source.write_bytes(b"".join(line if line.endswith(b"\n") else line + b"\n" for line in lines))
            write_ndjson_as_parquet(source, target, self._connection)
            return target.read_bytes()

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


def _ok(request_id: str, payload: dict[str, Any]) -> Answer:
    return 200, _headers(request_id), json.dumps(payload).encode()


def _error(request_id: str, code: str, message: str) -> Answer:
    return 400, _headers(request_id), json.dumps({"__type": code, "message": message}).encode()


def _headers(request_id: str) -> list[tuple[str, str]]:
    return [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-RequestId", request_id)]
