"""The local Lambda runtime: every function runs in its own worker processes, like containers.

A worker is started on demand (a cold start), imports the handler once, then serves invocations
one at a time until it is stopped, crashes or runs over its timeout (then it is killed and a new
one starts on the next invocation). Workers are `spawn`ed, so nothing of the parent process leaks
into them but what a Lambda container would have: the function's environment, its code directory
first on sys.path, and the installed packages (our stand-in for the layer).

This module is imported by every worker, so it imports only the standard library at top level.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing import reduction
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from infra.localcloud.model import FunctionSpec, InvocationResult

if TYPE_CHECKING:
    from infra.localcloud.faults import FaultInjector

# midstage.clock.OFFSET_VARIABLE: the functions' clock is the host's moved by this many seconds.
CLOCK_OFFSET_VARIABLE = "MIDSTAGE_CLOCK_OFFSET_SECONDS"

LOG = logging.getLogger("infra.localcloud")
CLOCK_OFFSET_VARIABLE = "MIDSTAGE_CLOCK_OFFSET_SECONDS"  # midstage.clock.OFFSET_VARIABLE

HISTORY_SIZE = 200
# Lambda gives a function's initialisation its own 10 s, apart from the invocation timeout. Here
# a worker imports its handler while the machine may be running a whole test suite beside it
# (seen: 30 s and more at a load average of 20 on 2 cores), and a worker killed for being slow
# to start only makes the next one slower: the limit catches a hung import, not a slow one.
INIT_TIMEOUT_S = 120.0
_STOP_GRACE_S = 2.0


@dataclass(frozen=True)
class InvocationRecord:
    """One past invocation, kept for inspection (tests, the control API)."""

    request_id: str
    started_at: datetime
    event: Any
    payload: Any
    error: dict[str, Any] | None
    duration_ms: float

    def to_json(self) -> dict[str, Any]:
        return {
            "requestId": self.request_id,
            "startedAt": self.started_at.isoformat(),
            "event": self.event,
            "payload": self.payload,
            "error": self.error,
            "durationMs": round(self.duration_ms, 3),
        }


class RuntimeStoppedError(RuntimeError):
    """The runtime was stopped while an invocation waited for a worker."""


@dataclass(frozen=True)
class _WorkerConfig:
    function_name: str
    function_arn: str
    code_dir: str
    handler: str
    memory_mb: int
    log_group: str
    environment: dict[str, str]
    function_id: str = ""
    # faults.py: the worker marks its AWS calls with its function and can be told to die mid-call.
    fault_hooks: bool = False


class LambdaRuntime:
    """Runs the functions of a model; `invoke` is synchronous and thread-safe."""

    def __init__(
        self,
        functions: Mapping[str, FunctionSpec],
        *,
        aws_endpoint_url: str,
        region: str,
        max_workers_per_function: int = 4,
        verbose: bool = False,
        environment_overrides: Mapping[str, str] | None = None,
        log_dir: Path | None = None,
        console: TextIO | None = None,
        clock_offset: Callable[[], float] | None = None,
        faults: FaultInjector | None = None,
    ) -> None:
        """`verbose` sends the functions' output to `console` (stdout by default), else to log files.

        Log files go to `log_dir`, or to a temporary directory that is removed on stop.
        `clock_offset`: seconds between the cloud's clock and the host's, read at each invocation
        and handed to the function as MIDSTAGE_CLOCK_OFFSET_SECONDS (midstage/clock.py), so the
        functions go by the cloud's clock; None leaves them on the host's.
        `faults`: kills some invocations' workers mid-way (faults.py); None or disabled kills none.
        """
        self._owns_log_dir = log_dir is None
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="localcloud-logs-"))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._pools = {
            function_id: _FunctionPool(
                spec,
                environment=_lambda_environment(spec, aws_endpoint_url, region, environment_overrides or {}),
                max_workers=max_workers_per_function,
                log_path=self.log_dir / f"{function_id}.log",
                console=(console or sys.stdout) if verbose else None,
                clock_offset=clock_offset,
                faults=faults if faults is not None and faults.enabled else None,
            )
            for function_id, spec in functions.items()
        }

    def invoke(self, function_id: str, event: Any) -> InvocationResult:
        return self._pool(function_id).invoke(event)

    def invocations(self, function_id: str) -> list[InvocationRecord]:
        return self._pool(function_id).history()

    def log_path(self, function_id: str) -> Path:
        return self._pool(function_id).log_path

    def running(self) -> dict[str, int]:
        """Function id -> invocations in progress, for the functions that have any."""
        return {function_id: pool.running for function_id, pool in self._pools.items() if pool.running}

    def kill_busy(self, function_id: str) -> int:
        """SIGKILL the function's workers that are running an invocation (a crashed sandbox): each
        invocation fails with Runtime.ExitError, as on Lambda. How many were killed."""
        return self._pool(function_id).kill_busy()

    def stop(self) -> None:
        for pool in self._pools.values():
            pool.stop()
        if self._owns_log_dir:
            shutil.rmtree(self.log_dir, ignore_errors=True)

    def _pool(self, function_id: str) -> _FunctionPool:
        if function_id not in self._pools:
            raise KeyError(f"no function {function_id!r}; known: {', '.join(sorted(self._pools))}")
        return self._pools[function_id]


def _lambda_environment(
    spec: FunctionSpec, endpoint_url: str, region: str, overrides: Mapping[str, str]
) -> dict[str, str]:
    # The developer's AWS_* settings (profile, keys, region) must not reach a handler: with them it
    # could talk to a real account instead of moto.
    inherited = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    runtime = {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "AWS_LAMBDA_FUNCTION_NAME": spec.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": _log_group(spec),
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
        "LAMBDA_TASK_ROOT": str(spec.code_dir),
        "_HANDLER": spec.handler,
        "TZ": ":UTC",
        # There is no X-Ray daemon locally; an active tracer would only log connection errors.
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    if spec.log_format == "JSON":
        runtime["AWS_LAMBDA_LOG_FORMAT"] = "JSON"
    # Reserved variables win over the function's own, as on AWS; the caller's overrides win over all.
    return {**inherited, **spec.environment, **runtime, **overrides}


def _log_group(spec: FunctionSpec) -> str:
    return spec.log_group or f"/aws/lambda/{spec.name}"


class _FunctionPool:
    def __init__(
        self,
        spec: FunctionSpec,
        *,
        environment: dict[str, str],
        max_workers: int,
        log_path: Path,
        console: TextIO | None,
        clock_offset: Callable[[], float] | None = None,
        faults: FaultInjector | None = None,
    ) -> None:
        self.spec = spec
        self._faults = faults
        self._clock_offset = clock_offset
        self.log_path = log_path
        self.running = 0
        self._config = _WorkerConfig(
            function_name=spec.name,
            function_arn=spec.arn,
            code_dir=str(spec.code_dir),
            handler=spec.handler,
            memory_mb=spec.memory_mb,
            log_group=_log_group(spec),
            environment=environment,
            function_id=spec.logical_id,
            fault_hooks=faults is not None,
        )
        limits = [max_workers] + ([spec.reserved_concurrency] if spec.reserved_concurrency is not None else [])
        self._capacity = min(limits)
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._workers = 0  # started or starting, busy or idle
        self._stopping = False
        self._condition = threading.Condition()
        self._history: deque[InvocationRecord] = deque(maxlen=HISTORY_SIZE)
        self._output = _OutputSink(spec.name, log_path, console)

    def history(self) -> list[InvocationRecord]:
        with self._condition:
            return list(self._history)

    def invoke(self, event: Any) -> InvocationResult:
        request_id = str(uuid.uuid4())
        event_text = json.dumps(event)  # what the Invoke API would receive: JSON, nothing else
        started_at = datetime.now(UTC)
        started = time.monotonic()
        if self._capacity == 0:
            result = InvocationResult(
                self.spec.logical_id,
                request_id,
                error=_error("TooManyRequestsException", "Rate Exceeded. (ReservedConcurrentExecutions is 0)"),
            )
        else:
            with self._running():
                kill_at = self._faults.kill_point(self.spec.logical_id, event_text) if self._faults else None
                result = self._invoke_on_worker(request_id, event_text, kill_at)
        result.duration_ms = (time.monotonic() - started) * 1000
        with self._condition:
            self._history.append(
                InvocationRecord(request_id, started_at, event, result.payload, result.error, result.duration_ms)
            )
        return result

    @contextlib.contextmanager
    def _running(self) -> Any:
        with self._condition:
            self.running += 1
        try:
            yield
        finally:
            with self._condition:
                self.running -= 1

    def _invoke_on_worker(self, request_id: str, event_text: str, kill_at: int | None) -> InvocationResult:
        function_id = self.spec.logical_id
        worker = self._acquire()
        try:
            init_error = worker.wait_ready()
            if init_error is not None:
                self._output.write(f"INIT_REPORT Error: {init_error['errorType']}: {init_error['errorMessage']}")
                self._discard(worker)
                return InvocationResult(function_id, request_id, error=init_error)
            self._output.write(f"START RequestId: {request_id} Version: $LATEST")
            started = time.monotonic()
            deadline_ms = int(time.time() * 1000) + self.spec.timeout_s * 1000
            offset = self._clock_offset() if self._clock_offset is not None else None
            outcome = worker.call(("invoke", request_id, event_text, deadline_ms, offset, kill_at), self.spec.timeout_s)
            elapsed_ms = (time.monotonic() - started) * 1000
            self._output.write(f"END RequestId: {request_id}")
            self._output.write(
                f"REPORT RequestId: {request_id}\tDuration: {elapsed_ms:.2f} ms\tMemory Size: {self.spec.memory_mb} MB"
            )
        except BaseException:
            self._discard(worker)
            raise
        if outcome is None:
            self._discard(worker)
            message = f"RequestId: {request_id} Error: Task timed out after {self.spec.timeout_s:.2f} seconds"
            self._output.write(message)
            return InvocationResult(function_id, request_id, error=_error("Sandbox.Timedout", message))
        if outcome[0] == "exited":
            self._discard(worker)
            message = f"RequestId: {request_id} Error: Runtime exited with error: {worker.exit_description()}"
            self._output.write(message)
            return InvocationResult(function_id, request_id, error=_error("Runtime.ExitError", message))
        self._release(worker)
        if outcome[0] == "error":
            return InvocationResult(function_id, request_id, error=outcome[1])
        return InvocationResult(function_id, request_id, payload=json.loads(outcome[1]))

    def _acquire(self) -> _Worker:
        with self._condition:
            while True:
                if self._stopping:
                    raise RuntimeStoppedError(f"the local Lambda runtime of {self.spec.logical_id} is stopping")
                if self._idle:
                    worker = self._idle.pop()
                    self._busy.add(worker)
                    return worker
                if self._workers < self._capacity:
                    self._workers += 1
                    break
                # Lambda would throttle past the concurrency limit; locally the call waits its turn.
                self._condition.wait()
        try:
            worker = _Worker.start(self._config, self._output)
        except BaseException:
            with self._condition:
                self._workers -= 1
                self._condition.notify()
            raise
        with self._condition:
            self._busy.add(worker)
            stopping = self._stopping
        if stopping:  # stop() ran while this worker was starting and could not see it
            worker.kill()
        return worker

    def _release(self, worker: _Worker) -> None:
        with self._condition:
            self._busy.discard(worker)
            if self._stopping:
                self._workers -= 1
            else:
                self._idle.append(worker)
            self._condition.notify()
            stopping = self._stopping
        if stopping:
            worker.stop()

    def _discard(self, worker: _Worker) -> None:
        worker.kill()
        with self._condition:
            self._busy.discard(worker)
            self._workers -= 1
            self._condition.notify()

    def kill_busy(self) -> int:
        with self._condition:
            busy = list(self._busy)
        for worker in busy:
            if worker.process.is_alive():
                worker.process.kill()  # the invoking thread sees it exit and discards it
        return len(busy)

    def stop(self) -> None:
        """Stop idle workers, kill busy ones (their invocations fail), release the log pipe."""
        with self._condition:
            self._stopping = True
            idle, self._idle = self._idle, []
            self._workers -= len(idle)
            busy = list(self._busy)
            self._condition.notify_all()
        for worker in idle:
            worker.stop()
        for worker in busy:
            worker.kill()
        self._output.close()


class _Worker:
    """The parent's handle on one worker process."""

    def __init__(self, process: Any, connection: Connection) -> None:
        self.process = process
        self.connection = connection
        self._initialised = False
        self._init_error: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self._killed = False

    @classmethod
    def start(cls, config: _WorkerConfig, output: _OutputSink) -> _Worker:
        context = multiprocessing.get_context("spawn")
        parent_end, child_end = context.Pipe(duplex=True)
        process = context.Process(
            target=_worker_main,
            args=(child_end, config),
            name=f"lambda:{config.function_name}",
            daemon=True,
        )
        process.start()
        child_end.close()
        reduction.send_handle(parent_end, output.writer_fd, process.pid)
        return cls(process, parent_end)

    def wait_ready(self) -> dict[str, Any] | None:
        """Block until the handler is imported; return the init error if the import failed."""
        if not self._initialised:
            outcome = self.receive(INIT_TIMEOUT_S)
            if outcome is None:
                return _error("Runtime.InitTimeout", f"the worker did not initialise within {INIT_TIMEOUT_S:.0f} s")
            if outcome[0] == "exited":
                return _error("Runtime.ExitError", f"Runtime exited during init: {self.exit_description()}")
            self._initialised = True
            self._init_error = outcome[1]
        return self._init_error

    def call(self, message: tuple[Any, ...], timeout_s: float) -> tuple[Any, ...] | None:
        """Send a request and wait for the answer: see `receive`."""
        try:
            self.connection.send(message)
        except OSError:  # the worker died since its last answer
            self.process.join(_STOP_GRACE_S)
            return ("exited",)
        return self.receive(timeout_s)

    def receive(self, timeout_s: float) -> tuple[Any, ...] | None:
        """The worker's next message, ("exited",) if it died, None on timeout."""
        try:
            if not self.connection.poll(timeout_s):
                return None
            message: tuple[Any, ...] = self.connection.recv()
        except (EOFError, OSError):
            self.process.join(_STOP_GRACE_S)
            return ("exited",)
        return message

    def exit_description(self) -> str:
        code = self.process.exitcode
        if code is None:
            return "the connection to the worker was lost"
        return f"signal: {-code}" if code < 0 else f"exit status {code}"

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.connection.send(("stop",))
        self.process.join(_STOP_GRACE_S)
        self.kill()

    def kill(self) -> None:
        # Called by the invoking thread and by stop(), possibly both: only the first one acts.
        with self._lock:
            if self._killed:
                return
            self._killed = True
        if self.process.is_alive():
            self.process.kill()
        self.process.join(_STOP_GRACE_S)
        self.connection.close()


class _OutputSink:
    """Collects a function's stdout/stderr: every worker writes to one pipe read by one thread.

    Lines go to the function's log file, or to `console` prefixed with the function's name.
    """

    def __init__(self, function_name: str, log_path: Path, console: TextIO | None) -> None:
        self._prefix = f"[{function_name}] "
        self._console = console
        self._file = log_path.open("a", encoding="utf-8", buffering=1)
        self._lock = threading.Lock()
        read_fd, self.writer_fd = os.pipe()
        self._reader = threading.Thread(target=self._pump, args=(read_fd,), name=f"logs:{function_name}", daemon=True)
        self._reader.start()

    def write(self, line: str) -> None:
        with self._lock:
            if self._console is not None:
                self._console.write(self._prefix + line + "\n")
                self._console.flush()
            else:
                self._file.write(line + "\n")

    def _pump(self, read_fd: int) -> None:
        with os.fdopen(read_fd, "r", encoding="utf-8", errors="replace") as lines:
            for line in lines:
                self.write(line.rstrip("\n"))

    def close(self) -> None:
        # The reader sees end-of-file once the last worker holding the pipe is gone as well.
        with contextlib.suppress(OSError):
            os.close(self.writer_fd)
        self._reader.join(_STOP_GRACE_S)
        with self._lock:
            self._file.close()


def _error(error_type: str, message: str, stack: list[str] | None = None) -> dict[str, Any]:
    return {"errorType": error_type, "errorMessage": message, "stackTrace": stack or []}


# ---------------------------------------------------------------------------------- in the worker


class LambdaContext:
    """The context object handlers receive, with the attributes of the Python runtime's."""

    def __init__(self, config: _WorkerConfig, request_id: str, deadline_ms: int, log_stream: str) -> None:
        self.function_name = config.function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = config.function_arn
        # The Python runtime reads this from AWS_LAMBDA_FUNCTION_MEMORY_SIZE, so it is a string there too.
        self.memory_limit_in_mb = str(config.memory_mb)
        self.aws_request_id = request_id
        self.log_group_name = config.log_group
        self.log_stream_name = log_stream
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _worker_main(connection: Connection, config: _WorkerConfig) -> None:
    output_fd = reduction.recv_handle(connection)
    os.dup2(output_fd, 1)
    os.dup2(output_fd, 2)
    os.close(output_fd)
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    os.environ.clear()
    os.environ.update(config.environment)
    time.tzset()
    log_stream = f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
    os.environ["AWS_LAMBDA_LOG_STREAM_NAME"] = log_stream
    # Like LAMBDA_TASK_ROOT on Lambda: the code directory is the working directory and comes first
    # on sys.path; entries the parent added (its working directory, test roots) are dropped.
    installation = (sys.prefix, sys.base_prefix, sys.exec_prefix)
    sys.path[:] = [config.code_dir] + [entry for entry in sys.path if entry.startswith(installation)]
    with contextlib.suppress(OSError):
        os.chdir(config.code_dir)
    if config.fault_hooks:
        _install_fault_hooks(config.function_id)
    handler, init_error = _load_handler(config.handler)
    connection.send(("ready", init_error))
    if handler is None:
        return
    while True:
        try:
            message = connection.recv()
        except EOFError:
            return
        if message[0] == "stop":
            return
        _, request_id, event_text, deadline_ms, offset, kill_at = message
        if config.fault_hooks:
            _fault_plan.update(calls=0, kill_at=kill_at or 0)
        os.environ["_X_AMZN_REQUEST_ID"] = request_id
        if offset is not None:
            os.environ[CLOCK_OFFSET_VARIABLE] = f"{offset:.3f}"
        context = LambdaContext(config, request_id, deadline_ms, log_stream)
        outcome = _run_handler(handler, json.loads(event_text), context)
        if kill_at:  # it made fewer calls than the kill point: it dies before its answer instead
            _die()
        connection.send(outcome)


# What the fault hooks do in this worker's current invocation: AWS calls made, and the call
# before which the worker dies (0: it lives).
_fault_plan = {"calls": 0, "kill_at": 0}


def _install_fault_hooks(function_id: str) -> None:
    """Every HTTP request botocore sends goes through URLLib3Session.send, whichever session or
    client the function built: there the worker names its function to the moto front and, when
    the invocation is marked, dies just before the chosen call."""
    from botocore.httpsession import URLLib3Session

    from infra.localcloud.faults import FUNCTION_HEADER

    send = URLLib3Session.send

    def send_with_faults(self: URLLib3Session, request: Any) -> Any:
        _fault_plan["calls"] += 1
        if _fault_plan["kill_at"] and _fault_plan["calls"] >= _fault_plan["kill_at"]:
            _die()
        if FUNCTION_HEADER not in request.headers:  # a retry resends the same request
            request.headers[FUNCTION_HEADER] = function_id
        return send(self, request)

    URLLib3Session.send = send_with_faults  # type: ignore[method-assign]


def _die() -> None:
    """As a Lambda container dies: at once, nothing flushed, nothing answered."""
    os.kill(os.getpid(), signal.SIGKILL)


def _load_handler(handler: str) -> tuple[Any, dict[str, Any] | None]:
    module_name, _, function_name = handler.rpartition(".")
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except ImportError as error:
        return None, _error("Runtime.ImportModuleError", f"Unable to import module '{module_name}': {error}")
    except SyntaxError as error:
        return None, _error("Runtime.UserCodeSyntaxError", f"Syntax error in module '{module_name}': {error}")
    except Exception as error:
        return None, _error(type(error).__name__, str(error), traceback.format_tb(error.__traceback__))
    function = getattr(module, function_name, None)
    if not callable(function):
        return None, _error("Runtime.HandlerNotFound", f"Handler '{function_name}' missing on module '{module_name}'")
    return function, None


def _run_handler(handler: Any, event: Any, context: LambdaContext) -> tuple[str, Any]:
    try:
        payload = handler(event, context)
    except Exception as error:
        print(f"[ERROR] {type(error).__name__}: {error}", file=sys.stderr)
        traceback.print_exc()
        # Lambda's stack trace starts in the handler, not in the runtime that called it.
        frames = error.__traceback__.tb_next if error.__traceback__ else None
        return "error", _error(type(error).__name__, str(error), traceback.format_tb(frames))
    try:
        return "ok", json.dumps(payload)
    except (TypeError, ValueError) as error:
        return "error", _error("Runtime.MarshalError", f"Unable to marshal response: {error}")
