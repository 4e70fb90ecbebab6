"""Bulk imports of profiles, orders and offline conversions: how a file is split into parts, how a
part's bytes become rows with their line numbers, and how a row becomes a Segment-spec call.

Pure: bytes and chunks of bytes in, calls and problems out. The service (services/bulk_import.py)
reads the bucket, runs the calls through the tracking API's intake and records progress.

Parts are byte ranges that start and end on record boundaries, found in one pass over the file
(`Splitter`): in CSV a newline ends a record only outside quotes, which the count of `"` before
it tells (RFC 4180 doubles a quote inside a field, so the parity holds); in JSON lines every
newline does (JSON escapes a newline inside a string). The same pass counts lines, so each part
knows the line it starts on and reports problems by their line in the file. A gzip'd file is
split by its decompressed offsets (gzip cannot be entered in the middle): a part decompresses
from the start and skips to its range.

A row's messageId derives from (source, file, line), or from (source, kind, key) when the mapping
names a key column (orders default to their order_id): running an import again, or importing
the same rows from another file, makes the same events, which the profile updater's dedupe
absorbs.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from midstage.errors import ImportRefused
from midstage.logic.identity import normalise_email, normalise_phone
from midstage.logic.imports.model import MAX_CELL_BYTES, MAX_IDENTIFIER_BYTES, RowProblem
from midstage.logic.imports.text import check_shape, read_records
from midstage.logic.profile import ORDER_COMPLETED
from midstage.models.bulk_imports import BulkMapping

GZIP_MAGIC = b"\x1f\x8b"
MAX_HEADER_BYTES = 64 * 1024
# Decompressed, a file may be this large (a gzip bomb stops here, not at the function's memory).
MAX_FILE_BYTES = 16 * 1024**3
MAX_LISTED_ERRORS = 100
MAX_JSON_LINE_BYTES = 32 * 1024  # as one tracking call
_CURRENCY_LENGTH = 3


# ----------------------------------------------------------------------------- splitting
@dataclass(frozen=True)
class Part:
    start: int  # byte offset of its first record (decompressed)
    end: int  # byte offset after its last record
    first_line: int  # the line of the file its first record starts on


@dataclass
class Layout:
    """A file as the import reads it: its header (CSV), its parts, its size and line count."""

    header: list[str] | None
    parts: list[Part]
    size: int
    lines: int


class Splitter:
    """One pass over a file's (decompressed) chunks: record boundaries near every `part_bytes`."""

    def __init__(self, fmt: str, part_bytes: int) -> None:
        if part_bytes < 1:
            raise ValueError("part_bytes must be positive")
        self.csv = fmt == "csv"
        self.part_bytes = part_bytes
        self.offset = 0  # bytes seen before the current chunk
        self.newlines = 0
        self.quotes = 0
        self.head = bytearray()  # the CSV header's bytes, until its record ends
        self.header: list[str] | None = None
        self.data_start: int | None = None if self.csv else 0
        self.boundaries: list[tuple[int, int]] = []  # (offset, line) where a part may start
        self.target = 0 if self.csv else part_bytes
        self.ends_with_newline = False

    def feed(self, chunk: bytes) -> None:
        at, size = 0, len(chunk)
        while at < size:
            position = self.offset + at
            if position < self.target:
                # Nothing to find before the target: count and move on (bytes.count is C speed).
                stop = min(size, at + self.target - position)
                self._count(chunk, at, stop)
                at = stop
                continue
            newline = chunk.find(b"\n", at)
            if newline < 0:
                self._count(chunk, at, size)
                if self.data_start is None:
                    self._keep_head(chunk[at:])
                break
            self._count(chunk, at, newline + 1)
            if self.data_start is None:
                self._keep_head(chunk[at : newline + 1])
            at = newline + 1
            if self.csv and self.quotes % 2:
                continue  # inside a quoted field
            boundary = self.offset + at
            if self.data_start is None:
                self._end_header(boundary)
            else:
                self.boundaries.append((boundary, self.newlines + 1))
            self.target = boundary + self.part_bytes
        self.offset += size
        if size:
            self.ends_with_newline = chunk.endswith(b"\n")
        if self.offset > MAX_FILE_BYTES:
            raise ImportRefused(f"the file is over {MAX_FILE_BYTES:,} bytes; split it")

    def _count(self, chunk: bytes, start: int, stop: int) -> None:
        self.newlines += chunk.count(b"\n", start, stop)
        if self.csv:
            self.quotes += chunk.count(b'"', start, stop)

    def _keep_head(self, piece: bytes) -> None:
        self.head += piece
        if len(self.head) > MAX_HEADER_BYTES:
            raise ImportRefused(f"the header row is over {MAX_HEADER_BYTES:,} bytes; is this a CSV file?")

    def _end_header(self, boundary: int) -> None:
        self.header = parse_header(bytes(self.head))
        self.data_start = boundary
        self.head = bytearray()

    def layout(self) -> Layout:
        if self.offset == 0:
            raise ImportRefused("the file is empty")
        if self.data_start is None:  # a file that is only a header without a newline
            self._end_header(self.offset)
        assert self.data_start is not None
        starts = [(self.data_start, 2 if self.csv else 1)] if self.data_start < self.offset else []
        starts += [(offset, line) for offset, line in self.boundaries if offset < self.offset]
        parts = [
            Part(start, starts[index + 1][0] if index + 1 < len(starts) else self.offset, line)
            for index, (start, line) in enumerate(starts)
        ]
        # A last line without a trailing newline is a line too.
        return Layout(self.header, parts, self.offset, self.newlines + (0 if self.ends_with_newline else 1))


def plan(chunks: Iterable[bytes], fmt: str, part_bytes: int) -> Layout:
    splitter = Splitter(fmt, part_bytes)
    for chunk in chunks:
        splitter.feed(chunk)
    return splitter.layout()


def parse_header(raw: bytes) -> list[str]:
    text = _text(raw).removeprefix("\ufeff").replace("\r\n", "\n")
    records = list(read_records(text))
    if not records:
        raise ImportRefused("the file has no header row")
    _, cells, problem = records[0]
    if problem:
        raise ImportRefused(f"the header row is malformed: {problem}")
    header = [cell.strip() for cell in cells]
    if len(set(header)) != len(header) or not all(header):
        raise ImportRefused("the header row names a column twice, or has an empty name")
    return header


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ImportRefused(f"the header is not UTF-8 text (byte {error.start + 1})") from error


def is_gzip(first_bytes: bytes) -> bool:
    return first_bytes[:2] == GZIP_MAGIC


def gunzipped(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """A gzip stream's decompressed chunks (several members, as `cat a.gz b.gz` makes, included)."""
    inflater = zlib.decompressobj(wbits=31)
    try:
        for chunk in chunks:
            data = chunk
            while data:
                out = inflater.decompress(data)
                if out:
                    yield out
                if inflater.eof and inflater.unused_data:
                    data = inflater.unused_data
                    inflater = zlib.decompressobj(wbits=31)
                else:
                    data = b""
        tail = inflater.flush()
        if tail:
            yield tail
        if not inflater.eof:
            raise ImportRefused("the gzip file is truncated (its last member never ends)")
    except zlib.error as error:
        raise ImportRefused(f"the file is not valid gzip data: {error}") from error


def byte_range(chunks: Iterable[bytes], start: int, end: int) -> bytes:
    """Bytes [start, end) of a stream of chunks (a gzip'd part skips to its start)."""
    out = bytearray()
    offset = 0
    for chunk in chunks:
        stop = offset + len(chunk)
        if stop > start:
            out += chunk[max(0, start - offset) : end - offset]
        offset = stop
        if offset >= end:
            break
    return bytes(out)


# ----------------------------------------------------------------------------- reading rows
@dataclass(frozen=True)
class Row:
    line: int
    values: Mapping[str, Any] | None  # column (or field) -> value, None when the record is malformed
    problem: str = ""


def rows(data: bytes, fmt: str, part: Part, header: list[str] | None) -> Iterator[Row]:
    """A part's records with their line numbers in the file; a malformed one is a Row with its
    problem, and reading goes on."""
    text = data.decode("utf-8", errors="replace")
    if part.start == 0:
        text = text.removeprefix("\ufeff")
    if fmt == "csv":
        assert header is not None
        yield from _csv_rows(text.replace("\r\n", "\n"), part.first_line, header)
    else:
        yield from _json_rows(text, part.first_line)


def _csv_rows(text: str, first_line: int, header: list[str]) -> Iterator[Row]:
    for line, cells, problem in read_records(text):
        at = first_line + line - 1
        if problem:
            yield Row(at, None, problem)
            continue
        try:
            check_shape(cells, header)
        except RowProblem as error:
            yield Row(at, None, str(error))
            continue
        if any("\ufffd" in cell for cell in cells):
            yield Row(at, None, "the row is not UTF-8 text")
            continue
        yield Row(at, dict(zip(header, cells, strict=True)))


def _json_rows(text: str, first_line: int) -> Iterator[Row]:
    for index, line_text in enumerate(text.split("\n")):
        at = first_line + index
        stripped = line_text.strip()
        if not stripped:
            continue
        if len(stripped) > MAX_JSON_LINE_BYTES // 4 and len(stripped.encode()) > MAX_JSON_LINE_BYTES:
            yield Row(at, None, f"the line is over {MAX_JSON_LINE_BYTES:,} bytes")
            continue
        if "\ufffd" in stripped:
            yield Row(at, None, "the line is not UTF-8 text")
            continue
        try:
            value = json.loads(stripped, parse_constant=_no_constant)
        except (ValueError, RecursionError) as error:
            yield Row(at, None, f"not valid JSON: {str(error)[:200]}")
            continue
        if not isinstance(value, dict):
            yield Row(at, None, "a line must hold a JSON object")
            continue
        yield Row(at, value)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# ----------------------------------------------------------------------------- rows to calls
@dataclass(frozen=True)
class Origin:
    """What a row's messageId and defaults derive from."""

    source_id: str
    file: str  # the object key, or `inline:<digest>` for a body sent to the API
    kind: str
    started_at: str  # ISO time: the timestamp of a row without one (stable across re-runs)


@dataclass
class Outcome:
    calls: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (line, call)
    problems: list[tuple[int, str]] = field(default_factory=list)  # (line, why)


def to_call(row: Mapping[str, Any], line: int, mapping: BulkMapping, origin: Origin) -> dict[str, Any]:
    """One row as a Segment-spec call: identify (profiles) or track (orders, conversions).
    Raises RowProblem with a reason that names columns, never the row's values (the progress
    report is kept for days and holds nothing of a person)."""
    who, contact = _identifiers(row, mapping)
    timestamp = _timestamp(row, mapping, origin)
    key = _key(row, mapping, origin.kind)
    row_key = f"key:{key}" if key is not None else f"line:{line}"
    scope = origin.file if key is None else ""
    digest = hashlib.sha256(f"{origin.source_id}\n{origin.kind}\n{scope}\n{row_key}".encode()).hexdigest()
    call: dict[str, Any] = {**who, "messageId": f"imp-{digest[:32]}", "timestamp": timestamp}
    context: dict[str, Any] = {"integration": {"name": "bulk-import"}}
    if origin.kind == "profiles":
        traits = {name: value for column, name in mapping.traits.items() if (value := _plain(row, column)) is not None}
        call.update(type="identify", traits={**traits, **contact})
    else:
        if contact:  # each event finds the person by itself, whichever the updater sees first
            context["traits"] = contact
        if origin.kind == "orders":
            call.update(type="track", event=ORDER_COMPLETED, properties=_order(row, mapping))
        else:
            name = mapping.event_name or _plain(row, mapping.event or "")
            if not isinstance(name, str) or not name.strip():
                raise RowProblem(f"column {mapping.event!r} (the event name) is empty")
            properties = {
                name_: value
                for column, name_ in mapping.properties.items()
                if (value := _plain(row, column)) is not None
            }
            call.update(type="track", event=name.strip()[:200], properties=properties)
    call["context"] = context
    return call


def _identifiers(row: Mapping[str, Any], mapping: BulkMapping) -> tuple[dict[str, str], dict[str, str]]:
    who: dict[str, str] = {}
    contact: dict[str, str] = {}
    for role, column in mapping.identifier_columns().items():
        raw = _plain(row, column)
        if raw is None:
            continue
        value = str(raw).strip()
        if not value:
            continue
        if len(value.encode()) > MAX_IDENTIFIER_BYTES:
            raise RowProblem(f"column {column!r} ({role}) is over {MAX_IDENTIFIER_BYTES} bytes")
        if role == "email":
            email = normalise_email(value)
            if email is None:
                raise RowProblem(f"column {column!r} is not a valid email address")
            contact["email"] = email
        elif role == "phone":
            phone = normalise_phone(value)
            if phone is None:
                raise RowProblem(f"column {column!r} is not an international phone number (E.164)")
            contact["phone"] = phone
        else:
            who[role] = value
    if not who and not contact:
        columns = ", ".join(repr(c) for c in mapping.identifier_columns().values())
        raise RowProblem(f"no identifier: {columns} empty")
    if not who:
        # Every call needs a userId or an anonymousId; one derived from the contact identifier is
        # the same in every import (as segment imports derive it), so a person gains it once.
        kind, value = ("email", contact["email"]) if "email" in contact else ("phone", contact["phone"])
        who["anonymousId"] = f"import-{kind}-{hashlib.sha256(value.encode()).hexdigest()[:32]}"
    return who, contact


def _timestamp(row: Mapping[str, Any], mapping: BulkMapping, origin: Origin) -> str:
    if not mapping.timestamp:
        return origin.started_at
    value = _plain(row, mapping.timestamp)
    if value is None or (isinstance(value, str) and not value.strip()):
        if origin.kind == "profiles":
            return origin.started_at
        raise RowProblem(f"column {mapping.timestamp!r} (the timestamp) is empty")
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise RowProblem(f"column {mapping.timestamp!r} is not a time")
    # An ISO 8601 time goes to the intake as it is, which checks it as it checks any call's;
    # a number is taken for Unix seconds.
    if isinstance(value, int | float) or value.strip().replace(".", "", 1).isdigit():
        try:
            return datetime.fromtimestamp(float(value), UTC).isoformat().replace("+00:00", "Z")
        except (OverflowError, ValueError, OSError) as error:
            raise RowProblem(f"column {mapping.timestamp!r} is not a time") from error
    return value.strip()


def _key(row: Mapping[str, Any], mapping: BulkMapping, kind: str) -> str | None:
    column = mapping.key or (mapping.order_id if kind == "orders" else None)
    if column is None:
        return None
    value = _plain(row, column)
    text = "" if value is None or isinstance(value, dict | list) else str(value).strip()
    if not text:
        raise RowProblem(f"column {column!r} (the row's key) is empty")
    return text[:MAX_CELL_BYTES]


def _order(row: Mapping[str, Any], mapping: BulkMapping) -> dict[str, Any]:
    assert mapping.order_id
    assert mapping.revenue
    properties: dict[str, Any] = {"order_id": str(_plain(row, mapping.order_id)).strip()}
    revenue = _plain(row, mapping.revenue)
    try:
        amount = Decimal(str(revenue).strip()) if revenue is not None and not isinstance(revenue, bool) else None
    except InvalidOperation:
        amount = None
    if amount is None or not amount.is_finite():
        raise RowProblem(f"column {mapping.revenue!r} (revenue) is not a number")
    properties["revenue"] = float(amount) if amount != amount.to_integral_value() else int(amount)
    if mapping.currency:
        currency = _plain(row, mapping.currency)
        code = str(currency or "").strip().upper()
        if code:
            if len(code) != _CURRENCY_LENGTH or not code.isalpha():
                raise RowProblem(f"column {mapping.currency!r} is not a currency code (ISO 4217)")
            properties["currency"] = code
    if mapping.products:
        products = _plain(row, mapping.products)
        if isinstance(products, str) and products.strip():
            try:
                products = json.loads(products)
            except ValueError as error:
                raise RowProblem(f"column {mapping.products!r} (products) is not a JSON array") from error
        if products not in (None, ""):
            if not isinstance(products, list) or not all(isinstance(p, dict) for p in products):
                raise RowProblem(f"column {mapping.products!r} (products) is not an array of objects")
            properties["products"] = products
    return properties


def _plain(row: Mapping[str, Any], column: str) -> Any:
    """A column's value (a dotted path reaches into a JSON line's objects); None when absent."""
    if column in row:
        value = row[column]
    else:
        value = row
        for step in column.split("."):
            if not isinstance(value, Mapping) or step not in value:
                return None
            value = value[step]
    if isinstance(value, str):
        return value if value.strip() else None
    return value


def calls(found: Iterable[Row], mapping: BulkMapping, origin: Origin) -> Outcome:
    outcome = Outcome()
    for row in found:
        if row.values is None:
            outcome.problems.append((row.line, row.problem))
            continue
        try:
            outcome.calls.append((row.line, to_call(row.values, row.line, mapping, origin)))
        except RowProblem as error:
            outcome.problems.append((row.line, str(error)))
    return outcome


def missing_columns(mapping: BulkMapping, header: list[str]) -> list[str]:
    """The mapping's columns a CSV header lacks (a JSON line's fields are looked up per row)."""
    present = set(header)
    return sorted({column for column in mapping.columns_named() if column not in present})


def unknown_columns(missing: list[str], header: list[str], whose: str) -> str:
    """Why a mapping does not fit a file: the columns it names that the header lacks, and the header."""
    named = ", ".join(repr(m) for m in missing[:20])
    has = ", ".join(repr(h) for h in header[:50]) + (", ..." if len(header) > 50 else "")
    return f"{whose} names columns the file's header lacks: {named} (the header has {has})"


def head_header(head: bytes) -> list[str] | None:
    """A CSV's header from the file's first bytes (gzip'd or not), or None when they do not hold
    a plain first line (a quoted header, a line longer than the head): the plan reads it then."""
    if is_gzip(head):
        try:
            head = zlib.decompressobj(wbits=31).decompress(head)
        except zlib.error:
            return None
    line, newline, _ = head.partition(b"\n")
    if not newline or b'"' in line:
        return None
    try:
        return parse_header(line + b"\n")
    except ImportRefused:
        return None


def format_from_name(key: str) -> str | None:
    name = key.lower().removesuffix(".gz")
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    return None
