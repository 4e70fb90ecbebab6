"""The local Lambda runtime: environment, context, errors, timeouts, crashes, warm workers, limits."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from infra.localcloud.cloud import LocalCloud
from infra.localcloud.lambdas import HISTORY_SIZE
from tests.e2e.localcloud.conftest import FIXTURE_FUNCTIONS, poll, write_template

pytestmark = pytest.mark.timeout(120)

RESOURCES = """
Echo:
  Type: AWS::Serverless::Function
  Properties:
    CodeUri: {FUNCTIONS}/echo/
    MemorySize: 256
    Timeout: 2
    Environment: {Variables: {GREETING: hello, STAGE: test}}
    LoggingConfig: {LogGroup: /custom/echo}
Single:
  Type: AWS::Serverless::Function
  Properties:
    CodeUri: {FUNCTIONS}/echo/
    ReservedConcurrentExecutions: 1
Broken:
  Type: AWS::Serverless::Function
  Properties:
    CodeUri: {FUNCTIONS}/echo/
    Handler: missing_module.handler
"""


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    template = write_template(tmp_path_factory.mktemp("runtime"), RESOURCES)
    with pytest.MonkeyPatch.context() as environment:
        # A developer's own AWS settings must not reach the functions.
        environment.setenv("AWS_PROFILE", "someone-elses-account")
        with LocalCloud(template, stack_name="runtime", function_env={"GREETING": "overridden"}) as started:
            yield started


def test_functions_run_with_the_lambda_environment_pointed_at_moto(cloud: LocalCloud) -> None:
    result = cloud.invoke("Echo", {"hello": "world"})

    assert result.ok, result.error
    environment = result.payload["environment"]
    assert environment["AWS_ENDPOINT_URL"] == cloud.aws_endpoint_url
    assert environment["AWS_REGION"] == "us-east-1"
    assert environment["AWS_ACCESS_KEY_ID"] == "testing"
    assert environment["AWS_LAMBDA_FUNCTION_NAME"] == "runtime-Echo"
    assert environment["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert environment["AWS_LAMBDA_LOG_GROUP_NAME"] == "/custom/echo"
    assert environment["POWERTOOLS_TRACE_DISABLED"] == "true"
    assert environment["STAGE"] == "test"
    assert environment["GREETING"] == "overridden"
    assert environment["AWS_PROFILE"] is None
    assert Path(result.payload["cwd"]) == FIXTURE_FUNCTIONS / "echo"


def test_handlers_receive_the_event_and_a_lambda_context(cloud: LocalCloud) -> None:
    result = cloud.invoke("Echo", {"hello": "world"})

    assert result.payload["event"] == {"hello": "world"}
    context = result.payload["context"]
    assert context["aws_request_id"] == result.request_id
    assert context["function_version"] == "$LATEST"
    assert context["invoked_function_arn"] == cloud.function("Echo").arn
    assert context["memory_limit_in_mb"] == "256"
    assert context["log_group_name"] == "/custom/echo"
    assert 0 < context["remaining_ms"] <= 2000


def test_a_warm_worker_serves_the_next_invocation(cloud: LocalCloud) -> None:
    first = cloud.invoke("Echo", {})
    second = cloud.invoke("Echo", {})

    assert first.payload["pid"] == second.payload["pid"]


def test_a_handler_exception_comes_back_as_a_lambda_error(cloud: LocalCloud) -> None:
    result = cloud.invoke("Echo", {"raise": "no such order"})

    assert not result.ok
    assert result.error is not None
    assert result.error["errorType"] == "ValueError"
    assert result.error["errorMessage"] == "no such order"
    assert "echo/handler.py" in result.error["stackTrace"][0]


def test_a_timeout_kills_the_worker_and_the_next_invocation_gets_a_new_one(cloud: LocalCloud) -> None:
    before = cloud.invoke("Echo", {}).payload["pid"]

    timed_out = cloud.invoke("Echo", {"sleep": 30})
    after = cloud.invoke("Echo", {})

    assert timed_out.error is not None
    assert timed_out.error["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 2.00 seconds" in timed_out.error["errorMessage"]
    assert after.ok
    assert after.payload["pid"] != before


def test_a_crashing_runtime_is_reported_and_replaced(cloud: LocalCloud) -> None:
    crashed = cloud.invoke("Echo", {"exit": 3})
    after = cloud.invoke("Echo", {})

    assert crashed.error is not None
    assert crashed.error["errorType"] == "Runtime.ExitError"
    assert "exit status 3" in crashed.error["errorMessage"]
    assert after.ok


def test_a_handler_that_cannot_be_imported_fails_every_invocation(cloud: LocalCloud) -> None:
    result = cloud.invoke("Broken", {})

    assert result.error is not None
    assert result.error["errorType"] == "Runtime.ImportModuleError"
    assert "missing_module" in result.error["errorMessage"]


def test_reserved_concurrency_limits_the_workers_of_a_function(cloud: LocalCloud) -> None:
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda _: cloud.invoke("Single", {"sleep": 0.2}), range(3)))

    assert all(result.ok for result in results)
    assert len({result.payload["pid"] for result in results}) == 1


def test_the_last_invocations_are_kept_for_inspection(cloud: LocalCloud) -> None:
    for n in range(HISTORY_SIZE + 5):
        cloud.invoke("Single", {"n": n})

    history = cloud.invocations("Single")

    assert len(history) == HISTORY_SIZE
    assert history[-1].event == {"n": HISTORY_SIZE + 4}
    assert history[-1].payload["event"] == {"n": HISTORY_SIZE + 4}
    assert history[-1].error is None
    assert history[0].started_at <= history[-1].started_at


def test_function_output_goes_to_its_log_file(cloud: LocalCloud) -> None:
    result = cloud.invoke("Echo", {})

    # The handler's own output reaches the file through a pipe read by another thread: it may land
    # a moment after the invocation returns.
    def log_with_output() -> str:
        text = cloud.log_path("Echo").read_text(encoding="utf-8")
        return text if f"echo {result.request_id}" in text else ""

    log = poll(log_with_output, timeout=10, what="the handler's output in its log file")
    assert f"START RequestId: {result.request_id}" in log


def test_verbose_output_is_prefixed_with_the_function_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    template = write_template(tmp_path, RESOURCES)

    with LocalCloud(template, stack_name="runtime-verbose", verbose=True) as verbose_cloud:
        result = verbose_cloud.invoke("Echo", {})

    assert f"[runtime-verbose-Echo] echo {result.request_id}" in capsys.readouterr().out


def test_stopping_leaves_no_worker_process(tmp_path: Path) -> None:
    template = write_template(tmp_path, RESOURCES)

    with LocalCloud(template, stack_name="runtime-stop") as short_lived:
        pid = short_lived.invoke("Echo", {}).payload["pid"]

    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
