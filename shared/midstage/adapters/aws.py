"""boto3 clients, created lazily and cached per container (never at import time).

Every client honours AWS_ENDPOINT_URL, so the same code runs against the local cloud,
LocalStack or AWS with no change.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_kinesis import KinesisClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_scheduler import EventBridgeSchedulerClient as SchedulerClient
    from mypy_boto3_ses import SESClient
    from mypy_boto3_sesv2 import SESV2Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

_CONFIG = Config(retries={"mode": "adaptive", "max_attempts": 8}, connect_timeout=3, read_timeout=10)


# For the calls that send a message (SES SendEmail, SNS Publish): botocore retries nothing, since
# its retries include a read timeout, after which the provider may already have the message and
# the retry would be a second email. providers/errors.py `once` retries what is safe to retry.
# Its timeouts bound one attempt (2 s + 5 s; SES and SNS answer in well under a second), so a send
# with its retries fits the deliver function's START_WITH_S.
_SEND_CONFIG = Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=2, read_timeout=5)


@cache
def _client(service: str, region: str | None = None, *, sending: bool = False, signature: str | None = None) -> Any:
    config = _SEND_CONFIG if sending else _CONFIG
    if signature:
        config = config.merge(Config(signature_version=signature))
    return boto3.session.Session().client(service, region_name=region, config=config)  # type: ignore[call-overload]


def dynamodb() -> DynamoDBClient:
    client: DynamoDBClient = _client("dynamodb")
    return client


def sqs() -> SQSClient:
    client: SQSClient = _client("sqs")
    return client


def events() -> EventBridgeClient:
    client: EventBridgeClient = _client("events")
    return client


def kinesis(region: str) -> KinesisClient:
    """A client of `region`: a stream is written to through its own region's endpoint."""
    client: KinesisClient = _client("kinesis", region)
    return client


def ses() -> SESClient:
    """SES's first API: only for what SES v2 does not answer the same way everywhere (the send quota)."""
    client: SESClient = _client("ses")
    return client


def sesv2() -> SESV2Client:
    client: SESV2Client = _client("sesv2")
    return client


def sns() -> SNSClient:
    client: SNSClient = _client("sns")
    return client


def sesv2_sender() -> SESV2Client:
    """SES v2 for sending: no botocore retries (see _SEND_CONFIG)."""
    client: SESV2Client = _client("sesv2", sending=True)
    return client


def sns_sender() -> SNSClient:
    """SNS for publishing messages to people: no botocore retries (see _SEND_CONFIG)."""
    client: SNSClient = _client("sns", sending=True)
    return client


def scheduler() -> SchedulerClient:
    client: SchedulerClient = _client("scheduler")
    return client


def s3() -> S3Client:
    client: S3Client = _client("s3")
    return client


def s3_presigning() -> S3Client:
    """S3 with Signature Version 4, so a presigned URL signs its headers (the content type and
    length of an upload); botocore would sign URLs in us-east-1 with the older scheme."""
    client: S3Client = _client("s3", signature="s3v4")
    return client


def firehose() -> Any:
    return _client("firehose")
