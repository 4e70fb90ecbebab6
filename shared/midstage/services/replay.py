"""Replaying archived events into the ingest queue, so the profile updater rebuilds profiles
from them (the `replay events` command; `docs/operations.md`, "Replay").

Days are read oldest first, each day's events in time order (the reader's contract). Events go
to the queue in batches, a batch grouped by person as collect groups a request's events, so the
updater applies one person's events of a batch in one write. A row that cannot be an event again
is counted and skipped, never the end of the run; a queue that refuses a batch stops the run and
says from which day to start again. Replaying twice is safe while the updater's dedupe window
still remembers the events (each keeps its messageId and sourceId).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Protocol

from midstage.errors import HandoffFailed
from midstage.logic.archive.replay import MalformedRow, replayed_event
from midstage.logic.collect import group_by_person
from midstage.logic.ingest import marker_id
from midstage.services.ports import EventSink

# A batch is grouped by person, and each person's events of a batch go in one message (one
# updater write, up to MAX_EVENTS_PER_MESSAGE): the larger the batch, the fewer the messages.
# 10,000 events hold a day of a small shop (bench/bench_replay.py) in about 20 MB.
DEFAULT_BATCH_EVENTS = 10_000
MAX_PROBLEMS_SHOWN = 20


class ArchivedEvents(Protocol):
    """The archive's `kind=event` partitions. `rows(day)` yields that day's rows in time order
    (occurred_at, then record_id); files it could not read are named in `skipped_files`."""

    skipped_files: list[str]

    def rows(self, day: date) -> Iterable[Mapping[str, Any]]: ...


@dataclass
class ReplaySummary:
    start: date
    end: date
    dry_run: bool
    days: int = 0
    read: int = 0  # rows read from the archive
    replayable: int = 0  # rows that are events again, of the sources asked for, once each
    handed: int = 0  # events the queue took (none on a dry run)
    messages: int = 0  # queue messages they went in
    skipped_malformed: int = 0
    skipped_other_sources: int = 0
    duplicates: int = 0  # the same event archived twice (one is replayed)
    problems: list[str] = field(default_factory=list)  # the first malformed rows, with why
    skipped_files: list[str] = field(default_factory=list)
    stopped: str | None = None  # why the run ended early; rerun from that day

    def to_body(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "dry_run": self.dry_run,
            "days": self.days,
            "read": self.read,
            "replayable": self.replayable,
            "handed": self.handed,
            "messages": self.messages,
            "skipped_malformed": self.skipped_malformed,
            "skipped_other_sources": self.skipped_other_sources,
            "duplicates": self.duplicates,
            "problems": self.problems,
            "skipped_files": self.skipped_files,
            "stopped": self.stopped,
        }


def replay_events(
    archive: ArchivedEvents,
    sink: EventSink | None,
    start: date,
    end: date,
    *,
    source_ids: Collection[str] = (),
    batch_events: int = DEFAULT_BATCH_EVENTS,
    dry_run: bool = False,
    echo: Callable[[str], None] | None = None,
) -> ReplaySummary:
    """Hand the events archived from `start` to `end` (inclusive days) to `sink`, or only count
    them (`dry_run`, or no sink). `source_ids`: only events of these sources (empty: all)."""
    if end < start:
        raise ValueError("the last day is before the first")
    if batch_events < 1:
        raise ValueError("a batch holds at least one event")
    summary = ReplaySummary(start, end, dry_run or sink is None)
    wanted = frozenset(source_ids)
    batch: list[dict[str, Any]] = []
    day = start
    while day <= end:
        before = _counts(summary)
        seen: set[str] = set()  # a repeat has the same time, so the same day: a set per day is enough
        for row in archive.rows(day):
            summary.read += 1
            try:
                event = replayed_event(row)
            except MalformedRow as error:
                summary.skipped_malformed += 1
                if len(summary.problems) < MAX_PROBLEMS_SHOWN:
                    summary.problems.append(f"{day.isoformat()} record {row.get('record_id')!s:.40}: {error}")
                continue
            if wanted and event["sourceId"] not in wanted:
                summary.skipped_other_sources += 1
                continue
            marker = marker_id(event)
            if marker in seen:
                summary.duplicates += 1
                continue
            seen.add(marker)
            summary.replayable += 1
            batch.append(event)
            if len(batch) >= batch_events and not _flush(batch, sink, summary, day):
                return _finished(summary, archive)
        summary.days += 1
        if echo is not None:
            read, replayable, malformed = (now - then for now, then in zip(_counts(summary), before, strict=True))
            echo(f"{day.isoformat()}: read {read}, replayable {replayable}, skipped malformed {malformed}")
        day += timedelta(days=1)
    if batch:
        _flush(batch, sink, summary, end)
    return _finished(summary, archive)


def _counts(summary: ReplaySummary) -> tuple[int, int, int]:
    return summary.read, summary.replayable, summary.skipped_malformed


def _flush(batch: list[dict[str, Any]], sink: EventSink | None, summary: ReplaySummary, day: date) -> bool:
    """Send the batch (unless counting only) and empty it; False when the queue refused it."""
    if sink is None or summary.dry_run:
        batch.clear()
        return True
    try:
        summary.messages += sink.send(group_by_person(batch))
    except HandoffFailed as error:
        # Events of this batch may reach back to the day before: start again from there.
        again = min(day, _day_of(batch[0]))
        summary.stopped = f"the queue refused a batch ({error}); run again from {again.isoformat()}"
        return False
    summary.handed += len(batch)
    batch.clear()
    return True


def _day_of(event: Mapping[str, Any]) -> date:
    return date.fromisoformat(str(event["timestamp"])[:10])


def _finished(summary: ReplaySummary, archive: ArchivedEvents) -> ReplaySummary:
    summary.skipped_files = list(archive.skipped_files)
    return summary
