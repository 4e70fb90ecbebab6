"""Replay: archived events per second, read back and turned into hand-off messages.

A synthetic archive of 30 days x 10,000 events (300,000 events of 5,000 people: page views,
product views, adds, orders and identify calls, with UTM context on a fifth of them), written
with LocalArchive.write as three files a day. Timed, with one DuckDB thread:

- `dry run`: `replay events --dry-run`'s work: each day's files read and sorted by DuckDB, every
  row turned back into an event (`logic/archive/replay.py`), repeats dropped, counted;
- `to messages`: the same plus the hand-off encoding of every batch (10,000 events, grouped by person,
  `adapters/handoff.messages_for`: the JSON bodies SQS would get), without the network.

Wall and CPU seconds (`time.process_time`: this process's CPU on both cores), median of 3, and
the bodies' size per event. The SQS calls themselves (10 messages per SendMessageBatch) are not
timed here: they depend on the network to the queue, not on this machine.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from midstage.adapters.archive_engines import LocalArchive
from midstage.adapters.handoff import messages_for
from midstage.logic.archive import records
from midstage.models.archive import ArchiveRecord
from midstage.replay_command import ArchiveDays
from midstage.services.replay import replay_events

DAYS = 30
PER_DAY = 10_000
PEOPLE = 5_000
FILES_PER_DAY = 3
START = date(2026, 3, 1)
ARCHIVED = datetime(2026, 4, 1, tzinfo=UTC)
NAMES = ("Product Viewed", "Product Viewed", "Product Added", "Order Completed")
UTM = {"source": "google", "medium": "cpc", "name": "spring"}


def _event(n: int, day: date) -> dict[str, Any]:
    person = f"user-{(n * 7919) % PEOPLE}"
    moment = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(seconds=(n * 8.64) % 86_400)
    kind = "identify" if n % 50 == 0 else "page" if n % 5 == 1 else "track"
    body: dict[str, Any] = {
        "type": kind,
        "messageId": f"m-{day.isoformat()}-{n}",
        "userId": person,
        "anonymousId": f"anon-{person}",
        "timestamp": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "sourceId": "src_web",
        "context": {"page": {"path": f"/p/{n % 300}"}, "locale": "en-GB", **({"campaign": UTM} if n % 5 == 0 else {})},
    }
    if kind == "track":
        body["event"] = NAMES[n % len(NAMES)]
        body["properties"] = {"sku": f"sku-{n % 1000}", "price": 19.99, "revenue": 39.98, "currency": "EUR"}
    elif kind == "page":
        body["name"] = "Product"
        body["properties"] = {"path": f"/p/{n % 300}"}
    else:
        body["traits"] = {"email": f"{person}@example.com", "plan": "pro"}
    return body


def build(root: Path) -> int:
    archive = LocalArchive(root, threads=1)
    total = 0
    for offset in range(DAYS):
        day = START + timedelta(days=offset)
        batch: list[ArchiveRecord] = [
            records.event_record(_event(n, day), f"prof-{n % PEOPLE}", ARCHIVED) for n in range(PER_DAY)
        ]
        for part in range(FILES_PER_DAY):
            archive.write(batch[part::FILES_PER_DAY], f"part-{part}")
        total += len(batch)
    archive.close()
    return total


class EncodingSink:
    """The hand-off without SQS: every batch encoded into the bodies that would be sent."""

    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0

    def send(self, groups: Mapping[str, Sequence[dict[str, Any]]]) -> int:
        bodies = messages_for(groups)
        self.messages += len(bodies)
        self.bytes += sum(len(body) for _, body in bodies)
        return len(bodies)


def _run(root: Path, *, encode: bool) -> tuple[float, float, int, EncodingSink]:
    archive = LocalArchive(root, threads=1)
    sink = EncodingSink()
    wall, cpu = time.perf_counter(), time.process_time()
    summary = replay_events(
        ArchiveDays(archive), sink if encode else None, START, START + timedelta(days=DAYS - 1), dry_run=not encode
    )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    archive.close()
    return wall, cpu, summary.replayable, sink


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="midstage-bench-replay-") as scratch:
        root = Path(scratch)
        started = time.perf_counter()
        total = build(root)
        size = sum(f.stat().st_size for f in root.rglob("*.parquet"))
        print(
            f"archive: {total:,} events, {DAYS} days x {FILES_PER_DAY} files, {size / 1e6:.1f} MB Parquet "
            f"({size / total:.0f} B/event), built in {time.perf_counter() - started:.1f} s"
        )
        for label, encode in (("dry run", False), ("to messages", True)):
            runs = [_run(root, encode=encode) for _ in range(3)]
            walls, cpus = [r[0] for r in runs], [r[1] for r in runs]
            replayed, sink = runs[0][2], runs[0][3]
            assert replayed == total, (replayed, total)
            wall = statistics.median(walls)
            spread = f"{min(walls):.2f}-{max(walls):.2f}"
            line = f"{label:<12} {total / wall:>9,.0f} events/s wall ({wall:.2f} s, spread {spread}), CPU "
            line += f"{statistics.median(cpus):.2f} s"
            if encode:
                line += f"; {sink.messages:,} messages, {sink.bytes / total:.0f} B/event in the bodies"
            print(line)


if __name__ == "__main__":
    main()
