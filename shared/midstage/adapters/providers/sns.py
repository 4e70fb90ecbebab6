"""SMS and mobile push through SNS."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from midstage.adapters import aws
from midstage.adapters.providers.errors import (
    CONFIGURATION,
    HEADER_UNSAFE,
    PERMANENT,
    ProviderError,
    brief,
    classify,
    client_error_parts,
    once,
    transport_error,
)

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sns.type_defs import MessageAttributeValueTypeDef

E164 = re.compile(r"^\+[1-9]\d{6,14}$")  # used with fullmatch: "$" alone would accept a trailing newline
SMS_TYPES = frozenset({"Transactional", "Promotional"})
_SENDER_ID = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9-]{1,11}$")  # SNS: 1-11 alphanumerics, at least one letter
_SMS_MAX_BYTES = 1600  # SNS refuses longer messages (they would be split into at most ten parts)


def _string_attribute(value: str) -> MessageAttributeValueTypeDef:
    return {"DataType": "String", "StringValue": value}


class SmsSender:
    def __init__(self, client: SNSClient | None = None) -> None:
        self._client = client

    @property
    def client(self) -> SNSClient:
        if self._client is None:
            self._client = aws.sns_sender()
        return self._client

    def send(
        self,
        phone: str,
        body: str,
        sms_type: str,
        sender_id: str | None = None,
        origination_number: str | None = None,
    ) -> str:
        """Publish one SMS; returns the SNS message id. `sms_type` is "Transactional" or "Promotional"."""
        if sms_type not in SMS_TYPES:
            raise ValueError(f"sms_type must be one of {sorted(SMS_TYPES)}, not {sms_type!r}")
        if not isinstance(phone, str) or not E164.fullmatch(phone):
            raise ProviderError(PERMANENT, f"not an E.164 phone number: {brief(str(phone), 40)!r}")
        if not body.strip():
            raise ProviderError(PERMANENT, "SMS body is empty")
        if len(body.encode()) > _SMS_MAX_BYTES:
            raise ProviderError(PERMANENT, f"SMS body is over SNS's {_SMS_MAX_BYTES}-byte limit")
        attributes: dict[str, MessageAttributeValueTypeDef] = {"AWS.SNS.SMS.SMSType": _string_attribute(sms_type)}
        if sender_id is not None:
            if not _SENDER_ID.fullmatch(sender_id):
                raise ProviderError(
                    CONFIGURATION, f"SMS sender ID {sender_id!r} must be 1-11 letters, digits or '-', with a letter"
                )
            attributes["AWS.SNS.SMS.SenderID"] = _string_attribute(sender_id)
        if origination_number is not None:
            if not E164.fullmatch(origination_number):
                raise ProviderError(CONFIGURATION, f"origination number {origination_number!r} is not E.164")
            attributes["AWS.MM.SMS.OriginationNumber"] = _string_attribute(origination_number)
        try:
            answer = once(lambda: self.client.publish(PhoneNumber=phone, Message=body, MessageAttributes=attributes))
        except ClientError as error:
            raise classify(error, "SNS") from error
        except BotoCoreError as error:
            raise transport_error(error, "SNS") from error
        return answer["MessageId"]


# ------------------------------------------------------------------------------------------------- push

_APPLICATION_PLATFORM = re.compile(r":app/([A-Z_]+)/")
_PUSH_KEYS = ("APNS", "APNS_SANDBOX", "GCM")
_PUSH_MAX_BYTES = 4096  # APNs and FCM both refuse larger payloads
# SNS names the existing endpoint when the same token is registered with different attributes.
_EXISTING_ENDPOINT = re.compile(r"Endpoint (arn:[^ ]+) already exists")
_ENDPOINT_CACHE_LIMIT = 10_000


def _apns_payload(title: str, body: str, data: Mapping[str, Any]) -> dict[str, Any]:
    if "aps" in data:
        raise ProviderError(PERMANENT, "push data may not contain the key 'aps' (APNs reserves it)")
    return {"aps": {"alert": {"title": title, "body": body}}, **data}


def _gcm_payload(title: str, body: str, data: Mapping[str, Any]) -> dict[str, Any]:
    # FCM data values must be strings; structured values travel as JSON text.
    strings = {key: value if isinstance(value, str) else json.dumps(value, default=str) for key, value in data.items()}
    return {"notification": {"title": title, "body": body}, "data": strings}


class PushSender:
    """Mobile push through SNS platform endpoints, one endpoint per device token."""

    def __init__(self, applications: Mapping[str, str], client: SNSClient | None = None) -> None:
        self.applications = dict(applications)  # platform ("ios", "android") -> platform application ARN
        self._client = client
        self._endpoints: dict[tuple[str, str], str] = {}

    @property
    def client(self) -> SNSClient:
        if self._client is None:
            self._client = aws.sns_sender()
        return self._client

    def _application(self, platform: str) -> str:
        application = self.applications.get(platform)
        if not application:
            raise ProviderError(
                CONFIGURATION, f"no SNS platform application is configured for push platform {platform!r}"
            )
        return application

    def _create_endpoint(self, platform: str, token: str) -> str:
        if not token or len(token) > 4096 or HEADER_UNSAFE.search(token) or token != token.strip():
            raise ProviderError(PERMANENT, "push token is empty or malformed")
        application = self._application(platform)
        try:
            arn = once(
                lambda: self.client.create_platform_endpoint(PlatformApplicationArn=application, Token=token),
                idempotent=True,
            )["EndpointArn"]
        except ClientError as error:
            code, message, _ = client_error_parts(error)
            existing = _EXISTING_ENDPOINT.search(message) if code == "InvalidParameter" else None
            if existing is None:
                raise _sns_push_error(error) from error
            arn = existing.group(1)
        except BotoCoreError as error:
            raise transport_error(error, "SNS") from error
        if len(self._endpoints) >= _ENDPOINT_CACHE_LIMIT:
            self._endpoints.clear()
        self._endpoints[(platform, token)] = arn
        return arn

    def endpoint_for(self, platform: str, token: str) -> str:
        """The endpoint ARN for a device token, created if new and re-enabled if the push service disabled it.

        This is the registration path: a device presenting the token again proves it is live, which is
        when AWS advises re-enabling. `send` deliberately does not, so a dead token stays dead.
        """
        arn = self._create_endpoint(platform, token)
        try:
            attributes = once(lambda: self.client.get_endpoint_attributes(EndpointArn=arn), idempotent=True)[
                "Attributes"
            ]
            if attributes.get("Enabled", "true").lower() != "true" or attributes.get("Token", token) != token:
                once(
                    lambda: self.client.set_endpoint_attributes(
                        EndpointArn=arn, Attributes={"Token": token, "Enabled": "true"}
                    ),
                    idempotent=True,
                )
        except ClientError as error:
            raise _sns_push_error(error) from error
        except BotoCoreError as error:
            raise transport_error(error, "SNS") from error
        return arn

    def payload(self, platform: str, title: str, body: str, data: Mapping[str, Any] | None = None) -> str:
        """The MessageStructure=json message: one payload per push service the application can be."""
        application = self._application(platform)
        found = _APPLICATION_PLATFORM.search(application)
        keys: tuple[str, ...] = (found.group(1),) if found else _PUSH_KEYS
        if any(key not in _PUSH_KEYS for key in keys):
            raise ProviderError(CONFIGURATION, f"push platform {keys[0]} of {application} is not supported")
        data = data or {}
        message: dict[str, str] = {"default": body}
        for key in keys:
            content = _gcm_payload(title, body, data) if key == "GCM" else _apns_payload(title, body, data)
            encoded = json.dumps(content, separators=(",", ":"), ensure_ascii=False, default=str)
            if len(encoded.encode()) > _PUSH_MAX_BYTES:
                raise ProviderError(PERMANENT, f"{key} push payload is over {_PUSH_MAX_BYTES} bytes")
            message[key] = encoded
        return json.dumps(message, separators=(",", ":"), ensure_ascii=False)

    def send(self, platform: str, token: str, title: str, body: str, data: Mapping[str, Any] | None = None) -> str:
        """Publish one notification to a device token; returns the SNS message id."""
        message = self.payload(platform, title, body, data)
        arn = self._endpoints.get((platform, token)) or self._create_endpoint(platform, token)
        try:
            answer = once(lambda: self.client.publish(TargetArn=arn, Message=message, MessageStructure="json"))
        except ClientError as error:
            self._endpoints.pop((platform, token), None)
            raise _sns_push_error(error) from error
        except BotoCoreError as error:
            raise transport_error(error, "SNS") from error
        return answer["MessageId"]


def _sns_push_error(error: ClientError) -> ProviderError:
    code, message, _ = client_error_parts(error)
    if code == "EndpointDisabled":
        return ProviderError(
            PERMANENT,
            "push token is no longer valid: the push service disabled its endpoint (app uninstalled or token "
            "rotated); stop sending to it until the device registers again",
            code,
        )
    if code == "NotFound" and "PlatformApplication" in message:
        return ProviderError(CONFIGURATION, f"SNS platform application does not exist: {message}", code)
    return classify(error, "SNS")


# ---------------------------------------------------------------------------------------------- webhooks
