"""Queue and bus messages: each body says its kind and version, a body from before versions
reads as version 0, a malformed one fails saying what it is not, and correlation ids are only
copied on when they are fit to be."""

from __future__ import annotations

import json

import pytest

from midstage import correlation
from midstage.models.messages import (
    VERSION,
    CampaignPart,
    Delivery,
    DomainEvent,
    MessageError,
    ProfileEvents,
    RefreshPart,
    envelope_for,
    parse_body,
    profile_events_body,
)
from midstage.models.messaging import MessageRequest

REQUEST = {
    "key": "rule:welcome:1:p_ann",
    "origin": {"kind": "rule", "id": "welcome", "version": 1},
    "profile_id": "p_ann",
    "channels": ["email"],
    "template": "welcome-email",
    "requested_at": "2026-12-07T09:00:00+00:00",
}


def test_given_each_kind_when_built_then_its_body_names_kind_and_version_and_reads_back_equal() -> None:
    # Given one message of every queue
    messages = [
        ProfileEvents(events=[{"messageId": "m1", "type": "track", "event": "Order Completed"}]),
        Delivery.of(MessageRequest.model_validate(REQUEST)),
        RefreshPart(kind="refresh.sweep", job_id="sweep_20261207T0900", part=2, total=8, as_of="2026-12-07T09:00:00Z"),
        RefreshPart(kind="refresh.segment", job_id="rf_1", part=0, total=1),
        CampaignPart(campaign_id="black-friday", run_id="r20261127T0900Z", part=3, total=8),
    ]

    for message in messages:
        # When it is written to a queue and read back at the consumer's edge
        body = message.body()
        read = parse_body(type(message), body)

        # Then the body says what it is, and nothing was lost on the way
        assert (json.loads(body)["version"], json.loads(body)["kind"]) == (1, message.kind)
        assert read == message


def test_given_bodies_written_before_versions_when_parsed_then_they_read_as_version_0_of_their_queues_kind() -> None:
    # Given bodies as producers wrote them before messages had a kind
    handoff = json.dumps({"v": 1, "events": [{"messageId": "m1"}]})
    request = json.dumps(REQUEST)
    sweep = json.dumps({"jobId": "sweep_20261122T1100", "part": 1, "total": 4, "asOf": "2026-11-22T11:00:00.000Z"})
    backfill = json.dumps({"jobId": "rf_abc", "part": 0, "total": 1, "cursor": {"pk": "x"}})
    part = json.dumps({"campaignId": "winter-sale", "runId": "r1", "part": 0, "total": 2})

    # When each is parsed by its consumer
    events = parse_body(ProfileEvents, handoff)
    delivery = parse_body(Delivery, request)
    swept, backfilled = parse_body(RefreshPart, sweep), parse_body(RefreshPart, backfill)
    campaign = parse_body(CampaignPart, part)

    # Then each is version 0 of the kind its queue carries; a refresh part's kind follows its job id
    assert (events.version, events.kind, events.events) == (0, "profile.events", [{"messageId": "m1"}])
    assert (delivery.version, delivery.request.key) == (0, REQUEST["key"])
    assert (swept.version, swept.kind, swept.sweep, swept.as_of) == (
        0,
        "refresh.sweep",
        True,
        "2026-11-22T11:00:00.000Z",
    )
    assert (backfilled.kind, backfilled.sweep, backfilled.cursor) == ("refresh.segment", False, {"pk": "x"})
    assert (campaign.version, campaign.kind, campaign.campaign_id) == (0, "campaign.part", "winter-sale")


def test_given_a_version_1_sweep_with_a_job_id_of_any_name_when_parsed_then_its_kind_says_sweep() -> None:
    body = RefreshPart(kind="refresh.sweep", job_id="hourly-7", part=0, total=1).body()

    assert parse_body(RefreshPart, body).sweep


@pytest.mark.parametrize(
    ("model", "body", "says"),
    [
        (ProfileEvents, '{"v": 2, "events": []}', "not a hand-off message: "),
        (ProfileEvents, '{"version": 1, "kind": "profile.events", "events": []}', "not a hand-off message: events"),
        (Delivery, '{"version": 1, "kind": "delivery.request"}', "not a message request: key"),
        (Delivery, "[]", "not a message request: "),
        (RefreshPart, '{"version": 1, "kind": "refresh.nightly", "jobId": "j", "part": 0, "total": 1}', "kind"),
        (RefreshPart, '{"version": 9, "kind": "refresh.sweep", "jobId": "j", "part": 0, "total": 1}', "version"),
        (CampaignPart, '{"campaignId": "winter-sale", "runId": "r", "part": "first", "total": 1}', "part"),
        (CampaignPart, "{not json", "not a campaign part: "),
    ],
)
def test_given_a_malformed_body_when_parsed_then_it_fails_saying_what_it_is_not(
    model: type[ProfileEvents], body: str, says: str
) -> None:
    with pytest.raises(ValueError) as refused:
        parse_body(model, body)

    assert says in str(refused.value)
    assert type(refused.value) is ValueError  # the dead-letter listing names it, as before messages had kinds


def test_given_a_published_domain_event_when_a_target_reads_it_then_it_gets_the_detail_as_published_and_the_id() -> (
    None
):
    # Given a detail as a producer published it, its envelope added by the publisher
    detail = {"profileId": "p_ann", "version": 4, "event": {"event": "Order Completed"}}
    on_the_bus = {
        "detail-type": "event.tracked",
        "detail": {**detail, "envelope": envelope_for("event.tracked", "c-1")},
    }

    # When a bus target reads it
    domain = DomainEvent.from_bus(on_the_bus)

    # Then the services see the detail exactly as published (its own `version` untouched)
    assert (domain.kind, domain.detail, domain.correlation_id) == ("event.tracked", detail, "c-1")
    assert (domain.envelope.version, domain.envelope.kind) == (1, "event.tracked")


def test_given_a_domain_event_without_envelope_when_read_then_it_is_version_0_without_an_id() -> None:
    domain = DomainEvent.from_bus({"detail-type": "profile.updated", "detail": {"profileId": "p"}})

    assert (domain.envelope.version, domain.correlation_id, domain.detail) == (0, None, {"profileId": "p"})


@pytest.mark.parametrize("event", [None, [], {"detail-type": "x"}, {"detail": "text"}, {"detail": {"envelope": {}}}])
def test_given_something_that_is_not_a_domain_event_when_read_then_it_is_refused(event: object) -> None:
    with pytest.raises(MessageError):
        DomainEvent.from_bus(event)


def test_given_an_http_request_when_correlated_then_the_callers_header_wins_else_the_gateways_request_id() -> None:
    request = {"headers": {"X-Correlation-Id": "checkout-42"}, "requestContext": {"requestId": "gw-1"}}
    assert correlation.from_http(request) == "checkout-42"
    assert correlation.from_http({"headers": {}, "requestContext": {"requestId": "gw-1"}}) == "gw-1"


@pytest.mark.parametrize("given", ["", "   ", "a b", 'quote"d', "x" * 129, "caf\u00e9", "line\nbreak", 42])
def test_given_an_unfit_correlation_header_when_correlated_then_the_request_id_is_used(given: object) -> None:
    request = {"headers": {"x-correlation-id": given}, "requestContext": {"requestId": "gw-1"}}

    assert correlation.from_http(request) == "gw-1"


def test_given_an_sqs_record_when_correlated_then_its_message_attribute_is_the_id() -> None:
    attributes = correlation.sqs_attributes("c-7")
    record = {"messageAttributes": {"correlationId": {"stringValue": "c-7", "dataType": "String"}}}

    assert attributes == {"correlationId": {"DataType": "String", "StringValue": "c-7"}}
    assert correlation.from_record(record) == "c-7"
    assert correlation.from_record({"messageAttributes": {}}) is None
    assert correlation.sqs_attributes(None) == {}


def test_given_a_schedule_firing_when_correlated_then_the_event_id_else_the_invocation_id_is_used() -> None:
    assert correlation.from_schedule({"id": "evt-1", "detail-type": "Scheduled Event"}, "req-1") == "evt-1"
    assert correlation.from_schedule({"campaignId": "c", "scheduledTime": "2026-12-07T09:00:00Z"}, "req-1") == "req-1"


def test_a_hand_off_body_written_without_a_model_reads_back_as_the_current_version() -> None:
    # Given events written as the tracking API hands them off (no model built on the hot path)
    events = [{"type": "track", "event": "Order Completed", "messageId": "m-1", "properties": {"total": 42}}]
    body = profile_events_body(events)
    # When the profile updater reads the body
    read = parse_body(ProfileEvents, body)
    # Then it is the current version of its kind, with the events as they were
    assert (read.version, read.kind, read.events) == (VERSION, "profile.events", events)
    assert body == ProfileEvents(events=events).body()
