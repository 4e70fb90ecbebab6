"""Event sources and deliveries: SQS event-source mappings, EventBridge rules, async invocations.

* `QueuePoller` is Lambda's SQS poller for one event-source mapping: batches, the exact SQS event,
  partial batch responses, redelivery through the queue's own visibility and redrive policy.
* `EventTap` reads the queue that receives a copy of every event put on a bus (see deploy.py),
  matches the template's rules and delivers to their targets, with Input, InputPath or
  InputTransformer applied.
* `AsyncInvoker` is Lambda's asynchronous invocation (what EventBridge and Scheduler use):
  retries, then the function's dead-letter queue or on-failure destination.
* `TargetDispatcher` delivers to a rule's or schedule's target (function, queue, topic, bus) and
  sends what it cannot deliver to the target's own dead-letter queue.
"""

from __future__ import annotations

import base64
import contextlib
import heapq
import itertools
import json
import logging
import math
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from infra.localcloud.event_patterns import InvalidEventPattern, matches, validate_pattern
from infra.localcloud.lambdas import RuntimeStoppedError
from infra.localcloud.model import (
    AsyncInvokeConfig,
    CloudModel,
    EventRuleSpec,
    InvocationResult,
    QueueMappingSpec,
    RuleTarget,
)

if TYPE_CHECKING:
    from mypy_boto3_sqs.type_defs import MessageAttributeValueOutputTypeDef, MessageTypeDef

    from infra.localcloud.deploy import AwsClients
    from infra.localcloud.faults import FaultInjector

LOG = logging.getLogger("infra.localcloud")

Invoke = Callable[[str, Any], InvocationResult]
_LONG_POLL_S = 1
_ERROR_BACKOFF_S = 1.0
_JSON_PATH_STEP = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]|\['([^']*)'\]")
_PLACEHOLDER = re.compile(r"<([A-Za-z0-9_.\-]+)>")


# ---------------------------------------------------------------------------------- start-up checks


def wiring_problems(model: CloudModel) -> list[str]:
    """Invalid event patterns, filter criteria and input paths, and input paths beyond local support."""
    problems: list[str] = []
    for rule in model.rules:
        if rule.event_pattern is not None:
            try:
                validate_pattern(rule.event_pattern)
            except InvalidEventPattern as error:
                problems.append(f"{rule.logical_id}: invalid EventPattern: {error}")
        for target in rule.targets:
            where = f"{rule.logical_id} target {target.target_id}"
            paths = [target.input_path] if target.input_path is not None else []
            paths += list(((target.input_transformer or {}).get("InputPathsMap") or {}).values())
            for path in paths:
                try:
                    json_path_steps(str(path))
                except ValueError as error:
                    problems.append(f"{where}: {error}")
            if target.input_transformer is not None and "InputTemplate" not in target.input_transformer:
                problems.append(f"{where}: InputTransformer without an InputTemplate")
    for mapping in model.queue_mappings:
        for pattern in mapping.filter_patterns:
            try:
                validate_pattern(pattern)
            except InvalidEventPattern as error:
                problems.append(f"{mapping.logical_id}: invalid FilterCriteria pattern: {error}")
    return problems


# ---------------------------------------------------------------------------------- target input


def json_path_steps(path: str) -> list[str | int]:
    """The steps of an EventBridge input path ("$.detail.items[0]"), or ValueError."""
    if not path.startswith("$"):
        raise ValueError(f"input path {path!r} must start with $")
    steps: list[str | int] = []
    position = 1
    while position < len(path):
        match = _JSON_PATH_STEP.match(path, position)
        if match is None:
            raise ValueError(f"input path {path!r}: only $.name, ['name'] and [index] steps are emulated locally")
        name, index, quoted = match.groups()
        steps.append(int(index) if index is not None else (name if name is not None else quoted))
        position = match.end()
    return steps


def select(document: Any, path: str) -> tuple[bool, Any]:
    """(found, value) of `path` in `document`."""
    value = document
    for step in json_path_steps(path):
        in_list = isinstance(step, int) and isinstance(value, list) and step < len(value)
        in_object = isinstance(step, str) and isinstance(value, dict) and step in value
        if not (in_list or in_object):
            return False, None
        value = value[step]
    return True, value


def target_input(target: RuleTarget, event: Mapping[str, Any], rule: EventRuleSpec) -> str:
    """The text EventBridge sends to a target: Input, InputPath, InputTransformer or the event."""
    if target.input is not None:
        return target.input
    if target.input_path is not None:
        return json.dumps(select(event, target.input_path)[1])
    if target.input_transformer is not None:
        return transform_input(target.input_transformer, event, rule)
    return json.dumps(event)


def transform_input(transformer: Mapping[str, Any], event: Mapping[str, Any], rule: EventRuleSpec) -> str:
    """Fill an InputTemplate's <placeholders>, quoting values the way EventBridge does.

    Inside a JSON string a placeholder becomes the value's text; elsewhere in a JSON template it
    becomes the value as JSON (strings get their quotes). A template that is not JSON (plain text)
    receives values as text.
    """
    values: dict[str, Any] = {}
    for name, path in (transformer.get("InputPathsMap") or {}).items():
        found, value = select(event, str(path))
        values[name] = value if found else None
    values.update(
        {
            "aws.events.rule-arn": rule.arn,
            "aws.events.rule-name": rule.name,
            "aws.events.event": dict(event),
            "aws.events.event.json": dict(event),
        }
    )
    template = str(transformer["InputTemplate"])
    is_json = template.lstrip()[:1] in ("{", "[", '"')
    output: list[str] = []
    in_string = escaped = False
    position = 0
    while position < len(template):
        character = template[position]
        match = _PLACEHOLDER.match(template, position) if character == "<" else None
        if match is not None and match.group(1) in values:
            output.append(_placeholder_text(values[match.group(1)], is_json=is_json, in_string=in_string))
            position = match.end()
            continue
        if is_json and not escaped and character == '"':
            in_string = not in_string
        escaped = character == "\\" and not escaped
        output.append(character)
        position += 1
    return "".join(output)


def _placeholder_text(value: Any, *, is_json: bool, in_string: bool) -> str:
    if is_json and not in_string:
        return json.dumps(value)
    text = value if isinstance(value, str) else ("" if value is None else json.dumps(value))
    return json.dumps(text)[1:-1] if is_json else text


# ---------------------------------------------------------------------------------- SQS mappings


class QueuePoller:
    """Lambda's poller for one SQS event-source mapping."""

    def __init__(
        self,
        mapping: QueueMappingSpec,
        *,
        queue_url: str,
        invoke: Invoke,
        clients: AwsClients,
        region: str,
        retry_delay_s: float,
        threads: int,
        sqs: Any = None,
        faults: FaultInjector | None = None,
    ) -> None:
        """`sqs`: what reads the queue, boto3's SQS client by default (the local cloud passes
        `DirectSqs`, which answers in-process). `faults`: hands some handled messages over again."""
        self.mapping = mapping
        self._faults = faults if faults is not None and faults.enabled else None
        self.queue_url = queue_url
        self._invoke = invoke
        self._sqs = sqs or clients.sqs()
        self._region = region
        # SQS visibility timeouts are whole seconds.
        self._retry_visibility_s = math.ceil(retry_delay_s)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._processing = 0
        self._threads = [
            threading.Thread(target=self._poll, name=f"sqs-poller:{mapping.logical_id}:{n}", daemon=True)
            for n in range(threads)
        ]

    @property
    def processing(self) -> int:
        """Batches being invoked and settled (deleted or made visible again)."""
        with self._lock:
            return self._processing

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                batch = self._receive_batch()
                if batch:
                    self._handle(batch)
            except RuntimeStoppedError:
                return
            except (BotoCoreError, ClientError) as error:
                if self._stop.is_set():
                    return
                LOG.warning("%s: polling %s failed: %s", self.mapping.logical_id, self.queue_url, error)
                self._stop.wait(_ERROR_BACKOFF_S)
            except Exception:
                # A poller that dies silently would leave the queue unserved: log loudly, go on.
                LOG.exception("%s: unexpected error while polling %s", self.mapping.logical_id, self.queue_url)
                self._stop.wait(_ERROR_BACKOFF_S)

    def _receive_batch(self) -> list[MessageTypeDef]:
        """Up to BatchSize messages, waiting at most MaximumBatchingWindowInSeconds for more."""
        batch: list[MessageTypeDef] = []
        window_end = 0.0
        while not self._stop.is_set() and len(batch) < self.mapping.batch_size:
            if batch:
                remaining = window_end - time.monotonic()
                if remaining <= 0:
                    break
                wait_s = _LONG_POLL_S if remaining >= _LONG_POLL_S else 0
            else:
                wait_s = _LONG_POLL_S
            received = self._sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(10, self.mapping.batch_size - len(batch)),
                WaitTimeSeconds=wait_s,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if received and not batch:
                window_end = time.monotonic() + self.mapping.batching_window_s
            batch.extend(received)
            if batch and self.mapping.batching_window_s <= 0:
                break
            if batch and not received and wait_s == 0:
                self._stop.wait(min(0.05, max(0.0, window_end - time.monotonic())))
        return batch

    def _handle(self, batch: list[MessageTypeDef]) -> None:
        with self._lock:
            self._processing += 1
        try:
            self._settle(batch)
        finally:
            with self._lock:
                self._processing -= 1

    def _settle(self, batch: list[MessageTypeDef]) -> None:
        records = [sqs_record(message, self.mapping.queue_arn, self._region) for message in batch]
        if self.mapping.filter_patterns:
            kept = [record for record in records if self._passes_filters(record)]
            # Lambda deletes the messages its filters drop.
            self._delete([record for record in records if record not in kept])
            records = kept
            if not records:
                return
        result = self._invoke(self.mapping.function_id, {"Records": records})
        failed = self._failed_ids(result, records)
        if self._faults is not None:
            failed |= self._duplicated(records, failed)
        self._delete([record for record in records if record["messageId"] not in failed])
        self._retry_later([record for record in records if record["messageId"] in failed])

    def _duplicated(self, records: list[dict[str, Any]], failed: set[str]) -> set[str]:
        """Handled messages whose delete the injector loses: they come back after the retry delay
        with the same message id, as a standard queue's duplicate does."""
        assert self._faults is not None
        return {
            record["messageId"]
            for record in records
            if record["messageId"] not in failed
            and self._faults.duplicate(
                self.mapping.function_id,
                record["messageId"],
                str(record["attributes"].get("ApproximateReceiveCount", "")),
            )
        }

    def _passes_filters(self, record: dict[str, Any]) -> bool:
        candidate = dict(record)
        with contextlib.suppress(json.JSONDecodeError):  # a plain-text body is matched as a string
            candidate["body"] = json.loads(record["body"])
        return any(matches(pattern, candidate) for pattern in self.mapping.filter_patterns)

    def _failed_ids(self, result: InvocationResult, records: list[dict[str, Any]]) -> set[str]:
        everything = {record["messageId"] for record in records}
        if not result.ok:
            LOG.info(
                "%s: %s failed (%s), %d message(s) will be retried",
                self.mapping.logical_id,
                self.mapping.function_id,
                (result.error or {}).get("errorType"),
                len(records),
            )
            return everything
        if not self.mapping.report_batch_item_failures:
            return set()
        failed, problem = partial_batch_failures(result.payload, everything)
        if problem:
            LOG.warning("%s: %s; the whole batch will be retried", self.mapping.logical_id, problem)
        return failed

    def _delete(self, records: list[dict[str, Any]]) -> None:
        for chunk in _chunks(records, 10):
            self._sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(n), "ReceiptHandle": r["receiptHandle"]} for n, r in enumerate(chunk)],
            )

    def _retry_later(self, records: list[dict[str, Any]]) -> None:
        # AWS leaves a failed message invisible until its visibility timeout expires; locally it is
        # offered again after the retry delay so that feedback stays quick.
        for chunk in _chunks(records, 10):
            self._sqs.change_message_visibility_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(n), "ReceiptHandle": r["receiptHandle"], "VisibilityTimeout": self._retry_visibility_s}
                    for n, r in enumerate(chunk)
                ],
            )


def partial_batch_failures(payload: Any, message_ids: set[str]) -> tuple[set[str], str | None]:
    """The ids a ReportBatchItemFailures response marks as failed, and why all failed if so.

    As AWS documents it: a null or empty response, or a null or empty batchItemFailures list, is a
    complete success; a malformed response or an itemIdentifier that is null, empty or not in the
    batch fails the whole batch.
    """
    if payload is None:
        return set(), None
    if not isinstance(payload, dict):
        return set(message_ids), "the function's response is not a JSON object"
    failures = payload.get("batchItemFailures")
    if not failures:
        return set(), None
    if not isinstance(failures, list):
        return set(message_ids), "batchItemFailures is not a list"
    failed: set[str] = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not isinstance(identifier, str) or identifier not in message_ids:
            return set(message_ids), f"batchItemFailures names an unknown itemIdentifier {identifier!r}"
        failed.add(identifier)
    return failed, None


def sqs_record(message: MessageTypeDef, queue_arn: str, region: str) -> dict[str, Any]:
    """One record of the event Lambda builds from an SQS message."""
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {
            name: _lambda_message_attribute(attribute)
            for name, attribute in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def _lambda_message_attribute(attribute: MessageAttributeValueOutputTypeDef) -> dict[str, Any]:
    """SQS's message attribute in the camelCase shape of Lambda's event (binary as base64)."""
    shaped: dict[str, Any] = {}
    if "StringValue" in attribute:
        shaped["stringValue"] = attribute["StringValue"]
    if "BinaryValue" in attribute:
        shaped["binaryValue"] = base64.b64encode(attribute["BinaryValue"]).decode()
    shaped["stringListValues"] = list(attribute.get("StringListValues", []))
    shaped["binaryListValues"] = [base64.b64encode(value).decode() for value in attribute.get("BinaryListValues", [])]
    shaped["dataType"] = attribute["DataType"]
    return shaped


def _chunks(items: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


# ---------------------------------------------------------------------------------- async invocations


@dataclass
class _AsyncEvent:
    """One event accepted for asynchronous invocation, between its attempts."""

    function_id: str
    event: Any
    first_attempt: Future[InvocationResult]
    attempts: int = 0


class _DelayedCalls:
    """Calls made after a delay by one thread, so that a wait holds no worker thread."""

    def __init__(self, name: str) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._condition = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def call_later(self, delay_s: float, call: Callable[[], None]) -> None:
        with self._condition:
            heapq.heappush(self._heap, (time.monotonic() + delay_s, next(self._order), call))
            self._condition.notify()

    def stop(self) -> int:
        """Stop calling; return how many calls were still waiting (they are dropped)."""
        with self._condition:
            self._stopped = True
            dropped = len(self._heap)
            self._heap.clear()
            self._condition.notify()
        self._thread.join(_ERROR_BACKOFF_S)
        return dropped

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    self._condition.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                if self._stopped:
                    return
                _, _, call = heapq.heappop(self._heap)
            try:
                call()
            except Exception:
                LOG.exception("a delayed call failed")


class AsyncInvoker:
    """Lambda's asynchronous invocation: an internal queue, retries, then DLQ or destinations."""

    def __init__(
        self,
        model: CloudModel,
        invoke: Invoke,
        clients: AwsClients,
        retry_delay_s: float,
        *,
        max_threads: int = 16,
    ) -> None:
        self._model = model
        self._invoke = invoke
        self._clients = clients
        self._retry_delay_s = retry_delay_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pending = 0
        self._executor = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="lambda-async")
        self._retries = _DelayedCalls("lambda-async-retries")

    @property
    def pending(self) -> int:
        """Events accepted and not yet finished with (including retries and DLQ hand-off)."""
        with self._lock:
            return self._pending

    def submit(self, function_id: str, event: Any) -> Future[InvocationResult]:
        """Queue an event; the future completes with the first attempt's result."""
        accepted = _AsyncEvent(function_id, event, Future())
        with self._lock:
            self._pending += 1
        try:
            self._executor.submit(self._attempt, accepted)
        except RuntimeError:  # the executor is shut down: the cloud is stopping
            self._finished()
            raise
        return accepted.first_attempt

    def stop(self) -> None:
        """Refuse new events and drop queued ones and waiting retries; `join` waits for those running."""
        self._stop.set()
        dropped = self._retries.stop()
        if dropped:
            LOG.info("%d asynchronous event(s) waiting for a retry dropped: the cloud is stopping", dropped)
            with self._lock:
                self._pending -= dropped
        self._executor.shutdown(wait=False, cancel_futures=True)

    def join(self) -> None:
        self._executor.shutdown(wait=True)

    def _finished(self) -> None:
        with self._lock:
            self._pending -= 1

    def _attempt(self, accepted: _AsyncEvent) -> None:
        retrying = False
        try:
            config = self._model.async_configs.get(accepted.function_id, AsyncInvokeConfig())
            accepted.attempts += 1
            result = self._invoke(accepted.function_id, accepted.event)
            if not accepted.first_attempt.done():
                accepted.first_attempt.set_result(result)
            if result.ok or accepted.attempts > config.max_retry_attempts or self._stop.is_set():
                self._conclude(accepted.function_id, accepted.event, result, accepted.attempts, config)
            else:
                # Lambda waits about a minute, then two; locally the retry delay stands in for both. The
                # wait holds no worker, so a failing function fired often does not hold up the others.
                self._retries.call_later(self._retry_delay_s, lambda: self._retry(accepted))
                retrying = True
        except RuntimeStoppedError as error:
            if not accepted.first_attempt.done():
                accepted.first_attempt.set_exception(error)
        except Exception as error:
            LOG.exception("asynchronous invocation of %s failed", accepted.function_id)
            if not accepted.first_attempt.done():
                accepted.first_attempt.set_exception(error)
        finally:
            if not retrying:
                self._finished()

    def _retry(self, accepted: _AsyncEvent) -> None:
        try:
            self._executor.submit(self._attempt, accepted)
        except RuntimeError:  # shut down since the retry was scheduled
            self._finished()

    def _conclude(
        self, function_id: str, event: Any, result: InvocationResult, attempts: int, config: AsyncInvokeConfig
    ) -> None:
        function = self._model.functions[function_id]
        if result.ok:
            if config.on_success_arn:
                self._send_record(config.on_success_arn, function.arn, event, result, attempts, success=True)
            return
        LOG.info("%s: asynchronous event failed after %d attempt(s)", function_id, attempts)
        if config.dead_letter_arn:
            error = result.error or {}
            attributes = {
                "RequestID": {"DataType": "String", "StringValue": result.request_id},
                "ErrorCode": {"DataType": "Number", "StringValue": "200"},
                "ErrorMessage": {"DataType": "String", "StringValue": str(error.get("errorMessage", ""))[:256]},
            }
            _send(self._clients, self._model, config.dead_letter_arn, json.dumps(event), attributes)
        if config.on_failure_arn:
            self._send_record(config.on_failure_arn, function.arn, event, result, attempts, success=False)

    def _send_record(
        self,
        destination: str,
        function_arn: str,
        event: Any,
        result: InvocationResult,
        attempts: int,
        *,
        success: bool,
    ) -> None:
        """Send Lambda's invocation record to an on-success or on-failure destination."""
        response_context: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
        if not success:
            response_context["functionError"] = "Unhandled"
        record = {
            "version": "1.0",
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "requestContext": {
                "requestId": result.request_id,
                "functionArn": f"{function_arn}:$LATEST",
                "condition": "Success" if success else "RetriesExhausted",
                "approximateInvokeCount": attempts,
            },
            "requestPayload": event,
            "responseContext": response_context,
            "responsePayload": result.payload if success else result.error,
        }
        target = self._model.function_by_arn(destination)
        if target is not None:
            self.submit(target.logical_id, record)
            return
        if ":events:" in destination:
            outcome = "Success" if success else "Failure"
            self._clients.events().put_events(
                Entries=[
                    {
                        "Source": "lambda",
                        "DetailType": f"Lambda Function Invocation Result - {outcome}",
                        "Detail": json.dumps(record),
                        "Resources": [function_arn],
                        "EventBusName": destination,
                    }
                ]
            )
            return
        _send(self._clients, self._model, destination, json.dumps(record), {})


def _send(
    clients: AwsClients,
    model: CloudModel,
    arn: str,
    body: str,
    attributes: dict[str, Any],
    *,
    message_group_id: str | None = None,
    deduplication_id: str | None = None,
) -> None:
    """SendMessage to a template queue or Publish to a template topic, by ARN."""
    queue = next((q for q in model.queues if q.arn == arn), None)
    if queue is not None:
        request: dict[str, Any] = {"QueueUrl": clients.sqs().get_queue_url(QueueName=queue.name)["QueueUrl"]}
        request.update(MessageBody=body, MessageAttributes=attributes)
        if message_group_id is not None:
            request["MessageGroupId"] = message_group_id
            if not _bool(queue.properties.get("ContentBasedDeduplication")):
                request["MessageDeduplicationId"] = deduplication_id or str(uuid.uuid4())
        clients.sqs().send_message(**request)
        return
    clients.sns().publish(TopicArn=arn, Message=body, MessageAttributes=attributes)


def _bool(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


# ---------------------------------------------------------------------------------- rule and schedule targets


@dataclass(frozen=True)
class Delivery:
    """One payload for one target of a rule or schedule."""

    origin_arn: str  # the rule's or schedule's ARN
    target_arn: str
    payload: str  # the JSON (or text) the target receives
    max_retry_attempts: int
    dead_letter_arn: str | None
    message_group_id: str | None = None
    deduplication_id: str | None = None
    from_scheduler: bool = False


def rule_delivery(rule: EventRuleSpec, target: RuleTarget, event: Mapping[str, Any]) -> Delivery:
    """What a rule hands one of its targets for one matching (or scheduled) event."""
    return Delivery(
        origin_arn=rule.arn or rule.name,
        target_arn=target.arn,
        payload=target_input(target, event, rule),
        max_retry_attempts=target.max_retry_attempts,
        dead_letter_arn=target.dead_letter_arn,
        message_group_id=target.message_group_id,
        deduplication_id=str(event.get("id")),
    )


class TargetDispatcher:
    """Delivers to targets as EventBridge and Scheduler do.

    A function target is invoked asynchronously, so its own errors follow its AsyncInvokeConfig;
    only a failure to deliver (a queue or topic that cannot be written) is retried by the target's
    RetryPolicy and then sent to the target's DeadLetterConfig, as on AWS.
    """

    def __init__(self, model: CloudModel, async_invoker: AsyncInvoker, clients: AwsClients, retry_delay_s: float):
        self._model = model
        self._async = async_invoker
        self._clients = clients
        self._retry_delay_s = retry_delay_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._retrying = 0
        self._retry_threads: list[threading.Thread] = []

    @property
    def pending(self) -> int:
        with self._lock:
            return self._retrying

    def deliver(self, delivery: Delivery) -> Future[Any]:
        """Deliver now; the future completes when the first attempt (an invocation, a send) is done."""
        function = self._model.function_by_arn(delivery.target_arn)
        if function is not None:
            try:
                event = json.loads(delivery.payload)
            except json.JSONDecodeError as error:
                return self._failed(delivery, "InvalidInput", f"the input for a function is not JSON: {error}")
            return self._async.submit(function.logical_id, event)
        done: Future[Any] = Future()
        try:
            self._send(delivery)
        except (BotoCoreError, ClientError) as error:
            self._retry_in_background(delivery, error)
        done.set_result(None)
        return done

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            threads = list(self._retry_threads)
        for thread in threads:
            thread.join(5.0)

    def _send(self, delivery: Delivery) -> None:
        if ":event-bus/" in delivery.target_arn:
            event = json.loads(delivery.payload)
            self._clients.events().put_events(
                Entries=[
                    {
                        "Source": event["source"],
                        "DetailType": event["detail-type"],
                        "Detail": json.dumps(event.get("detail", {})),
                        "Resources": event.get("resources", []),
                        "EventBusName": delivery.target_arn,
                    }
                ]
            )
            return
        _send(
            self._clients,
            self._model,
            delivery.target_arn,
            delivery.payload,
            {},
            message_group_id=delivery.message_group_id,
            deduplication_id=delivery.deduplication_id,
        )

    def _failed(self, delivery: Delivery, code: str, message: str) -> Future[Any]:
        LOG.warning("delivery to %s failed: %s", delivery.target_arn, message)
        self._dead_letter(delivery, code, message, attempts=1)
        done: Future[Any] = Future()
        done.set_result(None)
        return done

    def _retry_in_background(self, delivery: Delivery, first_error: Exception) -> None:
        with self._lock:
            self._retrying += 1
            thread = threading.Thread(
                target=self._retry, args=(delivery, first_error), name="target-retry", daemon=True
            )
            self._retry_threads = [t for t in self._retry_threads if t.is_alive()] + [thread]
        thread.start()

    def _retry(self, delivery: Delivery, error: Exception) -> None:
        attempts = 1
        try:
            while attempts <= delivery.max_retry_attempts and not self._stop.wait(self._retry_delay_s):
                attempts += 1
                try:
                    self._send(delivery)
                    return
                except (BotoCoreError, ClientError) as next_error:
                    error = next_error
            LOG.warning("delivery to %s failed after %d attempt(s): %s", delivery.target_arn, attempts, error)
            code = error.response["Error"]["Code"] if isinstance(error, ClientError) else type(error).__name__
            self._dead_letter(delivery, code, str(error), attempts)
        finally:
            with self._lock:
                self._retrying -= 1

    def _dead_letter(self, delivery: Delivery, code: str, message: str, attempts: int) -> None:
        if delivery.dead_letter_arn is None:
            return

        def text(value: str) -> dict[str, str]:
            return {"DataType": "String", "StringValue": value}

        if delivery.from_scheduler:
            attributes = {
                "X-Amz-Scheduler-Attempt": {"DataType": "Number", "StringValue": str(attempts)},
                "X-Amz-Scheduler-Schedule-Arn": text(delivery.origin_arn),
                "X-Amz-Scheduler-Target-Arn": text(delivery.target_arn),
                "X-Amz-Scheduler-Error-Code": text(code),
                "X-Amz-Scheduler-Error-Message": text(message[:256]),
            }
        else:
            attributes = {
                "RULE_ARN": text(delivery.origin_arn),
                "TARGET_ARN": text(delivery.target_arn),
                "ERROR_CODE": text(code),
                "ERROR_MESSAGE": text(message[:256]),
            }
        _send(self._clients, self._model, delivery.dead_letter_arn, delivery.payload, attributes)


# ---------------------------------------------------------------------------------- event buses


class EventTap:
    """Reads one bus's tap queue and delivers each event to the targets of the matching rules."""

    def __init__(
        self,
        bus_name: str,
        *,
        tap_url: str,
        rules: list[EventRuleSpec],
        dispatcher: TargetDispatcher,
        clients: AwsClients,
        account_id: str,
        sqs: Any = None,
    ) -> None:
        self.bus_name = bus_name
        self.tap_url = tap_url
        self._rules = [rule for rule in rules if rule.enabled and rule.event_pattern is not None]
        self._dispatcher = dispatcher
        self._sqs = sqs or clients.sqs()
        self._account_id = account_id
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._processing = 0
        self._thread = threading.Thread(target=self._poll, name=f"event-tap:{bus_name}", daemon=True)

    @property
    def processing(self) -> int:
        with self._lock:
            return self._processing

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout_s: float) -> None:
        self._thread.join(timeout_s)

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                messages = self._sqs.receive_message(
                    QueueUrl=self.tap_url, MaxNumberOfMessages=10, WaitTimeSeconds=_LONG_POLL_S
                ).get("Messages", [])
                with self._lock:
                    self._processing += 1
                try:
                    for message in messages:
                        self.route(json.loads(message["Body"]))
                        self._sqs.delete_message(QueueUrl=self.tap_url, ReceiptHandle=message["ReceiptHandle"])
                finally:
                    with self._lock:
                        self._processing -= 1
            except Exception as error:
                if self._stop.is_set():
                    return  # e.g. the async invoker refuses events once the cloud is stopping
                if isinstance(error, BotoCoreError | ClientError):
                    LOG.warning("event tap of bus %s failed: %s", self.bus_name, error)
                else:
                    LOG.exception("event tap of bus %s: unexpected error", self.bus_name)
                self._stop.wait(_ERROR_BACKOFF_S)

    def route(self, event: dict[str, Any]) -> None:
        # moto's copy omits the account; the tap rule matched on it, so it is ours.
        event.setdefault("account", self._account_id)
        event.pop("ingestion-time", None)
        for rule in self._rules:
            if rule.event_pattern is None or not matches(rule.event_pattern, event):
                continue
            for target in rule.targets:
                self._dispatcher.deliver(rule_delivery(rule, target, event))
