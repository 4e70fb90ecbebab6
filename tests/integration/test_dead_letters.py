"""Dead letters through the real handlers on moto: a message that failed its receives is listed
with the error its consumer recorded, and a redrive puts it back where it is applied."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from midstage.adapters.dead_letters import FailureLog
from midstage.adapters.profile_store import ProfileStore
from midstage.clock import fixed
from tests.integration.conftest import Context, Stack
from tests.integration.test_hostile_input import Http

MAX_RECEIVES = 5  # the ingest queue's maxReceiveCount (template.yaml)


def queue_url(stack: Stack, logical_id: str) -> str:
    return stack.queue_urls[next(q.arn for q in stack.model.queues if q.logical_id == logical_id)]


def as_record(message: dict[str, Any]) -> dict[str, Any]:
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {"ApproximateReceiveCount": message["Attributes"]["ApproximateReceiveCount"]},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
        "awsRegion": "us-east-1",
    }


def fail_every_receive(stack: Stack, apply: bool) -> None:
    """Receive what is on the ingest queue until SQS moves it to the dead-letter queue; with
    `apply`, each receive goes through the profile updater (which fails on it)."""
    sqs = stack.clients.sqs()
    url = queue_url(stack, "IngestQueue")
    updater = stack.load("ProfileUpdaterFunction") if apply else None
    for _ in range(MAX_RECEIVES + 1):
        messages = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0, AttributeNames=["All"]
        ).get("Messages", [])
        if updater is not None and messages:
            answer = updater.lambda_handler({"Records": [as_record(m) for m in messages]}, Context())
            assert len(answer["batchItemFailures"]) == len(messages)


def test_dead_letters_are_listed_with_their_error_and_redriven_to_be_applied(stack: Stack) -> None:
    http = Http(stack)
    sqs = stack.clients.sqs()
    # Given a message its consumer fails on, and one whose consumer never answered (a timeout)
    sqs.send_message(QueueUrl=queue_url(stack, "IngestQueue"), MessageBody=json.dumps({"v": 2, "events": []}))
    fail_every_receive(stack, apply=True)
    good = {
        "v": 1,
        "events": [
            {
                "type": "identify",
                "userId": "late",
                "traits": {"plan": "pro"},
                "messageId": "late-1",
                "sourceId": "src_localdemo",
                "timestamp": "2026-11-01T10:00:00.000Z",
                "receivedAt": "2026-11-01T10:00:00.000Z",
            }
        ],
    }
    sqs.send_message(QueueUrl=queue_url(stack, "IngestQueue"), MessageBody=json.dumps(good))
    fail_every_receive(stack, apply=False)

    # When an operator looks
    status, overview = http.call("GET", "/v1/dead-letters", role="data_operator")
    assert status == 200, overview
    counts = {q["queue"]: q["messages"] for q in overview["queues"]}
    assert counts["ingest"] == 2
    assert set(counts) >= {"delivery", "feedback", "campaign", "refresh", "evaluate-rules", "start-campaign-failed"}
    status, listed = http.call("GET", "/v1/dead-letters/ingest", role="data_operator")
    assert status == 200, listed
    by_body = {json.dumps(m["body"], sort_keys=True): m for m in listed["messages"]}
    poison = by_body[json.dumps({"v": 2, "events": []}, sort_keys=True)]
    assert poison["error"]["function"] == "profile-updater"
    assert poison["error"]["errorType"] == "ValueError"
    assert "not a hand-off message" in poison["error"]["errorMessage"]
    assert poison["receiveCount"] > MAX_RECEIVES
    late = by_body[json.dumps(good, sort_keys=True)]
    assert late["error"] is None  # nothing recorded why: the consumer never answered
    assert http.call("GET", "/v1/dead-letters/ingest", role="marketer")[0] == 403

    # Then a redrive of the good one puts it back on the ingest queue, where it is applied
    assert http.call("POST", "/v1/dead-letters/ingest/redrive", "{}", role="data_operator")[0] == 403
    status, redriven = http.call(
        "POST", "/v1/dead-letters/ingest/redrive", json.dumps({"messageIds": [late["id"]]}), role="admin"
    )
    assert status == 200, redriven
    assert (redriven["redriven"], redriven["skipped"]) == (1, [])
    assert http.apply_queued() == {"batchItemFailures": []}
    store = ProfileStore(stack.output("DataTableName"), client=stack.clients.dynamodb())
    owner = store.identity_owners([("user_id", "late")])[("user_id", "late")]
    assert store.profile(owner).traits["plan"] == "pro"  # type: ignore[union-attr]
    status, listed = http.call("GET", "/v1/dead-letters/ingest", role="data_operator")
    assert [m["id"] for m in listed["messages"]] == [poison["id"]]  # the poison stays until fixed


def test_an_unknown_dead_letter_queue_is_a_404(stack: Stack) -> None:
    http = Http(stack)
    status, body = http.call("GET", "/v1/dead-letters/nope", role="admin")
    assert (status, body["code"]) == (404, "not_found")
    assert "ingest" in body["message"]


def test_a_failure_is_recorded_at_the_time_of_the_functions_clock(stack: Stack) -> None:
    Http(stack)  # the fixture's source and keys
    sqs = stack.clients.sqs()
    # Given a profile updater whose wiring says it is a day in 2031, and a message it fails on
    then = datetime(2031, 3, 4, 5, 6, 7, tzinfo=UTC)
    updater = stack.load("ProfileUpdaterFunction", clock=fixed(then))
    sqs.send_message(QueueUrl=queue_url(stack, "IngestQueue"), MessageBody=json.dumps({"v": 2, "events": []}))
    messages = sqs.receive_message(
        QueueUrl=queue_url(stack, "IngestQueue"), MaxNumberOfMessages=1, AttributeNames=["All"]
    )["Messages"]

    # When it fails on the message
    answer = updater.lambda_handler({"Records": [as_record(m) for m in messages]}, Context())
    assert len(answer["batchItemFailures"]) == 1

    # Then the reason recorded says when by that clock, not the host's
    recorded = FailureLog(stack.output("DataTableName"), client=stack.clients.dynamodb()).many(
        [messages[0]["MessageId"]]
    )
    assert recorded[messages[0]["MessageId"]]["at"] == "2031-03-04T05:06:07+00:00"


def test_a_destinations_dead_letter_goes_back_into_its_persons_fifo_group(stack: Stack) -> None:
    http = Http(stack)
    sqs = stack.clients.sqs()
    url = queue_url(stack, "DestinationsQueue")
    body = json.dumps({"version": 1, "kind": "destination.events", "profileId": "p-1", "events": []})
    # Given a feed message the forwarder never took (five receives, then SQS moves it aside)
    sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId="p-1", MessageDeduplicationId="d-1")
    for _ in range(MAX_RECEIVES + 1):
        sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
    # When an operator lists the destinations dead letters and redrives them
    status, listed = http.call("GET", "/v1/dead-letters/destinations", role="data_operator")
    assert status == 200, listed
    assert [m["body"] for m in listed["messages"]] == [json.loads(body)]
    status, redriven = http.call("POST", "/v1/dead-letters/destinations/redrive", "{}", role="admin")
    assert (status, redriven["redriven"]) == (200, 1), redriven
    # Then it is back on the feed in the same person's group, though its first deduplication id is recent
    back = sqs.receive_message(QueueUrl=url, AttributeNames=["All"]).get("Messages", [])
    assert [(m["Body"], m["Attributes"]["MessageGroupId"]) for m in back] == [(body, "p-1")]
    assert http.call("GET", "/v1/dead-letters/destinations", role="data_operator")[1]["messages"] == []


def test_why_the_forwarder_could_not_read_a_feed_message_is_shown_with_its_dead_letter(stack: Stack) -> None:
    http = Http(stack)
    sqs = stack.clients.sqs()
    url = queue_url(stack, "DestinationsQueue")
    # Given a feed message the forwarder cannot read (no profileId), handed to it by its queue
    body = json.dumps({"version": 1, "kind": "destination.events", "events": []})
    sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId="p-2", MessageDeduplicationId="d-2")
    (message,) = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, AttributeNames=["All"])["Messages"]
    forwarder = stack.load("ForwardDestinationsFunction")
    answer = forwarder.lambda_handler({"Records": [as_record(message)]}, Context())
    assert answer == {"batchItemFailures": [{"itemIdentifier": message["MessageId"]}]}
    # When its receives run out and SQS moves it aside
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
    for _ in range(MAX_RECEIVES):
        sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
    # Then its dead letter says which function failed it, and why
    status, listed = http.call("GET", "/v1/dead-letters/destinations", role="data_operator")
    assert status == 200, listed
    (dead,) = listed["messages"]
    assert dead["error"]["function"] == "forward-destinations", dead
    assert dead["error"]["errorType"] == "ValueError"
    assert "profileId" in dead["error"]["errorMessage"]
