"""`python -m midstage.cli replay events` and `python -m midstage.cli report`: the analytics
archive used without the API (`docs/operations.md`, "Replay").

    python -m midstage.cli replay events --archive <dir | s3://bucket/prefix> --from 2026-03-01 --to 2026-03-31 \
        [--source-id src_web ...] [--queue-url <IngestQueueUrl>] [--batch-events 10000] [--dry-run] [--json]
    python -m midstage.cli report funnel --spec spec.json --archive <dir | s3://bucket/prefix> [--now <ISO time>]

`replay events` reads the archive's `kind=event` partitions day by day, oldest first, each day
in time order, and hands the events to the ingest queue (`--queue-url`, default
$INGEST_QUEUE_URL) as collect does, so the profile updater rebuilds profiles from them. It
prints each day's counts on stderr and the totals on stdout. `--dry-run` reads and counts only.

`report <name>` runs one report (its request model of logic/analytics/reports.py, as a JSON
file; `-` reads stdin) over the archive with embedded DuckDB and prints the answer as JSON. `attribution` runs
the attribution models over the archive's touches (`--models`, comma-separated).

An S3 archive is read through a local copy of the partitions needed (`--cache`, default a
temporary directory removed afterwards). Both need the analytics extra (DuckDB).

Exit codes: 0 done, 1 stopped (the queue refused a batch, a query failed), 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter, ValidationError

from midstage.clock import system_clock
from midstage.logic.analytics.reports import ReportSpec
from midstage.logic.timefmt import parse_iso
from midstage.services.replay import DEFAULT_BATCH_EVENTS

if TYPE_CHECKING:
    from midstage.adapters.archive_engines import LocalArchive, S3Archive
    from midstage.services.replay import ReplaySummary

REPORTS = ("funnel", "retention", "trends", "channels", "performance", "review", "roi", "attribution")
ATTRIBUTION_MODELS = (
    "first_touch",
    "last_touch",
    "last_non_direct",
    "linear",
    "position_based",
    "markov",
    "shapley",
)
DEFAULT_MODELS = ("last_touch", "linear", "markov")
_FETCH_ROWS = 2048
# What an event is rebuilt from (logic/archive/replay.py): the other columns are derived from
# these, so they are not read (the rows' cost is then the events' JSON, bench/bench_replay.py).
_COLUMNS = ", ".join(
    f'"{name}"'
    for name in (
        "record_id",
        "occurred_at",
        "archived_at",
        "user_id",
        "anonymous_id",
        "source_id",
        "event_type",
        "event",
        "message_id",
        "properties",
        "context",
    )
)


class BadInput(ValueError):
    """An argument or the spec is not usable; the message says which and why."""


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    replay = commands.add_parser("replay", help="replay the analytics archive")
    actions = replay.add_subparsers(dest="replay_command", required=True)
    events = actions.add_parser(
        "events", help="hand archived events to the ingest queue, oldest first, so profiles are rebuilt from them"
    )
    _archive_arguments(events)
    events.add_argument("--from", dest="start", required=True, help="first day, YYYY-MM-DD (UTC)")
    events.add_argument("--to", dest="end", required=True, help="last day, YYYY-MM-DD (UTC, inclusive)")
    events.add_argument(
        "--source-id", action="append", dest="source_ids", default=[], help="only this source's events (repeatable)"
    )
    events.add_argument(
        "--queue-url",
        default=os.environ.get("INGEST_QUEUE_URL"),
        help="the ingest queue (the stack's IngestQueueUrl output); default: $INGEST_QUEUE_URL",
    )
    events.add_argument(
        "--batch-events",
        type=int,
        default=DEFAULT_BATCH_EVENTS,
        help=f"events per hand-off batch, grouped by person (default {DEFAULT_BATCH_EVENTS})",
    )
    events.add_argument("--dry-run", action="store_true", help="read and count; send nothing")
    events.add_argument("--json", action="store_true", help="print the totals as JSON")

    report = commands.add_parser("report", help="run a report over the analytics archive and print its answer (JSON)")
    report.add_argument("report", choices=REPORTS)
    report.add_argument(
        "--spec", required=True, help="the report's request as JSON (docs/analytics.md, 'The report SQL'); - : stdin"
    )
    _archive_arguments(report)
    report.add_argument("--now", help="the time the answer's freshness is stated at (ISO 8601; default: now)")
    report.add_argument(
        "--models",
        default=",".join(DEFAULT_MODELS),
        help=f"attribution only: models, comma-separated, of {', '.join(ATTRIBUTION_MODELS)}",
    )


def _archive_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--archive", required=True, help="the archive: a directory, or s3://bucket/prefix")
    parser.add_argument("--cache", type=Path, help="an S3 archive's local copy (default: a temporary directory)")
    parser.add_argument("--threads", type=int, default=None, help="DuckDB threads (default: all cores)")


def run(args: argparse.Namespace) -> int:
    command = "replay events" if args.command == "replay" else f"report {args.report}"
    with ExitStack() as stack:
        try:
            local, s3 = open_archive(args.archive, args.cache, args.threads, stack)
            if args.command == "replay":
                return _replay(args, local, s3)
            return _report(args, local if s3 is None else s3)
        except BadInput as error:
            print(f"{command}: {error}", file=sys.stderr)
            return 2
        except ImportError as error:
            print(f"{command}: {error}; it needs the analytics extra (DuckDB)", file=sys.stderr)
            return 2


# ------------------------------------------------------------------------------ the archive
def open_archive(
    where: str, cache: Path | None, threads: int | None, stack: ExitStack
) -> tuple[LocalArchive, S3Archive | None]:
    """The archive named on the command line: (its local files, the S3 archive they copy or None)."""
    from midstage.adapters.archive_engines import LocalArchive, S3Archive

    if where.startswith("s3://"):
        bucket, _, prefix = where.removeprefix("s3://").partition("/")
        if not bucket:
            raise BadInput(f"--archive {where!r}: no bucket (s3://bucket/prefix)")
        if cache is None:
            cache = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="midstage-archive-")))
        s3 = S3Archive(bucket, prefix, cache, threads=threads)
        stack.callback(s3.local.close)
        return s3.local, s3
    root = Path(where)
    if not root.is_dir():
        raise BadInput(f"--archive {where!r}: no such directory")
    local = LocalArchive(root, threads=threads)
    stack.callback(local.close)
    return local, None


class ArchiveDays:
    """The archive's event partitions a day at a time, in time order (services.replay's
    ArchivedEvents): DuckDB sorts each day's files together (spilling to disk when a day is
    larger than memory) and rows stream out in chunks. A file DuckDB cannot read is skipped and
    named, and the day's other files are still read."""

    def __init__(self, local: LocalArchive, s3: S3Archive | None = None) -> None:
        self.local = local
        self.s3 = s3
        self.skipped_files: list[str] = []

    def rows(self, day: date) -> Iterator[Mapping[str, Any]]:
        import duckdb

        if self.s3 is not None:
            self.s3.sync(["event"], day, day)
        files = self.local.files(["event"], day, day)
        if not files:
            return
        try:
            cursor = self._sorted(files)
        except duckdb.Error:
            readable = [f for f in files if self._readable(f)]
            self.skipped_files += [str(f) for f in files if f not in readable]
            if not readable:
                return
            cursor = self._sorted(readable)
        names = [d[0] for d in cursor.description or []]
        while chunk := cursor.fetchmany(_FETCH_ROWS):
            for values in chunk:
                yield dict(zip(names, values, strict=True))

    def _sorted(self, files: Sequence[Path]) -> Any:
        listed = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
        return self.local.connection().execute(
            f"SELECT {_COLUMNS} FROM read_parquet([{listed}], union_by_name = true) "  # noqa: S608 -- quoted paths
            "ORDER BY occurred_at NULLS LAST, record_id NULLS LAST"
        )

    def _readable(self, file: Path) -> bool:
        import duckdb

        try:
            self._sorted([file]).fetchall()
        except duckdb.Error:
            return False
        return True


# ------------------------------------------------------------------------------ replay events
def _replay(args: argparse.Namespace, local: LocalArchive, s3: S3Archive | None) -> int:
    from midstage.adapters.handoff import SqsHandoff
    from midstage.services.replay import replay_events

    start, end = _day(args.start, "--from"), _day(args.end, "--to")
    if end < start:
        raise BadInput("--to is before --from")
    if args.batch_events < 1:
        raise BadInput("--batch-events must be at least 1")
    if not args.dry_run and not args.queue_url:
        raise BadInput("needs --queue-url (or INGEST_QUEUE_URL), or --dry-run to count only")
    run_id = f"replay-{start.isoformat()}-{end.isoformat()}-{uuid.uuid4().hex[:8]}"
    # The correlation id marks every message of the run, so the updater's logs tell replayed events apart.
    sink = None if args.dry_run else SqsHandoff(args.queue_url, correlation_id=lambda: run_id)
    with _quiet_logs():
        summary = replay_events(
            ArchiveDays(local, s3),
            sink,
            start,
            end,
            source_ids=args.source_ids,
            batch_events=args.batch_events,
            dry_run=args.dry_run,
            echo=lambda line: print(line, file=sys.stderr),
        )
    if args.json:
        print(json.dumps({**summary.to_body(), "correlation_id": None if args.dry_run else run_id}, indent=2))
    else:
        print(describe(summary))
    return 1 if summary.stopped else 0


@contextmanager
def _quiet_logs() -> Iterator[None]:
    """The hand-off logs each batch at INFO, as JSON on stdout, as a function does; here stdout
    carries the totals (maybe as JSON for a script), so only warnings and errors are logged."""
    from midstage.observability import logger

    level = logger.log_level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def describe(summary: ReplaySummary) -> str:
    """The totals of a replay, for people."""
    handed = f"handed {summary.handed} in {summary.messages} messages"
    if summary.dry_run:
        handed = f"would hand {summary.replayable}"
    lines = [
        f"{summary.start.isoformat()} .. {summary.end.isoformat()}: read {summary.read}, {handed}, "
        f"skipped malformed {summary.skipped_malformed}, skipped other sources {summary.skipped_other_sources}, "
        f"duplicates {summary.duplicates}" + (" (dry run: nothing sent)" if summary.dry_run else "")
    ]
    lines += [f"  malformed: {problem}" for problem in summary.problems]
    lines += [f"  unreadable file skipped: {name}" for name in summary.skipped_files]
    if summary.stopped:
        lines.append(f"stopped: {summary.stopped}")
    return "\n".join(lines)


def _day(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadInput(f"{option} {text!r} is not a day (YYYY-MM-DD)") from None


# ------------------------------------------------------------------------------ report
def _report(args: argparse.Namespace, engine: Any) -> int:
    from midstage.services import analytics

    spec = read_spec(args.report, args.spec)
    now = _now(args.now)
    try:
        if args.report == "attribution":
            models = _models(args.models)
            answer = analytics.attribute(spec, engine, now, models=models)
        else:
            answer = analytics.report(spec, engine, now)
    except BadInput:
        raise
    except Exception as error:  # the engine's own failure (DuckDB, S3): say it, do not trace back
        print(f"report {args.report}: the query failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(json.dumps(answer.to_body(), indent=2, default=str))
    return 0


def read_spec(report: str, where: str) -> Any:
    """The report's request model from a JSON file (or stdin): its `report` is the command's."""
    try:
        text = sys.stdin.read() if where == "-" else Path(where).read_text(encoding="utf-8")
    except OSError as error:
        raise BadInput(f"--spec {where!r}: {error.strerror or error}") from None
    try:
        body = json.loads(text)
    except ValueError as error:
        raise BadInput(f"--spec {where!r}: not JSON ({error})") from None
    if not isinstance(body, dict):
        raise BadInput(f"--spec {where!r}: a JSON object is needed")
    if body.get("report", report) != report:
        raise BadInput(f"--spec {where!r} is a {body['report']!r} report, not {report!r}")
    try:
        return TypeAdapter(ReportSpec).validate_python({**body, "report": report})
    except ValidationError as error:
        issues = [
            f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in error.errors(include_url=False)
        ]
        raise BadInput(f"--spec {where!r}: " + "; ".join(issues)) from None


def _now(text: str | None) -> datetime:
    if text is None:
        return system_clock()
    try:
        moment = parse_iso(text)
    except ValueError:
        raise BadInput(f"--now {text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise BadInput(f"--now {text!r} needs a time zone offset (Z for UTC)")
    return moment


def _models(text: str) -> tuple[str, ...]:
    models = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in models if m not in ATTRIBUTION_MODELS]
    if unknown or not models:
        raise BadInput(f"--models: {', '.join(unknown) or 'none given'}; choose from {', '.join(ATTRIBUTION_MODELS)}")
    return models
