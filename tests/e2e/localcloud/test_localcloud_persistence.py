"""`make run` keeps its state: stopped cleanly or killed, the next start has everything back.

The real platform runs as `python -m infra.localcloud run` in a subprocess (the process a user
starts), with its state directory in the test's temporary folder. What is set up through the
HTTP API — people, a segment, an approved template, a campaign scheduled an hour ahead on the
manual clock — must be there after a clean stop (SIGINT, as Ctrl-C) and after `kill -9`, and the
campaign's schedule must still fire when the clock reaches it. A journal whose last cut was torn
by the kill is read up to its last committed cut; `--fresh` starts empty.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from infra.localcloud.demo import DEMO_ADMIN_KEY, DEMO_WRITE_KEY

pytestmark = pytest.mark.timeout(900)
REPO = Path(__file__).resolve().parents[3]
STARTUP_S = 300.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Running:
    process: subprocess.Popen[str]
    url: str
    log: Path

    def call(self, method: str, path: str, body: Any = None, *, auth: str = "admin") -> tuple[int, Any]:
        headers = {"content-type": "application/json"}
        if auth == "admin":
            headers["authorization"] = f"Bearer {DEMO_ADMIN_KEY}"
        elif auth == "write":
            headers["authorization"] = "Basic " + base64.b64encode(f"{DEMO_WRITE_KEY}:".encode()).decode()
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=120) as answer:
                return answer.status, json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def settle(self) -> None:
        status, body = self.call("POST", "/_localcloud/wait-idle", {"timeout": 600}, auth="none")
        assert status == 200, body


@contextmanager
def running(state_dir: Path, log: Path, *extra: str) -> Iterator[Running]:
    port = _free_port()
    with log.open("a", encoding="utf-8") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "infra.localcloud",
                "run",
                "--manual-clock",
                "--port",
                str(port),
                "--state-dir",
                str(state_dir),
                *extra,
            ],
            cwd=REPO,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
    cloud = Running(process, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + STARTUP_S
        while "Ready." not in log.read_text(encoding="utf-8").split("--- start ---")[-1]:
            assert process.poll() is None, log.read_text(encoding="utf-8")[-4000:]
            assert time.monotonic() < deadline, "the cloud did not start in time"
            time.sleep(0.2)
        cloud.settle()
        yield cloud
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(60)


def _stop(cloud: Running, how: str) -> None:
    if how == "kill -9":
        cloud.process.send_signal(signal.SIGKILL)
    else:
        cloud.process.send_signal(signal.SIGINT)
    code = cloud.process.wait(120)
    assert code == (-signal.SIGKILL if how == "kill -9" else 0), cloud.log.read_text(encoding="utf-8")[-4000:]


def _start_marker(log: Path) -> None:
    with log.open("a", encoding="utf-8") as output:
        output.write("\n--- start ---\n")


def _set_up(cloud: Running, tag: str) -> None:
    people = [
        {"type": "identify", "userId": f"{tag}-{n}", "traits": {"email": f"{tag}-{n}@example.org", "plan": tag}}
        for n in range(5)
    ]
    status, body = cloud.call("POST", "/v1/batch", {"batch": people}, auth="write")
    assert status == 200 and body["accepted"] == 5, body
    segment = {"id": f"plan-{tag}", "name": tag, "condition": {"path": "traits.plan", "op": "eq", "value": tag}}
    assert cloud.call("POST", "/v1/segments", segment)[0] == 201
    template = {
        "id": f"news-{tag}",
        "name": tag,
        "channel": "email",
        "locales": {"en": {"subject": f"News {tag}", "text": "Hello"}},
    }
    assert cloud.call("POST", "/v1/templates", template)[0] == 201
    assert cloud.call("POST", f"/v1/templates/news-{tag}/approve", {"version": 1})[0] == 200
    status, clock = cloud.call("GET", "/_localcloud/clock", auth="none")
    assert status == 200
    at = time.strftime("%Y-%m-%dT%H:%M:00Z", time.gmtime(_epoch(clock["now"]) + 3600))
    campaign = {
        "id": f"camp-{tag}",
        "name": tag,
        "audience": {"segments": [f"plan-{tag}"]},
        "message": {"channels": ["email"], "template": f"news-{tag}"},
        "schedule": {"type": "once", "at": at},
    }
    assert cloud.call("POST", "/v1/campaigns", campaign)[0] == 201
    status, scheduled = cloud.call("POST", f"/v1/campaigns/camp-{tag}/schedule")
    assert status == 200, scheduled
    cloud.settle()


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _has_everything(cloud: Running, tag: str) -> None:
    for n in range(5):
        status, profile = cloud.call("GET", f"/v1/profiles/user_id:{tag}-{n}")
        assert status == 200, profile
        assert profile["traits"]["email"] == f"{tag}-{n}@example.org"
    assert cloud.call("GET", f"/v1/segments/plan-{tag}")[0] == 200
    assert cloud.call("GET", f"/v1/templates/news-{tag}")[0] == 200
    status, campaign = cloud.call("GET", f"/v1/campaigns/camp-{tag}")
    assert status == 200 and campaign["status"] == "scheduled", campaign


def _campaign_fires(cloud: Running, tag: str) -> None:
    status, clock = cloud.call("GET", "/_localcloud/clock", auth="none")
    assert any(f"camp-{tag}" in name for name in json.dumps(clock["schedules"]).split('"')), clock
    status, advanced = cloud.call("POST", "/_localcloud/clock/advance", {"seconds": 7200}, auth="none")
    assert status == 200, advanced
    cloud.settle()
    status, stats = cloud.call("GET", f"/v1/campaigns/camp-{tag}/stats")
    assert status == 200, stats
    assert stats["totals"]["targeted"] == 5, stats


@pytest.mark.parametrize("how", ["SIGINT", "kill -9"])
def test_what_was_set_up_survives_a_restart_and_its_schedule_still_fires(tmp_path: Path, how: str) -> None:
    state, log = tmp_path / "store", tmp_path / "cloud.log"
    tag = "kept" if how == "SIGINT" else "killed"

    # Given a platform with people, a segment, a template and a campaign due in an hour
    _start_marker(log)
    with running(state, log) as cloud:
        _set_up(cloud, tag)
        time.sleep(5)  # more than the 2 s between cuts: the kill below may lose only what follows
        # When it is stopped (Ctrl-C, or killed outright)
        _stop(cloud, how)

    # Then the next start has all of it, and the campaign fires when the clock reaches it
    _start_marker(log)
    with running(state, log) as cloud:
        assert "State restored from" in log.read_text(encoding="utf-8").split("--- start ---")[-1]
        _has_everything(cloud, tag)
        _campaign_fires(cloud, tag)
        _stop(cloud, "SIGINT")


def test_a_torn_last_cut_is_ignored_and_fresh_starts_empty(tmp_path: Path) -> None:
    state, log = tmp_path / "store", tmp_path / "cloud.log"
    _start_marker(log)
    with running(state, log) as cloud:
        _set_up(cloud, "torn")
        _stop(cloud, "SIGINT")

    # Given a journal whose last cut was being written when the process died
    manifest = json.loads((state / "manifest.json").read_text())
    with (state / manifest["journal"]).open("a", encoding="utf-8") as journal:
        journal.write('{"k":"ddb","tb":"x","key":[{"S":"a"},null],"item":{"pk":{"S":"a"}}}\n{"k":"ddb","tb"')

    # When the cloud starts, it reads up to the last committed cut
    _start_marker(log)
    with running(state, log) as cloud:
        _has_everything(cloud, "torn")
        _stop(cloud, "SIGINT")

    # And --fresh forgets everything
    _start_marker(log)
    with running(state, log, "--fresh") as cloud:
        status, _ = cloud.call("GET", "/v1/profiles/user_id:torn-0")
        assert status == 404
        assert cloud.call("GET", "/v1/segments/plan-torn")[0] == 404
        _stop(cloud, "SIGINT")
    assert os.path.isfile(state / "manifest.json")
