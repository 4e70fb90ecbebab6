"""template.yaml -> CloudModel: translate with aws-sam-translator, resolve intrinsics, classify.

The local cloud never keeps a second list of resources: everything it creates or wires comes from
the translated template. Whatever the template asks for that the local cloud cannot reproduce is
reported at start-up, all at once, instead of being silently skipped.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from samtranslator.yaml_helper import yaml_parse

from infra.localcloud.deploy import local_session
from infra.localcloud.model import (
    AsyncInvokeConfig,
    BucketSpec,
    BusSpec,
    CloudModel,
    CorsConfig,
    DeliveryStreamSpec,
    EventRuleSpec,
    FunctionSpec,
    HttpApiSpec,
    HttpRoute,
    QueueMappingSpec,
    QueueSpec,
    RuleTarget,
    ScheduleSpec,
    SesConfigurationSetSpec,
    SesEmailIdentitySpec,
    SesEventDestinationSpec,
    SubscriptionSpec,
    TableSpec,
    TopicSpec,
)

LOG = logging.getLogger("infra.localcloud")

ACCOUNT_ID = "123456789012"  # moto's default account: resources created through moto live there
DOCS = "docs/local-cloud.md"
SAM_TRANSFORM = "AWS::Serverless-2016-10-31"
# Local CodeUri/ContentUri values are swapped for this bucket so that the translator, which only
# knows S3 locations, accepts them; the key keeps the original path.
LOCAL_CODE_BUCKET = "localcloud-code"


def _names(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Properties the local cloud reproduces, or accepts knowing they change nothing locally (encryption,
# tags, retention, tracing...). Any other property of these types is reported as unsupported.
EMULATED_PROPERTIES: dict[str, frozenset[str]] = {
    "AWS::Lambda::Function": _names(
        "Code Handler Runtime Timeout MemorySize Environment Role Layers Tags TracingConfig "
        "Architectures LoggingConfig Description FunctionName ReservedConcurrentExecutions "
        "DeadLetterConfig VpcConfig KmsKeyArn EphemeralStorage PackageType RuntimeManagementPolicy "
        "SnapStart CodeSigningConfigArn RecursiveLoop"
    ),
    "AWS::Lambda::EventSourceMapping": _names(
        "EventSourceArn FunctionName BatchSize MaximumBatchingWindowInSeconds FunctionResponseTypes "
        "ScalingConfig Enabled FilterCriteria Tags MetricsConfig"
    ),
    "AWS::Lambda::EventInvokeConfig": _names(
        "FunctionName Qualifier MaximumRetryAttempts MaximumEventAgeInSeconds DestinationConfig"
    ),
    "AWS::SQS::Queue": _names(
        "QueueName VisibilityTimeout MessageRetentionPeriod DelaySeconds MaximumMessageSize "
        "ReceiveMessageWaitTimeSeconds RedrivePolicy RedriveAllowPolicy FifoQueue "
        "ContentBasedDeduplication DeduplicationScope FifoThroughputLimit KmsMasterKeyId "
        "KmsDataKeyReusePeriodSeconds SqsManagedSseEnabled Tags"
    ),
    "AWS::SNS::Topic": _names(
        "TopicName DisplayName FifoTopic ContentBasedDeduplication KmsMasterKeyId Tags "
        "TracingConfig SignatureVersion ArchivePolicy DataProtectionPolicy"
    ),
    # RedrivePolicy and DeliveryPolicy change nothing locally: delivery to a template queue does not fail,
    # and DeliveryPolicy only concerns HTTP endpoints.
    "AWS::SNS::Subscription": _names(
        "TopicArn Protocol Endpoint RawMessageDelivery FilterPolicy FilterPolicyScope Region RedrivePolicy "
        "DeliveryPolicy"
    ),
    # Only the name has local behaviour; the options (tracking domains, TLS, reputation metrics,
    # suppression, VDM) are accepted and change nothing in moto.
    "AWS::SES::ConfigurationSet": _names(
        "Name DeliveryOptions ReputationOptions SendingOptions SuppressionOptions TrackingOptions VdmOptions Tags"
    ),
    "AWS::SES::ConfigurationSetEventDestination": _names("ConfigurationSetName EventDestination"),
    # DKIM and MAIL FROM settings are DNS matters: every identity is verified at once locally.
    "AWS::SES::EmailIdentity": _names(
        "EmailIdentity ConfigurationSetAttributes DkimAttributes DkimSigningAttributes FeedbackAttributes "
        "MailFromAttributes Tags"
    ),
    "AWS::S3::Bucket": _names(
        "BucketName VersioningConfiguration LifecycleConfiguration CorsConfiguration "
        "BucketEncryption PublicAccessBlockConfiguration OwnershipControls NotificationConfiguration Tags"
    ),
    # Encryption and tags change nothing locally; the destination is read by _delivery_stream.
    "AWS::KinesisFirehose::DeliveryStream": _names(
        "DeliveryStreamName DeliveryStreamType DeliveryStreamEncryptionConfigurationInput "
        "ExtendedS3DestinationConfiguration Tags"
    ),
    "AWS::DynamoDB::Table": _names(
        "TableName AttributeDefinitions KeySchema BillingMode ProvisionedThroughput "
        "GlobalSecondaryIndexes LocalSecondaryIndexes TimeToLiveSpecification StreamSpecification "
        "PointInTimeRecoverySpecification SSESpecification Tags DeletionProtectionEnabled "
        "TableClass ContributorInsightsSpecification OnDemandThroughput WarmThroughput ResourcePolicy"
    ),
    "AWS::Events::EventBus": _names("Name Tags Description KmsKeyIdentifier Policy"),
    "AWS::Events::Rule": _names("Name Description EventBusName EventPattern ScheduleExpression State Targets RoleArn"),
    "AWS::Scheduler::Schedule": _names(
        "Name Description GroupName ScheduleExpression ScheduleExpressionTimezone "
        "FlexibleTimeWindow StartDate EndDate State Target KmsKeyArn"
    ),
    "AWS::ApiGatewayV2::Api": _names(
        "Name ProtocolType Body Tags Description FailOnWarnings DisableExecuteApiEndpoint "
        "CorsConfiguration Version DisableSchemaValidation"
    ),
}
RULE_TARGET_KEYS = _names("Id Arn Input InputPath InputTransformer DeadLetterConfig RetryPolicy RoleArn SqsParameters")
SCHEDULE_TARGET_KEYS = _names("Arn RoleArn Input RetryPolicy DeadLetterConfig SqsParameters")
# CloudWatch metrics have no local counterpart, so a CloudWatch destination is accepted without effect.
SES_EVENT_DESTINATION_KEYS = _names("Name Enabled MatchingEventTypes SnsDestination CloudWatchDestination")
# MatchingEventTypes as CloudFormation spells them (SES v1: "renderingFailure"; v2: "RENDERING_FAILURE"),
# compared lower-cased without underscores.
SES_EVENT_TYPES = _names("send reject bounce complaint delivery open click renderingfailure deliverydelay subscription")

# Types that have no behaviour to reproduce locally (no IAM enforcement, no log service...).
IGNORED_TYPES = _names(
    "AWS::IAM::Role AWS::IAM::Policy AWS::IAM::ManagedPolicy AWS::Lambda::Permission "
    "AWS::Logs::LogGroup AWS::Logs::MetricFilter AWS::Lambda::LayerVersion "
    "AWS::Lambda::LayerVersionPermission AWS::ApiGatewayV2::Stage AWS::Lambda::Version "
    "AWS::Lambda::Alias AWS::SQS::QueuePolicy AWS::SNS::TopicPolicy AWS::S3::BucketPolicy "
    "AWS::Events::EventBusPolicy AWS::Scheduler::ScheduleGroup AWS::CloudWatch::Alarm "
    "AWS::CloudWatch::Dashboard "
    # The archive's catalog and query engine: locally, reports run on embedded DuckDB over the same
    # files (ANALYTICS_ENGINE=duckdb in the functions' local environment).
    "AWS::Glue::Database AWS::Glue::Table AWS::Athena::WorkGroup "
    # The CDN in front of the assets bucket: locally the bucket is read straight from the local
    # cloud's S3 (cloud.py points ASSETS_BASE_URL there).
    "AWS::CloudFront::Distribution AWS::CloudFront::OriginAccessControl"
)

_NAME_PROPERTY = {
    "AWS::Lambda::Function": "FunctionName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::S3::Bucket": "BucketName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::Events::EventBus": "Name",
    "AWS::Events::Rule": "Name",
    "AWS::Scheduler::Schedule": "Name",
    "AWS::Scheduler::ScheduleGroup": "Name",
    "AWS::IAM::Role": "RoleName",
    "AWS::IAM::Policy": "PolicyName",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::Lambda::LayerVersion": "LayerName",
    "AWS::ApiGatewayV2::Api": "Name",
    "AWS::ApiGatewayV2::Stage": "StageName",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::Kinesis::Stream": "Name",
    "AWS::SES::ConfigurationSet": "Name",
    "AWS::KinesisFirehose::DeliveryStream": "DeliveryStreamName",
    "AWS::Athena::WorkGroup": "Name",
}
_INTEGRATION_URI = re.compile(r"^arn:[^:]+:apigateway:[^:]+:lambda:path/[^/]+/functions/(?P<fn>.+)/invocations$")
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class TemplateError(Exception):
    """The template cannot be read, translated or resolved."""


class UnsupportedConstructsError(TemplateError):
    """The template uses constructs the local cloud does not emulate; `problems` lists each one."""

    def __init__(self, template: Path, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(
            f"{template} uses {len(problems)} construct(s) the local cloud does not emulate:\n{lines}\n"
            f"See {DOCS} for what is emulated and how to add support for a construct."
        )


def load_model(
    template_path: Path,
    *,
    stack_name: str = "midstage-local",
    region: str = "us-east-1",
    parameters: Mapping[str, str] | None = None,
) -> CloudModel:
    """Read, translate and resolve `template_path` into the model the local cloud runs."""
    template_path = template_path.resolve()
    try:
        document = yaml_parse(template_path.read_text(encoding="utf-8"))
    except OSError as error:
        raise TemplateError(f"cannot read {template_path}: {error}") from error
    except yaml.YAMLError as error:
        raise TemplateError(f"{template_path} is not valid YAML: {error}") from error
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise TemplateError(f"{template_path} has no Resources section")
    code_paths = _localise_code_uris(document, template_path.parent)
    values = _parameter_values(template_path, document.get("Parameters") or {}, parameters or {})
    translated = _translate(template_path, document, values, region)
    return _ModelBuilder(template_path, translated, values, code_paths, stack_name, region).build()


# ---------------------------------------------------------------------------------- preparation


def _localise_code_uris(document: dict[str, Any], base: Path) -> dict[str, Path]:
    """Swap local code locations for S3 placeholders the translator accepts; return key -> path."""
    code_paths: dict[str, Path] = {}

    def placeholder(local: str) -> str:
        key = str(len(code_paths))  # the translator mangles absolute paths used as S3 keys
        code_paths[key] = (base / local).resolve()
        return f"s3://{LOCAL_CODE_BUCKET}/{key}"

    def is_local(value: Any) -> bool:
        return isinstance(value, str) and not value.startswith("s3://")

    function_globals = (document.get("Globals") or {}).get("Function") or {}
    if is_local(function_globals.get("CodeUri")):
        function_globals["CodeUri"] = placeholder(function_globals["CodeUri"])
    for resource in document["Resources"].values():
        if not isinstance(resource, dict):
            continue
        properties = resource.get("Properties") or {}
        kind = resource.get("Type")
        if kind == "AWS::Serverless::Function" and is_local(properties.get("CodeUri")):
            properties["CodeUri"] = placeholder(properties["CodeUri"])
        elif kind == "AWS::Serverless::LayerVersion" and is_local(properties.get("ContentUri")):
            properties["ContentUri"] = placeholder(properties["ContentUri"])
        elif kind == "AWS::Lambda::Function" and is_local(properties.get("Code")):
            key = placeholder(properties["Code"]).rsplit("/", 1)[1]
            properties["Code"] = {"S3Bucket": LOCAL_CODE_BUCKET, "S3Key": key}
        elif kind == "AWS::Serverless::HttpApi" and is_local(properties.get("DefinitionUri")):
            # `sam package` would upload the OpenAPI file; inlining it is the local equivalent.
            definition = base / properties.pop("DefinitionUri")
            try:
                properties["DefinitionBody"] = yaml_parse(definition.read_text(encoding="utf-8"))
            except OSError as error:
                raise TemplateError(f"cannot read the HttpApi DefinitionUri {definition}: {error}") from error
    return code_paths


def _parameter_values(template: Path, declared: Mapping[str, Any], overrides: Mapping[str, str]) -> dict[str, str]:
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise TemplateError(f"{template} declares no parameter(s) {', '.join(unknown)}")
    values: dict[str, str] = {}
    for name, spec in declared.items():
        if name in overrides:
            value = str(overrides[name])
        elif "Default" in spec:
            value = _scalar_text(spec["Default"])
        else:
            raise TemplateError(f"parameter {name} has no Default: pass a value for it")
        _check_parameter(name, spec, value)
        values[name] = value
    return values


def _check_parameter(name: str, spec: Mapping[str, Any], value: str) -> None:
    kind = str(spec.get("Type", "String"))
    if kind.startswith("AWS::SSM::Parameter"):
        raise TemplateError(
            f"parameter {name} is an SSM parameter type ({kind}), which the local cloud does not resolve"
        )
    allowed = spec.get("AllowedValues")
    if allowed is not None and value not in [_scalar_text(v) for v in allowed]:
        raise TemplateError(f"parameter {name}={value!r} is not one of its AllowedValues {allowed}")
    pattern = spec.get("AllowedPattern")
    if pattern is not None and not re.fullmatch(str(pattern), value):
        raise TemplateError(f"parameter {name}={value!r} does not match its AllowedPattern {pattern}")
    if "MinLength" in spec and len(value) < int(spec["MinLength"]):
        raise TemplateError(f"parameter {name}={value!r} is shorter than its MinLength {spec['MinLength']}")
    if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
        raise TemplateError(f"parameter {name}={value!r} is longer than its MaxLength {spec['MaxLength']}")
    if kind == "Number":
        try:
            number = float(value)
        except ValueError:
            raise TemplateError(f"parameter {name}={value!r} is not a Number") from None
        if "MinValue" in spec and number < float(spec["MinValue"]):
            raise TemplateError(f"parameter {name}={value} is below its MinValue {spec['MinValue']}")
        if "MaxValue" in spec and number > float(spec["MaxValue"]):
            raise TemplateError(f"parameter {name}={value} is above its MaxValue {spec['MaxValue']}")


def _translate(template: Path, document: dict[str, Any], values: dict[str, str], region: str) -> dict[str, Any]:
    transforms = document.get("Transform") or []
    transforms = [transforms] if isinstance(transforms, str) else list(transforms)
    others = [t for t in transforms if t != SAM_TRANSFORM]
    if others:
        raise UnsupportedConstructsError(template, [f"Transform {t} (only {SAM_TRANSFORM} is applied)" for t in others])
    if not transforms:
        return document
    # The translator reads the region from its boto3 session (as `sam` does), not from the env.
    translator = Translator(None, Parser(), boto_session=local_session(region))
    try:
        translated: dict[str, Any] = translator.translate(
            document,
            parameter_values={**values, "AWS::Region": region, "AWS::AccountId": ACCOUNT_ID, "AWS::Partition": "aws"},
            get_managed_policy_map=dict,
        )
    except InvalidDocumentException as error:
        causes = "\n".join(f"  - {cause.message}" for cause in error.causes)
        raise TemplateError(f"aws-sam-translator rejects {template}:\n{causes}") from error
    return translated


# ---------------------------------------------------------------------------------- resolution


_NO_VALUE = object()  # AWS::NoValue: the enclosing key or list item disappears
_Handler = Callable[[str, dict[str, Any]], None]  # builds the model's part for one resource


@dataclass
class _Physical:
    ref: Any
    attributes: dict[str, Any] = field(default_factory=dict)
    # For resource types the local cloud does not model: every attribute resolves to this ARN, so
    # that the rest of the template resolves and every problem is reported in one go.
    any_attribute: str | None = None


class _Resolver:
    """CloudFormation's intrinsic functions over one translated template."""

    def __init__(
        self,
        template: dict[str, Any],
        pseudo: dict[str, Any],
        parameters: dict[str, Any],
        physical: Callable[[str], _Physical],
    ) -> None:
        self._conditions_section: dict[str, Any] = template.get("Conditions") or {}
        self._mappings: dict[str, Any] = template.get("Mappings") or {}
        self._pseudo = pseudo
        self._parameters = parameters
        self._physical = physical
        self._condition_values: dict[str, bool] = {}
        self._evaluating: set[str] = set()

    def condition(self, name: str) -> bool:
        if name not in self._condition_values:
            if name not in self._conditions_section:
                raise TemplateError(f"condition {name} is not declared in Conditions")
            if name in self._evaluating:
                raise TemplateError(f"condition {name} depends on itself")
            self._evaluating.add(name)
            value = self.resolve(self._conditions_section[name], f"Conditions.{name}")
            self._evaluating.discard(name)
            if not isinstance(value, bool):
                raise TemplateError(f"condition {name} does not evaluate to true or false")
            self._condition_values[name] = value
        return self._condition_values[name]

    def resolve(self, value: Any, where: str) -> Any:
        if isinstance(value, list):
            items = [self.resolve(item, f"{where}[{i}]") for i, item in enumerate(value)]
            return [item for item in items if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self._ref(argument, where)
            if key == "Condition" and isinstance(argument, str):
                return self.condition(argument)
            if key.startswith("Fn::"):
                return self._function(key, argument, where)
        resolved = {k: self.resolve(v, f"{where}.{k}") for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not _NO_VALUE}

    def _ref(self, name: Any, where: str) -> Any:
        if not isinstance(name, str):
            raise TemplateError(f"{where}: Ref takes a name, not {name!r}")
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in self._pseudo:
            return self._pseudo[name]
        if name in self._parameters:
            return self._parameters[name]
        return self._physical(name).ref

    def _get_att(self, argument: Any, where: str) -> Any:
        if isinstance(argument, str):
            logical_id, _, attribute = argument.partition(".")
        elif isinstance(argument, list) and len(argument) == 2:
            logical_id, attribute = argument[0], self.resolve(argument[1], where)
        else:
            raise TemplateError(f"{where}: Fn::GetAtt takes [LogicalId, Attribute], not {argument!r}")
        physical = self._physical(logical_id)
        if attribute in physical.attributes:
            return physical.attributes[attribute]
        if physical.any_attribute is not None:
            return physical.any_attribute
        known = ", ".join(sorted(physical.attributes)) or "none"
        raise TemplateError(f"{where}: Fn::GetAtt {logical_id}.{attribute} is not known locally (known: {known})")

    def _function(self, name: str, argument: Any, where: str) -> Any:
        handlers: dict[str, Callable[[Any, str], Any]] = {
            "Fn::GetAtt": self._get_att,
            "Fn::Sub": self._sub,
            "Fn::Join": self._join,
            "Fn::Select": self._select,
            "Fn::Split": self._split,
            "Fn::If": self._if,
            "Fn::Equals": self._equals,
            "Fn::Not": self._not,
            "Fn::And": self._and,
            "Fn::Or": self._or,
            "Fn::FindInMap": self._find_in_map,
            "Fn::Base64": self._base64,
            "Fn::GetAZs": self._get_azs,
        }
        if name not in handlers:
            raise TemplateError(f"{where}: {name} is not supported by the local cloud (see {DOCS})")
        return handlers[name](argument, f"{where}.{name}")

    def _sub(self, argument: Any, where: str) -> str:
        if isinstance(argument, str):
            text, variables = argument, {}
        elif isinstance(argument, list) and len(argument) == 2 and isinstance(argument[0], str):
            text = argument[0]
            variables = {k: self.resolve(v, f"{where}.{k}") for k, v in (argument[1] or {}).items()}
        else:
            raise TemplateError(f"{where}: Fn::Sub takes a string or [string, {{variables}}]")

        def substitute(match: re.Match[str]) -> str:
            expression = match.group(1)
            if expression.startswith("!"):
                return "${" + expression[1:] + "}"
            if expression in variables:
                value = variables[expression]
            elif "." in expression:
                value = self._get_att(expression, where)
            else:
                value = self._ref(expression, where)
            if isinstance(value, list | dict) or value is _NO_VALUE:
                raise TemplateError(f"{where}: ${{{expression}}} is not a string")
            return _scalar_text(value)

        return _SUB_VARIABLE.sub(substitute, text)

    def _join(self, argument: Any, where: str) -> str:
        if not (isinstance(argument, list) and len(argument) == 2):
            raise TemplateError(f"{where}: Fn::Join takes [delimiter, [values]]")
        items = self.resolve(argument[1], where)
        if not isinstance(items, list):
            raise TemplateError(f"{where}: Fn::Join needs a list of values")
        return str(argument[0]).join(_scalar_text(item) for item in items)

    def _select(self, argument: Any, where: str) -> Any:
        if not (isinstance(argument, list) and len(argument) == 2):
            raise TemplateError(f"{where}: Fn::Select takes [index, [values]]")
        index = int(self.resolve(argument[0], where))
        items = self.resolve(argument[1], where)
        if not isinstance(items, list) or not 0 <= index < len(items):
            raise TemplateError(f"{where}: Fn::Select index {index} is out of range")
        return items[index]

    def _split(self, argument: Any, where: str) -> list[str]:
        if not (isinstance(argument, list) and len(argument) == 2):
            raise TemplateError(f"{where}: Fn::Split takes [delimiter, string]")
        text = self.resolve(argument[1], where)
        if not isinstance(text, str):
            raise TemplateError(f"{where}: Fn::Split needs a string")
        return text.split(str(argument[0]))

    def _if(self, argument: Any, where: str) -> Any:
        if not (isinstance(argument, list) and len(argument) == 3 and isinstance(argument[0], str)):
            raise TemplateError(f"{where}: Fn::If takes [condition, value if true, value if false]")
        chosen = argument[1] if self.condition(argument[0]) else argument[2]
        return self.resolve(chosen, where)

    def _equals(self, argument: Any, where: str) -> bool:
        if not (isinstance(argument, list) and len(argument) == 2):
            raise TemplateError(f"{where}: Fn::Equals takes two values")
        left, right = (self.resolve(item, where) for item in argument)
        return bool(_scalar_text(left) == _scalar_text(right))

    def _booleans(self, argument: Any, where: str) -> list[bool]:
        if not isinstance(argument, list):
            raise TemplateError(f"{where}: takes a list of conditions")
        values = [self.resolve(item, where) for item in argument]
        if not all(isinstance(value, bool) for value in values):
            raise TemplateError(f"{where}: every item must be a condition")
        return values

    def _not(self, argument: Any, where: str) -> bool:
        values = self._booleans(argument, where)
        if len(values) != 1:
            raise TemplateError(f"{where}: Fn::Not takes one condition")
        return not values[0]

    def _and(self, argument: Any, where: str) -> bool:
        return all(self._booleans(argument, where))

    def _or(self, argument: Any, where: str) -> bool:
        return any(self._booleans(argument, where))

    def _find_in_map(self, argument: Any, where: str) -> Any:
        if not (isinstance(argument, list) and len(argument) == 3):
            raise TemplateError(f"{where}: Fn::FindInMap takes [map, top-level key, second-level key]")
        map_name, top, second = (_scalar_text(self.resolve(item, where)) for item in argument)
        try:
            return self._mappings[map_name][top][second]
        except (KeyError, TypeError):
            raise TemplateError(f"{where}: Mappings has no {map_name}.{top}.{second}") from None

    def _base64(self, argument: Any, where: str) -> str:
        return base64.b64encode(_scalar_text(self.resolve(argument, where)).encode()).decode()

    def _get_azs(self, argument: Any, where: str) -> list[str]:
        region = self.resolve(argument, where) or self._pseudo["AWS::Region"]
        return [f"{region}{zone}" for zone in "abc"]


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# ---------------------------------------------------------------------------------- the model


class _ModelBuilder:
    def __init__(
        self,
        template_path: Path,
        translated: dict[str, Any],
        parameters: dict[str, str],
        code_paths: dict[str, Path],
        stack_name: str,
        region: str,
    ) -> None:
        self.template_path = template_path
        self.code_paths = code_paths
        self.stack_name = stack_name
        self.region = region
        self.model = CloudModel(stack_name=stack_name, region=region, account_id=ACCOUNT_ID, parameters=parameters)
        self.problems: list[str] = []
        self._declared_parameters: dict[str, Any] = translated.get("Parameters") or {}
        self._all_resources: dict[str, Any] = translated["Resources"]
        self._physical: dict[str, _Physical] = {}
        self._naming: set[str] = set()
        pseudo = {
            "AWS::Region": region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{region}:{ACCOUNT_ID}:stack/{stack_name}/"
            f"{uuid.uuid5(uuid.NAMESPACE_URL, stack_name)}",
            "AWS::NotificationARNs": [],
        }
        self.resolver = _Resolver(translated, pseudo, self._typed_parameters(parameters), self._physical_of)
        self.outputs_section: dict[str, Any] = translated.get("Outputs") or {}
        self.resources = {
            logical_id: resource
            for logical_id, resource in self._all_resources.items()
            if "Condition" not in resource or self.resolver.condition(resource["Condition"])
        }
        self.properties: dict[str, dict[str, Any]] = {}
        # Functions already reported as unsupported: what refers to them is not reported again.
        self.rejected_functions: set[str] = set()

    def _typed_parameters(self, values: dict[str, str]) -> dict[str, Any]:
        typed: dict[str, Any] = {}
        for name, value in values.items():
            kind = str(self._declared_parameters.get(name, {}).get("Type", "String"))
            typed[name] = value.split(",") if kind == "CommaDelimitedList" or kind.startswith("List<") else value
        return typed

    # ------------------------------------------------------------------ physical identities

    def _kind(self, logical_id: str) -> str:
        return str(self.resources[logical_id]["Type"])

    def _physical_of(self, logical_id: str) -> _Physical:
        if logical_id not in self._physical:
            if logical_id not in self.resources:
                if logical_id in self._all_resources:
                    raise TemplateError(f"{logical_id} is referenced but its Condition is false")
                raise TemplateError(f"{logical_id} is referenced but is neither a resource nor a parameter")
            if logical_id in self._naming:
                raise TemplateError(f"the name of {logical_id} depends on itself")
            self._naming.add(logical_id)
            self._physical[logical_id] = self._identify(logical_id)
            self._naming.discard(logical_id)
        return self._physical[logical_id]

    def _name(self, logical_id: str) -> str:
        kind = self._kind(logical_id)
        raw = (self.resources[logical_id].get("Properties") or {}).get(_NAME_PROPERTY.get(kind, ""))
        if raw is not None:
            return _scalar_text(self.resolver.resolve(raw, f"{logical_id}.Properties"))
        # CloudFormation appends a random suffix; the local cloud keeps names deterministic.
        name = f"{self.stack_name}-{logical_id}"
        if kind == "AWS::S3::Bucket":
            return name.lower()
        if kind == "AWS::SQS::Queue" and self._raw_property(logical_id, "FifoQueue") in (True, "true"):
            return name + ".fifo"
        return name

    def _raw_property(self, logical_id: str, name: str) -> Any:
        value = (self.resources[logical_id].get("Properties") or {}).get(name)
        return self.resolver.resolve(value, f"{logical_id}.Properties.{name}")

    def _identify(self, logical_id: str) -> _Physical:
        kind = self._kind(logical_id)
        region, account = self.region, ACCOUNT_ID
        if kind == "AWS::ApiGatewayV2::Api":
            api_id = _short_id(f"{self.stack_name}/{logical_id}")
            endpoint = f"https://{api_id}.execute-api.{region}.amazonaws.com"
            return _Physical(api_id, {"ApiId": api_id, "ApiEndpoint": endpoint})
        if kind in ("AWS::Lambda::Permission", "AWS::Lambda::EventSourceMapping", "AWS::Lambda::EventInvokeConfig"):
            identifier = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.stack_name}/{logical_id}"))
            return _Physical(identifier, {"Id": identifier})
        if kind == "AWS::SNS::Subscription":
            topic = _scalar_text(self._raw_property(logical_id, "TopicArn"))
            arn = f"{topic}:{uuid.uuid5(uuid.NAMESPACE_URL, f'{self.stack_name}/{logical_id}')}"
            return _Physical(arn, {"Arn": arn})
        if kind == "AWS::SES::EmailIdentity":
            identity = _scalar_text(self._raw_property(logical_id, "EmailIdentity"))
            # Easy DKIM's three CNAME records, shaped like SES's; nothing resolves them locally.
            tokens = [_short_id(f"{identity}/dkim/{n}", 32) for n in (1, 2, 3)]
            dkim = {}
            for n, token in enumerate(tokens, start=1):
                dkim[f"DkimDNSTokenName{n}"] = f"{token}._domainkey.{identity.rsplit('@', 1)[-1]}"
                dkim[f"DkimDNSTokenValue{n}"] = f"{token}.dkim.amazonses.com"
            return _Physical(identity, dkim)
        if kind == "AWS::SES::ConfigurationSetEventDestination":
            return _Physical(str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.stack_name}/{logical_id}")))
        if kind == "AWS::Lambda::Version":
            function = _scalar_text(self._raw_property(logical_id, "FunctionName"))
            arn = _function_arn(function, region, account)
            return _Physical(f"{arn}:1", {"Version": "1", "FunctionArn": arn})
        if kind == "AWS::Lambda::Alias":
            function = _scalar_text(self._raw_property(logical_id, "FunctionName"))
            alias = _scalar_text(self._raw_property(logical_id, "Name"))
            return _Physical(f"{_function_arn(function, region, account)}:{alias}", {"AliasArn": alias})
        if kind == "AWS::CloudFront::Distribution":
            distribution = "E" + _short_id(f"{self.stack_name}/{logical_id}", 13).upper()
            domain = f"d{_short_id(f'{self.stack_name}/{logical_id}/domain', 13)}.cloudfront.net"
            return _Physical(distribution, {"Id": distribution, "DomainName": domain})
        if kind == "AWS::CloudFront::OriginAccessControl":
            control = "E" + _short_id(f"{self.stack_name}/{logical_id}", 13).upper()
            return _Physical(control, {"Id": control})
        name = self._name(logical_id)
        if kind == "AWS::Lambda::Function":
            arn = f"arn:aws:lambda:{region}:{account}:function:{name}"
            return _Physical(name, {"Arn": arn})
        if kind == "AWS::SQS::Queue":
            url = f"https://sqs.{region}.amazonaws.com/{account}/{name}"
            arn = f"arn:aws:sqs:{region}:{account}:{name}"
            return _Physical(url, {"Arn": arn, "QueueName": name, "QueueUrl": url})
        if kind == "AWS::SNS::Topic":
            arn = f"arn:aws:sns:{region}:{account}:{name}"
            return _Physical(arn, {"TopicArn": arn, "TopicName": name})
        if kind == "AWS::S3::Bucket":
            return _Physical(
                name,
                {
                    "Arn": f"arn:aws:s3:::{name}",
                    "DomainName": f"{name}.s3.amazonaws.com",
                    "RegionalDomainName": f"{name}.s3.{region}.amazonaws.com",
                    "DualStackDomainName": f"{name}.s3.dualstack.{region}.amazonaws.com",
                    "WebsiteURL": f"http://{name}.s3-website-{region}.amazonaws.com",
                },
            )
        if kind == "AWS::DynamoDB::Table":
            arn = f"arn:aws:dynamodb:{region}:{account}:table/{name}"
            return _Physical(name, {"Arn": arn, "StreamArn": f"{arn}/stream/1970-01-01T00:00:00.000"})
        if kind == "AWS::Events::EventBus":
            return _Physical(name, {"Arn": _bus_arn(name, region, account), "Name": name})
        if kind == "AWS::Events::Rule":
            bus = _bus_name(_scalar_text(self._raw_property(logical_id, "EventBusName") or "default"))
            prefix = "" if bus == "default" else f"{bus}/"
            return _Physical(name, {"Arn": f"arn:aws:events:{region}:{account}:rule/{prefix}{name}"})
        if kind == "AWS::Scheduler::Schedule":
            group = _scalar_text(self._raw_property(logical_id, "GroupName") or "default")
            return _Physical(name, {"Arn": f"arn:aws:scheduler:{region}:{account}:schedule/{group}/{name}"})
        if kind == "AWS::SES::ConfigurationSet":
            return _Physical(name)
        if kind == "AWS::Scheduler::ScheduleGroup":
            return _Physical(name, {"Arn": f"arn:aws:scheduler:{region}:{account}:schedule-group/{name}"})
        if kind == "AWS::IAM::Role":
            role_id = "AROA" + _short_id(name, 17).upper()
            return _Physical(name, {"Arn": f"arn:aws:iam::{account}:role/{name}", "RoleId": role_id})
        if kind == "AWS::IAM::ManagedPolicy":
            arn = f"arn:aws:iam::{account}:policy/{name}"
            return _Physical(arn, {"PolicyArn": arn})
        if kind == "AWS::Logs::LogGroup":
            return _Physical(name, {"Arn": f"arn:aws:logs:{region}:{account}:log-group:{name}:*"})
        if kind == "AWS::Lambda::LayerVersion":
            arn = f"arn:aws:lambda:{region}:{account}:layer:{name}:1"
            return _Physical(arn, {"LayerVersionArn": arn})
        service = kind.split("::")[1].lower() if kind.count("::") == 2 else "unknown"
        return _Physical(name, any_attribute=f"arn:aws:{service}:{region}:{account}:{name}")

    # ------------------------------------------------------------------ building

    def build(self) -> CloudModel:
        for logical_id, resource in self.resources.items():
            self.properties[logical_id] = self.resolver.resolve(
                resource.get("Properties") or {}, f"{logical_id}.Properties"
            )
        # Later phases refer to what earlier ones built: targets, queues and functions by ARN.
        phases: list[dict[str, _Handler]] = [
            {
                "AWS::Lambda::Function": self._function,
                "AWS::SQS::Queue": self._queue,
                "AWS::SNS::Topic": self._topic,
                "AWS::S3::Bucket": self._bucket,
                "AWS::DynamoDB::Table": self._table,
                "AWS::Events::EventBus": self._bus,
                "AWS::SES::ConfigurationSet": self._ses_configuration_set,
            },
            {
                "AWS::Lambda::Function": self._function_dead_letter,
                "AWS::SNS::Subscription": self._subscription,
                "AWS::KinesisFirehose::DeliveryStream": self._delivery_stream,
                "AWS::SES::EmailIdentity": self._ses_identity,
                "AWS::SES::ConfigurationSetEventDestination": self._ses_event_destination,
            },
            {
                "AWS::Lambda::EventSourceMapping": self._event_source_mapping,
                "AWS::Lambda::EventInvokeConfig": self._event_invoke_config,
                "AWS::Events::Rule": self._rule,
                "AWS::Scheduler::Schedule": self._schedule,
                "AWS::ApiGatewayV2::Api": self._http_api,
            },
        ]
        emulated = {kind for phase in phases for kind in phase}
        for logical_id, resource in self.resources.items():
            kind = resource["Type"]
            if kind in IGNORED_TYPES:
                self.model.ignored[logical_id] = kind
                if kind == "AWS::Scheduler::ScheduleGroup":  # schedules created at runtime go in it
                    self.model.schedule_groups.append(str(self._physical_of(logical_id).ref))
            elif kind not in emulated:
                self.problems.append(f"{logical_id}: resource type {kind}")
            elif kind != "AWS::Lambda::EventSourceMapping":  # its properties depend on its source
                self._check_properties(logical_id, kind)
        for phase in phases:
            for logical_id, resource in self.resources.items():
                if resource["Type"] in phase:
                    phase[resource["Type"]](logical_id, self.properties[logical_id])
        self._outputs()
        if self.problems:
            raise UnsupportedConstructsError(self.template_path, self.problems)
        return self.model

    def _check_properties(self, logical_id: str, kind: str) -> None:
        for name in sorted(set(self.properties[logical_id]) - EMULATED_PROPERTIES[kind]):
            self.problems.append(f"{logical_id}: property {name} of {kind}")
        notifications = self.properties[logical_id].get("NotificationConfiguration")
        if kind == "AWS::S3::Bucket" and isinstance(notifications, dict):
            # Only EventBridge notifications are delivered here (deploy._create_bucket); a queue,
            # topic or function configuration would be silently ignored.
            for name in sorted(set(notifications) - {"EventBridgeConfiguration"}):
                self.problems.append(f"{logical_id}: property NotificationConfiguration.{name} of {kind}")

    def _function(self, logical_id: str, props: dict[str, Any]) -> None:
        physical = self._physical_of(logical_id)
        self.rejected_functions.update({physical.ref, physical.attributes["Arn"]})
        runtime = str(props.get("Runtime", ""))
        if props.get("PackageType", "Zip") != "Zip":
            self.problems.append(f"{logical_id}: container image functions (PackageType {props['PackageType']})")
            return
        if not runtime.startswith("python"):
            self.problems.append(f"{logical_id}: runtime {runtime or '(none)'} (only Python handlers run locally)")
            return
        code = props.get("Code") or {}
        if code.get("S3Bucket") != LOCAL_CODE_BUCKET or code.get("S3Key") not in self.code_paths:
            self.problems.append(f"{logical_id}: code that is not a local directory (Code {json.dumps(code)})")
            return
        code_dir = self.code_paths[code["S3Key"]]
        if not code_dir.is_dir():
            LOG.warning("%s: CodeUri %s does not exist yet; invoking it will fail to import", logical_id, code_dir)
        environment = (props.get("Environment") or {}).get("Variables") or {}
        logging_config = props.get("LoggingConfig") or {}
        reserved = props.get("ReservedConcurrentExecutions")
        self.model.functions[logical_id] = FunctionSpec(
            logical_id=logical_id,
            name=physical.ref,
            arn=physical.attributes["Arn"],
            code_dir=code_dir,
            handler=str(props["Handler"]),
            runtime=runtime,
            timeout_s=int(props.get("Timeout", 3)),
            memory_mb=int(props.get("MemorySize", 128)),
            environment={str(k): _scalar_text(v) for k, v in environment.items()},
            reserved_concurrency=None if reserved is None else int(reserved),
            log_group=_optional_text(logging_config.get("LogGroup")),
            log_format=str(logging_config.get("LogFormat", "Text")),
        )
        self.rejected_functions.difference_update({physical.ref, physical.attributes["Arn"]})

    def _function_dead_letter(self, logical_id: str, props: dict[str, Any]) -> None:
        dead_letter = (props.get("DeadLetterConfig") or {}).get("TargetArn")
        if dead_letter and logical_id in self.model.functions:
            self._check_destination(logical_id, "DeadLetterConfig", dead_letter, ("sqs", "sns"))
            self.model.async_configs[logical_id] = AsyncInvokeConfig(dead_letter_arn=dead_letter)

    def _queue(self, logical_id: str, props: dict[str, Any]) -> None:
        physical = self._physical_of(logical_id)
        redrive = props.get("RedrivePolicy")
        if isinstance(redrive, str):
            props["RedrivePolicy"] = json.loads(redrive)
        self.model.queues.append(
            QueueSpec(
                logical_id=logical_id,
                name=physical.attributes["QueueName"],
                arn=physical.attributes["Arn"],
                properties=props,
            )
        )

    def _topic(self, logical_id: str, props: dict[str, Any]) -> None:
        physical = self._physical_of(logical_id)
        self.model.topics.append(
            TopicSpec(logical_id=logical_id, name=physical.attributes["TopicName"], arn=physical.ref, properties=props)
        )

    def _subscription(self, logical_id: str, props: dict[str, Any]) -> None:
        topic_arn = _scalar_text(props.get("TopicArn", ""))
        protocol = _scalar_text(props.get("Protocol", "")).lower()
        endpoint = _scalar_text(props.get("Endpoint", ""))
        if protocol != "sqs":
            self.problems.append(f"{logical_id}: SNS subscription with protocol {protocol} (only sqs is delivered)")
            return
        topic = next((topic for topic in self.model.topics if topic.arn == topic_arn), None)
        queue = next((queue for queue in self.model.queues if queue.arn == endpoint), None)
        if topic is None:
            self.problems.append(f"{logical_id}: subscription to topic {topic_arn}, which the template does not create")
        if queue is None:
            self.problems.append(f"{logical_id}: subscription of queue {endpoint}, which the template does not create")
        region = props.get("Region")
        if region is not None and region != self.region:
            self.problems.append(f"{logical_id}: subscription in region {region} (the local cloud has one region)")
        if topic is None or queue is None:
            return
        if _bool_property(queue.properties.get("FifoQueue")) and not _bool_property(topic.properties.get("FifoTopic")):
            # SNS refuses this subscription on AWS.
            self.problems.append(f"{logical_id}: a FIFO queue cannot subscribe to the standard topic {topic.name}")
            return
        policy = props.get("FilterPolicy")
        self.model.subscriptions.append(
            SubscriptionSpec(
                logical_id=logical_id,
                topic_arn=topic_arn,
                protocol=protocol,
                endpoint=endpoint,
                raw_message_delivery=_bool_property(props.get("RawMessageDelivery")),
                filter_policy=None if policy is None else _json_object(policy, f"{logical_id} FilterPolicy"),
                filter_policy_scope=_optional_text(props.get("FilterPolicyScope")),
            )
        )

    def _ses_configuration_set(self, logical_id: str, props: dict[str, Any]) -> None:
        name = self._physical_of(logical_id).ref
        self.model.ses_configuration_sets.append(SesConfigurationSetSpec(logical_id, name, props))

    def _ses_identity(self, logical_id: str, props: dict[str, Any]) -> None:
        identity = _scalar_text(props.get("EmailIdentity", ""))
        if not identity:
            self.problems.append(f"{logical_id}: AWS::SES::EmailIdentity without an EmailIdentity")
            return
        configuration_set = _optional_text((props.get("ConfigurationSetAttributes") or {}).get("ConfigurationSetName"))
        if configuration_set is not None and not self._has_configuration_set(configuration_set):
            self.problems.append(
                f"{logical_id}: default configuration set {configuration_set}, which the template does not create"
            )
        self.model.ses_identities.append(SesEmailIdentitySpec(logical_id, identity, configuration_set))

    def _has_configuration_set(self, name: str) -> bool:
        return any(spec.name == name for spec in self.model.ses_configuration_sets)

    def _ses_event_destination(self, logical_id: str, props: dict[str, Any]) -> None:
        configuration_set = _scalar_text(props.get("ConfigurationSetName", ""))
        destination = props.get("EventDestination") or {}
        for key in sorted(set(destination) - SES_EVENT_DESTINATION_KEYS):
            self.problems.append(f"{logical_id}: event destination property {key} (only SNS destinations publish)")
        if not self._has_configuration_set(configuration_set):
            self.problems.append(
                f"{logical_id}: event destination of configuration set {configuration_set}, "
                "which the template does not create"
            )
        types: list[str] = []
        for raw in destination.get("MatchingEventTypes") or []:
            normalised = _scalar_text(raw).replace("_", "").lower()
            if normalised not in SES_EVENT_TYPES:
                self.problems.append(f"{logical_id}: unknown MatchingEventTypes value {raw}")
            types.append(normalised)
        sns = destination.get("SnsDestination")
        if sns is None:
            # A CloudWatch-only destination: accepted, nothing to publish to locally.
            return
        topic_arn = _scalar_text(sns.get("TopicARN", ""))
        if not any(topic.arn == topic_arn for topic in self.model.topics):
            self.problems.append(f"{logical_id}: SNS destination {topic_arn}, which the template does not create")
            return
        self.model.ses_event_destinations.append(
            SesEventDestinationSpec(
                logical_id=logical_id,
                name=_scalar_text(destination.get("Name", logical_id)),
                configuration_set=configuration_set,
                topic_arn=topic_arn,
                matching_event_types=tuple(types),
                enabled=_bool_property(destination.get("Enabled", False)),
            )
        )

    def _bucket(self, logical_id: str, props: dict[str, Any]) -> None:
        self.model.buckets.append(
            BucketSpec(logical_id=logical_id, name=self._physical_of(logical_id).ref, properties=props)
        )

    def _delivery_stream(self, logical_id: str, props: dict[str, Any]) -> None:
        if props.get("DeliveryStreamType", "DirectPut") != "DirectPut":
            self.problems.append(f"{logical_id}: DeliveryStreamType other than DirectPut")
            return
        destination = props.get("ExtendedS3DestinationConfiguration")
        if not isinstance(destination, dict):
            self.problems.append(f"{logical_id}: a delivery stream without ExtendedS3DestinationConfiguration")
            return
        supported = _names(
            "BucketARN RoleARN Prefix ErrorOutputPrefix BufferingHints CompressionFormat "
            "DynamicPartitioningConfiguration ProcessingConfiguration DataFormatConversionConfiguration "
            "FileExtension CloudWatchLoggingOptions EncryptionConfiguration"
        )
        for name in sorted(set(destination) - supported):
            self.problems.append(f"{logical_id}: ExtendedS3DestinationConfiguration.{name}")
        keys: list[tuple[str, str]] = []
        deaggregate = False
        for processor in (destination.get("ProcessingConfiguration") or {}).get("Processors") or []:
            parameters = {p.get("ParameterName"): p.get("ParameterValue") for p in processor.get("Parameters") or []}
            if processor.get("Type") == "RecordDeAggregation" and parameters.get("SubRecordType") == "JSON":
                deaggregate = True
                continue
            if processor.get("Type") != "MetadataExtraction":
                self.problems.append(f"{logical_id}: a {processor.get('Type')} processor {parameters}")
                continue
            for parameter in processor.get("Parameters") or []:
                if parameter.get("ParameterName") == "MetadataExtractionQuery":
                    parsed = _field_query(str(parameter.get("ParameterValue", "")))
                    if parsed is None:
                        self.problems.append(f"{logical_id}: a MetadataExtractionQuery other than {{key:.field,...}}")
                    keys.extend(parsed or [])
        conversion = destination.get("DataFormatConversionConfiguration") or {}
        serializer = (conversion.get("OutputFormatConfiguration") or {}).get("Serializer") or {}
        parquet = _bool_property(conversion.get("Enabled", False))
        if parquet and "ParquetSerDe" not in serializer:
            self.problems.append(f"{logical_id}: a record format conversion other than to Parquet")
        bucket = _scalar_text(destination.get("BucketARN", "")).rsplit(":", 1)[-1]
        self.model.delivery_streams.append(
            DeliveryStreamSpec(
                logical_id=logical_id,
                name=self._physical_of(logical_id).ref,
                bucket=bucket,
                prefix=_scalar_text(destination.get("Prefix", "")),
                error_prefix=_scalar_text(destination.get("ErrorOutputPrefix", "")),
                partition_keys=tuple(keys),
                parquet=parquet,
                deaggregate=deaggregate,
                file_extension=_scalar_text(destination.get("FileExtension", "")),
                buffer_seconds=int((destination.get("BufferingHints") or {}).get("IntervalInSeconds", 300)),
            )
        )

    def _table(self, logical_id: str, props: dict[str, Any]) -> None:
        if props.get("KinesisStreamSpecification"):
            self.problems.append(f"{logical_id}: KinesisStreamSpecification of AWS::DynamoDB::Table")
        self.model.tables.append(
            TableSpec(logical_id=logical_id, name=self._physical_of(logical_id).ref, properties=props)
        )

    def _bus(self, logical_id: str, props: dict[str, Any]) -> None:
        physical = self._physical_of(logical_id)
        self.model.buses.append(BusSpec(logical_id=logical_id, name=physical.ref, arn=physical.attributes["Arn"]))

    def _event_source_mapping(self, logical_id: str, props: dict[str, Any]) -> None:
        source = str(props.get("EventSourceArn", ""))
        function = self.model.function_by_arn(_scalar_text(props.get("FunctionName", "")))
        if not any(queue.arn == source for queue in self.model.queues):
            origins = {
                ":dynamodb:": "a DynamoDB stream",
                ":kinesis:": "a Kinesis stream",
                ":sqs:": "a queue outside the template",
            }
            origin = next((text for marker, text in origins.items() if marker in source), source)
            self.problems.append(
                f"{logical_id}: event-source mapping from {origin} (only template SQS queues are polled)"
            )
            return
        self._check_properties(logical_id, "AWS::Lambda::EventSourceMapping")
        if function is None:
            self._problem_unless_rejected(
                logical_id, props.get("FunctionName"), "event-source mapping to a function outside the template"
            )
            return
        filters = ((props.get("FilterCriteria") or {}).get("Filters")) or []
        self.model.queue_mappings.append(
            QueueMappingSpec(
                logical_id=logical_id,
                queue_arn=source,
                function_id=function.logical_id,
                batch_size=int(props.get("BatchSize", 10)),
                batching_window_s=float(props.get("MaximumBatchingWindowInSeconds", 0)),
                report_batch_item_failures="ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []),
                maximum_concurrency=_optional_int((props.get("ScalingConfig") or {}).get("MaximumConcurrency")),
                enabled=props.get("Enabled", True) not in (False, "false"),
                filter_patterns=tuple(_json_object(f["Pattern"], f"{logical_id} FilterCriteria") for f in filters),
            )
        )

    def _event_invoke_config(self, logical_id: str, props: dict[str, Any]) -> None:
        function = self.model.function_by_arn(_scalar_text(props.get("FunctionName", "")))
        if function is None:
            self._problem_unless_rejected(
                logical_id, props.get("FunctionName"), "EventInvokeConfig of a function outside the template"
            )
            return
        destinations = props.get("DestinationConfig") or {}
        on_success = (destinations.get("OnSuccess") or {}).get("Destination")
        on_failure = (destinations.get("OnFailure") or {}).get("Destination")
        for name, arn in (("OnSuccess", on_success), ("OnFailure", on_failure)):
            if arn:
                self._check_destination(logical_id, name, arn, ("sqs", "sns", "lambda", "events"))
        base = self.model.async_configs.get(function.logical_id, AsyncInvokeConfig())
        self.model.async_configs[function.logical_id] = AsyncInvokeConfig(
            max_retry_attempts=int(props.get("MaximumRetryAttempts", base.max_retry_attempts)),
            max_event_age_s=int(props.get("MaximumEventAgeInSeconds", base.max_event_age_s)),
            dead_letter_arn=base.dead_letter_arn,
            on_success_arn=on_success,
            on_failure_arn=on_failure,
        )

    def _problem_unless_rejected(self, logical_id: str, reference: Any, problem: str) -> None:
        if not self._refers_to_rejected(str(reference)):
            self.problems.append(f"{logical_id}: {problem}")

    def _refers_to_rejected(self, reference: str) -> bool:
        return any(reference == name or reference.startswith(f"{name}:") for name in self.rejected_functions)

    def _check_destination(self, logical_id: str, what: str, arn: str, services: tuple[str, ...]) -> None:
        if self._refers_to_rejected(arn):
            return
        if not self._known_target(arn, services):
            self.problems.append(
                f"{logical_id}: {what} {arn} (locally a target must be a template {'/'.join(services)})"
            )

    def _known_target(self, arn: str, services: tuple[str, ...]) -> bool:
        known = {
            "lambda": [fn.arn for fn in self.model.functions.values()],
            "sqs": [queue.arn for queue in self.model.queues],
            "sns": [topic.arn for topic in self.model.topics],
            "events": [bus.arn for bus in self.model.buses] + [_bus_arn("default", self.region, ACCOUNT_ID)],
        }
        if "lambda" in services and self.model.function_by_arn(arn) is not None:
            return True
        return any(arn in known[service] for service in services)

    def _rule(self, logical_id: str, props: dict[str, Any]) -> None:
        physical = self._physical_of(logical_id)
        pattern = props.get("EventPattern")
        if isinstance(pattern, str):
            pattern = _json_object(pattern, f"{logical_id} EventPattern")
        targets: list[RuleTarget] = []
        for index, target in enumerate(props.get("Targets") or []):
            where = f"{logical_id}.Targets[{index}]"
            for key in sorted(set(target) - RULE_TARGET_KEYS):
                self.problems.append(f"{where}: target property {key}")
            arn = str(target.get("Arn", ""))
            if not self._known_target(arn, ("lambda", "sqs", "sns", "events")):
                self._problem_unless_rejected(
                    where, arn, f"target {arn} (locally: a template function, queue, topic or bus)"
                )
                continue
            retry = target.get("RetryPolicy") or {}
            targets.append(
                RuleTarget(
                    target_id=str(target.get("Id", index)),
                    arn=arn,
                    input=_optional_text(target.get("Input")),
                    input_path=_optional_text(target.get("InputPath")),
                    input_transformer=target.get("InputTransformer"),
                    dead_letter_arn=(target.get("DeadLetterConfig") or {}).get("Arn"),
                    # EventBridge's default retry policy: 185 attempts over 24 hours.
                    max_retry_attempts=int(retry.get("MaximumRetryAttempts", 185)),
                    message_group_id=(target.get("SqsParameters") or {}).get("MessageGroupId"),
                )
            )
        bus_name = _bus_name(_scalar_text(props.get("EventBusName", "default")))
        if bus_name != "default" and not any(bus.name == bus_name for bus in self.model.buses):
            self.problems.append(f"{logical_id}: rule on event bus {bus_name}, which the template does not create")
        self.model.rules.append(
            EventRuleSpec(
                logical_id=logical_id,
                name=physical.ref,
                bus_name=bus_name,
                event_pattern=pattern,
                schedule_expression=_optional_text(props.get("ScheduleExpression")),
                enabled=props.get("State", "ENABLED") != "DISABLED",
                targets=tuple(targets),
                arn=physical.attributes["Arn"],
            )
        )

    def _schedule(self, logical_id: str, props: dict[str, Any]) -> None:
        physical = self._physical_of(logical_id)
        target = props.get("Target") or {}
        for key in sorted(set(target) - SCHEDULE_TARGET_KEYS):
            self.problems.append(f"{logical_id}: schedule target property {key}")
        arn = str(target.get("Arn", ""))
        if not self._known_target(arn, ("lambda", "sqs", "sns")):
            self._problem_unless_rejected(
                logical_id, arn, f"schedule target {arn} (locally: a template function, queue or topic)"
            )
            return
        self.model.schedules.append(
            ScheduleSpec(
                logical_id=logical_id,
                name=physical.ref,
                expression=str(props["ScheduleExpression"]),
                timezone=str(props.get("ScheduleExpressionTimezone", "UTC")),
                target_arn=arn,
                input=_optional_text(target.get("Input")),
                enabled=props.get("State", "ENABLED") != "DISABLED",
                start_date=_optional_text(props.get("StartDate")),
                end_date=_optional_text(props.get("EndDate")),
                arn=physical.attributes["Arn"],
                max_retry_attempts=int((target.get("RetryPolicy") or {}).get("MaximumRetryAttempts", 185)),
                dead_letter_arn=(target.get("DeadLetterConfig") or {}).get("Arn"),
                message_group_id=(target.get("SqsParameters") or {}).get("MessageGroupId"),
            )
        )

    def _http_api(self, logical_id: str, props: dict[str, Any]) -> None:
        api_id = self._physical_of(logical_id).ref
        if props.get("ProtocolType", "HTTP") != "HTTP":
            self.problems.append(f"{logical_id}: {props['ProtocolType']} API (only HTTP APIs are served)")
            return
        body = props.get("Body")
        if not isinstance(body, dict):
            self.problems.append(f"{logical_id}: an HTTP API without an OpenAPI Body (quick-create or BodyS3Location)")
            return
        schemes = ((body.get("components") or {}).get("securitySchemes")) or {}
        if schemes:
            self.problems.append(f"{logical_id}: HttpApi authorizers ({', '.join(sorted(schemes))})")
        routes: list[HttpRoute] = []
        for path, operations in (body.get("paths") or {}).items():
            for method, operation in (operations or {}).items():
                if method == "parameters":
                    continue
                verb = "ANY" if method == "x-amazon-apigateway-any-method" else method.upper()
                route = f"{logical_id}: route {verb} {path}"
                security = [name for requirement in operation.get("security") or [] for name in requirement]
                if any(name != "NONE" for name in security):
                    self.problems.append(f"{route} uses authorizer {', '.join(security)}")
                integration = operation.get("x-amazon-apigateway-integration") or {}
                match = _INTEGRATION_URI.match(str(integration.get("uri", "")))
                function = self.model.function_by_arn(match.group("fn")) if match else None
                if integration.get("type", "").lower() != "aws_proxy" or function is None:
                    reference = match.group("fn") if match else ""
                    self._problem_unless_rejected(
                        route, reference, "integration other than a Lambda proxy to a template function"
                    )
                    continue
                payload_format = str(integration.get("payloadFormatVersion", "2.0"))
                if payload_format != "2.0":
                    self.problems.append(f"{route}: payload format {payload_format} (the gateway serves 2.0)")
                    continue
                routes.append(
                    HttpRoute(
                        method=verb,
                        path=path,
                        function_id=function.logical_id,
                        payload_format=payload_format,
                    )
                )
        stage, throttle_rate, throttle_burst = self._stage_of(api_id)
        self.model.http_apis.append(
            HttpApiSpec(
                logical_id=logical_id,
                api_id=api_id,
                stage=stage,
                routes=tuple(routes),
                cors=_cors(body.get("x-amazon-apigateway-cors") or props.get("CorsConfiguration")),
                throttle_rate=throttle_rate,
                throttle_burst=throttle_burst,
            )
        )

    def _stage_of(self, api_id: str) -> tuple[str, float | None, int | None]:
        for logical_id, resource in self.resources.items():
            props = self.properties[logical_id]
            if resource["Type"] != "AWS::ApiGatewayV2::Stage" or props.get("ApiId") != api_id:
                continue
            for unsupported in ("RouteSettings", "StageVariables"):
                if props.get(unsupported):
                    self.problems.append(f"{logical_id}: property {unsupported} of AWS::ApiGatewayV2::Stage")
            settings = props.get("DefaultRouteSettings") or {}
            rate = settings.get("ThrottlingRateLimit")
            burst = settings.get("ThrottlingBurstLimit")
            return (
                str(props.get("StageName", "$default")),
                None if rate is None else float(rate),
                None if burst is None else int(burst),
            )
        return "$default", None, None

    def _outputs(self) -> None:
        for name, output in self.outputs_section.items():
            if "Condition" in output and not self.resolver.condition(output["Condition"]):
                continue
            value = self.resolver.resolve(output.get("Value"), f"Outputs.{name}")
            self.model.outputs[name] = value if isinstance(value, str) else json.dumps(value)


def _cors(raw: Mapping[str, Any] | None) -> CorsConfig | None:
    if not raw:
        return None
    # The OpenAPI extension spells keys in camelCase, the CloudFormation property in PascalCase.
    lookup = {key.lower(): value for key, value in raw.items()}

    def strings(key: str) -> tuple[str, ...]:
        return tuple(str(item) for item in lookup.get(key) or ())

    max_age = lookup.get("maxage")
    return CorsConfig(
        allow_origins=strings("alloworigins"),
        allow_methods=strings("allowmethods"),
        allow_headers=strings("allowheaders"),
        expose_headers=strings("exposeheaders"),
        max_age=None if max_age is None else int(max_age),
        allow_credentials=lookup.get("allowcredentials") in (True, "true"),
    )


def _short_id(seed: str, length: int = 10) -> str:
    digest = hashlib.sha256(seed.encode()).digest()
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(alphabet[byte % len(alphabet)] for byte in digest[:length])


def _function_arn(name_or_arn: str, region: str, account: str) -> str:
    if name_or_arn.startswith("arn:"):
        return name_or_arn
    return f"arn:aws:lambda:{region}:{account}:function:{name_or_arn}"


def _bus_arn(name: str, region: str, account: str) -> str:
    return f"arn:aws:events:{region}:{account}:event-bus/{name}"


def _bus_name(name_or_arn: str) -> str:
    return name_or_arn.split("event-bus/", 1)[1] if name_or_arn.startswith("arn:") else name_or_arn


def _optional_text(value: Any) -> str | None:
    return None if value is None else str(value)


def _bool_property(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _json_object(text: Any, where: str) -> dict[str, Any]:
    if isinstance(text, dict):
        return text
    try:
        value = json.loads(str(text))
    except json.JSONDecodeError as error:
        raise TemplateError(f"{where} is not valid JSON: {error}") from error
    if not isinstance(value, dict):
        raise TemplateError(f"{where} must be a JSON object")
    return value


_PAIR = r"([A-Za-z_]\w*)\s*:\s*\.([A-Za-z_]\w*)"
_FIELD_QUERY = re.compile(rf"^\{{\s*{_PAIR}\s*(?:,\s*{_PAIR}\s*)*\}}$")
_FIELD_PAIR = re.compile(_PAIR)


def _field_query(query: str) -> list[tuple[str, str]] | None:
    """A JQ metadata query of the form `{key:.field,...}` as (key, field) pairs; None otherwise."""
    if not _FIELD_QUERY.match(query.strip()):
        return None
    return _FIELD_PAIR.findall(query)
