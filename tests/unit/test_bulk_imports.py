"""Bulk imports' pure parts (logic/imports/bulk.py): splitting a file into parts on record
boundaries, reading rows with their line numbers in the file, and mapping rows to calls."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest
from pydantic import ValidationError

from midstage.errors import ImportRefused
from midstage.logic.imports import bulk
from midstage.models.bulk_imports import BulkImportRequest, BulkMapping, Sidecar

ORDERS = BulkMapping(email="email", order_id="order", revenue="amount", currency="currency", timestamp="at")
ORIGIN = bulk.Origin("src_shop", "imports/src_shop/orders.csv", "orders", "2026-11-22T10:00:00.000Z")


def read_all(data: bytes, fmt: str, part_bytes: int, mapping: BulkMapping = ORDERS) -> bulk.Outcome:
    """Every part of the file, read as the parts would read it, in one outcome."""
    layout = bulk.plan([data[i : i + 5] for i in range(0, len(data), 5)], fmt, part_bytes)
    whole = bulk.Outcome()
    for part in layout.parts:
        found = bulk.calls(bulk.rows(data[part.start : part.end], fmt, part, layout.header), mapping, ORIGIN)
        whole.calls += found.calls
        whole.problems += found.problems
    return whole


CSV = (
    b"email,order,amount,currency,at,note\r\n"
    b'ann@example.com,1001,19.90,usd,2026-11-01T10:00:00Z,"gift, wrapped"\r\n'
    b'bob@example.com,1002,5,EUR,2026-11-02T10:00:00Z,"said ""thanks""\r\nand left"\r\n'
    b"not-an-email,1003,7,EUR,2026-11-03T10:00:00Z,\r\n"
    b"cy@example.com,1004,lots,EUR,2026-11-04T10:00:00Z,\r\n"
    b"dee@example.com,1005,12.5,GBP,2026-11-05T10:00:00Z,last"
)


@pytest.mark.parametrize("part_bytes", [1, 16, 64, 10_000])
def test_parts_of_any_size_read_every_row_once_with_its_line_in_the_file(part_bytes: int) -> None:
    # Given a CSV with CRLF line ends, a quoted comma, doubled quotes, a quoted newline and no
    # trailing newline
    # When it is split into parts of this size and each part is read on its own
    outcome = read_all(CSV, "csv", part_bytes)
    # Then every good row is read once, with the line it starts on
    assert [(line, call["properties"]["order_id"]) for line, call in outcome.calls] == [
        (2, "1001"),
        (3, "1002"),
        (7, "1005"),
    ]
    # And the bad rows are reported by their line (the quoted newline makes line 4 part of row 3)
    assert outcome.problems == [
        (5, "column 'email' is not a valid email address"),
        (6, "column 'amount' (revenue) is not a number"),
    ]


def test_a_split_never_falls_inside_a_quoted_field() -> None:
    # Given a row whose quoted field holds several newlines
    data = b'email,order,amount\nann@example.com,1,"\n\n\n"\nbob@example.com,2,3\n'
    # When the file is split as finely as it can be
    layout = bulk.plan([data], "csv", 1)
    # Then the parts start only where records start
    assert [(p.start, p.first_line) for p in layout.parts] == [(19, 2), (43, 6)]
    assert layout.lines == 6


def test_a_gzipped_file_splits_by_its_decompressed_bytes() -> None:
    # Given the same CSV gzip'd, written as two gzip members
    packed = gzip.compress(CSV[:100]) + gzip.compress(CSV[100:])
    # When it is planned from its decompressed stream and a part is cut from that stream
    layout = bulk.plan(bulk.gunzipped([packed[:7], packed[7:]]), "csv", 40)
    last = layout.parts[-1]
    data = bulk.byte_range(bulk.gunzipped([packed]), last.start, last.end)
    # Then the parts are those of the plain file, and a part's bytes are the plain file's
    assert layout.parts == bulk.plan([CSV], "csv", 40).parts
    assert data == CSV[last.start : last.end]
    assert bulk.is_gzip(packed) and not bulk.is_gzip(CSV)


def test_a_truncated_gzip_file_is_refused() -> None:
    packed = gzip.compress(CSV)
    with pytest.raises(ImportRefused, match="gzip"):
        list(bulk.gunzipped([packed[:20] + b"\x00" * 20]))


def test_json_lines_report_bad_lines_by_number_and_read_nested_fields() -> None:
    # Given JSON lines with a blank line, a broken line, an array and a nested email
    lines = [
        json.dumps({"customer": {"email": "ann@example.com"}, "order": "A1", "amount": 10, "at": 1793000000}),
        "",
        '{"order": "A2", "amount": ',
        "[1, 2]",
        json.dumps(
            {"customer": {"email": "bob@example.com"}, "order": "A3", "amount": "2.50", "at": "2026-11-01T00:00:00Z"}
        ),
    ]
    data = "\n".join(lines).encode()
    mapping = BulkMapping(email="customer.email", order_id="order", revenue="amount", timestamp="at")
    # When it is read in small parts
    outcome = read_all(data, "jsonl", 8, mapping)
    # Then the good lines are calls (a Unix time made ISO) and the bad ones are named by line
    assert [(line, call["properties"], call["timestamp"]) for line, call in outcome.calls] == [
        (1, {"order_id": "A1", "revenue": 10}, "2026-10-26T07:33:20Z"),
        (5, {"order_id": "A3", "revenue": 2.5}, "2026-11-01T00:00:00Z"),
    ]
    assert [line for line, _ in outcome.problems] == [3, 4]
    assert outcome.problems[1] == (4, "a line must hold a JSON object")


def test_an_order_row_becomes_order_completed_with_a_message_id_from_its_order() -> None:
    # Given an order row
    row = {
        "email": " Ann@Example.com ",
        "order": "1001",
        "amount": "19.90",
        "currency": "usd",
        "at": "2026-11-01T10:00:00Z",
    }
    # When it is mapped from two different files
    first = bulk.to_call(row, 2, ORDERS, ORIGIN)
    other_file = bulk.to_call(row, 9, ORDERS, bulk.Origin("src_shop", "imports/src_shop/again.csv", "orders", "x"))
    # Then it is an Order Completed for the email, with the same messageId both times
    assert first["type"] == "track" and first["event"] == "Order Completed"
    assert first["properties"] == {"order_id": "1001", "revenue": 19.9, "currency": "USD"}
    assert first["context"]["traits"] == {"email": "ann@example.com"}
    assert first["anonymousId"].startswith("import-email-")
    assert first["messageId"] == other_file["messageId"]
    # And another source's same order is another event
    assert (
        bulk.to_call(row, 2, ORDERS, bulk.Origin("src_pos", ORIGIN.file, "orders", "x"))["messageId"]
        != first["messageId"]
    )


def test_a_profile_row_without_a_key_is_named_by_its_file_and_line() -> None:
    mapping = BulkMapping(userId="id", phone="mobile", traits={"tier": "plan", "city": "city"})
    origin = bulk.Origin("src_crm", "imports/src_crm/people.csv", "profiles", "2026-11-22T10:00:00.000Z")
    row = {"id": "u-1", "mobile": "+44 20 7946 0958", "tier": "gold", "city": ""}
    call = bulk.to_call(row, 4, mapping, origin)
    # Then it is an identify with the traits given (empty cells left out) and the phone as E.164
    assert call["type"] == "identify"
    assert call["userId"] == "u-1"
    assert call["traits"] == {"plan": "gold", "phone": "+442079460958"}
    assert call["timestamp"] == origin.started_at
    # And the same row on another line, or in another file, is another event
    assert bulk.to_call(row, 5, mapping, origin)["messageId"] != call["messageId"]
    assert (
        bulk.to_call(row, 4, mapping, bulk.Origin("src_crm", "b.csv", "profiles", "x"))["messageId"]
        != call["messageId"]
    )
    assert bulk.to_call(row, 4, mapping, origin)["messageId"] == call["messageId"]


def test_a_conversion_takes_its_name_from_a_column_or_the_mapping() -> None:
    origin = bulk.Origin("src_pos", "f.jsonl", "conversions", "2026-11-22T10:00:00.000Z")
    row: dict[str, Any] = {"uid": "u-9", "what": "Store Visit", "store": "Leeds", "at": "2026-11-20T09:00:00+00:00"}
    named = bulk.to_call(row, 1, BulkMapping(userId="uid", event="what", timestamp="at", properties=["store"]), origin)
    fixed = bulk.to_call(row, 1, BulkMapping(userId="uid", event_name="Demo Booked", timestamp="at"), origin)
    assert (named["event"], named["properties"]) == ("Store Visit", {"store": "Leeds"})
    assert (fixed["event"], fixed["properties"]) == ("Demo Booked", {})
    with pytest.raises(bulk.RowProblem, match="event name"):
        bulk.to_call({**row, "what": " "}, 1, BulkMapping(userId="uid", event="what", timestamp="at"), origin)
    with pytest.raises(bulk.RowProblem, match="timestamp"):
        bulk.to_call({**row, "at": ""}, 1, BulkMapping(userId="uid", event="what", timestamp="at"), origin)


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"email": "", "order": "1", "amount": "1"}, "no identifier"),
        ({"email": "a@example.com", "order": "", "amount": "1"}, "the row's key"),
        ({"email": "a@example.com", "order": "1", "amount": "NaN"}, "not a number"),
        ({"email": "a@example.com", "order": "1", "amount": "1", "currency": "dollars"}, "currency code"),
        ({"email": "a@example.com", "order": "1", "amount": "1", "items": "[1]"}, "array of objects"),
        ({"email": "a@example.com", "order": "1", "amount": "1", "items": "{nope"}, "not a JSON array"),
    ],
)
def test_a_bad_order_row_says_which_column_and_never_its_value(row: dict[str, str], reason: str) -> None:
    mapping = BulkMapping(email="email", order_id="order", revenue="amount", currency="currency", products="items")
    with pytest.raises(bulk.RowProblem, match=reason) as raised:
        bulk.to_call(row, 3, mapping, ORIGIN)
    assert "a@example.com" not in str(raised.value)


def test_products_given_as_json_in_a_cell_are_kept() -> None:
    mapping = BulkMapping(email="email", order_id="order", revenue="amount", products="items")
    items = [{"sku": "A-1", "price": 9.5, "quantity": 2}]
    call = bulk.to_call(
        {"email": "a@example.com", "order": "9", "amount": "19", "items": json.dumps(items)}, 2, mapping, ORIGIN
    )
    assert call["properties"]["products"] == items


def test_a_file_whose_header_is_malformed_or_empty_is_refused_whole() -> None:
    with pytest.raises(ImportRefused, match="empty"):
        bulk.plan([], "csv", 100)
    with pytest.raises(ImportRefused, match="twice"):
        bulk.plan([b"email,email\na,b\n"], "csv", 100)
    with pytest.raises(ImportRefused, match="header row is over"):
        bulk.plan([b"x" * (bulk.MAX_HEADER_BYTES + 10)], "csv", 100)


def test_a_header_only_file_has_no_parts_and_a_bom_is_not_part_of_the_first_column() -> None:
    layout = bulk.plan([b"\xef\xbb\xbfemail,order,amount\r\n"], "csv", 100)
    assert layout.header == ["email", "order", "amount"]
    assert layout.parts == []
    assert bulk.missing_columns(ORDERS, layout.header) == ["at", "currency"]


def test_a_row_with_the_wrong_number_of_fields_is_reported_and_the_next_is_read() -> None:
    outcome = read_all(b"email,order,amount\na@example.com,1\nb@example.com,2,3\n", "csv", 1000, ORDERS_NO_EXTRAS)
    assert outcome.problems == [(2, "2 fields where the header has 3")]
    assert [line for line, _ in outcome.calls] == [3]


ORDERS_NO_EXTRAS = BulkMapping(email="email", order_id="order", revenue="amount")


def test_a_mapping_must_fit_its_kind() -> None:
    with pytest.raises(ValidationError, match="order_id"):
        BulkImportRequest.model_validate(
            {"sourceId": "src_1", "kind": "orders", "format": "csv", "mapping": {"email": "e"}, "data": "e\n"}
        )
    with pytest.raises(ValidationError, match="identifier"):
        Sidecar.model_validate({"kind": "profiles", "mapping": {"traits": ["plan"]}})
    with pytest.raises(ValidationError, match="source's prefix"):
        BulkImportRequest.model_validate(
            {
                "sourceId": "src_1",
                "kind": "profiles",
                "format": "csv",
                "mapping": {"email": "e"},
                "s3Key": "imports/src_2/a.csv",
            }
        )
    with pytest.raises(ValidationError, match="one of"):
        BulkImportRequest.model_validate(
            {"sourceId": "src_1", "kind": "profiles", "format": "csv", "mapping": {"email": "e"}}
        )
    listed = BulkMapping.model_validate({"email": "e", "traits": ["plan", "city"]})
    assert listed.traits == {"plan": "plan", "city": "city"}


def test_the_format_follows_the_file_name() -> None:
    assert bulk.format_from_name("imports/s/a.CSV.gz") == "csv"
    assert bulk.format_from_name("imports/s/a.ndjson") == "jsonl"
    assert bulk.format_from_name("imports/s/a.xlsx") is None


# ----------------------------------------------------------------------- mappings kept on a source
def test_a_header_is_read_from_a_files_first_bytes_plain_or_gzipd_or_left_to_the_plan() -> None:
    import gzip as gz

    from midstage.logic.imports.bulk import head_header

    assert head_header(b"\xef\xbb\xbfemail,order\r\nann@example.com,o-1\r\n") == ["email", "order"]
    assert head_header(gz.compress(b"email,total\n" + b"x,1\n" * 50_000)[:4096]) == ["email", "total"]
    assert head_header(b"email,order") is None  # no line end within the head
    assert head_header(b'"e,mail",order\n') is None  # a quoted header: the plan reads it whole
    assert head_header(b"a,a\n") is None  # a malformed header: the plan refuses it with why


def test_a_kept_mapping_is_checked_against_its_declared_columns() -> None:
    from midstage.models.bulk_imports import SourceImport, source_import_problems

    kept = SourceImport.model_validate(
        {"mapping": {"email": "Email", "order_id": "Order", "revenue": "Totl"}, "columns": ["Email", "Order", "Total"]}
    )
    assert source_import_problems({"orders": kept}) == [
        "imports.orders: the mapping names columns that are not among `columns`: 'Totl'"
    ]
    assert source_import_problems({"profiles": kept})[0].startswith("imports.profiles: ")
