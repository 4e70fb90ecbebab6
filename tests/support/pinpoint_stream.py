"""A small Pinpoint event stream, in the record shapes AWS documents, as Firehose writes it to S3.

The shapes come from the Amazon Pinpoint developer guide:
- "Email event data stream from Amazon Pinpoint"
  (https://docs.aws.amazon.com/pinpoint/latest/developerguide/event-streams-data-email.html):
  the `_email.send` example as printed (its mail headers shortened); the other `_email.*`
  records are that example with the event_type, time, address and endpoint changed, and an
  `event_id` added;
- "SMS event data stream from Amazon Pinpoint"
  (https://docs.aws.amazon.com/pinpoint/latest/developerguide/event-streams-data-sms.html):
  the `_SMS.SUCCESS` example as printed (its client_id is the account id), and an `_SMS.OPTOUT`
  like it;
- "App event data stream from Amazon Pinpoint"
  (https://docs.aws.amazon.com/pinpoint/latest/developerguide/event-streams-data-app.html):
  the `_session.stop` example as printed, a custom event with an `endpoint` naming its user,
  a `_monetization.purchase` (not replayed: counted);
- "Campaign event data stream from Amazon Pinpoint"
  (https://docs.aws.amazon.com/pinpoint/latest/developerguide/event-streams-data-campaign.html):
  the `_campaign.send` example as printed (its endpoint a JSON string in `client_context`), and
  an `_campaign.opened_notification` (a push notification tapped) like it, naming a user.

Firehose joins the records it buffered without a delimiter (`firehose_file` writes two files:
JSON lines, and the same kind of records joined `}{` on one line).
"""

from __future__ import annotations

import copy
import gzip
import json
from typing import Any

ACCOUNT = "123456789012"
APP = "a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6"
RECIPIENT = "recipient@example.com"
RECIPIENT_ENDPOINT = "9a311b17-6f8e-4093-be61-4d0bbexample"
BOUNCED = "bounce@example.com"
COMPLAINED = "complaint@example.com"
SMS_PHONE = "+14255550199"
APP_ENDPOINT = "m3n4o5p6-a1b2-c3d4-e5f6-g7h8i9j0k1l2"
LISTENER = "example-user-id-1"

# The developer guide's email send example, as printed (fewer mail headers).
EMAIL_SEND: dict[str, Any] = {
    "event_type": "_email.send",
    "event_timestamp": 1564618621380,
    "arrival_timestamp": 1564618622025,
    "event_version": "3.1",
    "application": {"app_id": APP, "sdk": {}},
    "client": {"client_id": RECIPIENT_ENDPOINT},
    "device": {"platform": {}},
    "session": {},
    "attributes": {"feedback": "received"},
    "awsAccountId": ACCOUNT,
    "facets": {
        "email_channel": {
            "mail_event": {
                "mail": {
                    "message_id": "0200000073rnbmd1-mbvdg3uo-q8ia-m3ku-ibd3-ms77kexample-000000",
                    "message_send_timestamp": 1564618621380,
                    "from_address": "sender@example.com",
                    "destination": [RECIPIENT],
                    "headers_truncated": False,
                    "headers": [
                        {"name": "From", "value": "sender@example.com"},
                        {"name": "To", "value": RECIPIENT},
                        {"name": "Subject", "value": "Amazon Pinpoint Test"},
                    ],
                    "common_headers": {
                        "from": "sender@example.com",
                        "to": [RECIPIENT],
                        "subject": "Amazon Pinpoint Test",
                    },
                },
                "send": {},
            }
        }
    },
}


def _email(event_type: str, event_id: str, at: int, address: str, endpoint: str, **mail_event: Any) -> dict[str, Any]:
    record = copy.deepcopy(EMAIL_SEND)
    record.update({"event_type": event_type, "event_id": event_id, "event_timestamp": at})
    record["arrival_timestamp"] = at + 500
    record["client"] = {"client_id": endpoint}
    record["attributes"] = {"campaign_id": "52dc44b35c4742c98c5935269example", "treatment_id": "0"}
    event = record["facets"]["email_channel"]["mail_event"]
    event["mail"]["destination"] = [address]
    event.pop("send")
    event.update(mail_event)
    return record


EMAIL_DELIVERED = _email("_email.delivered", "ev-delivered-1", 1564618623000, RECIPIENT, RECIPIENT_ENDPOINT)
EMAIL_OPEN = _email("_email.open", "ev-open-1", 1564619000000, RECIPIENT, RECIPIENT_ENDPOINT)
EMAIL_CLICK = _email(
    "_email.click",
    "ev-click-1",
    1564619060000,
    RECIPIENT,
    RECIPIENT_ENDPOINT,
    click={"ip_address": "192.0.2.1", "link": "https://example.com/offer", "user_agent": "Mozilla/5.0"},
)
EMAIL_UNSUBSCRIBE = _email("_email.unsubscribe", "ev-unsub-1", 1564620000000, RECIPIENT, RECIPIENT_ENDPOINT)
EMAIL_HARDBOUNCE = _email("_email.hardbounce", "ev-bounce-1", 1564618624000, BOUNCED, "endpoint-bounced")
EMAIL_SOFTBOUNCE = _email("_email.softbounce", "ev-soft-1", 1564618624500, "soft@example.com", "endpoint-soft")
EMAIL_COMPLAINT = _email("_email.complaint", "ev-complaint-1", 1564618700000, COMPLAINED, "endpoint-complained")

# The developer guide's SMS example, as printed: its client_id is the AWS account.
SMS_SUCCESS: dict[str, Any] = {
    "event_type": "_SMS.SUCCESS",
    "event_timestamp": 1553104954322,
    "arrival_timestamp": 1553104954064,
    "event_version": "3.1",
    "application": {"app_id": APP, "sdk": {}},
    "client": {"client_id": ACCOUNT},
    "device": {"platform": {}},
    "session": {},
    "attributes": {
        "sender_request_id": "565d4425-4b3a-11e9-b0a5-example",
        "campaign_activity_id": "cbcfc3c5e3bd48a8ae2b9cb41example",
        "origination_phone_number": "+12065550142",
        "destination_phone_number": SMS_PHONE,
        "record_status": "DELIVERED",
        "iso_country_code": "US",
        "treatment_id": "0",
        "number_of_message_parts": "1",
        "message_id": "1111-2222-3333",
        "message_type": "Transactional",
        "campaign_id": "52dc44b35c4742c98c5935269example",
    },
    "metrics": {"price_in_millicents_usd": 645.0},
    "awsAccountId": ACCOUNT,
}
SMS_OPTOUT = {
    **copy.deepcopy(SMS_SUCCESS),
    "event_type": "_SMS.OPTOUT",
    "event_id": "ev-sms-stop-1",
    "event_timestamp": 1553105954322,
    "arrival_timestamp": 1553105954400,
}
SMS_OPTOUT["attributes"] = {**SMS_SUCCESS["attributes"], "record_status": "OPTED_OUT", "message_id": "1111-2222-4444"}

# The developer guide's app event example, as printed.
SESSION_STOP: dict[str, Any] = {
    "event_type": "_session.stop",
    "event_timestamp": 1487973802507,
    "arrival_timestamp": 1487973803515,
    "event_version": "3.0",
    "application": {
        "app_id": APP,
        "cognito_identity_pool_id": "us-east-1:a1b2c3d4-e5f6-g7h8-i9j0-k1l2m3n4o5p6",
        "package_name": "main.page",
        "sdk": {"name": "aws-sdk-mobile-analytics-js", "version": "0.9.1:2.4.8"},
        "title": "title",
        "version_name": "1.0",
        "version_code": "1",
    },
    "client": {"client_id": APP_ENDPOINT, "cognito_id": "us-east-1:i9j0k1l2-m3n4-o5p6-a1b2-c3d4e5f6g7h8"},
    "device": {
        "locale": {"code": "en_US", "country": "US", "language": "en"},
        "make": "generic web browser",
        "model": "Unknown",
        "platform": {"name": "android", "version": "10.10"},
    },
    "session": {
        "session_id": "f549dea9-1090-945d-c3d1-e4967example",
        "start_timestamp": 1487973202531,
        "stop_timestamp": 1487973802507,
    },
    "attributes": {},
    "metrics": {},
}
# A custom event from an app whose endpoint names its user (PutEvents with an Endpoint).
PLAYED_TRACK: dict[str, Any] = {
    **copy.deepcopy(SESSION_STOP),
    "event_type": "PlayedTrack",
    "event_id": "ev-played-1",
    "event_timestamp": 1487973500000,
    "arrival_timestamp": 1487973501000,
    "endpoint": {"Id": "endpoint-of-listener", "ChannelType": "GCM", "User": {"UserId": LISTENER}},
    "attributes": {"TrackName": "Kiss You", "Artist": "One Direction"},
    "metrics": {"PlayTime": 60.5},
}
PURCHASE = {**copy.deepcopy(PLAYED_TRACK), "event_type": "_monetization.purchase", "event_id": "ev-purchase-1"}
# The developer guide's campaign event example, as printed: the endpoint is a JSON string.
CAMPAIGN_ENDPOINT = "d8dcf7c5-e81a-48ae-8313-f540cexample"
CAMPAIGN_SEND: dict[str, Any] = {
    "event_type": "_campaign.send",
    "event_timestamp": 1562109497426,
    "arrival_timestamp": 1562109497494,
    "event_version": "3.1",
    "application": {"app_id": APP, "sdk": {}},
    "client": {"client_id": CAMPAIGN_ENDPOINT},
    "device": {"platform": {}},
    "session": {},
    "attributes": {
        "treatment_id": "0",
        "campaign_activity_id": "5473285727f04865bc673e527example",
        "delivery_type": "GCM",
        "campaign_id": "4f8d6097c2e8400fa3081d875example",
        "campaign_send_status": "SUCCESS",
    },
    "client_context": {
        "custom": {
            "endpoint": '{"ChannelType":"GCM","EndpointStatus":"ACTIVE","OptOut":"NONE",'
            '"RequestId":"ec229696-9d1e-11e9-8bf1-85d0aexample","EffectiveDate":"2019-07-02T23:12:54.836Z","User":{}}'
        }
    },
    "awsAccountId": ACCOUNT,
}
# A push notification tapped, from the same page's event types, on the listener's endpoint.
PUSH_OPENED: dict[str, Any] = {
    **copy.deepcopy(CAMPAIGN_SEND),
    "event_type": "_campaign.opened_notification",
    "event_id": "ev-push-open-1",
    "event_timestamp": 1562109597426,
    "arrival_timestamp": 1562109597494,
    "client": {"client_id": "endpoint-of-listener"},
}
PUSH_OPENED["client_context"]["custom"]["endpoint"] = json.dumps(
    {"ChannelType": "GCM", "EndpointStatus": "ACTIVE", "OptOut": "NONE", "User": {"UserId": LISTENER}}
)

EMAIL_RECORDS = [
    EMAIL_SEND,
    EMAIL_DELIVERED,
    EMAIL_OPEN,
    EMAIL_CLICK,
    EMAIL_UNSUBSCRIBE,
    EMAIL_HARDBOUNCE,
    EMAIL_SOFTBOUNCE,
    EMAIL_COMPLAINT,
]
OTHER_RECORDS = [SMS_SUCCESS, SMS_OPTOUT, SESSION_STOP, PLAYED_TRACK, PURCHASE, CAMPAIGN_SEND, PUSH_OPENED]


def json_lines(records: list[dict[str, Any]]) -> bytes:
    return "\n".join(json.dumps(r) for r in records).encode()


def joined(records: list[dict[str, Any]]) -> bytes:
    """As Firehose writes records without a delimiter: `}{` on one line."""
    return "".join(json.dumps(r) for r in records).encode()


def firehose_files() -> dict[str, bytes]:
    """Two gzip'd objects under Firehose's `YYYY/MM/DD/HH/` prefix: the email records as JSON
    lines, the rest joined without a delimiter."""
    prefix = "2019/08/01/00/pinpoint-stream-1-2019-08-01-00-00-00-"
    return {
        prefix + "a1b2.gz": gzip.compress(json_lines(EMAIL_RECORDS)),
        prefix + "c3d4.gz": gzip.compress(joined(OTHER_RECORDS)),
    }
