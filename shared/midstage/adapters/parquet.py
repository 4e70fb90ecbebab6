"""Archive records into Parquet files (and the JSON lines Firehose turns into the same files).

DuckDB writes the Parquet: one wheel of about 70 MB unzipped that also reads the files back for
the reports, against pyarrow's 130 MB plus numpy's 70 MB. It is imported only when Parquet is
written or read (the local cloud, the replay command, the benchmarks); on AWS, Firehose converts
the JSON lines below to Parquet with the Glue table's schema, so no function carries DuckDB.

Rows go to DuckDB as newline-delimited JSON with every column's type declared, and come out as
ZSTD-compressed Parquet; the scratch files live in a private temporary directory and are gone
when the call returns.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

from midstage.models.archive import COLUMNS, ArchiveRecord, partition_prefix

ROW_GROUP_SIZE = 122_880  # DuckDB's default; a row group is what readers skip on min/max


def partitions(records: Iterable[ArchiveRecord]) -> dict[str, list[ArchiveRecord]]:
    """Records grouped by their partition prefix (`kind=<kind>/dt=YYYY-MM-DD/`), each group in
    time order, repeats (same record id) dropped."""
    groups: dict[str, dict[str, ArchiveRecord]] = {}
    for record in records:
        groups.setdefault(record.prefix, {}).setdefault(record.record_id, record)
    return {
        prefix: sorted(group.values(), key=lambda r: (r.occurred_at, r.record_id))
        for prefix, group in sorted(groups.items())
    }


def object_key(root: str, kind: str, day: date, name: str) -> str:
    """Where one batch lands: `<root>kind=<kind>/dt=<day>/<name>.parquet`."""
    base = root if not root or root.endswith("/") else root + "/"
    return f"{base}{partition_prefix(kind, day)}{name}.parquet"


def _default(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not serialisable: {type(value).__name__}")


def json_line(record: ArchiveRecord) -> bytes:
    """The record for a Firehose stream: every column, plus `kind` and `dt` for its dynamic
    partitioning (`partitionKeyFromQuery`: .kind and .dt). Timestamps are ISO 8601 with a Z, which
    Firehose's OpenX JSON deserializer reads into the table's timestamp columns."""
    row = record.row()
    for name in ("occurred_at", "archived_at"):
        row[name] = row[name].isoformat(timespec="milliseconds") + "Z"
    row["kind"] = record.kind
    row["dt"] = record.day.isoformat()
    return json.dumps(row, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def encode(records: Sequence[ArchiveRecord]) -> bytes:
    """One Parquet file holding `records` (all of one partition, normally) in `COLUMNS` order."""
    with tempfile.TemporaryDirectory(prefix="midstage-parquet-") as scratch:
        source = Path(scratch) / "rows.ndjson"
        target = Path(scratch) / "rows.parquet"
        with source.open("wb") as handle:
            for record in records:
                handle.write(json.dumps(record.row(), separators=(",", ":"), default=_default).encode() + b"\n")
        write_ndjson_as_parquet(source, target)
        return target.read_bytes()


def write_ndjson_as_parquet(source: Path, target: Path, connection: Any | None = None) -> None:
    """`connection`: a DuckDB connection to reuse (opening one costs far more than a small batch's
    conversion); without it, one is opened for the call and closed after."""
    import duckdb  # only here: see the module's note

    types = ", ".join(f"'{name}': '{kind}'" for name, kind, _ in COLUMNS)
    columns = ", ".join(f'"{name}"' for name, _, _ in COLUMNS)
    own = connection is None
    if connection is None:
        connection = duckdb.connect(":memory:")
        connection.execute("SET threads TO 1")  # one batch per call: keep the Lambda's one vCPU honest
    try:
        connection.execute(
            f"COPY (SELECT {columns} FROM read_json(?, format = 'newline_delimited', columns = {{{types}}})) "  # noqa: S608
            f"TO '{_quoted(target)}' (FORMAT PARQUET, COMPRESSION ZSTD, ROW_GROUP_SIZE {ROW_GROUP_SIZE})",
            [str(source)],
        )
    finally:
        if own:
            connection.close()


def decode(data: bytes) -> list[dict[str, Any]]:
    """The rows of one Parquet file, as dicts (for replay and tests)."""
    import duckdb

    with tempfile.TemporaryDirectory(prefix="midstage-parquet-") as scratch:
        path = Path(scratch) / "rows.parquet"
        path.write_bytes(data)
        connection = duckdb.connect(":memory:")
        try:
            cursor = connection.execute("SELECT * FROM read_parquet(?)", [str(path)])
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        finally:
            connection.close()


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")
