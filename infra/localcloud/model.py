"""What the local cloud knows about a deployment, read from the translated template.

`template.py` builds a `CloudModel` from template.yaml (through aws-sam-translator and an
intrinsic-function resolver); every other module of the local cloud consumes these values and
never reads the template itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    name: str  # physical name, e.g. "midstage-local-CollectFunction"
    arn: str
    code_dir: Path  # absolute path of CodeUri
    handler: str  # "handler.lambda_handler"
    runtime: str
    timeout_s: int
    memory_mb: int
    environment: dict[str, str]  # resolved Environment.Variables
    reserved_concurrency: int | None = None
    log_group: str | None = None  # LoggingConfig.LogGroup; Lambda's default is /aws/lambda/<name>
    log_format: str = "Text"  # LoggingConfig.LogFormat: "Text" or "JSON"


@dataclass(frozen=True)
class HttpRoute:
    method: str  # upper case, or "ANY"
    path: str  # "/v1/sources/{sourceId}", "/files/{proxy+}" or "$default"
    function_id: str  # FunctionSpec.logical_id
    payload_format: str = "2.0"

    @property
    def route_key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"


@dataclass(frozen=True)
class CorsConfig:
    allow_origins: tuple[str, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int | None = None
    allow_credentials: bool = False


@dataclass(frozen=True)
class HttpApiSpec:
    logical_id: str
    api_id: str
    stage: str
    routes: tuple[HttpRoute, ...]
    cors: CorsConfig | None
    throttle_rate: float | None  # requests per second, None = unlimited
    throttle_burst: int | None


@dataclass(frozen=True)
class TableSpec:
    logical_id: str
    name: str
    properties: dict[str, Any]  # resolved AWS::DynamoDB::Table properties


@dataclass(frozen=True)
class QueueSpec:
    logical_id: str
    name: str
    arn: str
    properties: dict[str, Any]  # resolved AWS::SQS::Queue properties (RedrivePolicy as a dict)


@dataclass(frozen=True)
class TopicSpec:
    logical_id: str
    name: str
    arn: str
    properties: dict[str, Any]


@dataclass(frozen=True)
class SubscriptionSpec:
    """An AWS::SNS::Subscription of a template queue to a template topic (moto delivers it)."""

    logical_id: str
    topic_arn: str
    protocol: str  # "sqs"
    endpoint: str  # the queue's ARN
    raw_message_delivery: bool = False
    filter_policy: dict[str, Any] | None = None
    filter_policy_scope: str | None = None  # "MessageAttributes" (SNS's default) or "MessageBody"


@dataclass(frozen=True)
class SesConfigurationSetSpec:
    logical_id: str
    name: str
    properties: dict[str, Any]


@dataclass(frozen=True)
class SesEmailIdentitySpec:
    logical_id: str
    identity: str  # an address ("noreply@example.com") or a domain ("example.com")
    configuration_set: str | None = None  # ConfigurationSetAttributes: the identity's default set


@dataclass(frozen=True)
class SesEventDestinationSpec:
    """An AWS::SES::ConfigurationSetEventDestination with an SNS destination.

    moto generates no sending events: `LocalCloud.simulate_ses_event` publishes them to `topic_arn`.
    """

    logical_id: str
    name: str
    configuration_set: str
    topic_arn: str
    # Lower-cased, without underscores: "bounce", "renderingfailure", "deliverydelay"...
    matching_event_types: tuple[str, ...]
    enabled: bool = False  # CloudFormation's default


@dataclass(frozen=True)
class BucketSpec:
    logical_id: str
    name: str
    properties: dict[str, Any]


@dataclass(frozen=True)
class DeliveryStreamSpec:
    """An AWS::KinesisFirehose::DeliveryStream (DirectPut) into a template bucket: the local
    cloud's Firehose buffers its records and writes them as Firehose would (firehose.py)."""

    logical_id: str
    name: str
    bucket: str
    prefix: str  # may hold !{partitionKeyFromQuery:x}, !{timestamp:...} expressions
    error_prefix: str
    partition_keys: tuple[tuple[str, str], ...]  # (key, JSON field) from a MetadataExtraction query
    parquet: bool  # DataFormatConversion to Parquet
    file_extension: str
    buffer_seconds: int
    deaggregate: bool = False  # RecordDeAggregation of JSON sub-records (several lines in one record)


@dataclass(frozen=True)
class BusSpec:
    logical_id: str
    name: str
    arn: str


@dataclass(frozen=True)
class RuleTarget:
    target_id: str
    arn: str  # a FunctionSpec.arn or QueueSpec.arn
    input: str | None = None  # Input (a JSON text)
    input_path: str | None = None
    input_transformer: dict[str, Any] | None = None
    dead_letter_arn: str | None = None
    max_retry_attempts: int = 2
    message_group_id: str | None = None  # SqsParameters.MessageGroupId, for FIFO queue targets


@dataclass(frozen=True)
class EventRuleSpec:
    logical_id: str
    name: str
    bus_name: str  # "default" when the rule names no bus
    event_pattern: dict[str, Any] | None
    schedule_expression: str | None
    enabled: bool
    targets: tuple[RuleTarget, ...]
    arn: str | None = None


@dataclass(frozen=True)
class ScheduleSpec:
    """An AWS::Scheduler::Schedule (SAM `ScheduleV2`)."""

    logical_id: str
    name: str
    expression: str  # rate(...), cron(...) or at(...)
    timezone: str  # ScheduleExpressionTimezone, default "UTC"
    target_arn: str
    input: str | None
    enabled: bool
    start_date: str | None = None
    end_date: str | None = None
    arn: str | None = None
    # Target.RetryPolicy and Target.DeadLetterConfig: they cover failures to *deliver* to the
    # target, as on AWS (a Lambda target's own errors follow its AsyncInvokeConfig).
    max_retry_attempts: int = 185
    dead_letter_arn: str | None = None
    message_group_id: str | None = None  # Target.SqsParameters.MessageGroupId


@dataclass(frozen=True)
class QueueMappingSpec:
    """An AWS::Lambda::EventSourceMapping from an SQS queue."""

    logical_id: str
    queue_arn: str
    function_id: str
    batch_size: int = 10
    batching_window_s: float = 0
    report_batch_item_failures: bool = False
    maximum_concurrency: int | None = None
    enabled: bool = True
    filter_patterns: tuple[dict[str, Any], ...] = ()  # FilterCriteria, parsed


@dataclass(frozen=True)
class AsyncInvokeConfig:
    """How Lambda handles a function's asynchronous invocations (EventBridge, Scheduler targets).

    From the function's DeadLetterConfig and its AWS::Lambda::EventInvokeConfig.
    """

    max_retry_attempts: int = 2
    max_event_age_s: int = 21600
    dead_letter_arn: str | None = None  # an SQS queue or SNS topic
    on_success_arn: str | None = None  # destinations: queue, topic, function or event bus
    on_failure_arn: str | None = None


@dataclass
class CloudModel:
    stack_name: str
    region: str
    account_id: str
    parameters: dict[str, str]
    functions: dict[str, FunctionSpec] = field(default_factory=dict)
    http_apis: list[HttpApiSpec] = field(default_factory=list)
    tables: list[TableSpec] = field(default_factory=list)
    queues: list[QueueSpec] = field(default_factory=list)
    topics: list[TopicSpec] = field(default_factory=list)
    buckets: list[BucketSpec] = field(default_factory=list)
    delivery_streams: list[DeliveryStreamSpec] = field(default_factory=list)
    buses: list[BusSpec] = field(default_factory=list)
    rules: list[EventRuleSpec] = field(default_factory=list)
    schedules: list[ScheduleSpec] = field(default_factory=list)
    schedule_groups: list[str] = field(default_factory=list)  # for schedules created at runtime
    queue_mappings: list[QueueMappingSpec] = field(default_factory=list)
    subscriptions: list[SubscriptionSpec] = field(default_factory=list)
    ses_configuration_sets: list[SesConfigurationSetSpec] = field(default_factory=list)
    ses_identities: list[SesEmailIdentitySpec] = field(default_factory=list)
    ses_event_destinations: list[SesEventDestinationSpec] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    # FunctionSpec.logical_id -> how its asynchronous invocations are retried and where they end.
    async_configs: dict[str, AsyncInvokeConfig] = field(default_factory=dict)
    # Resource types accepted without emulation (IAM roles, log groups, permissions, layers...).
    ignored: dict[str, str] = field(default_factory=dict)  # logical id -> type

    def function_by_arn(self, arn: str) -> FunctionSpec | None:
        for fn in self.functions.values():
            if arn in (fn.arn, fn.name) or arn.startswith(fn.arn + ":"):
                return fn
        return None


@dataclass
class InvocationResult:
    """The outcome of one Lambda invocation, shaped like the Invoke API's answer."""

    function_id: str
    request_id: str
    payload: Any = None  # the handler's JSON-compatible return value
    error: dict[str, Any] | None = None  # {"errorType", "errorMessage", "stackTrace"}
    duration_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None
