"""Create the model's resources in moto, the way CloudFormation would create them on AWS.

Also installs the event "taps": one catch-all rule per event bus that copies every event put on
the bus to an SQS queue, so that events really go through moto's PutEvents and the local cloud
matches them against the template's rules itself (moto's own matcher and targets are not used).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import boto3
import botocore.session
from botocore.config import Config

from infra.localcloud.model import CloudModel, QueueSpec, SubscriptionSpec, TableSpec

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sesv2 import SESV2Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

# SES v1's spelling of each event type (the model keeps them lower-cased without underscores).
_V1_EVENT_TYPES = {
    "send": "send",
    "reject": "reject",
    "bounce": "bounce",
    "complaint": "complaint",
    "delivery": "delivery",
    "open": "open",
    "click": "click",
    "renderingfailure": "renderingFailure",
    "deliverydelay": "deliveryDelay",
    "subscription": "subscription",
}
# SQS attribute names that CloudFormation properties map to one-to-one.
_QUEUE_ATTRIBUTES = (
    "VisibilityTimeout",
    "MessageRetentionPeriod",
    "DelaySeconds",
    "MaximumMessageSize",
    "ReceiveMessageWaitTimeSeconds",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "SqsManagedSseEnabled",
)


def local_session(region: str) -> boto3.session.Session:
    """A boto3 session with moto's dummy credentials that ignores the developer's AWS_PROFILE.

    A profile named in the environment (perhaps one this machine does not even have) must not
    decide anything about the local cloud.
    """
    isolated = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
    return boto3.session.Session(
        botocore_session=isolated,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto's dummy credentials
        region_name=region,
    )


class AwsClients:
    """boto3 clients against one endpoint (moto), with the dummy credentials moto accepts.

    Clients are created once per service and shared: botocore clients are thread-safe, and the
    pool is sized for the poller threads that long-poll through the same client.
    """

    def __init__(self, endpoint_url: str, region: str) -> None:
        self.endpoint_url = endpoint_url
        self.region = region
        self._session = local_session(region)
        self._config = Config(max_pool_connections=64, retries={"max_attempts": 3, "mode": "standard"})
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def client(self, service: str) -> Any:
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self._session.client(
                    service,  # type: ignore[call-overload]
                    endpoint_url=self.endpoint_url,
                    config=self._config,
                )
            return self._clients[service]

    def sqs(self) -> SQSClient:
        client: SQSClient = self.client("sqs")
        return client

    def sns(self) -> SNSClient:
        client: SNSClient = self.client("sns")
        return client

    def events(self) -> EventBridgeClient:
        client: EventBridgeClient = self.client("events")
        return client

    def dynamodb(self) -> DynamoDBClient:
        client: DynamoDBClient = self.client("dynamodb")
        return client

    def s3(self) -> S3Client:
        client: S3Client = self.client("s3")
        return client

    def sesv2(self) -> SESV2Client:
        client: SESV2Client = self.client("sesv2")
        return client


@dataclass
class Deployment:
    """What moto answered while the resources were created."""

    queue_urls: dict[str, str] = field(default_factory=dict)  # queue ARN -> URL
    tap_urls: dict[str, str] = field(default_factory=dict)  # bus name -> URL of its tap queue


def deploy(model: CloudModel, clients: AwsClients, *, ses_identities: Sequence[str] = ()) -> Deployment:
    """Create the model's resources; `ses_identities` are verified too (on AWS, outside the stack)."""
    deployment = Deployment()
    for table in model.tables:
        _create_table(clients.dynamodb(), table)
    # Redrive policies name their dead-letter queue by ARN, so every queue exists before any is wired.
    for queue in model.queues:
        deployment.queue_urls[queue.arn] = _create_queue(clients.sqs(), queue)
    for queue in model.queues:
        _set_redrive(clients.sqs(), queue, deployment.queue_urls[queue.arn])
    for topic in model.topics:
        properties = topic.properties
        request: dict[str, Any] = {
            "Name": topic.name,
            "Attributes": {
                key: _attribute_text(properties[key])
                for key in ("DisplayName", "FifoTopic", "ContentBasedDeduplication", "KmsMasterKeyId")
                if key in properties
            },
            "Tags": _tags(properties),
        }
        clients.sns().create_topic(**request)
    for subscription in model.subscriptions:
        _subscribe(clients.sns(), subscription)
    _create_ses(model, clients, ses_identities)
    for bucket in model.buckets:
        _create_bucket(clients.s3(), bucket.name, bucket.properties, model.region)
    for stream in model.delivery_streams:
        # moto's own stream: what a plain moto deployment (the integration tier) writes to. The
        # local cloud answers the stream's calls itself (firehose.py) and never reaches it.
        clients.client("firehose").create_delivery_stream(
            DeliveryStreamName=stream.name,
            DeliveryStreamType="DirectPut",
            ExtendedS3DestinationConfiguration={
                "BucketARN": f"arn:aws:s3:::{stream.bucket}",
                "RoleARN": f"arn:aws:iam::{model.account_id}:role/{stream.name}",
                "Prefix": "firehose-raw/",
            },
        )
    for bus in model.buses:
        if bus.name != "default":
            clients.events().create_event_bus(Name=bus.name)
    for group in model.schedule_groups:
        clients.client("scheduler").create_schedule_group(Name=group)
    tapped = sorted({rule.bus_name for rule in model.rules if rule.event_pattern is not None})
    for bus_name in tapped:
        deployment.tap_urls[bus_name] = _install_tap(clients, model, bus_name)
    return deployment


def _subscribe(sns: SNSClient, subscription: SubscriptionSpec) -> None:
    attributes: dict[str, str] = {}
    # moto reads any value of RawMessageDelivery as true, so "false" is left out rather than sent.
    if subscription.raw_message_delivery:
        attributes["RawMessageDelivery"] = "true"
    if subscription.filter_policy_scope is not None:
        attributes["FilterPolicyScope"] = subscription.filter_policy_scope
    if subscription.filter_policy is not None:
        attributes["FilterPolicy"] = json.dumps(subscription.filter_policy)
    sns.subscribe(
        TopicArn=subscription.topic_arn,
        Protocol=subscription.protocol,
        Endpoint=subscription.endpoint,
        Attributes=attributes,
        ReturnSubscriptionArn=True,
    )


def _create_ses(model: CloudModel, clients: AwsClients, extra_identities: Sequence[str]) -> None:
    sesv2 = clients.sesv2()
    for spec in model.ses_configuration_sets:
        tags = [{"Key": tag["Key"], "Value": tag["Value"]} for tag in _tags(spec.properties)]
        sesv2.create_configuration_set(ConfigurationSetName=spec.name, Tags=tags)  # type: ignore[arg-type]
    # Every identity is verified at once: there is no DNS or mailbox to confirm locally.
    identities: dict[str, str | None] = {identity: None for identity in extra_identities}
    identities.update({identity.identity: identity.configuration_set for identity in model.ses_identities})
    for identity, configuration_set in identities.items():
        request: dict[str, Any] = {"EmailIdentity": identity}
        if configuration_set is not None:
            request["ConfigurationSetName"] = configuration_set
        sesv2.create_email_identity(**request)
    # moto's SES v2 has no event destinations; its v1 API keeps them, so they show in
    # DescribeConfigurationSet. Nothing publishes to them: see LocalCloud.simulate_ses_event.
    for destination in model.ses_event_destinations:
        clients.client("ses").create_configuration_set_event_destination(
            ConfigurationSetName=destination.configuration_set,
            EventDestination={
                "Name": destination.name,
                "Enabled": destination.enabled,
                "MatchingEventTypes": [_V1_EVENT_TYPES[kind] for kind in destination.matching_event_types],
                "SNSDestination": {"TopicARN": destination.topic_arn},
            },
        )


def _create_table(dynamodb: DynamoDBClient, table: TableSpec) -> None:
    properties = table.properties
    billing = properties.get("BillingMode", "PROVISIONED")
    request: dict[str, Any] = {
        "TableName": table.name,
        "AttributeDefinitions": properties["AttributeDefinitions"],
        "KeySchema": properties["KeySchema"],
        "BillingMode": billing,
    }
    if billing == "PROVISIONED":
        request["ProvisionedThroughput"] = _throughput(properties.get("ProvisionedThroughput"))
    if properties.get("GlobalSecondaryIndexes"):
        request["GlobalSecondaryIndexes"] = [
            _index(index, billing, with_throughput=True) for index in properties["GlobalSecondaryIndexes"]
        ]
    if properties.get("LocalSecondaryIndexes"):
        request["LocalSecondaryIndexes"] = [
            _index(index, billing, with_throughput=False) for index in properties["LocalSecondaryIndexes"]
        ]
    stream = properties.get("StreamSpecification")
    if stream:
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
    if "TableClass" in properties:
        request["TableClass"] = properties["TableClass"]
    if "DeletionProtectionEnabled" in properties:
        request["DeletionProtectionEnabled"] = _bool(properties["DeletionProtectionEnabled"])
    tags = _tags(properties)
    if tags:
        request["Tags"] = tags
    dynamodb.create_table(**request)
    ttl = properties.get("TimeToLiveSpecification") or {}
    if _bool(ttl.get("Enabled", False)):
        dynamodb.update_time_to_live(
            TableName=table.name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
        )


def _throughput(raw: dict[str, Any] | None) -> dict[str, int]:
    raw = raw or {}
    return {
        "ReadCapacityUnits": int(raw.get("ReadCapacityUnits", 5)),
        "WriteCapacityUnits": int(raw.get("WriteCapacityUnits", 5)),
    }


def _index(raw: dict[str, Any], billing: str, *, with_throughput: bool) -> dict[str, Any]:
    index: dict[str, Any] = {key: raw[key] for key in ("IndexName", "KeySchema", "Projection") if key in raw}
    if with_throughput and billing == "PROVISIONED":
        index["ProvisionedThroughput"] = _throughput(raw.get("ProvisionedThroughput"))
    return index


def _create_queue(sqs: SQSClient, queue: QueueSpec) -> str:
    properties = queue.properties
    attributes = {key: _attribute_text(properties[key]) for key in _QUEUE_ATTRIBUTES if key in properties}
    if "RedriveAllowPolicy" in properties:
        attributes["RedriveAllowPolicy"] = _json_text(properties["RedriveAllowPolicy"])
    request: dict[str, Any] = {"QueueName": queue.name, "Attributes": attributes}
    tags = {tag["Key"]: tag["Value"] for tag in _tags(properties)}
    if tags:
        request["tags"] = tags
    url: str = sqs.create_queue(**request)["QueueUrl"]
    return url


def _set_redrive(sqs: SQSClient, queue: QueueSpec, url: str) -> None:
    redrive = queue.properties.get("RedrivePolicy")
    if redrive:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"RedrivePolicy": _json_text(redrive)})


def _create_bucket(s3: S3Client, name: str, properties: dict[str, Any], region: str) -> None:
    if region == "us-east-1":
        s3.create_bucket(Bucket=name)
    else:
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})  # type: ignore[typeddict-item]
    versioning = (properties.get("VersioningConfiguration") or {}).get("Status")
    if versioning:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": versioning})
    tagging: dict[str, Any] = {"TagSet": _tags(properties)}
    if tagging["TagSet"]:
        s3.put_bucket_tagging(Bucket=name, Tagging=tagging)  # type: ignore[arg-type]
    # EventBridge notifications: moto then puts an "Object Created" event for each new object
    # on the buses, where the taps carry it to the template's rules (bulk imports start so).
    notifications = properties.get("NotificationConfiguration") or {}
    if _bool((notifications.get("EventBridgeConfiguration") or {}).get("EventBridgeEnabled")):
        s3.put_bucket_notification_configuration(
            Bucket=name, NotificationConfiguration={"EventBridgeConfiguration": {}}
        )


def _install_tap(clients: AwsClients, model: CloudModel, bus_name: str) -> str:
    sqs = clients.sqs()
    # Named after the stack, so that clouds sharing moto (and the default bus) keep separate taps.
    tap = re.sub(r"[^A-Za-z0-9_-]", "-", f"{model.stack_name}-localcloud-tap")[:64]
    queue_name = re.sub(r"[^A-Za-z0-9_-]", "-", f"{tap}-{bus_name}")[:80]
    url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = clients.events()
    # Every event PutEvents accepts on this bus carries our account, so this pattern copies them all.
    events.put_rule(
        Name=tap,
        EventBusName=bus_name,
        EventPattern=json.dumps({"account": [model.account_id]}),
        Description="Local cloud: copies every event to a queue; template rules are matched locally.",
    )
    events.put_targets(Rule=tap, EventBusName=bus_name, Targets=[{"Id": "tap", "Arn": arn}])
    return url


def _tags(properties: dict[str, Any]) -> list[dict[str, str]]:
    tags = properties.get("Tags") or []
    if isinstance(tags, dict):  # some resource types take a map instead of a list
        return [{"Key": str(k), "Value": str(v)} for k, v in tags.items()]
    return [{"Key": str(tag["Key"]), "Value": str(tag["Value"])} for tag in tags]


def _attribute_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _json_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _bool(value: Any) -> bool:
    return value is True or str(value).lower() == "true"
