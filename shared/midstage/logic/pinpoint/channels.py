"""A Pinpoint project's channel settings, as a checklist of what to set up for Midstage.

Reads what `aws pinpoint get-<channel>-channel --application-id <id> --output json` prints
(`{"EmailChannelResponse": {...}}`, `{"SMSChannelResponse": {...}}`, the APNs, FCM, Baidu, ADM
and voice ones) and `get-channels` (`{"ChannelsResponse": {"Channels": {"EMAIL": {...}}}}`, which
says only which channels exist). Field names are the Pinpoint API reference's (botocore's
pinpoint service model is the test oracle).

Pinpoint never hands back a credential (an APNs key, an FCM service account): its answers say
only which kind it held (`HasTokenKey`, `HasFcmServiceCredentials`, `DefaultAuthenticationMethod`).
So the checklist says which credential to bring and where it goes, not its value.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# The answer key of each get-<channel>-channel command, and the channel it describes.
RESPONSES = {
    "EmailChannelResponse": "EMAIL",
    "SMSChannelResponse": "SMS",
    "APNSChannelResponse": "APNS",
    "APNSSandboxChannelResponse": "APNS_SANDBOX",
    "APNSVoipChannelResponse": "APNS_VOIP",
    "APNSVoipSandboxChannelResponse": "APNS_VOIP_SANDBOX",
    "GCMChannelResponse": "GCM",
    "BaiduChannelResponse": "BAIDU",
    "ADMChannelResponse": "ADM",
    "VoiceChannelResponse": "VOICE",
}
# Push services Midstage sends to, and the PushApplications key of each: the device type the
# endpoint import gives their devices (logic/imports/pinpoint.py).
PUSH_PLATFORMS = {"APNS": "ios", "APNS_SANDBOX": "ios_sandbox", "GCM": "android"}
_ARN_IDENTITY = "identity/"
_NOT_A_PUSH_SERVICE = (
    " is not a push service Midstage sends to (APNs and FCM are): its devices are imported, not messaged"
)
NO_COUNTERPART = {
    "APNS_VOIP": "VoIP push has no counterpart: Midstage sends alerts through APNs and FCM",
    "APNS_VOIP_SANDBOX": "VoIP push has no counterpart: Midstage sends alerts through APNs and FCM",
    "BAIDU": "Baidu Cloud Push" + _NOT_A_PUSH_SERVICE,
    "ADM": "Amazon Device Messaging" + _NOT_A_PUSH_SERVICE,
    "VOICE": "Midstage has no voice channel",
}


@dataclass
class ChannelPlan:
    """What one Pinpoint channel asks of the new stack: steps on the AWS side, template
    parameters (`sam deploy --parameter-overrides`), function settings, and what has no
    counterpart."""

    channel: str
    enabled: bool | None = None
    steps: list[str] = field(default_factory=list)
    parameters: dict[str, str] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)
    unsupported: list[str] = field(default_factory=list)


@dataclass
class Checklist:
    plans: dict[str, ChannelPlan] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def plan(self, channel: str) -> ChannelPlan:
        return self.plans.setdefault(channel, ChannelPlan(channel))

    def parameters(self) -> dict[str, str]:
        """Every template parameter the plans set, PushApplications merged into one JSON map."""
        merged: dict[str, str] = {}
        push: dict[str, str] = {}
        for plan in self.plans.values():
            for name, value in plan.parameters.items():
                if name == "PushApplications":
                    push.update(json.loads(value))
                else:
                    merged[name] = value
        if push:
            merged["PushApplications"] = json.dumps(dict(sorted(push.items())), separators=(",", ":"))
        return merged


def read(documents: Iterable[tuple[str, Any]]) -> Checklist:
    """The checklist of (name, parsed JSON) documents; one that is not a channel answer is a
    problem named by its document, not a failure."""
    checklist = Checklist()
    for name, document in documents:
        if not isinstance(document, dict):
            checklist.problems.append(f"{name}: not a JSON object")
            continue
        known = [key for key in document if key in RESPONSES or key == "ChannelsResponse"]
        if not known:
            checklist.problems.append(f"{name}: not the answer of a get-*-channel or get-channels command")
            continue
        for key in known:
            answer = document[key]
            if not isinstance(answer, dict):
                checklist.problems.append(f"{name}: {key} is not an object")
            elif key == "ChannelsResponse":
                _channels(checklist, answer)
            else:
                _channel(checklist, RESPONSES[key], answer)
    return checklist


def _channels(checklist: Checklist, answer: Mapping[str, Any]) -> None:
    """get-channels: which channels exist (a channel's own answer, read too, says more)."""
    channels = answer.get("Channels")
    for channel, summary in channels.items() if isinstance(channels, dict) else []:
        plan = checklist.plan(str(channel))
        if isinstance(summary, dict) and plan.enabled is None:
            plan.enabled = _flag(summary.get("Enabled"))
        if plan.steps or plan.unsupported:
            continue  # the channel's own answer was read: it says more
        if channel in NO_COUNTERPART:
            plan.unsupported.append(NO_COUNTERPART[str(channel)])
        elif _command(str(channel)):
            plan.steps.append(
                f"run `aws pinpoint get-{_command(str(channel))}-channel --application-id <id>` for its settings"
            )
        else:
            plan.unsupported.append("a channel Midstage does not know: see the migration guide")


def _channel(checklist: Checklist, channel: str, answer: Mapping[str, Any]) -> None:
    plan = checklist.plan(channel)
    # What get-channels alone said of it is replaced by what the channel's own answer says.
    plan.steps.clear()
    plan.unsupported.clear()
    plan.enabled = _flag(answer.get("Enabled"))
    if answer.get("IsArchived") is True:
        plan.unsupported.append("archived in Pinpoint: nothing to carry over")
        return
    if channel == "EMAIL":
        _email(plan, answer)
    elif channel == "SMS":
        _sms(plan, answer)
    elif channel in PUSH_PLATFORMS:
        _push(plan, channel, answer)
    elif channel in NO_COUNTERPART:
        plan.unsupported.append(NO_COUNTERPART[channel])


def _email(plan: ChannelPlan, answer: Mapping[str, Any]) -> None:
    identity = _text(answer.get("Identity"))
    sender = _text(answer.get("FromAddress"))
    region = identity.split(":")[3] if identity.count(":") >= 5 else ""
    verified = identity.partition(_ARN_IDENTITY)[2] if _ARN_IDENTITY in identity else ""
    if verified:
        where = f" in {region}" if region else ""
        plan.steps.append(
            f"SES identity {verified}{where}: Pinpoint sent through it, so it is verified there; deploy the"
            f" stack in {region or 'that region'}, or verify it in the stack's region"
            " (`aws sesv2 create-email-identity --email-identity " + verified + "`)"
        )
    else:
        plan.steps.append("verify the sender's domain in SES in the stack's region (no identity in the answer)")
    if sender:
        plan.parameters["EmailSender"] = sender
    configuration_set = _text(answer.get("ConfigurationSet"))
    if configuration_set:
        plan.steps.append(
            f"configuration set {configuration_set}: the stack makes its own (midstage-<Stage>) and publishes"
            " SES events to it for feedback; carry over by hand only its delivery options (a dedicated IP"
            " pool, TLS policy) and reputation settings"
        )
    rate = answer.get("MessagesPerSecond")
    if isinstance(rate, (int, float)) and not isinstance(rate, bool):
        plan.steps.append(
            f"MessagesPerSecond {rate:g}: nothing to set; the deliverers pace to the SES account's own send rate"
        )
    if _text(answer.get("RoleArn")) or _text(answer.get("OrchestrationSendingRoleArn")):
        plan.steps.append("the channel's IAM roles are Pinpoint's: the stack's functions have their own")


def _sms(plan: ChannelPlan, answer: Mapping[str, Any]) -> None:
    sender_id = _text(answer.get("SenderId"))
    short_code = _text(answer.get("ShortCode"))
    if sender_id:
        plan.settings["SMS_SENDER_ID"] = sender_id
        plan.steps.append(
            f"sender ID {sender_id}: set SMS_SENDER_ID on the deliver function; it is used where the"
            " destination country allows alphanumeric sender IDs"
        )
    if short_code:
        plan.steps.append(
            f"origination number or short code {short_code}: keep it in AWS End User Messaging SMS in the"
            " stack's account and region; SNS sends from the account's origination identities"
        )
    rates = [
        f"{label} {value:g}/s"
        for label, value in (
            ("promotional", answer.get("PromotionalMessagesPerSecond")),
            ("transactional", answer.get("TransactionalMessagesPerSecond")),
        )
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    ]
    if rates:
        plan.steps.append(
            f"throughput ({', '.join(rates)}) belongs to the origination identities: nothing to set in Midstage"
        )
    plan.steps.append(
        "check the account's SMS spending limit and sandbox status (`aws sns get-sms-attributes`,"
        " `aws sns get-sms-sandbox-account-status`) before the first campaign"
    )


def _push(plan: ChannelPlan, channel: str, answer: Mapping[str, Any]) -> None:
    platform = PUSH_PLATFORMS[channel]
    service = {"APNS": "APNS", "APNS_SANDBOX": "APNS_SANDBOX", "GCM": "GCM"}[channel]
    name = f"midstage-{platform.replace('_', '-')}"
    if channel.startswith("APNS"):
        method = _text(answer.get("DefaultAuthenticationMethod")).upper()
        if answer.get("HasTokenKey") is True or method == "TOKEN":
            credential = (
                "the APNs signing key (.p8) with its key ID, team ID and bundle ID: attributes PlatformCredential"
                " (the key), PlatformPrincipal (the key ID), ApplePlatformTeamID, ApplePlatformBundleID"
            )
        else:
            credential = (
                "the APNs certificate and its private key: attributes PlatformPrincipal (the certificate)"
                " and PlatformCredential (the key)"
            )
    elif answer.get("HasFcmServiceCredentials") is True or _text(answer.get("DefaultAuthenticationMethod")) == "TOKEN":
        credential = "the Firebase service account JSON (FCM HTTP v1): attribute PlatformCredential"
    else:
        credential = (
            "a Firebase service account JSON (FCM HTTP v1): Pinpoint held a legacy server key, which Google"
            " no longer accepts; attribute PlatformCredential"
        )
    plan.steps.append(
        f"create an SNS platform application: `aws sns create-platform-application --name {name}"
        f" --platform {service} --attributes ...` with {credential}"
    )
    plan.parameters["PushApplications"] = json.dumps({platform: f"<ARN of {name}>"})
    if channel == "APNS_SANDBOX":
        plan.steps.append("a sandbox application reaches development builds only: the devices imported as ios_sandbox")


def _command(channel: str) -> str:
    return {
        "EMAIL": "email",
        "SMS": "sms",
        "APNS": "apns",
        "APNS_SANDBOX": "apns-sandbox",
        "APNS_VOIP": "apns-voip",
        "APNS_VOIP_SANDBOX": "apns-voip-sandbox",
        "GCM": "gcm",
        "BAIDU": "baidu",
        "ADM": "adm",
        "VOICE": "voice",
    }.get(channel, "")


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""
