# ruff: noqa: S608 -- the generator and the metadata queries build SQL from this script's own numbers
"""What the analytics plane costs: archiving one event, and reports over a synthetic archive.

    python -m bench.bench_analytics                          # all of it over 1M events (about 2 min)
    python -m bench.bench_analytics write                    # write cost only
    python -m bench.bench_analytics codecs                   # ZSTD against Firehose's SNAPPY and GZIP
    python -m bench.bench_analytics generate --events 10000000
    python -m bench.bench_analytics reports --events 10000000 --runs 2 --profile

*Write cost* (one core, CPU time, median of REPEATS with the spread): building the record from
an enriched event (`records.event_record`), its Firehose JSON line (`parquet.json_line`) and the
ZSTD Parquet of a batch (`parquet.encode`), with `json.dumps` of the same event as the baseline.

*Reports*: a synthetic archive of `--events` events (kind `event`; message records come on top)
over 90 days, written by DuckDB straight into the archive's layout (`kind=<kind>/dt=<day>/`,
`COLUMNS` in order, ZSTD Parquet) and cached under `--dir` for the next run. Each report runs in
a child process of its own, so its peak resident memory is its own: the first call on a fresh
`LocalArchive` (cold: a new DuckDB connection; the files sit in the OS page cache either way)
then `--runs` more on the same one (warm), wall and CPU time. Bytes: the answer's own figure
(every file of the partitions read), the compressed bytes of the columns the SQL names, and what
DuckDB's profiler says it read (only the columns and row groups it needed), which is what a
columnar engine such as Athena is billed for.

The 10M archive takes about 5 CPU-minutes and 6 GB of memory to generate (its sort spills to
`--dir`); run it under `nice` on a shared machine, and never from a test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

REPEATS = 5
START = date(2026, 9, 1)
DAYS = 90
END = START + timedelta(days=DAYS - 1)
NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
GENERATOR = 2  # bump when the synthetic archive's shape changes: cached archives are rebuilt
DEFAULT_DIR = Path(tempfile.gettempdir()) / "midstage-bench-archive"
THREADS = 2


# ------------------------------------------------------------------------------ write cost
def _hex(*parts: object) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()


def enriched_event(n: int) -> dict[str, Any]:
    """A track event as collect hands it to the profile updater: a browser SDK's context and ids
    (random, as SDKs make them), a product's properties, UTM fields on a third of them. Event `n`
    is one of 2,000 people's, at a time of day that grows with `n` (a batch is in time order)."""
    person = int(_hex("person", n)[:8], 16) % 2000
    second = n * 86_000 // 10_000
    stamp = f"2026-11-30T{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}.{n * 37 % 1000:03d}Z"
    sku = int(_hex("sku", n)[:8], 16) % 5000
    anonymous = _hex("anonymous", person)
    context: dict[str, Any] = {
        "library": {"name": "analytics.js", "version": "5.2.0"},
        "locale": "en-US",
        "timezone": "Europe/Berlin",
        "page": {
            "path": f"/products/sku-{sku}",
            "referrer": "https://www.google.com/",
            "title": f"Item {sku}",
            "url": f"https://shop.example/products/sku-{sku}?ref=home",
        },
        "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko)",
        "ip": f"203.0.113.{person % 250}",
    }
    if n % 3 == 0:
        context["campaign"] = {"source": "google", "medium": "cpc", "name": "winter-sale", "term": "trail shoes"}
    return {
        "type": "track",
        "event": "Product Viewed",
        "messageId": "ajs-next-" + _hex("message", n)[:32],
        "userId": f"user-{person}" if person % 5 else None,
        "anonymousId": f"{anonymous[:8]}-{anonymous[8:12]}-4{anonymous[13:16]}-a{anonymous[17:20]}-{anonymous[20:32]}",
        "timestamp": stamp,
        "receivedAt": stamp,
        "sentAt": stamp,
        "sourceId": "src_4e1f9a2b7c3d",
        "properties": {
            "product_id": f"sku-{sku}",
            "name": f"Item {sku}",
            "category": ("shoes", "bags", "coats", "hats")[sku % 4],
            "brand": "Northwind",
            "price": 10 + sku % 190 + 0.9,
            "currency": "EUR",
        },
        "context": context,
    }


def _cpu_per_item(work: Callable[[], object], items: int, repeats: int = REPEATS) -> tuple[float, float, float]:
    """Median, min and max CPU µs per item over `repeats` calls of `work` (which handles `items`)."""
    samples = []
    for _ in range(repeats):
        started = time.process_time()
        work()
        samples.append((time.process_time() - started) / items * 1e6)
    return statistics.median(samples), min(samples), max(samples)


def _show(label: str, figures: tuple[float, float, float], extra: str = "") -> None:
    median, low, high = figures
    print(f"   {label:<52} {median:>8.2f} µs  ({low:.2f}-{high:.2f}){extra}")


def write_cost() -> dict[str, Any]:
    from midstage.adapters import parquet
    from midstage.logic.archive import records

    archived = datetime(2026, 11, 30, 0, 5, tzinfo=UTC)
    count = 10_000
    events = [enriched_event(n) for n in range(count)]
    profiles = ["prof_" + _hex("profile", e["anonymousId"])[:26] for e in events]
    built = [records.event_record(e, p, archived) for e, p in zip(events, profiles, strict=True)]
    out: dict[str, Any] = {}
    print(f"\n   archive write cost per event (CPU, one core, {count:,} events, median of {REPEATS})")
    figures = _cpu_per_item(lambda: [json.dumps(e, separators=(",", ":")) for e in events], count)
    _show("baseline: json.dumps of the enriched event", figures)
    raw = sum(len(json.dumps(e, separators=(",", ":")).encode()) for e in events) / count
    print(f"   {'':<52} {raw:>8.0f} B per enriched event (its JSON)")
    figures = _cpu_per_item(
        lambda: [records.event_record(e, p, archived) for e, p in zip(events, profiles, strict=True)], count
    )
    _show("records.event_record (the EventRecord)", figures)
    out["event_record_us"] = figures[0]
    figures = _cpu_per_item(lambda: [parquet.json_line(r) for r in built], count)
    line = sum(len(parquet.json_line(r)) for r in built) / count
    _show("parquet.json_line (the Firehose record)", figures, f"  {line:.0f} B per line")
    out["json_line_us"], out["json_line_bytes"] = figures[0], line
    for batch in (1_000, 10_000):
        group = built[:batch]
        figures = _cpu_per_item(lambda group=group: parquet.encode(group), batch, repeats=3)  # type: ignore[misc]
        size = len(parquet.encode(group)) / batch
        _show(f"parquet.encode, a batch of {batch:,} (ZSTD)", figures, f"  {size:.0f} B per record on disk")
        out[f"encode_{batch}_us"], out[f"encode_{batch}_bytes"] = figures[0], size
    return out


# ------------------------------------------------------------------------------ the synthetic archive
def _columns() -> tuple[tuple[str, str, str], ...]:
    from midstage.models.archive import COLUMNS

    return COLUMNS


def _generator_sql(events: int, people: int) -> tuple[list[str], str]:
    """Macros and views describing the archive, and the SELECT of every row (COLUMNS + kind, dt).

    Deterministic: every draw is a hash of the row's numbers, so an archive is the same on every
    run (for one DuckDB version). People start on a day of the 90 and come back less and less;
    a session opens with a landing page (UTM-tagged in 40%), views 1-3 products, adds one to the
    cart in 30%, starts a checkout in 18% and orders in 10.5%; 5% carry an identify. Emails go
    out weekly to a tenth of the people already seen, a welcome SMS to a fifth of the newcomers;
    97-98% are delivered, 22% of emails opened (a tenth of those twice), 3.5% clicked (SMS 2%)."""
    sessions = round(events / 3.635)
    start = START.isoformat()
    setup = [
        "CREATE OR REPLACE MACRO u(a, b) AS (hash(a, b) % 1000003) / 1000003.0",
        "CREATE OR REPLACE MACRO hex32(a, b) AS md5(CAST(a AS VARCHAR) || ':' || CAST(b AS VARCHAR))",
        f"CREATE OR REPLACE TEMP VIEW people AS SELECT range AS pid, "
        f"'prof_' || substr(hex32(range, 'p'), 1, 26) AS profile_id, "
        f"CAST(floor(u(range, 1) * {DAYS}) AS INTEGER) AS start_day, u(range, 2) < 0.6 AS known "
        f"FROM range({people})",
        # Sessions: a few people are far busier than most (the square skews towards low ids).
        f"CREATE OR REPLACE TEMP VIEW sessions AS SELECT s.range AS sid, p.*, "
        f"TIMESTAMP '{start}' + to_days(CAST(p.start_day + floor(pow(u(s.range, 3), 2) * ({DAYS} - p.start_day)) "
        f"AS INTEGER)) + to_seconds(CAST(floor(u(s.range, 4) * 86000) AS BIGINT)) AS began, "
        f"u(s.range, 5) < 0.4 AS tagged, CAST(floor(u(s.range, 6) * 8) AS INTEGER) AS src, "
        f"1 + CAST(floor(u(s.range, 7) * 3) AS INTEGER) AS views, u(s.range, 8) AS cart, "
        f"u(s.range, 9) AS buy, u(s.range, 10) < 0.05 AS identifies "
        f"FROM range({sessions}) s JOIN people p ON p.pid = CAST(floor(pow(u(s.range, 2), 2) * {people}) AS BIGINT)",
        # slot: 0 landing page, 1-3 product views, 4 added, 5 checkout, 6 order, 7 identify
        "CREATE OR REPLACE TEMP VIEW slots AS SELECT range AS slot FROM range(8)",
        "CREATE OR REPLACE TEMP VIEW utm AS SELECT * FROM (VALUES "
        "(0, 'google', 'cpc', 'winter-sale'), (1, 'google', 'cpc', 'brand'), (2, 'facebook', 'social', 'retarget'), "
        "(3, 'instagram', 'social', 'winter-sale'), (4, 'newsletter', 'email', 'weekly'), "
        "(5, 'bing', 'cpc', 'brand'), (6, 'tiktok', 'paid', 'winter-sale'), (7, 'partner', 'referral', 'blog')"
        ") t(src, utm_source, utm_medium, utm_campaign)",
        "CREATE OR REPLACE TEMP VIEW ev AS SELECT s.*, k.slot, "
        "s.began + to_seconds(CAST(k.slot * 40 + floor(u(s.sid, 100 + k.slot) * 35) AS BIGINT)) AS moment, "
        "CAST(hash(s.sid, 200 + k.slot) % 5000 AS INTEGER) AS sku "
        "FROM sessions s JOIN slots k ON (k.slot = 0 OR (k.slot BETWEEN 1 AND 3 AND k.slot <= s.views) "
        "OR (k.slot = 4 AND s.cart < 0.3) OR (k.slot = 5 AND s.cart < 0.3 AND s.buy < 0.6) "
        "OR (k.slot = 6 AND s.cart < 0.3 AND s.buy < 0.35) OR (k.slot = 7 AND s.identifies))",
        # Messages: weekly emails (Tuesdays 10:00) to a tenth of those seen; a welcome SMS to a fifth
        # of the newcomers on their first day.
        "CREATE OR REPLACE TEMP VIEW sends AS "
        f"SELECT p.*, w.range AS wave, 'email' AS channel, 'campaign' AS origin_kind, "
        f"'cmp-weekly-' || lpad(CAST(w.range AS VARCHAR), 2, '0') AS origin_id, "
        f"TIMESTAMP '{start}' + to_days(CAST(w.range * 7 + 1 AS INTEGER)) + INTERVAL 10 HOUR "
        f"+ to_seconds(CAST(floor(u(p.pid, 300 + w.range) * 1800) AS BIGINT)) AS moment "
        f"FROM people p JOIN range({DAYS // 7}) w ON p.start_day <= w.range * 7 + 1 "
        f"AND u(p.pid, 400 + w.range) < 0.1 "
        f"UNION ALL SELECT p.*, 99 AS wave, 'sms' AS channel, 'journey' AS origin_kind, 'welcome' AS origin_id, "
        f"TIMESTAMP '{start}' + to_days(p.start_day) "
        "+ to_seconds(CAST(floor(u(p.pid, 500) * 86000) AS BIGINT)) AS moment "
        f"FROM people p WHERE u(p.pid, 501) < 0.2",
        "CREATE OR REPLACE TEMP VIEW outcomes AS SELECT * FROM (VALUES "
        "(0, 'message_requested', 0), (1, 'message_sent', 2), (2, 'message_delivered', 60), "
        "(3, 'message_opened', 3600), (4, 'message_opened', 7200), (5, 'message_clicked', 4000)"
        ") t(step, kind, after)",
        "CREATE OR REPLACE TEMP VIEW msg AS SELECT s.*, o.step, o.kind, "
        "s.moment + to_seconds(CAST(o.after + floor(u(s.pid * 100 + s.wave, 600 + o.step) * greatest(o.after, 1)) "
        "AS BIGINT)) AS happened, 'msg_' || substr(hex32(s.pid, s.wave), 1, 24) AS message_id "
        "FROM sends s JOIN outcomes o ON o.step <= 1 "
        "OR (o.step = 2 AND u(s.pid * 100 + s.wave, 700) < (CASE WHEN s.channel = 'sms' THEN 0.98 ELSE 0.97 END)) "
        "OR (o.step = 3 AND s.channel = 'email' AND u(s.pid * 100 + s.wave, 700) < 0.97 * 0.22) "
        "OR (o.step = 4 AND s.channel = 'email' AND u(s.pid * 100 + s.wave, 700) < 0.97 * 0.022) "
        "OR (o.step = 5 AND u(s.pid * 100 + s.wave, 700) "
        "< (CASE WHEN s.channel = 'sms' THEN 0.98 * 0.02 ELSE 0.97 * 0.035 END))",
    ]
    names = {
        0: "'Landing'",
        1: "'Product Viewed'",
        2: "'Product Viewed'",
        3: "'Product Viewed'",
        4: "'Product Added'",
        5: "'Checkout Started'",
        6: "'Order Completed'",
        7: "NULL",
    }
    event_name = "CASE slot " + " ".join(f"WHEN {k} THEN {v}" for k, v in names.items()) + " END"
    revenue = "round(15 + u(sid, 900) * 185, 2)"
    product = (
        "'{\"brand\":\"Northwind\",\"category\":\"' || (['shoes','bags','coats','hats'])[1 + sku % 4] || "
        '\'","currency":"EUR","name":"Item \' || sku || \'","price":\' || (10 + sku % 190) || '
        "',\"product_id\":\"sku-' || sku || '\"}'"
    )
    properties = (
        f"CASE WHEN slot = 0 THEN '{{\"path\":\"/landing/' || coalesce(m.utm_campaign, 'home') "
        '|| \'","title":"Shop"}\' '
        f'WHEN slot = 6 THEN \'{{"currency":"EUR","order_id":"ord-\' || sid || \'","products":[\' || {product} '
        f"|| '],\"revenue\":' || {revenue} || '}}' "
        "WHEN slot = 7 THEN '{\"email_opt_in\":true,\"plan\":\"' || (['free','basic','pro'])[1 + pid % 3] || '\"}' "
        f"ELSE {product} END"
    )
    campaign = (
        'CASE WHEN m.utm_source IS NULL THEN \'\' ELSE \'"campaign":{"medium":"\' || m.utm_medium || '
        '\'","name":"\' || m.utm_campaign || \'","source":"\' || m.utm_source || \'"},\' END'
    )
    context = (
        f'\'{{\' || {campaign} || \'"library":{{"name":"analytics.js","version":"5.2.0"}},'
        '"locale":"en-US","page":{"path":"/products/sku-\' || sku || \'","referrer":"\' || '
        "CASE WHEN m.utm_source IS NULL THEN 'https://shop.example/' ELSE 'https://' || m.utm_source || '.com/' END"
        ' || \'","url":"https://shop.example/products/sku-\' || sku || \'"},"timezone":"Europe/Berlin"}\''
    )
    event_values = {
        "schema_version": "1",
        "record_id": "substr(hex32(sid, 'e' || slot), 1, 32)",
        "occurred_at": "moment",
        "archived_at": "moment + to_seconds(CAST(60 + floor(u(sid, 800 + slot) * 240) AS BIGINT))",
        "profile_id": "profile_id",
        "user_id": "CASE WHEN known THEN 'user-' || pid END",
        "anonymous_id": "substr(hex32(pid, 'a'), 1, 8) || '-' || substr(hex32(pid, 'a'), 9, 4) || '-4' || "
        "substr(hex32(pid, 'a'), 13, 3) || '-a' || substr(hex32(pid, 'a'), 16, 3) || '-' || "
        "substr(hex32(pid, 'a'), 19, 12)",
        "source_id": "'src_4e1f9a2b7c3d'",
        "event_type": "CASE slot WHEN 0 THEN 'page' WHEN 7 THEN 'identify' ELSE 'track' END",
        "event": event_name,
        "message_id": "'ajs-next-' || hex32(sid, 'm' || slot)",
        "utm_source": "CASE WHEN slot = 0 THEN m.utm_source END",
        "utm_medium": "CASE WHEN slot = 0 THEN m.utm_medium END",
        "utm_campaign": "CASE WHEN slot = 0 THEN m.utm_campaign END",
        "campaign": "CASE WHEN slot = 0 THEN m.utm_campaign END",
        "revenue": f"CASE WHEN slot = 6 THEN {revenue} END",
        "currency": "CASE WHEN slot = 6 THEN 'EUR' END",
        "properties": properties,
        "context": context,
    }
    message_values = {
        "schema_version": "1",
        "record_id": "substr(hex32(pid * 100 + wave, kind || step), 1, 32)",
        "occurred_at": "happened",
        "archived_at": "happened + INTERVAL 90 SECOND",
        "profile_id": "profile_id",
        "message_id": "message_id",
        "channel": "channel",
        "category": "'marketing'",
        "origin_kind": "origin_kind",
        "origin_id": "origin_id",
        "origin_version": "1",
        "origin_step": "'send'",
        "template_id": "CASE WHEN channel = 'email' THEN 'weekly-email' ELSE 'welcome-sms' END",
        "campaign": "origin_id",
        "link": "CASE WHEN kind = 'message_clicked' THEN 'https://shop.example/landing/weekly' END",
        "detail": "CASE WHEN kind = 'message_requested' THEN '{\"channels\":[\"' || channel || '\"]}' END",
    }
    columns = _columns()

    def select(values: dict[str, str], source: str, kind: str, day: str) -> str:
        cast = ", ".join(f'CAST({values.get(name, "NULL")} AS {kind_}) AS "{name}"' for name, kind_, _ in columns)
        return f"SELECT {cast}, {kind} AS kind, strftime({day}, '%Y-%m-%d') AS dt FROM {source}"

    rows = (
        select(event_values, "ev LEFT JOIN utm m ON ev.tagged AND m.src = ev.src", "'event'", "moment")
        + " UNION ALL "
        + select(message_values, "msg", "kind", "happened")
    )
    return setup, f"SELECT * FROM ({rows}) r WHERE dt BETWEEN '{START.isoformat()}' AND '{END.isoformat()}'"


def archive_dir(base: Path, events: int) -> Path:
    return base / f"events-{events}"


def generate(events: int, base: Path, *, force: bool = False) -> Path:
    """The archive for `events`, generated unless a finished one with the same shape is cached."""
    import duckdb

    root = archive_dir(base, events)
    manifest = root / "manifest.json"
    people = max(1000, events // 10)
    wanted = {"generator": GENERATOR, "events": events, "people": people, "duckdb": duckdb.__version__}
    if not force and manifest.exists():
        cached = json.loads(manifest.read_text())
        if {k: cached.get(k) for k in wanted} == wanted:
            return root
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    setup, rows = _generator_sql(events, people)
    connection = duckdb.connect(":memory:")
    connection.execute(f"SET threads TO {THREADS}")
    connection.execute("SET memory_limit = '6GB'")
    connection.execute(f"SET temp_directory = '{base / 'spill'}'")
    for statement in setup:
        connection.execute(statement)
    started, cpu = time.perf_counter(), time.process_time()
    connection.execute(
        # In time order within a partition, as Firehose delivers a stream's records.
        f"COPY ({rows} ORDER BY kind, dt, occurred_at) TO '{root}' "
        "(FORMAT PARQUET, COMPRESSION ZSTD, ROW_GROUP_SIZE 122880, PARTITION_BY (kind, dt), "
        "FILENAME_PATTERN 'synthetic_{i}')"
    )
    took, cpu_took = time.perf_counter() - started, time.process_time() - cpu
    shutil.rmtree(base / "spill", ignore_errors=True)
    _same_schema_as_the_archive(connection, next(root.glob("kind=event/dt=*/*.parquet")))
    counts = connection.execute(
        f"SELECT kind, COUNT(*), COUNT(DISTINCT profile_id) FROM read_parquet('{root}/*/*/*.parquet', "
        "hive_partitioning = true) GROUP BY kind ORDER BY kind"
    ).fetchall()
    connection.close()
    summary = {
        **wanted,
        "seconds": round(took, 1),
        "cpu_seconds": round(cpu_took, 1),
        "kinds": {kind: {"records": n, "people": p} for kind, n, p in counts},
    }
    manifest.write_text(json.dumps(summary, indent=1))
    return root


def _same_schema_as_the_archive(connection: Any, sample: Path) -> None:
    """The synthetic files must be what `LocalArchive.write` writes: the same Parquet schema as
    `parquet.encode` gives one record."""
    from midstage.adapters import parquet
    from midstage.logic.archive import records

    record = records.event_record(enriched_event(0), "prof_0", datetime(2026, 11, 30, tzinfo=UTC))
    with tempfile.TemporaryDirectory(prefix="midstage-bench-") as scratch:
        encoded = Path(scratch) / "encoded.parquet"
        encoded.write_bytes(parquet.encode([record]))
        schema = "SELECT name, type, converted_type, logical_type FROM parquet_schema(?)"
        ours = connection.execute(schema, [str(encoded)]).fetchall()
        synthetic = connection.execute(schema, [str(sample)]).fetchall()
    if ours != synthetic:
        raise RuntimeError(f"the synthetic archive's schema differs from the archive's: {synthetic} != {ours}")


def describe(root: Path) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads((root / "manifest.json").read_text())
    sizes: dict[str, list[int]] = {}
    for path in root.glob("kind=*/dt=*/*.parquet"):
        sizes.setdefault(path.parent.parent.name.removeprefix("kind="), []).append(path.stat().st_size)
    total_records = sum(k["records"] for k in summary["kinds"].values())
    total_bytes = sum(sum(v) for v in sizes.values())
    print(
        f"\n   archive {root} ({summary['people']:,} people drawn from; generated in "
        f"{summary['seconds']} s wall, {summary['cpu_seconds']} s CPU, when it was made)"
    )
    print(f"   {'kind':<22} {'records':>12} {'people':>10} {'files':>6} {'MB':>9} {'B/record':>9}")
    for kind, figures in summary["kinds"].items():
        files = sizes.get(kind, [])
        print(
            f"   {kind:<22} {figures['records']:>12,} {figures['people']:>10,} {len(files):>6} "
            f"{sum(files) / 1e6:>9.1f} {sum(files) / figures['records']:>9.1f}"
        )
    print(
        f"   {'all':<22} {total_records:>12,} {'':>10} {sum(len(v) for v in sizes.values()):>6} "
        f"{total_bytes / 1e6:>9.1f} {total_bytes / total_records:>9.1f}"
    )
    summary["bytes"] = total_bytes
    summary["records"] = total_records
    return summary


def codecs(root: Path, days: int = 7, skip: int = 40) -> dict[str, dict[str, int]]:
    """`days` of kind=event from day `skip` on (the archive's busy middle), written again with each
    codec Firehose's Parquet conversion offers (SNAPPY, its default, and GZIP) beside the archive's
    ZSTD: whole files, and the columns a funnel reads."""
    import duckdb

    files = [f for d in range(days) for f in (root / partition(START + timedelta(days=skip + d))).glob("*.parquet")]
    listed = ", ".join(f"'{f}'" for f in files)
    funnel_columns = "('profile_id', 'occurred_at', 'event', 'event_type')"
    out: dict[str, dict[str, int]] = {}
    connection = duckdb.connect(":memory:")
    connection.execute(f"SET threads TO {THREADS}")
    with tempfile.TemporaryDirectory(prefix="midstage-bench-") as scratch:
        for codec in ("zstd", "snappy", "gzip"):
            target = Path(scratch) / f"{codec}.parquet"
            connection.execute(
                f"COPY (SELECT * FROM read_parquet([{listed}])) TO '{target}' "
                f"(FORMAT PARQUET, COMPRESSION {codec}, ROW_GROUP_SIZE 122880)"
            )
            columns = connection.execute(
                f"SELECT SUM(total_compressed_size) FROM parquet_metadata('{target}') "
                f"WHERE path_in_schema IN {funnel_columns}"
            ).fetchone()
            rows = connection.execute(f"SELECT COUNT(*) FROM read_parquet('{target}')").fetchone()
            out[codec] = {
                "bytes": target.stat().st_size,
                "funnel_columns": int(columns[0] if columns else 0),
                "rows": int(rows[0] if rows else 0),
            }
    connection.close()
    print(
        f"\n   kind=event, {days} days from {START + timedelta(days=skip)} ({out['zstd']['rows']:,} rows), "
        "one file per codec"
    )
    print(f"   {'codec':<8} {'B/record':>9} {'vs ZSTD':>7} {'funnel columns B/record':>24}")
    for codec, figures in out.items():
        print(
            f"   {codec:<8} {figures['bytes'] / figures['rows']:>9.1f} {figures['bytes'] / out['zstd']['bytes']:>7.2f} "
            f"{figures['funnel_columns'] / figures['rows']:>24.1f}"
        )
    return out


def partition(day: date) -> str:
    return f"kind=event/dt={day.isoformat()}"


# ------------------------------------------------------------------------------ reports
def _specs() -> dict[str, Any]:
    from midstage.logic.analytics import reports

    steps = [{"event": "Product Viewed"}, {"event": "Product Added"}, {"event": "Order Completed"}]
    return {
        "funnel": reports.FunnelSpec(start=START, end=END, steps=steps),
        "retention": reports.RetentionSpec(start=START, end=END, unit="week", periods=12),
        "markov": reports.PathsSpec(start=START + timedelta(days=30), end=END),
        "trends": reports.TrendsSpec(start=START, end=END, unit="day"),
    }


def _status_mb(field: str) -> float:
    """VmRSS (resident now) or VmHWM (its peak) of this process. Not getrusage's ru_maxrss: a
    child started by exec keeps its parent's peak there."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def column_bytes(root: Path, query: Any) -> tuple[int, list[str]]:
    """Compressed bytes of the columns `query` names, over the partitions it reads: what a
    columnar engine that prunes partitions and reads only those columns scans."""
    import duckdb
    import sqlglot

    from midstage.adapters.archive_engines import LocalArchive

    names = {name for name, _, _ in _columns()}
    used = sorted({c.name for c in sqlglot.parse_one(query.sql, read="duckdb").find_all(sqlglot.exp.Column)} & names)
    files = LocalArchive(root).files(query.kinds, query.start, query.end)
    if not files or not used:
        return 0, used
    listed = ", ".join(f"'{f}'" for f in files)
    wanted = ", ".join(f"'{u}'" for u in used)
    connection = duckdb.connect(":memory:")
    total = connection.execute(
        f"SELECT COALESCE(SUM(total_compressed_size), 0) FROM parquet_metadata([{listed}]) "
        f"WHERE path_in_schema IN ({wanted})"
    ).fetchone()
    connection.close()
    return int(total[0] if total else 0), used


def profiled(engine: Any, query: Any) -> tuple[int, list[tuple[float, str, str]]]:
    """Run `query` once under DuckDB's profiler: the bytes it read from the files, and its
    costliest operators (CPU seconds summed over threads, operator, what it computes)."""
    from midstage.adapters.archive_engines import _bind_archive

    connection = engine.connection()
    _bind_archive(connection, engine.files(query.kinds, query.start, query.end))
    with tempfile.TemporaryDirectory(prefix="midstage-bench-") as scratch:
        output = Path(scratch) / "profile.json"
        connection.execute("PRAGMA enable_profiling = 'json'")
        connection.execute(f"PRAGMA profiling_output = '{output}'")
        try:
            connection.execute(query.sql).fetchall()
        finally:
            connection.execute("PRAGMA disable_profiling")
        tree = json.loads(output.read_text())
    operators: list[tuple[float, str, str]] = []

    def walk(node: dict[str, Any]) -> None:
        info = node.get("extra_info") or {}
        what = info.get("Function") or info.get("Aggregates") or info.get("CTE Name") or info.get("Projections") or ""
        operators.append((float(node.get("timing") or 0), str(node.get("name")), str(what)[:160]))
        for below in node.get("children", []):
            walk(below)

    for node in tree.get("operator", []):
        walk(node)
    operators.sort(reverse=True)
    return int(tree.get("io", {}).get("total_bytes_read", 0)), operators[:8]


def child(name: str, root: Path, runs: int, profile: bool) -> None:
    """One report, cold then warm, in this process; prints one JSON line."""
    import duckdb  # noqa: F401 -- loaded before the baseline is read

    from midstage.adapters.archive_engines import LocalArchive
    from midstage.logic import attribution
    from midstage.logic.analytics.answers import freshness_query
    from midstage.logic.analytics.reports import build
    from midstage.services import analytics

    spec = _specs()[name]
    baseline = _status_mb("VmRSS")
    engine = LocalArchive(root, threads=THREADS)

    def once() -> Any:
        if name == "markov":
            return analytics.attribute(spec, engine, NOW, models=("markov",))
        return analytics.report(spec, engine, NOW)

    times, cpu = [], []
    answer = None
    for _ in range(1 + runs):
        started, cpu_started = time.perf_counter(), time.process_time()
        answer = once()
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
    assert answer is not None
    result: dict[str, Any] = {
        "report": name,
        "cold": times[0],
        "warm": times[1:],
        "cpu": cpu,
        "baseline_mb": baseline,
        "peak_mb": _status_mb("VmHWM"),
        "bytes_scanned": answer.bytes_scanned,
        "rows": len(answer.rows),
    }
    query = build(spec)
    result["column_bytes"], result["columns"] = column_bytes(root, query)
    result["fresh_column_bytes"], _ = column_bytes(root, freshness_query(query))
    if name == "funnel":
        result["summary"] = [
            (s["step"], s["people"], s["median_seconds"]) for s in answer.summary["breakdowns"]["(all)"]
        ]
    if name == "markov":
        # where the time goes: the paths' SQL against the chain in Python
        started = time.perf_counter()
        paths, _ = analytics.paths_from_archive(spec, engine)
        result["paths_sql"] = time.perf_counter() - started
        started = time.perf_counter()
        chain = attribution.markov(paths)
        result["markov_python"] = time.perf_counter() - started
        result["paths"] = len(paths)
        result["removal_effects"] = {k: round(v, 3) for k, v in sorted(chain.removal_effects.items())}
    result["read_bytes"], result["operators"] = profiled(engine, query)
    result["fresh_read_bytes"], _ = profiled(engine, freshness_query(query))
    if not profile:
        result.pop("operators")
    engine.close()
    print(json.dumps(result, default=str))


def _run_child(name: str, root: Path, runs: int, profile: bool) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.bench_analytics", "child", name, "--dir", str(root), "--runs", str(runs)]
    if profile:
        command.append("--profile")
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _pair(report: int, fresh: int) -> str:
    return f"{report / 1e6:.1f}+{fresh / 1e6:.1f}"


def _spread(values: Sequence[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def run_reports(events: int, base: Path, runs: int, names: Sequence[str], profile: bool) -> list[dict[str, Any]]:
    root = generate(events, base)
    summary = describe(root)
    print(
        f"\n   reports over {summary['kinds']['event']['records']:,} events ({summary['records']:,} records), "
        f"{THREADS} threads, wall seconds: cold (a fresh connection) and warm, median (min-max) of {runs}"
    )
    print(
        f"   {'report':<10} {'cold s':>8} {'warm s':>22} {'CPU s':>6} {'peak RSS MB':>12} {'answer MB':>10} "
        f"{'named columns MB':>17} {'read MB':>12}"
    )
    results = []
    for name in names:
        result = _run_child(name, root, runs, profile)
        results.append(result)
        print(
            f"   {name:<10} {result['cold']:>8.2f} {_spread(result['warm']):>22} "
            f"{statistics.median(result['cpu']):>6.1f} "
            f"{result['peak_mb']:>12.0f} {result['bytes_scanned'] / 1e6:>10.1f} "
            f"{_pair(result['column_bytes'], result['fresh_column_bytes']):>17} "
            f"{_pair(result['read_bytes'], result['fresh_read_bytes']):>12}"
        )
    print(
        "   CPU s: process CPU time of one call (every thread), median of all runs;\n"
        "   answer MB: the answer's bytes_scanned (every file of the partitions read, report and freshness);\n"
        "   named columns: compressed bytes of the columns the SQL names, report + freshness query;\n"
        "   read: what DuckDB read from the files (its profiler), report + freshness query"
    )
    print(
        f"   (a fresh interpreter with DuckDB loaded holds {results[0]['baseline_mb']:.0f} MB before the first query)"
    )
    for result in results:
        print(f"   {result['report']}: columns read {', '.join(result['columns'])}")
        if result["report"] == "funnel":
            print(f"   funnel steps (step, people, median s): {result['summary']}")
        if result["report"] == "markov":
            print(
                f"   markov: {result['paths']:,} distinct paths; paths SQL {result['paths_sql']:.2f} s, "
                f"the chain in Python {result['markov_python']:.3f} s; removal effects {result['removal_effects']}"
            )
        for seconds, operator, what in result.get("operators", []):
            print(f"      {seconds:7.2f} s  {operator:<16} {what}")
    return results


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_analytics", description=__doc__.split("\n")[0])
    parser.add_argument(
        "what", nargs="?", default="all", choices=["all", "write", "generate", "reports", "codecs", "child"]
    )
    parser.add_argument("name", nargs="?", help="child only: the report")
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the synthetic archive")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="where synthetic archives are cached")
    parser.add_argument("--runs", type=int, default=3, help="warm runs per report")
    parser.add_argument("--reports", default="funnel,retention,markov,trends")
    parser.add_argument("--profile", action="store_true", help="print each report's EXPLAIN ANALYZE")
    parser.add_argument("--force", action="store_true", help="generate the archive again")
    args = parser.parse_args([] if argv is None else list(argv))
    if args.what == "child":
        child(args.name, args.dir, args.runs, args.profile)
        return
    print(f"   pid {os.getpid()}, {os.cpu_count()} CPUs, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    if args.what in {"all", "write"}:
        write_cost()
    if args.what == "generate":
        describe(generate(args.events, args.dir, force=args.force))
    if args.what in {"all", "codecs"}:
        codecs(generate(args.events, args.dir))
    if args.what in {"all", "reports"}:
        if args.force:
            generate(args.events, args.dir, force=True)
        run_reports(args.events, args.dir, args.runs, args.reports.split(","), args.profile)


if __name__ == "__main__":
    main(sys.argv[1:])
