"""A real population through the running local cloud: events/s and profiles/s as the table grows.

The platform as `make run` starts it (the repository's template, its local parameters, the
library applied) receives people over HTTP through the tracking API, the way SDKs send them:
batches of 100 events from 4 client threads, each new person an identify (email, plan, time
zone) and two tracks. The population grows to each milestone (1k and 10k profiles by
default, about half an hour on two cores; `MIDSTAGE_BENCH_POPULATION=1000,10000,100000` adds
100k, about three hours more); at each one a measured window sends
2,000 events, a third of them new people and the rest tracks for people already there, and is
timed from the first request to the moment the cloud is idle again (every event applied, every
rule, journey and conversion function that the events set off finished). Profiles are then read
back through the admin API to check they are complete.

Printed per milestone: events/s and new profiles/s of the window, the fill's sustained rate, the
CPU milliseconds per event spent by the local cloud's own process (moto, the gateway, the
pollers) and by each function's workers, the ratio of each window's rate to the first one's,
the AWS requests per event by operation, and the local cloud process's resident memory.
CPU time is what the work costs whatever else the machine runs; the wall-clock rates are what a
user waits for, on this machine, at its load average (printed beside them).
"""

from __future__ import annotations

import base64
import json
import os
import random
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from infra.localcloud.__main__ import LOCAL_FUNCTION_ENV, _local_defaults
from infra.localcloud.cloud import DEFAULT_TEMPLATE, LocalCloud
from infra.localcloud.demo import bootstrap

MILESTONES = [int(n) for n in os.environ.get("MIDSTAGE_BENCH_POPULATION", "1000,10000").split(",")]
WINDOW_EVENTS = 2_000
BATCH = 100
CLIENTS = 4
TICK = os.sysconf("SC_CLK_TCK")
PLANS = ("free", "pro", "team")
ZONES = ("Europe/Paris", "America/New_York", "Asia/Shanghai", "UTC")


def _cpu_seconds(pid: int) -> float:
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()  # noqa: SIM115
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def _rss_mb(pid: int) -> float:
    """Resident memory of a process, in MB (VmRSS)."""
    try:
        for line in open(f"/proc/{pid}/status"):  # noqa: SIM115
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _cpu_by_process(cloud: LocalCloud) -> Counter[str]:
    """CPU seconds so far: the cloud's own process, and each function's live workers."""
    used: Counter[str] = Counter({"local cloud": _cpu_seconds(os.getpid())})
    runtime = cloud._runtime  # the benchmark looks inside to attribute CPU to functions
    assert runtime is not None
    for function_id, pool in runtime._pools.items():
        for worker in [*pool._idle, *pool._busy]:
            used[function_id.removesuffix("Function")] += _cpu_seconds(worker.process.pid)
    return used


def _person(n: int) -> list[dict[str, Any]]:
    user = f"bench-{n:07d}"
    return [
        {
            "type": "identify",
            "userId": user,
            "messageId": f"{user}-identify",
            "traits": {"email": f"{user}@example.org", "plan": PLANS[n % 3]},
            "context": {"timezone": ZONES[n % 4]},
        },
        {
            "type": "track",
            "userId": user,
            "messageId": f"{user}-viewed",
            "event": "Product Viewed",
            "properties": {"sku": f"SKU-{n % 50}"},
        },
        {
            "type": "track",
            "userId": user,
            "messageId": f"{user}-added",
            "event": "Product Added",
            "properties": {"sku": f"SKU-{n % 50}", "price": 10 + n % 90},
        },
    ]


def _returning(existing: int, serial: int, rng: random.Random) -> dict[str, Any]:
    n = rng.randrange(existing)
    event = "Order Completed" if serial % 5 == 0 else "Product Viewed"
    return {
        "type": "track",
        "userId": f"bench-{n:07d}",
        "messageId": f"bench-return-{existing}-{serial}",
        "event": event,
        "properties": {"revenue": 20 + serial % 80} if event == "Order Completed" else {"sku": f"SKU-{serial % 50}"},
    }


class Sender:
    def __init__(self, cloud: LocalCloud, write_key: str) -> None:
        self.url = cloud.api_url + "/v1/batch"
        self.auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()

    def post(self, batch: list[dict[str, Any]]) -> None:
        body = json.dumps({"batch": batch}).encode()
        for attempt in range(5):
            request = urllib.request.Request(
                self.url, data=body, headers={"content-type": "application/json", "authorization": self.auth}
            )
            try:
                with urllib.request.urlopen(request, timeout=120) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(1 + attempt)
        raise RuntimeError("the tracking API refused a batch five times")

    def send(self, events: list[dict[str, Any]]) -> None:
        batches = [events[i : i + BATCH] for i in range(0, len(events), BATCH)]
        with ThreadPoolExecutor(CLIENTS) as pool:
            list(pool.map(self.post, batches))


def _chunks(start: int, stop: int, size: int) -> Iterator[range]:
    for first in range(start, stop, size):
        yield range(first, min(stop, first + size))


def _timed(cloud: LocalCloud, sender: Sender, events: list[dict[str, Any]]) -> tuple[float, Counter[str], Counter[str]]:
    before, calls_before = _cpu_by_process(cloud), Counter(cloud.aws_requests())
    started = time.monotonic()
    sender.send(events)
    cloud.wait_idle(timeout=3600)
    elapsed = time.monotonic() - started
    after = _cpu_by_process(cloud)
    spent = Counter({name: max(0.0, after[name] - before.get(name, 0.0)) for name in after})
    return elapsed, spent, Counter(cloud.aws_requests()) - calls_before


def _read_back(cloud: LocalCloud, admin_key: str, people: int, rng: random.Random) -> int:
    """Profiles checked through the admin API (each must have its email and its events counted)."""
    checked = 0
    for n in rng.sample(range(people), min(20, people)):
        request = urllib.request.Request(
            f"{cloud.api_url}/v1/profiles/user_id:bench-{n:07d}", headers={"authorization": f"Bearer {admin_key}"}
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            profile = json.loads(answer.read())
        assert profile["traits"]["email"] == f"bench-{n:07d}@example.org", profile
        checked += 1
    return checked


def main() -> None:
    rng = random.Random(20261206)
    print(f"milestones {MILESTONES}, window {WINDOW_EVENTS:,} events, batches of {BATCH}, {CLIENTS} clients")
    with LocalCloud(
        DEFAULT_TEMPLATE, parameters=_local_defaults(DEFAULT_TEMPLATE), function_env=LOCAL_FUNCTION_ENV
    ) as cloud:
        source, admin_key = bootstrap(cloud, echo=False, library=True)
        cloud.wait_idle(timeout=600)
        sender = Sender(cloud, source.write_key)
        people = 0
        first_rate: float | None = None
        print(
            f"{'profiles':>9} {'fill ev/s':>10} {'window ev/s':>12} {'new prof/s':>11} {'ratio':>6}  "
            "CPU ms/event (window)                                   load"
        )
        for milestone in MILESTONES:
            fill_started, filled_events = time.monotonic(), 0
            target = milestone - WINDOW_EVENTS // 9  # the window adds a ninth of its events' worth of people
            for chunk in _chunks(people, max(people, target), 2_000):
                events = [event for n in chunk for event in _person(n)]
                sender.send(events)
                filled_events += len(events)
                people = chunk.stop
                cloud.wait_idle(timeout=3600)
            fill_rate = filled_events / (time.monotonic() - fill_started) if filled_events else 0.0

            new_people = range(people, people + WINDOW_EVENTS // 9)
            window = [event for n in new_people for event in _person(n)]
            window += [_returning(people, serial, rng) for serial in range(WINDOW_EVENTS - len(window))]
            rng.shuffle(window)
            elapsed, spent, calls = _timed(cloud, sender, window)
            people = new_people.stop
            rate = len(window) / elapsed
            first_rate = first_rate or rate
            _read_back(cloud, admin_key, people, rng)
            shares = ", ".join(
                f"{name} {seconds * 1000 / len(window):.1f}"
                for name, seconds in spent.most_common()
                if seconds * 1000 / len(window) >= 0.05
            )
            print(
                f"{people:>9,} {fill_rate:>10.1f} {rate:>12.1f} {len(new_people) / elapsed:>11.1f} "
                f"{rate / first_rate:>6.2f}  {shares}   {os.getloadavg()[0]:.1f}",
                flush=True,
            )
            per_event = ", ".join(f"{name} {count / len(window):.2f}" for name, count in calls.most_common(10))
            print(f"{'':>9} AWS requests per event: {sum(calls.values()) / len(window):.2f} ({per_event})", flush=True)
            print(f"{'':>9} local cloud resident memory: {_rss_mb(os.getpid()):,.0f} MB", flush=True)


if __name__ == "__main__":
    main()
