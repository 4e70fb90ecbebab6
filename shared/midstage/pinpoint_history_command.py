"""`python -m midstage.cli pinpoint-history`: a Pinpoint event stream (Firehose's S3 output) replayed.

    python -m midstage.cli pinpoint-history <file | folder | s3://bucket/prefix>... \
        [--queue-url <IngestQueueUrl>] [--table <DataTableName>] [--dry-run]

Each file (gzip'd or plain; every file under a folder or an S3 prefix, read with the AWS
credentials of the environment) is read on its own: its records, one per line or joined without
a delimiter as Firehose writes them, become tracked events handed to the ingest queue
(`--queue-url`, default $INGEST_QUEUE_URL) for the profile updater, and suppressions written to
the data table (`--table`, default $DATA_TABLE). What each event type becomes:
logic/imports/pinpoint_events.py and docs/pinpoint-migration.md ("History").

It prints each file's counts, each record it could not use as `<file>:<line>: <reason>`, and
the totals per kind of record. Running it again is safe: every event is named by the record's
event_id, so the profile updater absorbs a second replay. Exit codes: 0 done (rejected records
included), 1 stopped (the queue or the table refused a write), 2 bad input (no file, no queue).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from midstage.clock import system_clock
from midstage.errors import HandoffFailed
from midstage.logic.imports.pinpoint_events import Unreadable, file_text
from midstage.pinpoint_command import ExportFile, S3File, export_files
from midstage.services import pinpoint_history
from midstage.services.pinpoint_history import Replayed

if TYPE_CHECKING:
    from midstage.services.ports import EventSink, Suppressions

_READ_BYTES = 1024 * 1024


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = commands.add_parser(
        "pinpoint-history", help="replay a Pinpoint event stream (Firehose's S3 output) into Midstage"
    )
    command.add_argument("paths", nargs="+", help="stream files (.gz or plain), folders of them, or s3://bucket/prefix")
    command.add_argument(
        "--queue-url",
        default=os.environ.get("INGEST_QUEUE_URL"),
        help="the ingest queue (the stack's IngestQueueUrl output); default: $INGEST_QUEUE_URL",
    )
    command.add_argument(
        "--table",
        default=os.environ.get("DATA_TABLE"),
        help="the data table, for suppressions (the stack's DataTableName output); default: $DATA_TABLE",
    )
    command.add_argument("--dry-run", action="store_true", help="read and count; write nothing")


def run(args: argparse.Namespace) -> int:
    if not args.dry_run and not (args.queue_url and args.table):
        print("pinpoint-history needs --queue-url and --table (or --dry-run to count only)", file=sys.stderr)
        return 2
    try:
        files = export_files(args.paths)
    except (OSError, ValueError) as error:
        print(f"pinpoint-history: {error}", file=sys.stderr)
        return 2
    events: EventSink | None = None
    suppressions: Suppressions | None = None
    if not args.dry_run:
        from midstage.adapters.handoff import SqsHandoff
        from midstage.adapters.messaging_store import SuppressionStore

        events, suppressions = SqsHandoff(args.queue_url), SuppressionStore(args.table)
    try:
        totals, unread = replay_files(files, events, suppressions, echo=print)
    except HandoffFailed as error:
        print(f"stopped: the ingest queue refused events ({error}); running the command again is safe", file=sys.stderr)
        return 1
    except Exception as error:  # the table or the queue could not be reached (a wrong name, no access)
        print(f"stopped: {type(error).__name__}: {error}; running the command again is safe", file=sys.stderr)
        return 1
    print(summary(len(files), unread, totals, dry_run=args.dry_run))
    return 0


def replay_files(
    files: Iterable[ExportFile],
    events: EventSink | None,
    suppressions: Suppressions | None,
    *,
    echo: Callable[[str], None],
) -> tuple[Replayed, int]:
    """Each file read and replayed on its own; the totals, and how many files could not be read."""
    totals, unread = Replayed(), 0
    for file in files:
        try:
            text, damage = file_text(_pieces(file))
        except (OSError, Unreadable) as error:
            unread += 1
            print(f"{file}: could not be read ({error}); the files after it go on", file=sys.stderr)
            continue
        replayed = pinpoint_history.replay_text(text, damage, events, suppressions, system_clock())
        echo(
            f"{file}: {replayed.records} records, {replayed.events} events, "
            f"{replayed.suppressions} suppressions, {len(replayed.problems)} problems"
        )
        for line, why in replayed.problems:
            echo(f"  {file}:{line}: {why}")
        totals.add(replayed)
    return totals, unread


def summary(files: int, unread: int, totals: Replayed, *, dry_run: bool) -> str:
    kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(totals.kinds.items()))
    done = "read (dry run, nothing written)" if dry_run else "replayed"
    return f"{files} file(s), {unread} unreadable, {done}: {kinds or 'no records'}; {len(totals.problems)} problem(s)"


def _pieces(file: ExportFile) -> Iterator[bytes]:
    if isinstance(file, S3File):
        from midstage.adapters.import_store import export_chunks

        return iter(export_chunks(file.bucket, file.key))
    return _local_pieces(file)


def _local_pieces(path: Path) -> Iterator[bytes]:
    with path.open("rb") as opened:
        while piece := opened.read(_READ_BYTES):
            yield piece
