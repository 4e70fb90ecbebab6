"""Every sample under events/ through its function, on moto with the template's resources: each
one does what its trigger would make it do on AWS (a message queued, sent, bounced, clicked; a
journey entered; a part of a run worked...), and a test fails if a function has no sample or a
sample no test here.

The samples name one person, `prof_sample_ann` (Ann, who ordered at 2026-11-22T09:59:58Z), and
tokens signed with LINKS_SECRET; the functions run on clocks pinned to when the samples were sent."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from midstage import keys
from midstage.adapters.archive_engines import S3Archive
from midstage.adapters.automation_store import CampaignRuns, JourneyInstances, RefreshJobs
from midstage.adapters.config_store import ConfigStore
from midstage.adapters.destination_store import DestinationStore
from midstage.adapters.documents import pack
from midstage.adapters.messaging_store import MessageLedger, SuppressionStore
from midstage.adapters.model_cards import ModelCardStore
from midstage.adapters.privacy_store import PersonSuppressions, Regulations, Salt
from midstage.adapters.profile_store import ProfileStore
from midstage.clock import fixed
from midstage.logic.timefmt import parse_iso
from midstage.models.admin import Source, stamp
from midstage.models.destinations import DESTINATION_KIND, Destination
from midstage.models.messages import Delivery, parse_body
from midstage.models.messaging import MessageRequest
from midstage.models.profile import Profile, WritePlan
from tests.integration.conftest import ROOT, SAMPLES_SENT_AT, Context, Stack, apply_ingest_queue, sample
from tests.integration.test_admin_messaging import Api, approved_template, welcome_rule
from tests.support.http_sink import Sink
from tests.unit.predictions.test_refit_service import shop_records

ANN = "prof_sample_ann"
VIP = {"path": "traits.plan", "op": "eq", "value": "pro"}
LINKS_SECRET = "5a" * 32  # the secret the engagement samples' tokens were signed with
AT_SEND = fixed(SAMPLES_SENT_AT + timedelta(seconds=1))
TESTED = {
    ("admin", "get-profile"),
    ("admin", "list-sources"),
    ("console", "module"),
    ("collect", "track"),
    ("collect", "identify"),
    ("collect", "batch-gzip"),
    ("collect", "bad-key"),
    ("collect", "malformed"),
    ("profile_updater", "sqs-batch"),
    ("lifecycle_sweep", "scheduled"),
    ("evaluate_rules", "order-completed"),
    ("deliver", "welcome-email"),
    ("feedback", "ses-bounce"),
    ("engagement", "click"),
    ("engagement", "unsubscribe-one-click"),
    ("run_journeys", "order-completed"),
    ("timer_sweep", "scheduled"),
    ("refresh_segments", "backfill-part"),
    ("refresh_segments", "sweep-part"),
    ("start_campaign", "scheduled"),
    ("send_campaign", "campaign-part"),
    ("measure_conversions", "order-completed"),
    ("webhooks", "shopify-order"),
    ("run_imports", "object-created"),
    ("run_imports", "regulation-task"),
    ("forward_destinations", "feed"),
    ("forward_destinations", "scheduled"),
    ("refit_predictions", "scheduled"),
}


class World:
    """The stack, Ann as the samples know her, the admin API (on the samples' clock), and
    the welcome-email template approved."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.table = stack.output("DataTableName")
        dynamodb = stack.clients.dynamodb()
        self.config = ConfigStore(stack.output("ConfigTableName"), client=dynamodb, cache_seconds=0)
        self.config.create_api_key("admin", "admin", "msk_admin", now=SAMPLES_SENT_AT)
        self.profiles = ProfileStore(self.table, client=dynamodb)
        self.ledger = MessageLedger(self.table, client=dynamodb)
        self.api = Api(stack, stack.load("AdminFunction", clock=AT_SEND))
        stack.clients.sesv2().create_email_identity(EmailIdentity="example.com")  # the template's sender
        approved_template(self.api)
        self.profiles.save(
            WritePlan(
                Profile(
                    id=ANN,
                    created_at="2026-11-22T09:59:00.000Z",
                    identities={"user_id": ["ann"], "email": ["ann@example.com"]},
                    traits={"email": "ann@example.com", "name": "Ann Lee", "first_name": "Ann", "plan": "pro"},
                    consent={
                        "email:marketing": {"granted": True, "stamp": "2026-11-22T09:59:00.000Z", "source": "api"}
                    },
                    timezone="Europe/Paris",
                    locale="en-US",
                )
            )
        )

    def queue(self, logical_id: str) -> list[dict[str, Any]]:
        return self.api.queue(logical_id)

    def run(self, function_id: str, event: dict[str, Any], **clock: Any) -> Any:
        return self.stack.load(function_id, **clock).lambda_handler(event, Context())


@pytest.fixture
def world(stack: Stack) -> World:
    return World(stack)


def test_every_function_has_a_sample_and_every_sample_is_run_here() -> None:
    functions = {path.parent.name for path in (ROOT / "functions").glob("*/handler.py")}
    samples = {(path.parent.name, path.stem) for path in (ROOT / "events").glob("*/*.json")}

    assert {function for function, _ in samples} == functions
    assert samples == TESTED


def test_the_rule_evaluator_sample_fires_the_welcome_rule_and_queues_the_deliver_sample(world: World) -> None:
    # Given the welcome rule (pro customers who order get the welcome email)
    assert world.api.post("/v1/rules", welcome_rule()).status == 201

    # When EventBridge delivers Ann's order
    summary = world.run("EvaluateRulesFunction", sample("evaluate_rules", "order-completed"), clock=AT_SEND)

    # Then the rule fired and the message it queued is the deliver function's sample, as queued
    assert summary["fired"] == ["welcome"]
    (queued,) = world.queue("DeliveryQueue")
    expected = json.loads(sample("deliver", "welcome-email")["Records"][0]["body"])
    request = parse_body(Delivery, queued["Body"]).request
    assert request.model_dump(exclude={"requested_at"}) == MessageRequest.model_validate(expected).model_dump(
        exclude={"requested_at"}
    )


def test_the_deliver_sample_sends_the_welcome_email_once(world: World) -> None:
    event = sample("deliver", "welcome-email")
    message_id = MessageRequest.model_validate_json(event["Records"][0]["body"]).message_id

    first = world.run("DeliverFunction", event, clock=AT_SEND)
    again = world.run("DeliverFunction", event, clock=AT_SEND)  # SQS delivers it twice

    assert first == again == {"batchItemFailures": []}
    record = world.ledger.get(message_id)
    assert record is not None and record["status"] == "sent", record
    assert record["providerId"]
    sent = [entry for entry in record["history"] if entry["status"] == "sent"]
    assert len(sent) == 1


def test_a_delivery_is_not_begun_with_too_little_of_the_invocation_left(world: World) -> None:
    # Given the deliver function with 10 s of its invocation left (it begins one with 15)
    class LateContext(Context):
        def get_remaining_time_in_millis(self) -> int:
            return 10_000

    event = sample("deliver", "welcome-email")
    message_id = MessageRequest.model_validate_json(event["Records"][0]["body"]).message_id
    deliverer = world.stack.load("DeliverFunction", clock=AT_SEND)
    # When the message comes, it goes back to the queue untouched: no claim, no provider call
    # (the whole batch failed, so the invocation fails and SQS offers it again)
    with pytest.raises(BatchProcessingError, match="too little of the invocation left"):
        deliverer.lambda_handler(event, LateContext())
    assert world.ledger.get(message_id) is None
    # And with time enough it is sent
    assert deliverer.lambda_handler(event, Context()) == {"batchItemFailures": []}
    record = world.ledger.get(message_id)
    assert record is not None and record["status"] == "sent"


def test_the_feedback_sample_bounces_the_sent_email_and_suppresses_the_address(world: World) -> None:
    # Given the welcome email sent
    delivered = sample("deliver", "welcome-email")
    world.run("DeliverFunction", delivered, clock=AT_SEND)
    message_id = MessageRequest.model_validate_json(delivered["Records"][0]["body"]).message_id

    # When SES reports its hard bounce through SNS and SQS
    answer = world.run("FeedbackFunction", sample("feedback", "ses-bounce"))

    # Then the address is suppressed, the message bounced, and Ann's timeline will hear of it
    assert answer == {"batchItemFailures": []}
    suppression = SuppressionStore(world.table, client=world.stack.clients.dynamodb()).suppression(
        "email", "ann@example.com"
    )
    assert suppression is not None and suppression["reason"] == "hard_bounce", suppression
    record = world.ledger.get(message_id)
    assert record is not None and record["status"] == "bounced", record
    events = [json.loads(m["Body"])["events"][0] for m in world.queue("IngestQueue")]
    assert [e["event"] for e in events] == ["Email Bounced"]


def _links_secret(world: World) -> None:
    key = keys.secret_key("links")
    world.stack.clients.dynamodb().put_item(
        TableName=world.stack.output("ConfigTableName"),
        Item={**{k: {"S": v} for k, v in key.items()}, "doc": {"B": pack({"value": LINKS_SECRET})}},
    )


def test_the_engagement_samples_record_a_click_and_a_one_click_unsubscribe(world: World) -> None:
    # Given the welcome email sent, with links signed by the stack's secret
    _links_secret(world)
    delivered = sample("deliver", "welcome-email")
    world.run("DeliverFunction", delivered, clock=AT_SEND)
    message_id = MessageRequest.model_validate_json(delivered["Records"][0]["body"]).message_id
    engagement = world.stack.load("EngagementFunction", clock=fixed(SAMPLES_SENT_AT + timedelta(minutes=5)))

    # When Ann clicks the link, then unsubscribes from the email's footer
    click = engagement.lambda_handler(sample("engagement", "click"), Context())
    unsubscribe = engagement.lambda_handler(sample("engagement", "unsubscribe-one-click"), Context())

    # Then she is sent on to the shop, the click is on the message, and marketing email stops
    assert (click["statusCode"], click["headers"]["location"]) == (302, "https://shop.example.com/orders")
    record = world.ledger.get(message_id)
    assert record is not None and "clicked" in [entry["status"] for entry in record["history"]], record
    assert unsubscribe["statusCode"] == 200, unsubscribe
    suppression = SuppressionStore(world.table, client=world.stack.clients.dynamodb()).suppression(
        "email", "ann@example.com"
    )
    assert suppression is not None and (suppression["reason"], suppression["scope"]) == ("unsubscribe", "marketing")
    names = [json.loads(m["Body"])["events"][0]["event"] for m in world.queue("IngestQueue")]
    assert "Email Link Clicked" in names


def test_the_journey_sample_enters_ann_and_the_timer_sweep_sample_wakes_her_a_day_later(world: World) -> None:
    # Given a journey for everyone who orders: wait a day, then thank them
    journey = {
        "id": "thanks",
        "name": "Thank buyers the day after",
        "entry": {"type": "event", "event": "Order Completed"},
        "start": "pause",
        "steps": {
            "pause": {"type": "wait", "duration": "1d", "next": "thank"},
            "thank": {"type": "send", "channels": ["email"], "template": "welcome-email", "next": "done"},
            "done": {"type": "exit"},
        },
    }
    created = world.api.post("/v1/journeys", journey)
    assert created.status == 201, created.body

    # When EventBridge delivers Ann's order to the journey runner
    moved = world.run("RunJourneysFunction", sample("run_journeys", "order-completed"), clock=AT_SEND)

    # Then she waits at `pause` until a day after the order
    assert moved["entered"] == ["thanks"], moved
    instance = JourneyInstances(world.table, client=world.stack.clients.dynamodb()).get(ANN, "thanks")
    assert instance is not None and (instance["status"], instance["step"]) == ("waiting", "pause")

    # When the timer sweep fires the next day (its sample), the wait is released onto the bus
    released = world.run("TimerSweepFunction", sample("timer_sweep", "scheduled"))
    assert released == {"released": 1, "asOf": "2026-11-23T10:01:00+00:00"}
    again = world.run("TimerSweepFunction", sample("timer_sweep", "scheduled"))  # fired twice: released once
    assert again["released"] == 0


def test_the_refresh_samples_put_ann_in_the_segment_and_record_the_parts(world: World) -> None:
    # Given the vip segment and the two jobs the samples are parts of
    assert world.api.post("/v1/segments", {"id": "vip", "name": "Pro", "condition": VIP}).status == 201
    world.queue("RefreshQueue")  # the segment's own backfill, not the sample's job
    jobs = RefreshJobs(world.table, client=world.stack.clients.dynamodb())
    jobs.create("seg_vip_sample", {"kind": "segment", "segment_id": "vip"}, 1, SAMPLES_SENT_AT)
    jobs.create("sweep_20261122T1100", {"kind": "sweep", "as_of": "2026-11-22T11:00:00+00:00"}, 1, SAMPLES_SENT_AT)

    # When the refresh function works the backfill's part, then the hourly sweep's
    backfill = world.run("RefreshSegmentsFunction", sample("refresh_segments", "backfill-part"), clock=AT_SEND)
    sweep = world.run("RefreshSegmentsFunction", sample("refresh_segments", "sweep-part"))

    # Then Ann is in the segment, and each job has its one part done
    assert backfill == sweep == {"batchItemFailures": []}
    ann = world.profiles.profile(ANN)
    assert ann is not None and "vip" in ann.segments
    for job_id, changed in (("seg_vip_sample", 1), ("sweep_20261122T1100", 0)):
        job = jobs.get(job_id)
        assert job is not None and (job["state"], job["parts_done"], job["changed"]) == ("done", 1, changed), job


def test_the_campaign_samples_start_a_run_whose_email_to_ann_converts_with_the_conversion_sample(
    world: World,
) -> None:
    # Given Black Friday for the vip segment, scheduled for 2026-11-27 09:00 UTC, with a conversion goal
    assert world.api.post("/v1/segments", {"id": "vip", "name": "Pro", "condition": VIP}).status == 201
    world.run("RefreshSegmentsFunction", {"Records": _records(world.queue("RefreshQueue"))}, clock=AT_SEND)
    campaign = {
        "id": "black-friday",
        "name": "Black Friday",
        "audience": {"segments": ["vip"]},
        "message": {"channels": ["email"], "template": "welcome-email"},
        "schedule": {"type": "once", "at": "2026-11-27T09:00:00Z"},
        "conversion": {"event": "Order Completed", "window": "1d"},
    }
    assert world.api.post("/v1/campaigns", campaign).status == 201
    scheduled = world.api.post("/v1/campaigns/black-friday/schedule")
    assert scheduled.status == 200, scheduled.body

    # When Scheduler fires it (the start sample is its input), and a worker takes part 0
    fired_at = parse_iso("2026-11-27T09:00:02Z")
    started = world.run("StartCampaignFunction", sample("start_campaign", "scheduled"), clock=fixed(fired_at))
    parts = world.queue("CampaignQueue")
    part_zero = sample("send_campaign", "campaign-part")
    worked = world.run("SendCampaignFunction", part_zero, clock=fixed(fired_at + timedelta(seconds=1)))

    # Then the run the samples name exists with its 8 parts queued, and part 0 is done
    assert (started["runId"], started["created"], started["partsQueued"]) == ("r20261127T0900Z", True, 8)
    bodies = sorted((json.loads(p["Body"]) for p in parts), key=lambda body: int(body["part"]))
    assert bodies[0] == json.loads(part_zero["Records"][0]["body"])
    assert worked == {"batchItemFailures": []}
    runs = CampaignRuns(world.table, client=world.stack.clients.dynamodb())
    part = runs.part("black-friday", "r20261127T0900Z", 0)
    assert part is not None and part["state"] == "done", part

    # When the other parts are worked and the email delivered (10:00 in Paris: no quiet hours)
    later = [record for record in _records(parts) if json.loads(record["body"])["part"] != 0]
    for record in later:
        world.run("SendCampaignFunction", {"Records": [record]}, clock=fixed(fired_at + timedelta(seconds=2)))
    deliveries = world.queue("DeliveryQueue")
    assert len(deliveries) == 1
    sent = world.run("DeliverFunction", {"Records": _records(deliveries)}, clock=fixed(fired_at + timedelta(seconds=3)))
    assert sent == {"batchItemFailures": []}

    # Then Ann's order an hour and a half later (the conversion sample) counts for the run, once
    conversion = sample("measure_conversions", "order-completed")
    measure = world.stack.load("MeasureConversionsFunction", clock=fixed(parse_iso("2026-11-27T10:30:01Z")))
    assert measure.lambda_handler(conversion, Context()) == {"attributed": 1}
    assert measure.lambda_handler(conversion, Context()) == {"attributed": 0}  # EventBridge delivered it twice
    stats = world.api.get("/v1/campaigns/black-friday/stats")
    assert stats.status == 200, stats.body
    assert (stats["totals"]["sent"], stats["totals"]["converted"]) == (1, 1), stats.body


def test_the_lifecycle_sweep_sample_starts_one_sweep_per_occurrence(world: World) -> None:
    event = sample("lifecycle_sweep", "scheduled")

    first = world.run("LifecycleSweepFunction", event, clock=AT_SEND)
    again = world.run("LifecycleSweepFunction", event, clock=AT_SEND)  # Scheduler fired twice

    assert (first["jobId"], first["parts"], first["started"], again["started"]) == (
        "sweep_20261122T1100",
        4,
        True,
        False,
    )
    parts = [json.loads(m["Body"]) for m in world.queue("RefreshQueue")]
    assert parts == [
        {
            "version": 1,
            "kind": "refresh.sweep",  # the kind, not the job id's prefix, tells the refresh worker it is a sweep
            "jobId": "sweep_20261122T1100",
            "part": n,
            "total": 4,
            "asOf": "2026-11-22T11:00:00.000Z",
            "startedAt": "2026-11-22T10:00:01.000Z",  # the function's clock: every part reads profiles alike
        }
        for n in range(4)
    ]


def test_the_admin_list_sources_sample_lists_the_sources(world: World) -> None:
    world.config.create_source(
        Source(id="src_localdemo", name="Demo website", write_key="wk_local_demo", created_at=stamp(SAMPLES_SENT_AT))
    )
    world.config.create_api_key("local admin", "admin", "msk_local_admin", now=SAMPLES_SENT_AT)

    answer = world.api.admin.lambda_handler(sample("admin", "list-sources"), Context())

    assert answer["statusCode"] == 200, answer
    assert [source["id"] for source in json.loads(answer["body"])["sources"]] == ["src_localdemo"]


def test_the_console_sample_gets_the_console_s_main_module(world: World) -> None:
    answer = world.run("ConsoleFunction", sample("console", "module"))

    assert answer["statusCode"] == 200, answer
    assert answer["headers"]["Content-Type"] == "text/javascript; charset=utf-8"
    assert answer["body"] == (ROOT / "functions" / "console" / "static" / "app.js").read_text(encoding="utf-8")


def test_the_webhooks_sample_puts_ann_s_shopify_order_on_the_ingest_queue(world: World) -> None:
    # Given the Shopify source the sample is signed for
    world.config.create_source(
        Source(
            id="src_sampleshop",
            name="Sample shop",
            write_key="wk_sample_shop",
            kind="shopify",
            signing_secret="shpss_sample_secret_for_events",
            created_at=stamp(SAMPLES_SENT_AT),
        )
    )
    # When Shopify's delivery arrives
    answer = world.run("WebhooksFunction", sample("webhooks", "shopify-order"), clock=AT_SEND)
    # Then it is acknowledged, and Ann's order and the marketing grant of its ticked
    # buyer_accepts_marketing are queued for the profile updater
    assert (answer["statusCode"], json.loads(answer["body"])["accepted"]) == (200, 2), answer
    events = [event for message in world.queue("IngestQueue") for event in json.loads(message["Body"])["events"]]
    order, grant = sorted(events, key=lambda event: event["event"], reverse=True)
    assert (order["event"], order["properties"]["order_id"]) == ("Order Completed", "5550001")
    assert order["context"]["traits"]["email"] == "ann@example.com"
    assert (grant["event"], grant["properties"]["granted"]) == ("Consent Updated", True)


def test_the_run_imports_sample_starts_the_import_of_the_dropped_orders_file(world: World) -> None:
    # Given a source whose orders mapping lies beside its files, and the file the sample names
    world.config.create_source(
        Source(
            id="src_sample_import", name="Warehouse", write_key="wk_sample_import", created_at=stamp(SAMPLES_SENT_AT)
        )
    )
    bucket, s3 = world.stack.output("ArchiveBucketName"), world.stack.clients.s3()
    mapping = {"kind": "orders", "mapping": {"email": "email", "order_id": "order", "revenue": "total"}}
    s3.put_object(Bucket=bucket, Key="imports/src_sample_import/_mapping.json", Body=json.dumps(mapping).encode())
    s3.put_object(Bucket=bucket, Key="imports/src_sample_import/orders-2026-11.csv", Body=b"email,order,total\n")
    # When S3's Object Created event for it arrives
    world.run("RunImportsFunction", sample("run_imports", "object-created"), clock=AT_SEND)
    # Then an import of that file is recorded and its plan queued
    (message,) = world.queue("ImportQueue")
    task = json.loads(message["Body"])
    assert task["kind"] == "import.plan"
    progress = world.api.get(f"/v1/imports/{task['importId']}").body
    assert (progress["status"], progress["kind"], progress["origin"]) == ("planning", "orders", "s3")


def test_the_run_imports_regulation_sample_works_the_privacy_request_it_names(world: World) -> None:
    # Given the SUPPRESS_ONLY request the sample names, stored as POST /v1/regulations stores it
    regulate_id = json.loads(sample("run_imports", "regulation-task")["Records"][0]["body"])["regulateId"]
    dynamodb = world.stack.clients.dynamodb()
    Salt(world.stack.output("ConfigTableName"), dynamodb, create=True).get()
    regulations = Regulations(world.table, client=dynamodb)
    request = {
        "regulateId": regulate_id,
        "regulationType": "SUPPRESS_ONLY",
        "subjectType": "PROFILE_ID",
        "subjects": [["profile_id", ANN]],
        "jurisdiction": "GDPR",
        "receivedAt": "2026-11-22T10:00:00.000Z",
        "dueAt": "2026-12-22T10:00:00.000Z",
        "requestedBy": "key_sample",
        "status": "INITIALIZED",
        "report": [],
    }
    assert regulations.create(request, "sample", "2026-11-21T10:00:00.000Z") == (regulate_id, True)
    # When the import queue hands its task over
    world.run("RunImportsFunction", sample("run_imports", "regulation-task"), clock=AT_SEND)
    # Then Ann is suppressed: her profile id, user id and email
    worked = regulations.get(regulate_id)
    assert worked is not None and worked["status"] == "FINISHED"
    [suppressed] = [entry for entry in worked["report"] if "identifiersSuppressed" in entry]
    assert suppressed["identifiersSuppressed"] == 3
    # and the destinations are told (none is set up here)
    assert [entry["store"] for entry in worked["report"] if entry.get("store") == "destinations"] == ["destinations"]


def _records(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": {"ApproximateReceiveCount": "1"},
            "messageAttributes": {},
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
            "awsRegion": "us-east-1",
        }
        for m in messages
    ]


def test_the_destination_samples_queue_anns_events_and_the_scheduled_run_delivers_them(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBHOOK_ALLOW_LOCAL", "true")
    with Sink(status=503) as sink:
        # Given a webhook destination whose receiver is down
        world.config.save_document(
            DESTINATION_KIND,
            Destination(
                id="dst_sample000000",
                name="sample",
                kind="webhook",
                url=sink.url + "/hook",
                secret="dsec_sample-secret-0123456789",
                created_at="2026-11-22T09:00:00.000Z",
                updated_at="2026-11-22T09:00:00.000Z",
            ),
        )
        # When the feed sample (Ann's identify and order, as the profile updater fed them) arrives
        answer = world.run("ForwardDestinationsFunction", sample("forward_destinations", "feed"), clock=AT_SEND)
        # Then it is acknowledged, tried once, and both events wait
        assert answer == {"batchItemFailures": []}
        state = DestinationStore(world.table, client=world.stack.clients.dynamodb())
        assert (len(sink.received), state.stats("dst_sample000000").pending) == (1, 2)
        # When the receiver is back and the scheduled sample runs a minute later
        sink.status = 200
        swept = world.run("ForwardDestinationsFunction", sample("forward_destinations", "scheduled"), clock=AT_SEND)
        # Then both arrive in the order applied
        assert swept == {"drained": {"dst_sample000000": "emptied"}}
        (delivered,) = sink.accepted()
        batch = json.loads(delivered.body)["batch"]
        assert [(i["messageId"], i["profileId"]) for i in batch] == [
            ("sample-identify-0001", "prof_sample_ann"),
            ("sample-track-0001", "prof_sample_ann"),
        ]


def test_the_refit_sample_scores_everyone_but_the_suppressed_once_per_occurrence(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given the archive of a shop (tests/unit/predictions/test_refit_service.py, 20 customers a
    # group) in the bucket, ann among its people (she viewed a scarf), and regular_005 suppressed
    # by a privacy request
    stack, dynamodb = world.stack, world.stack.clients.dynamodb()
    bucket = stack.output("ArchiveBucketName")
    S3Archive(bucket, "archive/", tmp_path / "writer", client=stack.clients.s3()).write(shop_records(20), "shop")
    salt = Salt(stack.output("ConfigTableName"), client=dynamodb, create=True)
    PersonSuppressions(world.table, salt, client=dynamodb).suppress(
        [("user_id", "regular_005")], "reg_1", SAMPLES_SENT_AT
    )
    refit_function = stack.load("RefitPredictionsFunction")
    # The local cloud's stand-in for Athena: DuckDB over a copy of the bucket's partitions
    monkeypatch.setenv("ANALYTICS_ENGINE", "duckdb")
    monkeypatch.setenv("ANALYTICS_CACHE_DIR", str(tmp_path / "cache"))

    # When the weekly schedule fires (twice, as Scheduler may)
    summary = refit_function.lambda_handler(sample("refit_predictions", "scheduled"), Context())
    again = refit_function.lambda_handler(sample("refit_predictions", "scheduled"), Context())

    # Then everyone but regular_005 is scored once, and both models are stored as version 1
    assert (summary["people"], summary["excluded"], summary["scored"]) == (42, 1, 41)
    assert summary["cards"] == ["customer_value.v1", "recommendations.v1"]
    assert (again["scored"], again["notes"]) == (
        0,
        ["customer_value.v1 is already the refit as of 2026-11-23T03:00:00.000Z: nothing sent"],
    )
    cards = ModelCardStore(stack.output("ConfigTableName"), client=dynamodb)
    value = cards.latest("customer_value")
    assert value is not None and value.data.excluded_people == 1 and value.fitted_at == "2026-11-23T03:00:00.000Z"
    assert cards.version("recommendations", 1) == cards.latest("recommendations")

    # And the profile updater lands the scores: ann gets what goes with the scarf she viewed
    applied = apply_ingest_queue(stack, stack.load("ProfileUpdaterFunction"))
    assert applied == 41

    def person(user_id: str) -> Profile:
        [owner] = world.profiles.identity_owners([("user_id", user_id)]).values()
        found = world.profiles.profile(owner)
        assert found is not None
        return found

    ann = person("ann")
    assert ann.traits["predicted"]["recommendations"] == {
        "value": ["hat", "scarf", "shoes", "socks"],
        "model": "recommendations.v1",
    }
    assert person("lapsed_000").traits["predicted"]["churn_risk"]["value"] > 0.9
    assert world.profiles.identity_owners([("user_id", "regular_005")]) == {}
