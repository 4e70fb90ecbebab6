"""LocalCloud: moto's server plus the template's wiring, in one process.

    with LocalCloud(manual_clock=True) as cloud:
        requests.post(cloud.api_url + "/v1/track", ...)
        cloud.wait_idle()
        cloud.clock.advance(3600)

moto keeps its state in module globals: clouds running in one process share it. They can run side
by side when their stack names differ and they name no resource alike (names default to
"<stack>-<LogicalId>"); moto's state is reset when the first one starts and the last one stops.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

from infra.localcloud import dynamodb_engine, sqs_engine

# Imported under another name: LocalCloud has a method called outbox.
from infra.localcloud import outbox as sending
from infra.localcloud.clock import (
    DEFAULT_MAX_FIRINGS,
    Clock,
    clock_state,
    install_schedules,
    schedule_problems,
)
from infra.localcloud.deploy import AwsClients, Deployment, deploy
from infra.localcloud.direct_sqs import DirectSqs
from infra.localcloud.faults import FaultInjector, Faults
from infra.localcloud.fidelity import (
    make_dispatch_cheaper,
    make_dynamodb_atomic,
    make_ses_strict,
    make_sqs_scalable,
)
from infra.localcloud.firehose import TARGET_PREFIX as FIREHOSE_TARGET
from infra.localcloud.firehose import Firehose
from infra.localcloud.gateway import HttpGateway, control_path_collisions
from infra.localcloud.lambdas import InvocationRecord, LambdaRuntime
from infra.localcloud.model import (
    BucketSpec,
    BusSpec,
    CloudModel,
    DeliveryStreamSpec,
    EventRuleSpec,
    FunctionSpec,
    HttpApiSpec,
    InvocationResult,
    QueueSpec,
    ScheduleSpec,
    SesConfigurationSetSpec,
    TableSpec,
    TopicSpec,
)
from infra.localcloud.moto_front import MotoFront
from infra.localcloud.outbox import SentEmail, SentPush, SentSms
from infra.localcloud.persistence import Gate, StateStore
from infra.localcloud.pollers import AsyncInvoker, EventTap, QueuePoller, TargetDispatcher, wiring_problems
from infra.localcloud.runtime_schedules import install_runtime_schedules
from infra.localcloud.template import TemplateError, load_model

LOG = logging.getLogger("infra.localcloud")
# Resources physical_name() knows by logical id.
_Named = (
    QueueSpec
    | TopicSpec
    | BucketSpec
    | TableSpec
    | BusSpec
    | EventRuleSpec
    | ScheduleSpec
    | SesConfigurationSetSpec
    | DeliveryStreamSpec
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TEMPLATE = REPO_ROOT / "template.yaml"
_IDLE_STABLE_S = 0.3
_IDLE_POLL_S = 0.05
_JOIN_TIMEOUT_S = 5.0
_stacks_lock = threading.Lock()
_running_stacks: set[str] = set()  # stacks of the clouds running in this process, sharing moto's state


class LocalCloudError(RuntimeError):
    """The local cloud cannot start or cannot do what was asked."""


def _claim_stack(stack_name: str) -> bool:
    """Register a running stack; True if it is the only one (moto's state may then be reset)."""
    with _stacks_lock:
        if stack_name in _running_stacks:
            raise LocalCloudError(f"a local cloud with stack name {stack_name!r} is already running in this process")
        _running_stacks.add(stack_name)
        return len(_running_stacks) == 1


def _release_stack(stack_name: str) -> bool:
    """Unregister a stack; True if no other one is running any more."""
    with _stacks_lock:
        _running_stacks.discard(stack_name)
        return not _running_stacks


class MotoServer:
    """moto on a free port, behind the local cloud's own front server (moto_front.py)."""

    def __init__(self, host: str, gate: Gate | None = None) -> None:
        self.gate = gate or Gate()
        self._front = MotoFront(host, DomainDispatcherApplication(create_backend_app), self.gate)
        self.url = ""

    def intercept(self, target_prefix: str, handler: Any) -> None:
        self._front.intercept(target_prefix, handler)

    def inject(self, faults: FaultInjector) -> None:
        self._front.inject(faults)

    def start(self) -> str:
        make_dynamodb_atomic()
        make_sqs_scalable()
        make_dispatch_cheaper()
        make_ses_strict()
        sending.record_what_moto_drops()
        self._front.start()
        host, port = self._front.get_host_and_port()
        self.url = f"http://{host}:{port}"
        return self.url

    def reset(self) -> None:
        # An http:// URL of the server started above, never user input.
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")  # noqa: S310
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            response.read()
        sending.forget_recorded()

    def stop(self) -> None:
        if not self.url:
            return
        self._front.stop()
        self.url = ""


class LocalCloud:
    def __init__(
        self,
        template: Path = DEFAULT_TEMPLATE,
        *,
        parameters: Mapping[str, str] | None = None,
        stack_name: str = "midstage-local",
        host: str = "127.0.0.1",
        port: int = 0,
        manual_clock: bool = False,
        start_time: datetime | None = None,
        region: str = "us-east-1",
        max_workers_per_function: int = 4,
        retry_delay_s: float = 1.0,
        verbose: bool = False,
        function_env: Mapping[str, str] | None = None,
        log_dir: Path | None = None,
        ses_identities: Sequence[str] = (),
        state_dir: Path | None = None,
        fresh: bool = False,
        state_interval_s: float = 2.0,
        archive_flush_s: float = 1.0,
        functions_follow_clock: bool = False,
        faults: Faults | None = None,
    ) -> None:
        """`ses_identities`: addresses or domains to verify in SES besides the template's
        AWS::SES::EmailIdentity resources (a sender verified outside the stack on AWS).

        `state_dir`: keep the state there across restarts (see persistence.py): restored at
        start, saved every `state_interval_s` and at stop; `fresh` discards what it held.

        `faults`: rates of injected failures (faults.py): killed workers, failed and throttled AWS
        calls, duplicated queue deliveries, schedules fired twice. None injects nothing."""
        if start_time is not None and not manual_clock:
            raise ValueError("start_time needs manual_clock=True: the real clock follows wall time")
        self.template = Path(template).resolve()
        self.parameters = dict(parameters or {})
        self.stack_name = stack_name
        self.host = host
        self.port = port
        self.manual_clock = manual_clock
        self.start_time = start_time
        self.region = region
        self.max_workers_per_function = max_workers_per_function
        self.retry_delay_s = retry_delay_s
        self.verbose = verbose
        self.function_env = dict(function_env or {})
        self.log_dir = log_dir
        self.ses_identities = tuple(ses_identities)
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.fresh = fresh
        self.state_interval_s = state_interval_s
        # How often the local Firehose writes what it buffers (AWS: the stream's IntervalInSeconds).
        self.archive_flush_s = archive_flush_s
        # The functions go by the manual clock too (a scripted month), not only the schedules.
        self.functions_follow_clock = functions_follow_clock
        self.faults = FaultInjector(faults)
        self.restored: dict[str, int] | None = None
        self._state: StateStore | None = None
        self._expiry: _Expiry | None = None
        self._firehose: Firehose | None = None
        self._model: CloudModel | None = None
        self._moto: MotoServer | None = None
        self._clients: AwsClients | None = None
        self._deployment: Deployment | None = None
        self._runtime: LambdaRuntime | None = None
        self._async: AsyncInvoker | None = None
        self._dispatcher: TargetDispatcher | None = None
        self._pollers: list[QueuePoller] = []
        self._taps: list[EventTap] = []
        self._clock: Clock | None = None
        self._gateways: list[HttpGateway] = []
        self._claimed_stack = False

    # ------------------------------------------------------------------ life cycle

    def start(self) -> LocalCloud:
        if self._claimed_stack:
            raise LocalCloudError("this local cloud is already running")
        model = load_model(self.template, stack_name=self.stack_name, region=self.region, parameters=self.parameters)
        problems = wiring_problems(model) + schedule_problems(model)
        problems += [collision for api in model.http_apis for collision in control_path_collisions(api)]
        if problems:
            listed = "\n".join(f"  - {problem}" for problem in problems)
            raise TemplateError(f"{self.template} has wiring the local cloud cannot run:\n{listed}")
        alone = _claim_stack(self.stack_name)
        self._claimed_stack = True
        self._model = model
        try:
            self._start_services(model, reset=alone)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_services(self, model: CloudModel, *, reset: bool) -> None:
        self._moto = MotoServer(self.host)
        endpoint = self._moto.start()
        if reset:
            self._moto.reset()
        if self.faults.enabled:
            LOG.info("injecting faults: %s", self.faults.settings.describe())
            self._moto.inject(self.faults)
        self._clients = AwsClients(endpoint, self.region)
        self._deployment = deploy(model, self._clients, ses_identities=self.ses_identities)
        restored_clock = self._restore_state(model)
        apis = model.http_apis or [
            # Without an HTTP API in the template the gateway still serves the control endpoints.
            HttpApiSpec("LocalCloudControl", "localcloud", "$default", (), None, None, None)
        ]
        for index, api in enumerate(apis):
            gateway = HttpGateway(
                api,
                self._invoke_later,
                host=self.host,
                port=self.port if index == 0 else 0,
                region=self.region,
                account_id=model.account_id,
                control=self._control,
            )
            gateway.start()
            self._gateways.append(gateway)
        # Functions see the local gateway wherever the template gives them an execute-api URL
        # (links in messages, callbacks), as outputs do.
        api_urls = {
            f"https://{gateway.api.api_id}.execute-api.{self.region}.amazonaws.com": gateway.url
            for gateway in self._gateways
        }
        for function in model.functions.values():
            for name, value in function.environment.items():
                for api_url, local in api_urls.items():
                    value = value.replace(api_url, local)
                function.environment[name] = value
            function.environment.update(local_engines(function.environment))
            function.environment.update(local_assets(function.environment, endpoint))
        for bucket in sorted({f.environment.get("ASSETS_BUCKET", "") for f in model.functions.values()} - {""}):
            serve_published_assets(self._clients, bucket)
        self._runtime = LambdaRuntime(
            model.functions,
            aws_endpoint_url=endpoint,
            region=self.region,
            max_workers_per_function=self.max_workers_per_function,
            verbose=self.verbose,
            environment_overrides=self.function_env,
            log_dir=self.log_dir,
            clock_offset=self._functions_clock_offset if self.functions_follow_clock else None,
            faults=self.faults,
        )
        self._async = AsyncInvoker(model, self._runtime.invoke, self._clients, self.retry_delay_s)
        self._dispatcher = TargetDispatcher(model, self._async, self._clients, self.retry_delay_s)
        direct_sqs = DirectSqs(model.account_id, self.region)
        for mapping in model.queue_mappings:
            if not mapping.enabled:
                continue
            function = model.functions[mapping.function_id]
            limits = [mapping.maximum_concurrency or self.max_workers_per_function, self.max_workers_per_function]
            if function.reserved_concurrency is not None:
                limits.append(function.reserved_concurrency)
            poller = QueuePoller(
                mapping,
                queue_url=self._deployment.queue_urls[mapping.queue_arn],
                invoke=self._runtime.invoke,
                clients=self._clients,
                region=self.region,
                retry_delay_s=self.retry_delay_s,
                threads=max(1, min(limits)),
                sqs=direct_sqs,
                faults=self.faults,
            )
            self._pollers.append(poller)
            poller.start()
        for bus_name, tap_url in self._deployment.tap_urls.items():
            tap = EventTap(
                bus_name,
                tap_url=tap_url,
                rules=[rule for rule in model.rules if rule.bus_name == bus_name],
                dispatcher=self._dispatcher,
                clients=self._clients,
                account_id=model.account_id,
                sqs=direct_sqs,
            )
            self._taps.append(tap)
            tap.start()
        self._expiry = _Expiry(model.account_id, self.region)
        self._expiry.start()
        if model.delivery_streams:
            self._firehose = Firehose(
                model.delivery_streams,
                _s3_writer(model.account_id),
                flush_s=self.archive_flush_s,
                region=self.region,
                account_id=model.account_id,
                guard=self._moto.gate.request,
            )
            self._moto.intercept(FIREHOSE_TARGET, self._firehose.handle)
            self._firehose.start()
        start = self.start_time or (restored_clock if self.manual_clock else None)
        self._clock = Clock(manual=self.manual_clock, start=start, faults=self.faults)
        install_schedules(self._clock, model, self._dispatcher)
        install_runtime_schedules(self._clock, model, self._dispatcher, self._clients)
        self._clock.start()
        if self._state is not None:
            self._state.start()

    def _restore_state(self, model: CloudModel) -> datetime | None:
        """Load the state directory into moto (after the template's resources exist); the manual
        clock's saved time, if any."""
        if self.state_dir is None:
            return None
        if self.fresh:
            shutil.rmtree(self.state_dir, ignore_errors=True)
        moto = self._started(self._moto)
        self._state = StateStore(
            self.state_dir,
            account_id=model.account_id,
            region=self.region,
            gate=moto.gate,
            interval_s=self.state_interval_s,
            clock_now=lambda: self.clock.now(),
        )
        small = self._state.restore()
        if small is None:
            return None
        self.restored = dict(self._state.restored)
        saved = small.get("clock")
        return datetime.fromisoformat(saved) if saved else None

    def _functions_clock_offset(self) -> float:
        """Seconds from the host's time to the cloud's clock (0 until the clock exists)."""
        if self._clock is None:
            return 0.0
        return (self._clock.now() - datetime.now(UTC)).total_seconds()

    def _invoke_later(self, function_id: str, event: Any) -> Any:
        """The gateway starts before the functions (they need its URL); it calls them through here."""
        return self._started(self._runtime).invoke(function_id, event)

    def stop(self) -> None:
        """Stop everything this cloud started; safe to call more than once, or after a failed start."""
        if self._expiry is not None:
            self._expiry.stop()
            self._expiry = None
        if self._clock is not None:
            self._clock.stop()
        for gateway in self._gateways:
            gateway.stop()
        sources: list[QueuePoller | EventTap] = [*self._pollers, *self._taps]
        for source in sources:
            source.stop()
        if self._async is not None:
            self._async.stop()
        if self._dispatcher is not None:
            self._dispatcher.stop()
        if self._runtime is not None:
            self._runtime.stop()  # in-flight invocations fail now instead of running to their timeout
        for source in sources:
            source.join(_JOIN_TIMEOUT_S)
        if self._async is not None:
            self._async.join()
        if self._firehose is not None:
            try:
                self._firehose.stop()  # what the stream still buffers lands before the last cut
            except Exception as error:
                LOG.warning("the local Firehose could not write its last records: %s", error)
            self._firehose = None
        if self._state is not None:
            try:
                self._state.stop(compact=True)  # nothing runs any more: the last cut is complete
            except Exception as error:  # stopping goes on; the journal holds all but the last interval
                LOG.warning("could not save the local cloud's state: %s", error)
            self._state = None
        if self._claimed_stack:
            self._claimed_stack = False
            last = _release_stack(self.stack_name)
            if last and self._moto is not None and self._moto.url:
                try:
                    self._moto.reset()
                except OSError as error:  # stopping goes on: the next cloud to start resets anyway
                    LOG.warning("could not reset moto's state: %s", error)
        if self._moto is not None:
            self._moto.stop()
        self._gateways, self._pollers, self._taps = [], [], []
        self._clock = self._async = self._dispatcher = self._runtime = None
        self._moto = self._clients = self._deployment = None

    def __enter__(self) -> LocalCloud:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ what tests and tools use

    @property
    def model(self) -> CloudModel:
        if self._model is None:
            raise LocalCloudError("the local cloud has not been started")
        return self._model

    @property
    def api_url(self) -> str:
        """The base URL of the template's (first) HTTP API."""
        gateways: list[HttpGateway] = self._started(self._gateways)
        return gateways[0].url

    @property
    def aws_endpoint_url(self) -> str:
        return self._started(self._moto).url

    @property
    def clock(self) -> Clock:
        return self._started(self._clock)

    @property
    def outputs(self) -> dict[str, str]:
        """The template's Outputs, with execute-api URLs pointing at the local gateway."""
        endpoints = {
            f"https://{gateway.api.api_id}.execute-api.{self.region}.amazonaws.com": gateway.url
            for gateway in self._gateways
        }
        outputs = {}
        for name, value in self.model.outputs.items():
            for endpoint, local in endpoints.items():
                value = value.replace(endpoint, local)
            outputs[name] = value
        return outputs

    def client(self, service: str) -> Any:
        """A boto3 client for `service` against the local cloud's moto."""
        return self._started(self._clients).client(service)

    def function(self, reference: str) -> FunctionSpec:
        """A function by logical id, physical name, ARN or short name (its CodeUri folder)."""
        return resolve_function(self.model, reference)

    def invoke(self, function: str, event: Any) -> InvocationResult:
        """Invoke a function synchronously (RequestResponse), as `aws lambda invoke` would."""
        return self._started(self._runtime).invoke(self.function(function).logical_id, event)

    def invocations(self, function: str) -> list[InvocationRecord]:
        """The function's last invocations, oldest first."""
        return self._started(self._runtime).invocations(self.function(function).logical_id)

    def kill_busy(self, function: str) -> int:
        """Kill (SIGKILL) the function's workers in the middle of an invocation, as a crashed
        Lambda sandbox: the invocations fail and their queue messages come back after the retry
        delay. How many were killed (benchmarks and tests of crash recovery)."""
        return self._started(self._runtime).kill_busy(self.function(function).logical_id)

    def log_path(self, function: str) -> Path:
        """Where the function's output is kept (when not verbose)."""
        return self._started(self._runtime).log_path(self.function(function).logical_id)

    def physical_name(self, logical_id: str) -> str:
        model = self.model
        if logical_id in model.functions:
            return model.functions[logical_id].name
        named: list[_Named] = [
            *model.queues,
            *model.topics,
            *model.buckets,
            *model.tables,
            *model.buses,
            *model.rules,
            *model.schedules,
            *model.ses_configuration_sets,
            *model.delivery_streams,
        ]
        for resource in named:
            if resource.logical_id == logical_id:
                return resource.name
        raise KeyError(f"{logical_id} is not a named resource of {self.template.name}")

    # ------------------------------------------------------------------ email, SMS and push

    def sent_emails(self) -> list[SentEmail]:
        """Every email moto's SES accepted in this cloud's region, oldest first."""
        self._started(self._moto)
        return sending.sent_emails(self.model.account_id, self.region)

    def sent_sms(self) -> list[SentSms]:
        """Every SMS published (Publish with PhoneNumber), oldest first."""
        self._started(self._moto)
        return sending.sent_sms(self.model.account_id, self.region)

    def sent_push(self) -> list[SentPush]:
        """Every notification published to a platform endpoint, oldest first."""
        self._started(self._moto)
        return sending.sent_push(self.model.account_id, self.region)

    def outbox(self) -> dict[str, list[dict[str, Any]]]:
        """The three lists as JSON-ready dicts (what GET /_localcloud/outbox answers)."""
        return {
            "emails": [sent.to_json() for sent in self.sent_emails()],
            "sms": [sent.to_json() for sent in self.sent_sms()],
            "push": [sent.to_json() for sent in self.sent_push()],
        }

    def simulate_ses_event(
        self,
        event_type: str,
        provider_message_id: str,
        recipient: str | None = None,
        *,
        configuration_set: str | None = None,
        tags: Mapping[str, str] | None = None,
        **details: Any,
    ) -> list[str]:
        """Publish the sending event SES would publish for a sent email; return the SNS message ids.

        `event_type` is Send, Reject, Bounce, Complaint, Delivery, Open, Click, Rendering Failure,
        DeliveryDelay or Subscription (any case, "_" or " " ignored). The record goes to the SNS topic of
        every enabled event destination of the message's configuration set whose MatchingEventTypes
        include it, as on AWS: none may match, and then nothing is published. The `mail` object,
        its tags included, comes from the sent message (`provider_message_id`, as SendEmail answered);
        for a message this cloud did not send, pass `configuration_set` (and `tags`). `recipient`
        defaults to every recipient of the message. `details` override the type-specific fields
        (bounce_type="Transient", link="https://...", timestamp=...).
        """
        model = self.model
        kind = sending.ses_event_type(event_type)
        sent = next((email for email in self.sent_emails() if email.message_id == provider_message_id), None)
        if sent is None:
            if configuration_set is None:
                raise LocalCloudError(
                    f"no email with message id {provider_message_id!r} was sent in this cloud; name its "
                    "configuration set (configuration_set=, configurationSet over HTTP) and tags to describe it"
                )
            sent = SentEmail(provider_message_id, "sender@localcloud.invalid", (recipient or "recipient@example.com",))
        set_name = configuration_set or sent.configuration_set
        if set_name is None:
            raise LocalCloudError(
                f"{provider_message_id} was sent without a configuration set: SES publishes no events for it"
            )
        if not any(spec.name == set_name for spec in model.ses_configuration_sets):
            raise LocalCloudError(f"configuration set {set_name!r} is not one of the template's")
        identities = sending.verified_identities(model.account_id, self.region)
        mail = sending.ses_mail_object(
            sent,
            account_id=model.account_id,
            region=self.region,
            identity=sending.sending_identity(sent.source, identities),
            configuration_set=set_name,
            tags={**sent.tags, **(tags or {})},
        )
        now = details.pop("now", None) or datetime.now(UTC)
        recipients = [recipient] if recipient is not None else list(sent.recipients)
        record = sending.ses_event_record(kind, mail, recipients, details, now)
        matching = sending.SES_EVENTS[kind][1]
        published: list[str] = []
        for destination in model.ses_event_destinations:
            if (
                destination.configuration_set == set_name
                and destination.enabled
                and matching in destination.matching_event_types
            ):
                answer = self.client("sns").publish(
                    TopicArn=destination.topic_arn, Message=json.dumps(record), Subject=sending.SES_EVENT_SUBJECT
                )
                published.append(answer["MessageId"])
        if not published:
            LOG.info("no enabled event destination of %s takes %s events: nothing published", set_name, kind)
        return published

    def aws_requests(self) -> dict[str, int]:
        """moto's requests since the start, by operation (DynamoDB, SQS, EventBridge... targets)."""
        return dict(self._started(self._moto).gate.requests)

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Block until nothing is queued, in flight or running, steadily for a moment.

        Raises TimeoutError naming what is still busy.
        """
        deadline = time.monotonic() + timeout
        quiet_since: float | None = None
        while True:
            busy = self._busy()
            now = time.monotonic()
            if busy:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= _IDLE_STABLE_S:
                return
            if now >= deadline:
                raise TimeoutError(
                    f"the local cloud is still busy after {timeout:g} s: {'; '.join(busy) or 'activity just ended'}"
                )
            time.sleep(_IDLE_POLL_S)

    # ------------------------------------------------------------------ internals

    def _started(self, component: Any) -> Any:
        if not component:
            raise LocalCloudError("the local cloud is not running; call start() first")
        return component

    def _busy(self) -> list[str]:
        runtime = self._started(self._runtime)
        self._started(self._clients)
        busy: list[str] = []
        queues: list[tuple[str, str, int]] = [
            (f"queue {poller.mapping.queue_arn.rsplit(':', 1)[-1]}", poller.queue_url, poller.processing)
            for poller in self._pollers
        ]
        queues += [(f"event tap of bus {tap.bus_name}", tap.tap_url, tap.processing) for tap in self._taps]
        if self._firehose is not None and self._firehose.pending:
            busy.append(f"firehose: {self._firehose.pending} records buffered")
        for label, url, processing in queues:
            # Read in-process: wait_idle polls every few milliseconds, and through the API each
            # poll of every queue would cost the server more than the work it waits for.
            visible, in_flight, delayed = queue_depth(self.model.account_id, self.region, url)
            if visible or in_flight or delayed or processing:
                busy.append(f"{label}: {visible} visible, {in_flight} in flight, {delayed} delayed")
        if self._async is not None and self._async.pending:
            busy.append(f"{self._async.pending} asynchronous invocation(s) pending")
        if self._dispatcher is not None and self._dispatcher.pending:
            busy.append(f"{self._dispatcher.pending} target delivery(ies) being retried")
        busy += [f"{function}: {count} invocation(s) running" for function, count in runtime.running().items()]
        return busy

    def _control(self, method: str, path: str, query: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        """The /_localcloud/ endpoints, for tools that drive a running cloud over HTTP."""
        route = path.removeprefix("/_localcloud/").rstrip("/")
        try:
            status, answer = self._control_answer(method, route, query, body)
        except (ValueError, KeyError) as error:
            status, answer = 400, {"message": str(error)}
        return status, {"content-type": "application/json"}, json.dumps(answer).encode()

    def _control_answer(self, method: str, route: str, query: dict[str, str], body: bytes) -> tuple[int, Any]:
        routes = {
            ("GET", "health"): lambda: (200, self._health()),
            ("GET", "clock"): lambda: (200, clock_state(self.clock)),
            ("POST", "clock/advance"): lambda: self._advance(body),
            ("GET", "invocations"): lambda: self._invocations_answer(query),
            ("GET", "outputs"): lambda: (200, self.outputs),
            ("POST", "wait-idle"): lambda: self._wait_idle_answer(body),
            ("GET", "outbox"): lambda: (200, self.outbox()),
            ("POST", "ses-events"): lambda: self._ses_event_answer(body),
            ("GET", "faults"): lambda: (200, self.faults.to_json()),
        }
        if (method, route) in routes:
            return routes[(method, route)]()
        if any(known == route for _, known in routes):
            return 405, {"message": f"{method} is not allowed on /_localcloud/{route}"}
        return 404, {"message": f"no control endpoint /_localcloud/{route}"}

    def _health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "stack": self.stack_name,
            "awsEndpointUrl": self.aws_endpoint_url,
            "functions": sorted(self.model.functions),
            "manualClock": self.manual_clock,
            # moto's requests since the start, by operation: what the functions ask of AWS.
            "awsRequests": dict(self._started(self._moto).gate.requests.most_common()),
        }

    def _advance(self, body: bytes) -> tuple[int, Any]:
        if not self.manual_clock:
            return 409, {"message": "the clock follows wall time; start with --manual-clock to advance it"}
        request = _json_body(body)
        seconds = float(request["seconds"])
        limit = request.get("maxFirings", DEFAULT_MAX_FIRINGS)
        fired = self.clock.advance(seconds, max_firings=None if limit is None else int(limit))
        state = clock_state(self.clock)
        return 200, {
            "now": state["now"],
            "fired": [{"schedule": name, "time": when.isoformat()} for name, when in fired],
        }

    def _invocations_answer(self, query: dict[str, str]) -> tuple[int, Any]:
        if "function" not in query:
            raise ValueError("pass ?function=<logical id or short name>")
        try:
            function = self.function(query["function"])
        except LookupError as error:
            return 404, {"message": str(error)}
        records = self.invocations(function.logical_id)
        return 200, {"function": function.logical_id, "invocations": [record.to_json() for record in records]}

    def _ses_event_answer(self, body: bytes) -> tuple[int, Any]:
        request = _json_body(body)
        try:
            event_type = str(request.pop("eventType"))
            message_id = str(request.pop("messageId"))
        except KeyError as missing:
            raise ValueError(f"the body needs {missing}") from None
        recipient = request.pop("recipient", None)
        configuration_set = request.pop("configurationSet", None)
        tags = request.pop("tags", None)
        details = request.pop("details", None) or {}
        if request:
            raise ValueError(f"unknown field(s) {', '.join(sorted(request))}")
        if not isinstance(details, dict) or {"configuration_set", "tags", "recipient", "now"} & set(details):
            raise ValueError("details must be an object of the event's own fields")
        try:
            published = self.simulate_ses_event(
                event_type, message_id, recipient, configuration_set=configuration_set, tags=tags, **details
            )
        except LocalCloudError as error:
            return 404, {"message": str(error)}
        return 200, {"published": published}

    def _wait_idle_answer(self, body: bytes) -> tuple[int, Any]:
        timeout = float(_json_body(body).get("timeout", 30.0)) if body.strip() else 30.0
        try:
            self.wait_idle(timeout)
        except TimeoutError as error:
            return 504, {"message": str(error)}
        return 200, {"idle": True}


class _Expiry:
    """DynamoDB's TTL deletion: a slice of every TTL-enabled table each second, all of it in ~30 s."""

    BUCKETS_PER_TICK = 8

    def __init__(self, account_id: str, region: str, every_s: float = 1.0) -> None:
        self._account_id = account_id
        self._region = region
        self._every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="localcloud-ttl", daemon=True)
        self.deleted = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(_JOIN_TIMEOUT_S)

    def _run(self) -> None:
        from moto.dynamodb.models import dynamodb_backends

        while not self._stop.wait(self._every_s):
            try:
                backend = dynamodb_backends[self._account_id][self._region]
                self.deleted += dynamodb_engine.expire(backend, time.time(), self.BUCKETS_PER_TICK)
            except Exception:  # a failed sweep is retried on the next tick
                LOG.exception("expiring DynamoDB items failed")


def queue_depth(account_id: str, region: str, queue_url: str) -> tuple[int, int, int]:
    """(visible, in flight, delayed) messages of a queue in this process's moto."""
    from moto.sqs.models import sqs_backends

    queue = sqs_backends[account_id][region].get_queue(queue_url.rsplit("/", 1)[-1])
    return sqs_engine.depth(queue)


def _json_body(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body or b"{}")
    except json.JSONDecodeError as error:
        raise ValueError(f"the body is not JSON: {error}") from error
    if not isinstance(value, dict):
        raise ValueError("the body must be a JSON object")
    return value


def resolve_function(model: CloudModel, reference: str) -> FunctionSpec:
    """A function by logical id, physical name, ARN, or short name ("collect" -> functions/collect/)."""
    if reference in model.functions:
        return model.functions[reference]
    by_arn = model.function_by_arn(reference)
    if by_arn is not None:
        return by_arn
    wanted = reference.replace("-", "_").lower()
    candidates = [fn for fn in model.functions.values() if fn.code_dir.name.replace("-", "_").lower() == wanted]
    if len(candidates) == 1:
        return candidates[0]
    known = ", ".join(f"{fn.logical_id} ({fn.code_dir.name})" for fn in model.functions.values())
    if candidates:
        names = ", ".join(fn.logical_id for fn in candidates)
        raise LookupError(f"{reference!r} names several functions ({names}); use a logical id")
    raise LookupError(f"no function {reference!r}; known: {known}")


def invoke_with_endpoint(
    model: CloudModel,
    function: FunctionSpec,
    event: Any,
    *,
    aws_endpoint_url: str,
    console: TextIO | None = None,
    function_env: Mapping[str, str] | None = None,
) -> InvocationResult:
    """Run one function once against an AWS endpoint (a running local cloud's moto, LocalStack...).

    The function's output goes to `console`, or to a log file when it is None.
    """
    runtime = LambdaRuntime(
        {function.logical_id: function},
        aws_endpoint_url=aws_endpoint_url,
        region=model.region,
        max_workers_per_function=1,
        verbose=console is not None,
        console=console,
        environment_overrides=function_env,
    )
    try:
        return runtime.invoke(function.logical_id, event)
    finally:
        runtime.stop()


def invoke_ephemeral(
    model: CloudModel,
    function: FunctionSpec,
    event: Any,
    *,
    console: TextIO | None = None,
    function_env: Mapping[str, str] | None = None,
    prepare: Callable[[AwsClients], object] | None = None,
) -> InvocationResult:
    """Run one function once against moto holding the template's resources, then drop them.

    `prepare` seeds data (such as the demo source) once the resources exist.
    """
    alone = _claim_stack(model.stack_name)
    moto = MotoServer("127.0.0.1")
    try:
        endpoint = moto.start()
        if alone:
            moto.reset()
        clients = AwsClients(endpoint, model.region)
        deploy(model, clients)
        if prepare is not None:
            prepare(clients)
        return invoke_with_endpoint(
            model, function, event, aws_endpoint_url=endpoint, console=console, function_env=function_env
        )
    finally:
        if _release_stack(model.stack_name) and moto.url:
            moto.reset()
        moto.stop()


def _s3_writer(account_id: str) -> Any:
    """Objects into moto's S3 directly, as moto's own Firehose writes them."""
    from moto.s3.models import s3_backends

    def put(bucket: str, key: str, body: bytes) -> None:
        s3_backends[account_id]["aws"].put_object(bucket, key, body)

    return put


def local_assets(environment: Mapping[str, str], endpoint: str) -> dict[str, str]:
    """Published assets are served by the local cloud's S3 (path-style, no signature): the URL a
    template gets for `asset('<name>')` opens in a browser on this machine."""
    bucket = environment.get("ASSETS_BUCKET")
    if not bucket or "ASSETS_BASE_URL" not in environment:
        return {}
    return {"ASSETS_BASE_URL": f"{endpoint.rstrip('/')}/{bucket}"}


def serve_published_assets(clients: AwsClients, bucket: str) -> None:
    """What the distribution does on AWS (read the assets bucket's public/, and nothing else),
    locally: anyone may GET an object under public/; drafts stay unreadable without a signature."""
    statement = {
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/public/*",
    }
    clients.s3().put_bucket_policy(
        Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [statement]})
    )


def local_engines(environment: Mapping[str, str]) -> dict[str, str]:
    """Services the local cloud stands in for with an embedded engine: Athena has no local
    counterpart, so reports run on DuckDB over the same archive files."""
    return {"ANALYTICS_ENGINE": "duckdb"} if environment.get("ANALYTICS_ENGINE") == "athena" else {}
