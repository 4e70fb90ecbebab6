"""Every documented operation fuzzed against the running local cloud: no answer is a server
error and every answer conforms to docs/openapi.yaml (status codes, content types, headers,
bodies).

schemathesis runs its four phases over the spec: its examples, boundary coverage, random
fuzzing, and stateful sequences that follow the spec's links (a created rule's id into its
updates...). Tracking operations authenticate with the demo source's write key (HTTP Basic),
admin operations with the demo admin key (Bearer). Cost is bounded by the examples per
operation (FUZZ_MAX_EXAMPLES, 5 by default) and a hard time limit; the seed is printed so that
a failure can be replayed (`FUZZ_SEED`).

Checks: `not_a_server_error` and the four response conformance checks. Left out on purpose:
`unsupported_method` (API Gateway HTTP APIs answer 404, not 405, to a method no route has),
`positive_data_acceptance` (the spec cannot say everything the code checks: a channel's
address format, referential integrity, cross-field rules; those answer documented 4xx codes),
`negative_data_rejection` (optional fields accept `null` as "not given") and response-time
limits (never thresholds in tests).
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from infra.localcloud.cloud import LocalCloud
from infra.localcloud.demo import DEMO_ADMIN_KEY, DEMO_WRITE_KEY, bootstrap

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "docs" / "openapi.yaml"
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "5"))
TIME_LIMIT_S = int(os.environ.get("FUZZ_TIME_LIMIT_S", "1500"))

pytestmark = pytest.mark.timeout(TIME_LIMIT_S + 300)


def _config(path: Path) -> Path:
    config = path / "schemathesis.toml"
    config.write_text(
        "\n".join(
            [
                "[auth.openapi.writeKeyBasic]",
                f'username = "{DEMO_WRITE_KEY}"',
                'password = ""',
                "",
                "[auth.openapi.apiKeyBearer]",
                f'bearer = "{DEMO_ADMIN_KEY}"',
                "",
            ]
        )
    )
    return config


def _har_figures(har: Path) -> tuple[int, list[str]]:
    """(requests sent, the first lines of every 5xx answer)."""
    entries = json.loads(har.read_text())["log"]["entries"]
    server_errors = [
        f"{e['request']['method']} {e['request']['url']} -> {e['response']['status']}"
        for e in entries
        if e["response"]["status"] >= 500
    ]
    return len(entries), server_errors


def test_every_operation_survives_fuzzing_and_answers_as_documented(tmp_path: Path, summary: list[str]) -> None:
    seed = int(os.environ.get("FUZZ_SEED") or random.randrange(2**32))
    with LocalCloud() as cloud:
        bootstrap(cloud, echo=False, library=True)
        command = [
            str(Path(sys.executable).parent / "st"),
            "--config-file",
            str(_config(tmp_path)),
            "--no-color",
            "run",
            str(SPEC),
            "--url",
            cloud.api_url,
            "--checks",
            ",".join(CHECKS),
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            str(seed),
            # One worker: CPython 3.11's `ast` is not safe across threads, and hypothesis parses
            # sources to describe strategies ("AST constructor recursion depth mismatch").
            "--workers",
            "1",
            "--request-timeout",
            "60",
            "--suppress-health-check",
            "all",
            "--report",
            "har,junit",
            "--report-dir",
            str(tmp_path / "report"),
        ]
        # Run from the test's own folder: schemathesis keeps its crash cache where it runs.
        finished = subprocess.run(
            command, capture_output=True, text=True, timeout=TIME_LIMIT_S, check=False, cwd=tmp_path
        )
    output = finished.stdout + finished.stderr
    (tmp_path / "schemathesis.txt").write_text(output)
    requests, server_errors = _har_figures(next((tmp_path / "report").glob("har-*.json")))
    junit = next((tmp_path / "report").glob("junit-*.xml")).read_text()
    failures = len(re.findall(r"<failure\b", junit))
    errors = len(re.findall(r"<error\b", junit))
    tested = re.search(r"Tested:\s*(\d+)", output)
    selected = re.search(r"Selected:\s*(\d+)/(\d+)", output)
    cases = re.search(r"Test cases:\s*\n?\s*(\d+) generated", output)
    summary.extend(
        [
            f"operations: {tested.group(1) if tested else '?'} tested of {selected.group(2) if selected else '?'}",
            f"test cases: {cases.group(1) if cases else '?'} generated, at most {MAX_EXAMPLES} examples per operation",
            f"requests: {requests}",
            f"5xx answers: {len(server_errors)}",
            f"conformance failures: {failures}; schemathesis errors: {errors}",
            f"seed: {seed} (FUZZ_SEED={seed} replays it)",
        ]
    )
    print(output[-6000:])  # schemathesis' own report, shown when the test fails
    assert server_errors == [], server_errors[:20]
    assert failures == 0, "conformance failures: see schemathesis' report above"
    assert errors == 0, "schemathesis could not run some tests: see its report above"
    assert finished.returncode == 0, output[-3000:]
    assert tested is not None and selected is not None
    assert tested.group(1) == selected.group(2)  # every documented operation was reached
