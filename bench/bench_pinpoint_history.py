"""Pinpoint history: one Firehose object at its largest (128 MiB), read and replayed.

A synthetic object of 135,000 records joined without a delimiter (as Firehose writes them),
gzip'd: the records of tests/support/pinpoint_stream.py in turn (every documented email and SMS
kind, app events; one in fourteen an `_monetization.purchase`, only counted), each with its own
`event_id` and one of 5,000 endpoint ids. Timed, median of 3:

- `dry run`: inflate the object, decode every record, plan it (logic/imports/pinpoint_events.py);
- `to messages`: the same through services/pinpoint_history.replay_text, with the hand-off
  encoding of every batch (`adapters/handoff.messages_for`: the bodies SQS would get), without
  the network.

Also the process's peak RSS (the fixture's own bytes included): the import function that
replays a dropped object has 1,024 MB. The SQS calls and the suppressions' PutItem are not timed.
"""

from __future__ import annotations

import copy
import gzip
import json
import resource
import statistics
import time
from collections.abc import Mapping, Sequence
from typing import Any

from midstage.adapters.handoff import messages_for
from midstage.logic.imports.pinpoint_events import file_text, plan_stream
from midstage.services.pinpoint_history import replay_text
from tests.support import pinpoint_stream as fx

RECORDS = 135_000
ENDPOINTS = 5_000
PIECE = 1 << 20


class EncodingSink:
    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0

    def send(self, groups: Mapping[str, Sequence[dict[str, Any]]]) -> int:
        bodies = messages_for(groups)
        self.messages += len(bodies)
        self.bytes += sum(len(body) for _, body in bodies)
        return len(bodies)


def build() -> bytes:
    kinds = fx.EMAIL_RECORDS + fx.OTHER_RECORDS
    parts = []
    for n in range(RECORDS):
        record = copy.deepcopy(kinds[n % len(kinds)])
        record["event_id"] = f"ev-{n}"
        if "endpoint" not in record:
            record["client"] = {**record.get("client", {}), "client_id": f"endpoint-{n % ENDPOINTS}"}
        parts.append(json.dumps(record))
    return gzip.compress("".join(parts).encode(), 6)


def _run(data: bytes, *, encode: bool) -> tuple[float, int, EncodingSink]:
    sink = EncodingSink()
    started = time.perf_counter()
    text, damage = file_text(data[i : i + PIECE] for i in range(0, len(data), PIECE))
    events = replay_text(text, damage, sink, None).events if encode else len(plan_stream(text).events)
    return time.perf_counter() - started, events, sink


def main() -> None:
    started = time.perf_counter()
    data = build()
    inflated = len(gzip.decompress(data))
    print(
        f"object: {RECORDS:,} records, {inflated / 2**20:.1f} MiB ({len(data) / 2**20:.1f} MiB gzip'd), "
        f"built in {time.perf_counter() - started:.1f} s"
    )
    for label, encode in (("dry run", False), ("to messages", True)):
        runs = [_run(data, encode=encode) for _ in range(3)]
        walls = [r[0] for r in runs]
        wall, events, sink = statistics.median(walls), runs[0][1], runs[0][2]
        line = f"{label:<12} {RECORDS / wall:>8,.0f} records/s ({wall:.1f} s, spread {min(walls):.1f}-{max(walls):.1f})"
        line += f", {events:,} events"
        if encode:
            line += f"; {sink.messages:,} messages, {sink.bytes / max(events, 1):.0f} B/event in the bodies"
        print(line)
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
