"""A Pinpoint endpoint export imported through the local cloud, as docs/pinpoint-migration.md says.

The platform as `make run` starts it (the repository's template, its local parameters) receives an
export job's output the documented way: a static segment created through the admin API, then
`midstage.cli pinpoint-import <segment> <folder> --url <ApiUrl> --key <key>` run over a folder of
`.gz` export files. The files are generated: `PINPOINT_IMPORT_ENDPOINTS` endpoints (default
100,000) as JSON lines, 10,007 to a file, each file without a trailing newline (as AWS writes
them); every person has two endpoints (an EMAIL one and an SMS or a GCM one) under one
`User.UserId`, one endpoint in ten opted out, and the pairs straddle the files' seams.

Printed: the command's time (every file read, cut into imports of 500 lines and accepted by
`POST /v1/segments/{id}/import`), the time until the cloud is idle again (every profile written
by the profile updater, every function the events set off finished), endpoints per second over
both, and the command's own totals (endpoints, distinct people, events). Twenty profiles are then
read back through the admin API, each with its email and its phone or device.
"""

from __future__ import annotations

import gzip
import json
import os
import tempfile
import time
import urllib.request
from pathlib import Path

from infra.localcloud.__main__ import LOCAL_FUNCTION_ENV, _local_defaults
from infra.localcloud.cloud import DEFAULT_TEMPLATE, LocalCloud
from infra.localcloud.demo import bootstrap
from midstage.cli import HttpAdminApi
from midstage.pinpoint_command import export_files, import_files

ENDPOINTS = int(os.environ.get("PINPOINT_IMPORT_ENDPOINTS", "100000"))
PER_FILE = 10_007  # odd, so a person's two endpoints fall in two files at some seams
SEGMENT = "pinpoint-bench"


def endpoint(n: int) -> dict[str, object]:
    """The n-th endpoint: person n // 2's EMAIL (even n) or SMS / GCM (odd n) endpoint."""
    person = n // 2
    document: dict[str, object] = {
        "Id": f"ep-{n:07d}",
        "EffectiveDate": f"2026-0{1 + person % 9}-{1 + person % 28:02d}T10:00:00.000Z",
        "EndpointStatus": "ACTIVE",
        "OptOut": "ALL" if n % 10 == 3 else "NONE",
        "User": {"UserId": f"user-{person:07d}", "UserAttributes": {"plan": [("free", "pro")[person % 2]]}},
        "Demographic": {"Timezone": "America/Los_Angeles", "Locale": "en_US"},
        "Location": {"Country": "US", "City": "Seattle"},
    }
    if n % 2 == 0:
        document.update(ChannelType="EMAIL", Address=f"user-{person:07d}@example.com")
    elif person % 2 == 0:
        document.update(ChannelType="SMS", Address=f"206555{person % 10_000:04d}")
    else:
        document.update(ChannelType="GCM", Address=f"token-{person:07d}")
    return document


def write_export(folder: Path, endpoints: int) -> list[Path]:
    """An export job's files: gzip'd JSON lines, none ending with a newline."""
    written = []
    for index, first in enumerate(range(0, endpoints, PER_FILE)):
        lines = (json.dumps(endpoint(n), separators=(",", ":")) for n in range(first, min(endpoints, first + PER_FILE)))
        path = folder / f"{index:03d}.gz"
        path.write_bytes(gzip.compress("\n".join(lines).encode(), compresslevel=6))
        written.append(path)
    return written


def _read_back(cloud: LocalCloud, key: str, people: int) -> int:
    checked = 0
    for person in range(0, people, max(1, people // 20)):
        request = urllib.request.Request(
            f"{cloud.api_url}/v1/profiles/user_id:user-{person:07d}", headers={"authorization": f"Bearer {key}"}
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            profile = json.loads(answer.read())
        assert profile["traits"]["email"] == f"user-{person:07d}@example.com", profile
        assert profile["devices"] if person % 2 else profile["traits"].get("phone"), profile
        checked += 1
    return checked


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        files = write_export(Path(folder), ENDPOINTS)
        size = sum(path.stat().st_size for path in files)
        print(f"{ENDPOINTS:,} endpoints ({ENDPOINTS // 2:,} people) in {len(files)} .gz files, {size / 1e6:.1f} MB")
        with LocalCloud(
            DEFAULT_TEMPLATE, parameters=_local_defaults(DEFAULT_TEMPLATE), function_env=LOCAL_FUNCTION_ENV
        ) as cloud:
            _, admin_key = bootstrap(cloud, echo=False)
            cloud.wait_idle(timeout=600)
            api = HttpAdminApi(cloud.api_url, admin_key, timeout=120)
            api.send("POST", "/v1/segments", {"id": SEGMENT, "name": "Everyone from Pinpoint", "kind": "static"})
            load = os.getloadavg()[0]
            started = time.monotonic()
            totals = import_files(export_files([folder]), SEGMENT, api, fmt="auto", lines=500, echo=lambda _: None)
            sent = time.monotonic() - started
            cloud.wait_idle(timeout=4 * 3600)
            applied = time.monotonic() - started
            checked = _read_back(cloud, admin_key, ENDPOINTS // 2)
    print(
        f"command: {totals.imports} imports, {totals.accepted:,} endpoints accepted, {totals.people:,} people, "
        f"{totals.events:,} events, {totals.rejected} rejected, {len(totals.refused)} refused"
    )
    print(f"imports accepted in {sent:.1f} s ({totals.accepted / sent:,.0f} endpoints/s)")
    print(f"every profile written in {applied:.1f} s ({totals.accepted / applied:,.0f} endpoints/s)")
    print(f"{checked} profiles read back; load average at the start {load:.2f}, at the end {os.getloadavg()[0]:.2f}")
