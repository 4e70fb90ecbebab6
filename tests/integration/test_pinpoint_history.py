"""A Pinpoint event stream replayed into a deployed stack (moto): the Firehose objects read from
S3, the events handed to the ingest queue and applied by the real profile updater, the
suppressions written to the data table. Suppressions, consent (newest by time), tracked events
and archive rows land as the records say; a second replay doubles nothing.

Records: tests/support/pinpoint_stream.py (the developer guide's event stream pages)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from midstage import cli
from midstage.adapters.handoff import SqsHandoff
from midstage.adapters.messaging_store import SuppressionStore
from midstage.adapters.profile_store import ProfileStore
from midstage.clock import fixed
from midstage.logic import internal_events
from midstage.models.profile import Profile
from tests.integration.conftest import Context, Stack, apply_ingest_queue, sample
from tests.support import pinpoint_stream as fx

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
BUCKET = "pinpoint-stream"


def _people(stack: Stack) -> dict[str, Profile]:
    store = ProfileStore(stack.output("DataTableName"), client=stack.clients.dynamodb())
    wanted = {
        "recipient": ("anonymous_id", f"pinpoint:{fx.RECIPIENT_ENDPOINT}"),
        "sms": ("phone", fx.SMS_PHONE),
        "listener": ("user_id", fx.LISTENER),
        "app": ("anonymous_id", f"pinpoint:{fx.APP_ENDPOINT}"),
        "campaign": ("anonymous_id", f"pinpoint:{fx.CAMPAIGN_ENDPOINT}"),
    }
    owners = store.identity_owners(list(wanted.values()))
    found = {name: store.profile(owners[ident]) for name, ident in wanted.items() if ident in owners}
    return {name: profile for name, profile in found.items() if profile is not None}


def _archived_events(stack: Stack) -> list[dict[str, Any]]:
    s3 = stack.clients.client("s3")
    bucket = stack.output("ArchiveBucketName")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="firehose-raw/").get("Contents", [])]
    lines = b"".join(s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys)
    return [r for r in (json.loads(line) for line in lines.splitlines() if line.strip()) if r.get("kind") == "event"]


def _grant(channel: str, person: dict[str, str], at: str) -> dict[str, Any]:
    """A grant recorded in Midstage before the replay, dated when the person gave it."""
    properties = {"channel": channel, "purpose": "marketing", "granted": True, "source": "crm:signup"}
    return internal_events.track(
        person, "Consent Updated", properties, message_id=internal_events.internal_id("grant", channel), timestamp=at
    )


def test_a_stream_replayed_lands_as_its_records_say_and_a_second_replay_doubles_nothing(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the stream's Firehose objects in a bucket, and two grants already recorded: the email
    # one older than the person's Pinpoint unsubscribe, the SMS one newer than the STOP
    s3 = stack.clients.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    for key, body in fx.firehose_files().items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    queue, table = stack.output("IngestQueueUrl"), stack.output("DataTableName")
    updater = stack.load("ProfileUpdaterFunction", clock=fixed(NOW))
    handoff = SqsHandoff(queue, client=stack.clients.sqs())
    recipient = {"anonymousId": f"pinpoint:{fx.RECIPIENT_ENDPOINT}"}
    texter = {"userId": "texter-1"}
    grants = [_grant("email", recipient, "2019-07-01T00:00:00.000Z"), _grant("sms", texter, "2020-01-01T00:00:00.000Z")]
    grants[1]["context"]["traits"] = {"phone": fx.SMS_PHONE}
    handoff.send({internal_events.person_key(g): [g] for g in grants})
    apply_ingest_queue(stack, updater)
    argv = ["pinpoint-history", f"s3://{BUCKET}/2019/", "--queue-url", queue, "--table", table]

    # When the stream is replayed and the profile updater applies what arrives
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert apply_ingest_queue(stack, updater) > 0

    # Then each record kind is counted and nothing was rejected
    assert out.strip().splitlines()[-1] == (
        "2 file(s), 0 unreadable, replayed: _SMS.OPTOUT 1, _SMS.SUCCESS 1, _campaign.opened_notification 1, "
        "_campaign.send 1, _email.click 1, "
        "_email.complaint 1, _email.delivered 1, _email.hardbounce 1, _email.open 1, _email.send 1, "
        "_email.softbounce 1, _email.unsubscribe 1, _session.stop 1, custom 1, unknown 1; 0 problem(s)"
    )
    # And the hard bounce and the complaint are suppressions, as SES feedback records them
    suppressions = SuppressionStore(table, client=stack.clients.dynamodb())
    bounced = suppressions.suppression("email", fx.BOUNCED)
    complained = suppressions.suppression("email", fx.COMPLAINED)
    assert bounced is not None and complained is not None
    assert (bounced["reason"], bounced["scope"], bounced["at"]) == ("hard_bounce", "all", "2019-08-01T00:17:04.000Z")
    assert complained["reason"] == "complaint"
    assert suppressions.suppression("email", "soft@example.com") is None
    # And the recipient's unsubscribe outranks the older grant; the SMS grant, newer than STOP, stands
    people = _people(stack)
    assert sorted(people) == ["app", "campaign", "listener", "recipient", "sms"]
    email = people["recipient"].consent["email:marketing"]
    assert (email["granted"], email["source"], email["stamp"][:24]) == (False, "pinpoint", "2019-08-01T00:40:00.000Z")
    sms = people["sms"].consent["sms:marketing"]
    assert (sms["granted"], sms["source"]) == (True, "crm:signup")
    # And the outcomes and app events are each person's tracked events
    assert people["recipient"].event_counts == {
        "Consent Updated": 1,
        "Unsubscribed": 1,
        "Email Sent": 1,
        "Email Delivered": 1,
        "Email Opened": 1,
        "Email Link Clicked": 1,
    }
    assert people["sms"].event_counts == {"Consent Updated": 1, "Unsubscribed": 1, "SMS Delivered": 1}
    assert people["listener"].event_counts == {"PlayedTrack": 1, "Push Notification Tapped": 1}
    assert people["app"].event_counts == {"Session Ended": 1}
    assert people["campaign"].event_counts == {"Campaign Message Sent": 1}
    # And the replayed records date each person's activity (the grant, Midstage's own, does not)
    assert (people["recipient"].first_seen, people["recipient"].last_seen) == (
        "2019-08-01T00:17:01.380Z",
        "2019-08-01T00:40:00.000Z",
    )
    assert people["app"].first_seen == people["app"].last_seen is not None
    archived = _archived_events(stack)
    replayed = [r for r in archived if r.get("message_id", "").startswith(internal_events.IMPORTED_PREFIX)]
    assert len(replayed) == 14

    # When the same stream is replayed again, a month later (past the updater's 24-hour window for
    # ordinary events: imported ones are remembered 400 days)
    later = stack.load("ProfileUpdaterFunction", clock=fixed(NOW + timedelta(days=30)))
    assert cli.main(argv) == 0
    capsys.readouterr()
    apply_ingest_queue(stack, later)

    # Then nothing moved: no profile, no archive row
    again = _people(stack)
    assert {n: (p.version, p.event_counts, p.consent) for n, p in again.items()} == {
        n: (p.version, p.event_counts, p.consent) for n, p in people.items()
    }
    assert len(_archived_events(stack)) == len(archived)


def _object_created(bucket: str, key: str) -> dict[str, Any]:
    event = sample("run_imports", "object-created")
    event["detail"]["bucket"]["name"] = bucket
    event["detail"]["object"]["key"] = key
    return event


def test_an_object_dropped_under_imports_pinpoint_history_is_replayed_by_the_import_function(stack: Stack) -> None:
    # Given the stream's objects dropped in the stack's bucket under imports/pinpoint-history/,
    # beside one that is not gzip inside
    bucket = stack.output("ArchiveBucketName")
    s3 = stack.clients.client("s3")
    keys = []
    for name, body in fx.firehose_files().items():
        keys.append(f"imports/pinpoint-history/{name}")
        s3.put_object(Bucket=bucket, Key=keys[-1], Body=body)
    s3.put_object(Bucket=bucket, Key="imports/pinpoint-history/damaged.gz", Body=b"\x1f\x8b" + b"\x00" * 40)
    function = stack.load("RunImportsFunction", clock=fixed(NOW))
    updater = stack.load("ProfileUpdaterFunction", clock=fixed(NOW))

    # When S3's Object Created events reach the import function, the damaged object's too
    for key in [*keys, "imports/pinpoint-history/damaged.gz"]:
        assert function.lambda_handler(_object_created(bucket, key), Context()) == {}
    apply_ingest_queue(stack, updater)

    # Then the records land as the command lands them: suppressions, consent, events
    suppressions = SuppressionStore(stack.output("DataTableName"), client=stack.clients.dynamodb())
    assert (suppressions.suppression("email", fx.BOUNCED) or {}).get("reason") == "hard_bounce"
    people = _people(stack)
    assert people["recipient"].consent["email:marketing"]["granted"] is False
    assert people["sms"].consent["sms:marketing"]["source"] == "pinpoint"
    assert people["listener"].event_counts == {"PlayedTrack": 1, "Push Notification Tapped": 1}
    # And the same event delivered again (S3 to EventBridge is at least once) changes nothing
    before = {n: (p.version, p.event_counts) for n, p in people.items()}
    assert function.lambda_handler(_object_created(bucket, keys[0]), Context()) == {}
    apply_ingest_queue(stack, updater)
    assert {n: (p.version, p.event_counts) for n, p in _people(stack).items()} == before
