"""Where the archive's Parquet files live and the engines that query them.

- `LocalArchive`: a directory laid out as `kind=<kind>/dt=<day>/*.parquet` (what the local cloud,
  the replay command and the benchmarks use), written and read with embedded DuckDB.
- `S3Archive`: the same layout in a bucket; writes go through the S3 client, and reads copy the
  partitions a query needs into a local cache first, so DuckDB never loads its httpfs extension
  (nothing is downloaded at run time, and the local cloud's S3 works like AWS's).
- `AthenaEngine`: the Trino SQL through Athena's API; bytes scanned are Athena's own figure.

DuckDB is imported only inside these classes (it is the optional `analytics` extra).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from midstage.adapters import parquet
from midstage.logic.analytics.answers import QueryResult
from midstage.logic.analytics.dialects import to_trino
from midstage.logic.analytics.reports import Query
from midstage.models.archive import COLUMNS, ArchiveRecord, partition_prefix

if TYPE_CHECKING:
    import duckdb


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


class LocalArchive:
    """An archive directory and an embedded DuckDB over it (one connection, reused)."""

    dialect = "duckdb"

    def __init__(self, root: Path | str, *, threads: int | None = None, memory_limit: str | None = None) -> None:
        self.root = Path(root)
        self._threads = threads
        self._memory_limit = memory_limit
        self._connection: duckdb.DuckDBPyConnection | None = None

    # ------------------------------------------------------------------ writing
    def write(self, records: Iterable[ArchiveRecord], batch: str) -> list[Path]:
        """One Parquet file per partition the records fall in, named `<batch>.parquet`: writing the
        same batch again replaces its files, so a retried batch is not archived twice."""
        written = []
        for prefix, group in parquet.partitions(records).items():
            folder = self.root / prefix
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / f"{batch}.parquet"
            partial = folder / f".{batch}.parquet.partial"
            partial.write_bytes(parquet.encode(group))
            partial.replace(target)  # readers never see half a file
            written.append(target)
        return written

    # ------------------------------------------------------------------ reading
    def files(self, kinds: Sequence[str], start: date, end: date) -> list[Path]:
        found: list[Path] = []
        for kind in sorted(set(kinds)):
            for day in _days(start, end):
                folder = self.root / partition_prefix(kind, day)
                if folder.is_dir():
                    found.extend(sorted(folder.glob("*.parquet")))
        return found

    def connection(self) -> duckdb.DuckDBPyConnection:
        if self._connection is None:
            import duckdb

            self._connection = duckdb.connect(":memory:")
            if self._threads:
                self._connection.execute(f"SET threads TO {int(self._threads)}")
            if self._memory_limit:
                self._connection.execute("SET memory_limit = ?", [self._memory_limit])
            # Never fetch an extension: json and parquet are built into the wheel.
            self._connection.execute("SET autoinstall_known_extensions = false")
            self._connection.execute("SET autoload_known_extensions = false")
        return self._connection

    def run(self, query: Query) -> QueryResult:
        files = self.files(query.kinds, query.start, query.end)
        connection = self.connection()
        _bind_archive(connection, files)
        cursor = connection.execute(query.sql)
        columns = [d[0] for d in cursor.description or []]
        rows = cursor.fetchall()
        return QueryResult(columns, rows, sum(f.stat().st_size for f in files), "duckdb")

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _bind_archive(connection: duckdb.DuckDBPyConnection, files: Sequence[Path]) -> None:
    """`archive` as the query's files (their partition columns from their paths), or an empty
    table of the archive's columns when there are none."""
    if files:
        listed = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
        connection.execute(
            f"CREATE OR REPLACE TEMP VIEW archive AS SELECT * FROM read_parquet([{listed}], "  # noqa: S608
            "hive_partitioning = true, hive_types = {'kind': VARCHAR, 'dt': VARCHAR}, union_by_name = true)"
        )
        return
    # A view in both cases, so the next query can replace it whichever case it falls in.
    columns = ", ".join(f'CAST(NULL AS {kind}) AS "{name}"' for name, kind, _ in COLUMNS)
    connection.execute(
        f"CREATE OR REPLACE TEMP VIEW archive AS SELECT {columns}, "
        "CAST(NULL AS VARCHAR) AS kind, CAST(NULL AS VARCHAR) AS dt WHERE FALSE"
    )


class S3Archive:
    """The archive in a bucket under `prefix`; queried through a local copy of the partitions read."""

    dialect = "duckdb"

    def __init__(
        self,
        bucket: str,
        prefix: str,
        cache: Path | str,
        *,
        client: Any | None = None,
        threads: int | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self._client = client
        # One cache per bucket and prefix: two archives never share (or read) each other's copies.
        scope = f"{bucket}/{self.prefix}".strip("/").replace("/", "__")
        self.local = LocalArchive(Path(cache) / scope, threads=threads)

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.session.Session().client("s3")
        return self._client

    def write(self, records: Iterable[ArchiveRecord], batch: str) -> list[str]:
        keys = []
        for prefix, group in parquet.partitions(records).items():
            key = f"{self.prefix}{prefix}{batch}.parquet"
            self.client.put_object(Bucket=self.bucket, Key=key, Body=parquet.encode(group))
            keys.append(key)
        return keys

    def sync(self, kinds: Sequence[str], start: date, end: date) -> int:
        """Make the cache's copy of the partitions the bucket's: copy the objects that are new or
        changed, remove the copies of objects no longer there; returns the bytes they hold.

        One listing per kind, from the first day's key on (keys sort by day), stopped past the
        last day: a year's report lists a kind once, not once per day."""
        total = 0
        paginator = self.client.get_paginator("list_objects_v2")
        for kind in sorted(set(kinds)):
            kind_prefix = f"{self.prefix}kind={kind}/"
            listed: dict[str, set[str]] = {}
            pages = paginator.paginate(Bucket=self.bucket, Prefix=kind_prefix, StartAfter=f"{kind_prefix}dt={start}")
            for page in pages:
                contents = page.get("Contents", [])
                for item in contents:
                    part, _, name = item["Key"][len(self.prefix) :].rpartition("/")
                    day = part.rpartition("dt=")[2]
                    if day > end.isoformat():
                        break
                    if not name.endswith(".parquet") or day < start.isoformat():
                        continue
                    total += item["Size"]
                    listed.setdefault(day, set()).add(name)
                    target = self.local.root / part / name
                    # An object rewritten in place (an erasure) may keep its size: its time tells.
                    modified = item["LastModified"].timestamp()
                    if target.exists() and target.stat().st_size == item["Size"] and target.stat().st_mtime >= modified:
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    body = self.client.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read()
                    partial = target.with_suffix(".partial")
                    partial.write_bytes(body)
                    os.utime(partial, (modified, modified))
                    partial.replace(target)
                else:
                    continue
                break  # past the last day: the rest of the listing is later still
            for day in _days(start, end):
                folder = self.local.root / partition_prefix(kind, day)
                if folder.is_dir():
                    keep = listed.get(day.isoformat(), set())
                    for stale in folder.glob("*.parquet"):
                        if stale.name not in keep:
                            stale.unlink(missing_ok=True)
        return total

    def run(self, query: Query) -> QueryResult:
        self.sync(query.kinds, query.start, query.end)
        return self.local.run(query)


class AthenaEngine:
    """Runs the Trino translation in an Athena workgroup (its output location and limits apply)."""

    dialect = "trino"

    def __init__(
        self,
        workgroup: str,
        database: str,
        *,
        client: Any | None = None,
        sleep: Callable[[float], None] = time.sleep,
        poll_seconds: float = 0.5,
        timeout_seconds: float = 300,
    ) -> None:
        self.workgroup = workgroup
        self.database = database
        self._client = client
        self._sleep = sleep
        self._poll = poll_seconds
        self._timeout = timeout_seconds

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.session.Session().client("athena")
        return self._client

    def run(self, query: Query) -> QueryResult:
        started = self.client.start_query_execution(
            QueryString=to_trino(query.sql),
            QueryExecutionContext={"Database": self.database},
            WorkGroup=self.workgroup,
        )
        query_id = started["QueryExecutionId"]
        waited = 0.0
        while True:
            execution = self.client.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
            state = execution["Status"]["State"]
            if state == "SUCCEEDED":
                break
            if state in {"FAILED", "CANCELLED"}:
                reason = execution["Status"].get("StateChangeReason", state)
                raise RuntimeError(f"Athena query {query_id} {state.lower()}: {reason}")
            if waited >= self._timeout:
                self.client.stop_query_execution(QueryExecutionId=query_id)
                raise TimeoutError(f"Athena query {query_id} took longer than {self._timeout:g} s")
            self._sleep(self._poll)
            waited += self._poll
        scanned = int(execution.get("Statistics", {}).get("DataScannedInBytes", 0))
        columns: list[str] = []
        types: list[str] = []
        rows: list[tuple[Any, ...]] = []
        paginator = self.client.get_paginator("get_query_results")
        for number, page in enumerate(paginator.paginate(QueryExecutionId=query_id)):
            result = page["ResultSet"]
            if not columns:
                info = result["ResultSetMetadata"]["ColumnInfo"]
                columns = [c["Name"] for c in info]
                types = [c["Type"] for c in info]
            data = result["Rows"][1:] if number == 0 else result["Rows"]  # the first row holds the names
            for row in data:
                cells = [cell.get("VarCharValue") for cell in row["Data"]]
                rows.append(tuple(_typed(value, kind) for value, kind in zip(cells, types, strict=True)))
        return QueryResult(columns, rows, scanned, "athena", query_id)


def _typed(value: str | None, kind: str) -> Any:
    if value is None:
        return None
    if kind in {"bigint", "integer", "smallint", "tinyint"}:
        return int(value)
    if kind in {"double", "float", "real", "decimal"}:
        return float(value)
    if kind == "boolean":
        return value == "true"
    return value
