"""Archive records: what each domain object becomes, ids that make a repeat recognisable, spend
lines with their problems, the Firehose JSON line and the Pinpoint envelope."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from midstage.adapters import parquet
from midstage.logic.archive import pinpoint, records
from midstage.logic.archive.spend import parse_spend_csv
from midstage.models.archive import COLUMN_NAMES, EventRecord
from midstage.models.messaging import MessageRequest

ARCHIVED = datetime(2026, 4, 1, 0, 5, tzinfo=UTC)


def _order(**overrides: object) -> dict:
    body = {
        "type": "track",
        "event": "Order Completed",
        "messageId": "m-1",
        "userId": "ann",
        "sourceId": "src_web",
        "timestamp": "2026-03-05T10:00:00.000Z",
        "properties": {"total": 50, "currency": "EUR"},
        "context": {
            "campaign": {"source": "google", "medium": "cpc", "name": "spring", "term": "shoes"},
            "page": {"path": "/checkout"},
            "ip": "203.0.113.9",
            "userAgent": "Mozilla/5.0",
        },
    }
    body.update(overrides)
    return body


def _request(kind: str = "campaign", channel: str = "email") -> MessageRequest:
    return MessageRequest(
        key=f"{kind}:spring:ann",
        origin={"kind": kind, "id": "spring", "version": 2, "step": "send"},
        profile_id="prof-ann",
        channels=[channel],
        template="spring-email",
        requested_at="2026-03-01T09:00:00.000Z",
    )


# ------------------------------------------------------------------ events
def test_an_order_keeps_its_utm_fields_and_its_total_as_revenue_and_drops_device_context() -> None:
    record = records.event_record(_order(), "prof-ann", ARCHIVED)
    assert (record.utm_source, record.utm_medium, record.utm_campaign, record.utm_term) == (
        "google",
        "cpc",
        "spring",
        "shoes",
    )
    assert record.campaign == "spring" and record.utm_content is None
    assert (record.revenue, record.currency) == (50.0, "EUR")
    assert json.loads(record.context or "") == {
        "campaign": {"medium": "cpc", "name": "spring", "source": "google", "term": "shoes"},
        "page": {"path": "/checkout"},
    }
    assert record.occurred_at == datetime(2026, 3, 5, 10, tzinfo=UTC)


def test_revenue_given_as_text_is_read_as_a_number_and_other_events_carry_none() -> None:
    order = records.event_record(_order(properties={"revenue": "30.00"}), "prof-ann", ARCHIVED)
    view = records.event_record(_order(event="Product Viewed", properties={"revenue": 9}), "prof-ann", ARCHIVED)
    assert order.revenue == 30.0
    assert view.revenue is None and view.currency is None


def test_a_configured_conversion_event_takes_its_value_property() -> None:
    body = _order(event="Signed Up", properties={"worth": "12.5"})
    record = records.event_record(body, "prof-ann", ARCHIVED, conversion_event="Signed Up", value_property="worth")
    assert record.revenue == 12.5


def test_identify_archives_its_traits_and_page_its_name() -> None:
    identify = records.event_record(
        {
            "type": "identify",
            "messageId": "m-2",
            "sourceId": "s",
            "timestamp": "2026-03-05T10:00:00Z",
            "traits": {"plan": "pro"},
        },
        "prof-ann",
        ARCHIVED,
    )
    page = records.event_record(
        {"type": "page", "name": "Landing", "messageId": "m-3", "sourceId": "s", "timestamp": "2026-03-05T10:00:00Z"},
        "prof-ann",
        ARCHIVED,
    )
    assert json.loads(identify.properties or "") == {"plan": "pro"} and identify.event is None
    assert page.event == "Landing" and page.properties is None


def test_the_same_event_has_the_same_id_and_another_source_a_different_one() -> None:
    first = records.event_record(_order(), "prof-ann", ARCHIVED)
    again = records.event_record(_order(), "prof-ann", ARCHIVED + timedelta(days=1))
    elsewhere = records.event_record(_order(sourceId="src_app"), "prof-ann", ARCHIVED)
    assert first.record_id == again.record_id != elsewhere.record_id


def test_a_record_is_partitioned_by_the_utc_day_it_happened() -> None:
    # 01:30 in Paris on Mar 2 is 23:30 UTC on Mar 1
    record = records.event_record(_order(timestamp="2026-03-02T01:30:00+02:00"), "prof-ann", ARCHIVED)
    assert record.prefix == "kind=event/dt=2026-03-01/"
    row = record.row()
    assert list(row) == list(COLUMN_NAMES)
    assert row["occurred_at"] == datetime(2026, 3, 1, 23, 30) and row["occurred_at"].tzinfo is None


# ------------------------------------------------------------------ messages
def test_a_blocked_message_names_its_guard_and_addresses_in_reasons_are_masked() -> None:
    at = datetime(2026, 3, 1, 9, tzinfo=UTC)
    blocked = records.message_outcome(
        _request(), "blocked", "no_consent: none for ann@example.com", "email", at, ARCHIVED
    )
    assert blocked is not None
    assert (blocked.kind, blocked.guard, blocked.reason) == (
        "message_blocked",
        "no_consent",
        "no_consent: none for <address>",
    )
    assert (blocked.origin_kind, blocked.origin_id, blocked.origin_version, blocked.campaign) == (
        "campaign",
        "spring",
        2,
        "spring",
    )
    assert records.mask_addresses("sms to +33 6 12 34 56 78 failed") == "sms to <phone> failed"
    assert records.message_outcome(_request(), "queued", "", "email", at, ARCHIVED) is None


def test_each_deferral_of_a_message_is_a_fact_of_its_own() -> None:
    at = datetime(2026, 3, 1, 22, tzinfo=UTC)
    first = records.message_outcome(
        _request(), "deferred", "quiet_hours: 22-8", "email", at, ARCHIVED, deferred_until="2026-03-02T08:00:00Z"
    )
    second = records.message_outcome(
        _request(), "deferred", "quiet_hours: 22-8", "email", at, ARCHIVED, deferred_until="2026-03-03T08:00:00Z"
    )
    assert first is not None and second is not None
    assert first.guard == "quiet_hours" and first.record_id != second.record_id


def test_two_opens_are_two_records_and_a_redelivered_one_is_the_same() -> None:
    at = datetime(2026, 3, 1, 12, tzinfo=UTC)
    one = records.message_feedback(_request(), "open", at, ARCHIVED, channel="email", provider_event_id="o1")
    two = records.message_feedback(_request(), "open", at, ARCHIVED, channel="email", provider_event_id="o2")
    again = records.message_feedback(_request(), "open", at, ARCHIVED, channel="email", provider_event_id="o1")
    assert one is not None and two is not None and again is not None
    assert one.record_id == again.record_id != two.record_id
    assert one.message_id == _request().message_id and one.template_id == "spring-email"


def test_feedback_kinds_map_to_message_kinds() -> None:
    at = datetime(2026, 3, 1, 12, tzinfo=UTC)

    def kind(feedback: str, **extra: object) -> str | None:
        got = records.message_feedback(
            _request(), feedback, at, ARCHIVED, channel="email", provider_event_id="x", **extra
        )  # type: ignore[arg-type]
        return None if got is None else got.kind

    assert kind("delivery") == "message_delivered"
    assert kind("click", link="https://shop.example/") == "message_clicked"
    assert kind("complaint") == "message_complained"
    assert kind("subscription") == "message_unsubscribed"
    assert kind("rendering_failure") is None
    bounce = records.message_feedback(
        _request(), "bounce", at, ARCHIVED, channel="email", provider_event_id="b", permanent=True
    )
    assert bounce is not None and json.loads(bounce.detail or "") == {"bounce_type": "Permanent"}


# ------------------------------------------------------------------ spend
def test_spend_lines_parse_and_each_bad_line_is_a_problem_of_its_own() -> None:
    text = (
        "date,channel,campaign,amount,currency\n"
        "2026-03-02,google,spring,60.5,usd\n"
        "2026-13-02,google,spring,1,USD\n"
        "2026-03-03,google,spring,lots,USD\n"
        "2026-03-04,facebook,,10,EURO\n"
        "2026-03-05,facebook,,10,EUR\n"
    )
    lines, problems = parse_spend_csv(text, archived_at=ARCHIVED, source_id="import-1")
    assert [(r.channel, r.campaign, r.amount, r.currency, r.day.isoformat()) for r in lines] == [
        ("google", "spring", 60.5, "USD", "2026-03-02"),
        ("facebook", None, 10.0, "EUR", "2026-03-05"),
    ]
    assert [p.line for p in problems] == [3, 4, 5]
    assert "YYYY-MM-DD" in problems[0].message and "not a number" in problems[1].message
    assert "currency" in problems[2].message


def test_a_corrected_spend_file_replaces_its_lines() -> None:
    header = "date,channel,campaign,amount,currency\n"
    first, _ = parse_spend_csv(header + "2026-03-02,google,spring,60,USD\n", archived_at=ARCHIVED, source_id="a")
    fixed, _ = parse_spend_csv(header + "2026-03-02,google,spring,65,USD\n", archived_at=ARCHIVED, source_id="b")
    assert first[0].record_id == fixed[0].record_id and fixed[0].amount == 65


def test_a_spend_file_without_the_needed_columns_is_refused_at_its_header() -> None:
    lines, problems = parse_spend_csv("day,channel,cost\n2026-03-02,google,60\n", archived_at=ARCHIVED, source_id="a")
    assert lines == [] and [p.line for p in problems] == [1]
    assert "date" in problems[0].message and "amount" in problems[0].message


def test_windows_and_old_mac_line_ends_read_and_a_malformed_or_oversized_line_is_one_problem() -> None:
    """A carriage return ends a line, as in files saved on Windows or old Macs; a malformed
    record or an oversized field sinks only its own line."""
    text = (
        "date,channel,campaign,amount,currency\r\n"
        "2026-03-02,google,spring,60,USD\r"
        f'"{"x" * 200_000}",google,spring,1,USD\n'
        '"2026-03-04"x,google,spring,5,USD\n'
        "2026-03-03,google,spring,70,USD\n"
    )
    lines, problems = parse_spend_csv(text, archived_at=ARCHIVED, source_id="a")
    assert [r.amount for r in lines] == [60.0, 70.0]
    assert [p.line for p in problems] == [3, 4]
    assert "is not YYYY-MM-DD" in problems[0].message and "closing quote" in problems[1].message


def test_spend_text_from_the_fuzzer_is_refused_by_line_not_raised() -> None:
    """The body that once answered 500: control characters and a bare carriage return."""
    text = "\u00bb\u0005\U000eb4ed\u001a\r\u00ca]\nM\u00d0\u009aA"
    lines, problems = parse_spend_csv(text, archived_at=ARCHIVED, source_id="a")
    assert lines == [] and [p.line for p in problems] == [1]


# ------------------------------------------------------------------ Firehose lines and partitions
def test_a_firehose_line_carries_every_column_and_the_partition_keys() -> None:
    record = records.event_record(_order(), "prof-ann", ARCHIVED)
    line = parquet.json_line(record)
    assert line.endswith(b"\n")
    row = json.loads(line)
    assert set(row) == {*COLUMN_NAMES, "kind", "dt"}
    assert (row["kind"], row["dt"]) == ("event", "2026-03-05")
    assert row["occurred_at"] == "2026-03-05T10:00:00.000Z" and row["archived_at"] == "2026-04-01T00:05:00.000Z"


def test_partitions_group_by_kind_and_day_in_time_order_without_repeats() -> None:
    late = records.event_record(_order(messageId="m-late", timestamp="2026-03-05T18:00:00Z"), "prof-ann", ARCHIVED)
    early = records.event_record(_order(messageId="m-early", timestamp="2026-03-05T08:00:00Z"), "prof-ann", ARCHIVED)
    other_day = records.event_record(_order(messageId="m-6", timestamp="2026-03-06T08:00:00Z"), "prof-ann", ARCHIVED)
    sent = records.message_outcome(_request(), "sent", "", "email", datetime(2026, 3, 5, 9, tzinfo=UTC), ARCHIVED)
    assert sent is not None
    groups = parquet.partitions([late, sent, early, late, other_day])
    assert {prefix: [r.record_id for r in group] for prefix, group in groups.items()} == {
        "kind=event/dt=2026-03-05/": [early.record_id, late.record_id],
        "kind=event/dt=2026-03-06/": [other_day.record_id],
        "kind=message_sent/dt=2026-03-05/": [sent.record_id],
    }


# ------------------------------------------------------------------ Pinpoint envelope
def test_an_email_send_and_a_hard_bounce_in_pinpoints_envelope() -> None:
    at = datetime(2026, 3, 1, 9, 0, 1, tzinfo=UTC)
    sent = records.message_outcome(_request(), "sent", "", "email", at, ARCHIVED)
    bounce = records.message_feedback(
        _request(),
        "bounce",
        at + timedelta(seconds=1),
        ARCHIVED,
        channel="email",
        provider_event_id="b",
        permanent=True,
    )
    assert sent is not None and bounce is not None
    body = pinpoint.envelope(sent, app_id="app-1", account_id="123456789012")
    assert body is not None
    assert body["event_type"] == "_email.send"
    assert body["event_timestamp"] == 1772355601000  # 2026-03-01T09:00:01Z
    assert body["arrival_timestamp"] == 1775001900000  # 2026-04-01T00:05:00Z
    assert body["client"] == {"client_id": "prof-ann"}
    assert body["attributes"] == {
        "message_id": _request().message_id,
        "campaign_id": "spring",
        "campaign_activity_id": "send",
        "treatment_id": "0",
    }
    assert body["facets"]["email_channel"]["mail_event"]["mail"]["message_id"] == _request().message_id
    bounced = pinpoint.envelope(bounce, app_id="app-1")
    assert bounced is not None and bounced["event_type"] == "_email.hardbounce"
    assert bounced["facets"]["email_channel"]["mail_event"]["bounce"] == {"bounce_type": "Permanent"}


def test_a_journey_sms_delivery_and_a_tracked_event_in_pinpoints_envelope() -> None:
    at = datetime(2026, 3, 14, 10, 1, tzinfo=UTC)
    delivered = records.message_feedback(
        _request("journey", "sms"), "delivery", at, ARCHIVED, channel="sms", provider_event_id="s1"
    )
    assert delivered is not None
    body = pinpoint.envelope(delivered, app_id="app-1")
    assert body is not None and body["event_type"] == "_SMS.SUCCESS"
    assert body["attributes"]["journey_id"] == "spring" and body["attributes"]["record_status"] == "SUCCESS"
    order = records.event_record(_order(properties={"revenue": 20, "sku": "A-1", "gift": True}), "prof-ann", ARCHIVED)
    tracked = pinpoint.envelope(order, app_id="app-1")
    assert tracked is not None and tracked["event_type"] == "Order Completed"
    assert tracked["metrics"] == {"revenue": 20.0}
    assert tracked["attributes"] == {
        "sku": "A-1",
        "gift": "True",
        "utm_source": "google",
        "utm_medium": "cpc",
        "utm_campaign": "spring",
    }


def test_records_without_a_pinpoint_counterpart_have_no_envelope() -> None:
    blocked = records.message_outcome(
        _request(), "blocked", "suppressed: bounce", "email", datetime(2026, 3, 1, tzinfo=UTC), ARCHIVED
    )
    spend, _ = parse_spend_csv(
        "date,channel,campaign,amount,currency\n2026-03-02,google,spring,60,USD\n", archived_at=ARCHIVED, source_id="a"
    )
    assert blocked is not None
    assert pinpoint.envelope(blocked, app_id="app-1") is None
    assert pinpoint.json_line(spend[0], app_id="app-1") is None


@pytest.mark.parametrize("offset", [timezone(timedelta(hours=-5)), UTC])
def test_a_record_given_any_offset_is_stored_in_utc(offset: timezone) -> None:
    moment = datetime(2026, 3, 1, 20, tzinfo=offset)
    record = EventRecord(
        record_id="r",
        occurred_at=moment,
        archived_at=ARCHIVED,
        profile_id="p",
        source_id="s",
        event_type="track",
        event="X",
        message_id="m",
    )
    assert record.occurred_at == moment and record.occurred_at.tzinfo == UTC
