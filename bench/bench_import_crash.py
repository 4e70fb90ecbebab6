"""A bulk import that survives a crash, in the local cloud: an orders CSV dropped in the bucket under
a source whose orders mapping is kept on the source, imported in parts by RunImportsFunction's
worker processes off the import queue, and the profile updater applying what they hand off. Once
the first part is recorded, every RunImports worker in the middle of a part is killed (SIGKILL,
as a crashed Lambda sandbox): those parts' messages come back after the retry delay and run again
from their start, handing off again the rows they had handed off already.

What it checks, and prints: the import ends `done` with exact counts (rows read, accepted,
rejected), every part recorded once; every buyer's profile holds exactly their good orders and
their revenue (each row applied once: the repeats were absorbed by the profile updater's
messageId dedupe, whose count it prints from the updater's log); and the rates.

`IMPORT_CRASH_ROWS` (default 20,000) and `IMPORT_CRASH_PEOPLE` (default 200) set the size; parts
are about an eighth of the file, as a 1M-row file's 8 MiB parts are.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from infra.localcloud.cloud import LocalCloud
from infra.localcloud.demo import bootstrap

ROWS = int(os.environ.get("IMPORT_CRASH_ROWS", "20000"))
PEOPLE = int(os.environ.get("IMPORT_CRASH_PEOPLE", "200"))
MAPPING = {"email": "email", "order_id": "order", "revenue": "amount", "currency": "currency", "timestamp": "at"}
HEADER = ["email", "order", "amount", "currency", "at"]
FUNCTION = "RunImportsFunction"


@dataclass
class Orders:
    data: bytes
    orders: Counter[str] = field(default_factory=Counter)
    revenue: dict[str, Decimal] = field(default_factory=dict)
    bad: int = 0


def orders_csv(rows: int, people: int, run: str) -> Orders:
    """`rows` orders of `people` buyers, one row in 1,000 with a revenue that is not a number."""
    lines = [",".join(HEADER)]
    made = Orders(b"")
    for n in range(rows):
        email = f"buyer{n % people}-{run}@example.com"
        if n % 1000 == 999:
            lines.append(f"{email},{run}-{n},lots,USD,2026-11-{1 + n % 28:02d}T10:00:00Z")
            made.bad += 1
            continue
        amount = Decimal(f"{10 + n % 90}.{n % 100:02d}")
        lines.append(f"{email},{run}-{n},{amount},USD,2026-11-{1 + n % 28:02d}T10:00:00Z")
        made.orders[email] += 1
        made.revenue[email] = made.revenue.get(email, Decimal(0)) + amount
    made.data = ("\n".join(lines) + "\n").encode()
    return made


class Admin:
    def __init__(self, url: str, key: str) -> None:
        self.url, self.key = url, key

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("authorization", f"Bearer {self.key}")
        request.add_header("content-type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")


@dataclass
class Outcome:
    rows: int
    parts: int
    killed: int
    crashed_invocations: int
    progress: dict[str, Any]
    import_s: float
    applied_s: float
    duplicates_absorbed: int
    wrong_people: list[str]
    expected: Orders


def run(rows: int, people: int, *, kill: bool = True, timeout_s: float = 3600) -> Outcome:
    run_id = hashlib.sha256(str(time.time()).encode()).hexdigest()[:6]
    made = orders_csv(rows, people, run_id)
    part_bytes = max(1024, len(made.data) // 8 + 1)
    env = {"WEBHOOK_ALLOW_LOCAL": "true", "IMPORT_PART_BYTES": str(part_bytes)}
    with LocalCloud(parameters={"ConfigCacheSeconds": "0"}, function_env=env) as cloud:
        _, admin_key = bootstrap(cloud, echo=False)
        admin = Admin(cloud.api_url, admin_key)
        # The source keeps its orders mapping: the dropped file needs no sidecar
        status, source = admin.call(
            "POST", "/v1/sources", {"name": f"warehouse-{run_id}", "imports": {"orders": {"mapping": MAPPING}}}
        )
        assert status == 201, source
        key = f"imports/{source['id']}/orders/{run_id}.csv"
        started = time.monotonic()
        put = cloud.client("s3").put_object(Bucket=cloud.outputs["ArchiveBucketName"], Key=key, Body=made.data)
        import_id = "bimp_" + hashlib.sha256(f"{key}\n{put['ETag'].strip(chr(34))}".encode()).hexdigest()[:20]
        killed = 0
        progress: dict[str, Any] = {}
        while time.monotonic() - started < timeout_s:
            status, progress = admin.call("GET", f"/v1/imports/{import_id}")
            if status == 200 and progress["status"] in ("done", "failed"):
                break
            if kill and not killed and status == 200 and progress["partsDone"] >= 1:
                killed = cloud.kill_busy(FUNCTION)  # the parts under way die mid-way
            time.sleep(0.2)
        import_s = time.monotonic() - started
        cloud.wait_idle(timeout=timeout_s)
        applied_s = time.monotonic() - started
        crashed = sum(1 for i in cloud.invocations(FUNCTION) if i.error and "ExitError" in str(i.error))
        wrong: list[str] = []
        for email, count in made.orders.items():
            status, person = admin.call("GET", f"/v1/profiles/email:{email}")
            computed = person.get("computed", {}) if status == 200 else {}
            revenue = Decimal(str(computed.get("revenue", "0"))).quantize(Decimal("0.01"))
            if computed.get("orders") != count or revenue != made.revenue[email]:
                wrong.append(
                    f"{email}: {computed.get('orders')} orders, {revenue} (want {count}, {made.revenue[email]})"
                )
        duplicates = _logged_duplicates(cloud)
    return Outcome(
        rows, progress.get("parts", 0), killed, crashed, progress, import_s, applied_s, duplicates, wrong, made
    )


def _logged_duplicates(cloud: LocalCloud) -> int:
    """The events the profile updater found it had applied already (its `events applied` lines)."""
    total = 0
    for line in cloud.log_path("ProfileUpdaterFunction").read_text(errors="replace").splitlines():
        if '"events applied"' in line:
            try:
                total += int(json.loads(line).get("duplicates", 0))
            except ValueError:
                continue
    return total


def main() -> None:
    print(f"   {ROWS:,} order rows of {PEOPLE:,} buyers; RunImports workers killed once the first part is recorded")
    outcome = run(ROWS, PEOPLE)
    p = outcome.progress
    print(f"   import {p.get('status')}: {outcome.parts} parts, {p.get('partsDone')} recorded")
    print(f"   rows read {p.get('rowsRead'):,}, accepted {p.get('accepted'):,}, rejected {p.get('rejected'):,}")
    crashed = outcome.crashed_invocations
    print(f"   workers killed mid-part: {outcome.killed}; invocations ended by Runtime.ExitError: {crashed}")
    print(f"   repeats absorbed by the profile updater (duplicates): {outcome.duplicates_absorbed:,}")
    print(f"   people with wrong orders or revenue: {len(outcome.wrong_people)} of {len(outcome.expected.orders)}")
    for line in outcome.wrong_people[:5]:
        print(f"     {line}")
    print(
        f"   import done in {outcome.import_s:.1f} s ({outcome.rows / outcome.import_s:,.0f} rows/s);"
        f" all applied in {outcome.applied_s:.1f} s ({outcome.rows / outcome.applied_s:,.0f} rows/s end to end)"
    )
    exact = (p.get("rowsRead"), p.get("accepted"), p.get("rejected")) == (
        outcome.rows,
        outcome.rows - outcome.expected.bad,
        outcome.expected.bad,
    )
    print(f"   exact counts: {exact}; every row applied once: {not outcome.wrong_people}")
