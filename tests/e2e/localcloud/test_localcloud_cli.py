"""python -m infra.localcloud: `invoke` (the docker-free `sam local invoke`) and `run`."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from infra.localcloud.deploy import local_session
from tests.e2e.localcloud.conftest import RECORD_TABLE, poll, write_template

pytestmark = pytest.mark.timeout(120)

RESOURCES = (
    RECORD_TABLE
    + """
Echo:
  Type: AWS::Serverless::Function
  Properties:
    CodeUri: {FUNCTIONS}/echo/
Recorder:
  Type: AWS::Serverless::Function
  Properties:
    CodeUri: {FUNCTIONS}/recorder/
    Environment: {Variables: {RECORD_TABLE: !Ref RecordTable}}
"""
)


def cli(*arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infra.localcloud", *arguments],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def event_file(directory: Path, event: object) -> Path:
    path = directory / "event.json"
    path.write_text(json.dumps(event), encoding="utf-8")
    return path


def test_invoke_runs_a_function_with_a_sample_event_in_a_fresh_cloud(tmp_path: Path) -> None:
    template = write_template(tmp_path, RESOURCES)
    event = event_file(tmp_path, {"order": "o-1"})

    finished = cli("invoke", "echo", "--event", str(event), "--template", str(template), cwd=tmp_path)

    assert finished.returncode == 0, finished.stderr
    answer = json.loads(finished.stdout)
    assert answer["event"] == {"order": "o-1"}
    assert answer["context"]["function_name"] == "midstage-local-Echo"
    assert "fresh in-memory cloud" in finished.stderr
    assert "[midstage-local-Echo] START RequestId" in finished.stderr


def test_invoke_prints_the_error_and_fails_when_the_function_fails(tmp_path: Path) -> None:
    template = write_template(tmp_path, RESOURCES)
    event = event_file(tmp_path, {"raise": "bad sample"})

    finished = cli("invoke", "Echo", "--event", str(event), "--template", str(template), cwd=tmp_path)

    assert finished.returncode == 1
    assert json.loads(finished.stdout)["errorMessage"] == "bad sample"


def test_invoke_names_the_known_functions_when_the_name_is_wrong(tmp_path: Path) -> None:
    template = write_template(tmp_path, RESOURCES)

    finished = cli("invoke", "nope", "--template", str(template), cwd=tmp_path)

    assert finished.returncode == 2
    assert "Echo (echo)" in finished.stderr
    assert "Recorder (recorder)" in finished.stderr


def test_invoke_uses_the_running_cloud_and_run_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    template = write_template(tmp_path, RESOURCES)
    state_file = tmp_path / ".localcloud" / "state.json"
    tag = uuid.uuid4().hex
    running = subprocess.Popen(
        [sys.executable, "-m", "infra.localcloud", "run", "--template", str(template), "--port", "0", "--no-demo"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        poll(state_file.exists, timeout=60, what="the running cloud's state file")
        state = json.loads(state_file.read_text(encoding="utf-8"))

        invoked = cli(
            "invoke",
            "recorder",
            "--event",
            str(event_file(tmp_path, {"tag": tag})),
            "--template",
            str(template),
            cwd=tmp_path,
        )

        assert invoked.returncode == 0, invoked.stderr
        assert "against the running local cloud" in invoked.stderr
        dynamodb = local_session("us-east-1").client("dynamodb", endpoint_url=state["awsEndpointUrl"])
        items = dynamodb.scan(TableName="midstage-local-RecordTable")["Items"]
        assert [json.loads(item["event"]["S"]) for item in items] == [{"tag": tag}]
    finally:
        running.send_signal(signal.SIGTERM)
        output, _ = running.communicate(timeout=60)

    assert running.returncode == 0, output
    assert "State is kept in" in output
    assert (tmp_path / ".localcloud" / "store" / "manifest.json").is_file()
    assert not state_file.exists()


def test_make_invoke_runs_a_real_function_with_its_checked_in_sample_event() -> None:
    repo = Path(__file__).resolve().parents[3]

    finished = cli("invoke", "collect", "--event", "events/collect/track.json", cwd=repo)

    assert finished.returncode == 0, finished.stderr
    answer = json.loads(finished.stdout)
    # The fresh cloud is seeded with the demo source whose write key the sample carries.
    assert answer["statusCode"] == 200, answer
    assert json.loads(answer["body"]) == {"success": True, "accepted": 1}
