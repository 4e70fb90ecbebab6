"""Tracking intake: decoding, limits, validation, enrichment, clock-skew correction."""

from __future__ import annotations

import base64
import gzip
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from midstage.adapters.documents import pack
from midstage.config import IdentitySettings
from midstage.errors import InvalidInput, PayloadTooLarge, Unauthorized
from midstage.logic import collect
from midstage.logic.timefmt import iso

RECEIVED = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
LIMITS = collect.Limits()
IDENTITY = IdentitySettings()


def intake(body: dict | list | str, endpoint: str = "batch", limits: collect.Limits = LIMITS) -> collect.Intake:
    raw = (body if isinstance(body, str) else json.dumps(body)).encode()
    document = collect.read_document(raw, endpoint, limits)
    return collect.intake(
        document,
        collect.RequestMeta("src_1", RECEIVED, "203.0.113.9", "curl/8"),
        IDENTITY,
        limits,
    )


def test_write_key_is_the_basic_auth_user_name() -> None:
    header = "Basic " + base64.b64encode(b"wk_abc:").decode()
    assert collect.write_key_from_authorization(header) == "wk_abc"


def test_malformed_basic_credentials_are_unauthorized() -> None:
    with pytest.raises(Unauthorized):
        collect.write_key_from_authorization("Basic !!!not-base64!!!")


def test_bearer_is_not_a_write_key() -> None:
    assert collect.write_key_from_authorization("Bearer wk_abc") is None


def test_gzip_body_is_inflated() -> None:
    payload = json.dumps({"event": "x"}).encode()
    body = base64.b64encode(gzip.compress(payload)).decode()
    assert collect.decode_body(body, is_base64=True, content_encoding="gzip", limit=1024) == payload


def test_gzip_bomb_is_refused_without_inflating_it_all() -> None:
    bomb = base64.b64encode(gzip.compress(b"{" + b" " * 50_000_000 + b"}")).decode()
    with pytest.raises(PayloadTooLarge) as refused:
        collect.decode_body(bomb, is_base64=True, content_encoding="gzip", limit=500 * 1024)
    assert refused.value.code == "body_too_large"


@pytest.mark.parametrize(
    ("body", "encoding", "code"),
    [
        (base64.b64encode(b"not gzip at all").decode(), "gzip", "invalid_gzip"),
        (base64.b64encode(gzip.compress(b'{"a":1}')[:-6]).decode(), "gzip", "invalid_gzip"),
        ("%%%", None, "invalid_encoding"),
        (base64.b64encode(b"{}").decode(), "br", "unsupported_encoding"),
        ("", None, "empty_body"),
    ],
)
def test_undecodable_bodies_get_a_precise_code(body: str, encoding: str | None, code: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        collect.decode_body(body, is_base64=True, content_encoding=encoding, limit=1024)
    assert refused.value.code == code


def test_oversized_single_event_body_is_refused_before_parsing() -> None:
    with pytest.raises(PayloadTooLarge):
        collect.decode_body("x" * (32 * 1024 + 1), is_base64=False, content_encoding=None, limit=32 * 1024)


@pytest.mark.parametrize(
    "text", ['{"batch": [', "[]", '{"batch": {}}', '{"batch": [1,] }', '{"a":1} trailing', '{"batch": [], }', "\xff"]
)
def test_malformed_batch_documents_are_invalid_input(text: str) -> None:
    with pytest.raises(InvalidInput):
        collect.read_document(text.encode("utf-8", "surrogateescape"), "batch", LIMITS)


def test_batch_with_too_many_events_is_refused_whole() -> None:
    events = [{"type": "track", "event": "e", "userId": "u"}] * 3
    with pytest.raises(PayloadTooLarge) as refused:
        collect.read_document(json.dumps({"batch": events}).encode(), "batch", collect.Limits(max_batch_events=2))
    assert refused.value.code == "too_many_events"


def test_event_sizes_are_measured_from_the_body_so_one_big_event_is_rejected_alone() -> None:
    small = {"type": "track", "event": "ok", "userId": "u1"}
    big = {"type": "track", "event": "big", "userId": "u1", "properties": {"blob": "x" * 40_000}}
    result = intake({"batch": [small, big, small]})
    assert len(result.accepted) == 2
    assert [(r.index, r.code) for r in result.rejected] == [(1, "event_too_large")]


def test_batch_with_one_bad_event_keeps_the_good_ones() -> None:
    result = intake(
        {
            "batch": [
                {"type": "track", "event": "Signed Up", "userId": "u1"},
                {"type": "track", "userId": "u1"},
                {"type": "teleport", "userId": "u1"},
                {"type": "identify", "traits": {"a": 1}},
                "not an object",
                {"type": "page", "anonymousId": "a1", "name": "Home"},
            ]
        }
    )
    assert [e["type"] for e in result.accepted] == ["track", "page"]
    assert {r.index: r.code for r in result.rejected} == {
        1: "invalid_event",
        2: "invalid_type",
        3: "missing_identifier",
        4: "invalid_event",
    }


@pytest.mark.parametrize("blocked", ["null", "undefined", "0", "-1", "anonymous", "  NULL "])
def test_blocked_identifiers_do_not_count_as_identifiers(blocked: str) -> None:
    result = intake({"batch": [{"type": "track", "event": "x", "userId": blocked}]})
    assert result.rejected[0].code == "missing_identifier"
    assert "blocked" in result.rejected[0].message


def test_blocked_user_id_is_dropped_but_a_real_anonymous_id_is_kept() -> None:
    result = intake({"batch": [{"type": "track", "event": "x", "userId": "undefined", "anonymousId": "a-1"}]})
    assert result.accepted[0]["userId"] is None
    assert result.accepted[0]["anonymousId"] == "a-1"


def test_numeric_ids_are_accepted_as_strings() -> None:
    result = intake({"batch": [{"type": "identify", "userId": 42}]})
    assert result.accepted[0]["userId"] == "42"


def test_wrong_types_are_rejected_with_the_field_named() -> None:
    result = intake({"batch": [{"type": "track", "event": "x", "userId": "u", "properties": "not a dict"}]})
    assert result.rejected[0].code == "invalid_event"
    assert "properties" in result.rejected[0].message


def test_clock_skew_is_corrected_the_way_segment_does() -> None:
    # The client's clock is 1 hour fast: it says it created the event at 13:00:00 and sent it at 13:00:05.
    result = intake(
        {
            "batch": [
                {
                    "type": "track",
                    "event": "x",
                    "userId": "u",
                    "originalTimestamp": "2026-11-22T13:00:00Z",
                    "sentAt": "2026-11-22T13:00:05Z",
                }
            ]
        }
    )
    assert result.accepted[0]["timestamp"] == "2026-11-22T11:59:55.000Z"
    assert result.accepted[0]["receivedAt"] == "2026-11-22T12:00:00.000Z"
    assert result.accepted[0]["originalTimestamp"] == "2026-11-22T13:00:00Z"


def test_batch_level_sent_at_and_context_apply_to_each_event() -> None:
    result = intake(
        {
            "sentAt": "2026-11-22T12:00:10Z",
            "context": {"library": {"name": "analytics-python"}, "locale": "fr-FR"},
            "batch": [
                {
                    "type": "track",
                    "event": "x",
                    "userId": "u",
                    "timestamp": "2026-11-22T12:00:00Z",
                    "context": {"locale": "de-DE"},
                }
            ],
        }
    )
    event = result.accepted[0]
    assert event["timestamp"] == "2026-11-22T11:59:50.000Z"
    assert event["context"]["library"] == {"name": "analytics-python"}
    assert event["context"]["locale"] == "de-DE"


def test_timestamp_without_sent_at_is_trusted_and_missing_one_defaults_to_received_at() -> None:
    result = intake(
        {
            "batch": [
                {"type": "track", "event": "old", "userId": "u", "timestamp": "2025-01-01T00:00:00+02:00"},
                {"type": "track", "event": "now", "userId": "u"},
            ]
        }
    )
    assert result.accepted[0]["timestamp"] == "2024-12-31T22:00:00.000Z"
    assert result.accepted[1]["timestamp"] == "2026-11-22T12:00:00.000Z"


def test_naive_timestamps_are_rejected() -> None:
    result = intake({"batch": [{"type": "track", "event": "x", "userId": "u", "timestamp": "2026-11-22T12:00:00"}]})
    assert result.rejected[0].code == "invalid_timestamp"


def test_server_assigns_a_message_id_and_adds_ip_and_user_agent() -> None:
    event = intake({"batch": [{"type": "track", "event": "x", "userId": "u"}]}).accepted[0]
    assert event["messageId"].startswith("ms-")
    assert event["context"]["ip"] == "203.0.113.9"
    assert event["context"]["userAgent"] == "curl/8"
    assert event["sourceId"] == "src_1"


def test_single_call_takes_its_type_from_the_route() -> None:
    result = intake({"type": "identify", "event": "Clicked", "userId": "u"}, endpoint="track")
    assert result.accepted[0]["type"] == "track"


@pytest.mark.parametrize(
    ("call", "code_fragment"),
    [
        ({"type": "alias", "userId": "u"}, "previousId"),
        ({"type": "group", "userId": "u"}, "groupId"),
        ({"type": "track", "userId": "u", "event": "   "}, "event"),
    ],
)
def test_calls_missing_their_required_fields_are_rejected(call: dict, code_fragment: str) -> None:
    rejection = intake({"batch": [call]}).rejected[0]
    assert rejection.code == "invalid_event"
    assert code_fragment in rejection.message


def test_hostile_strings_are_carried_as_inert_data() -> None:
    hostile = {
        "type": "track",
        "userId": "u'; DROP TABLE profiles;--",
        "event": "<script>alert(1)</script>",
        "properties": {"$where": "1==1", "__proto__": {"x": 1}, "nul": "a\u0000b", "rtl": "\u202eabc"},
    }
    event = intake({"batch": [hostile]}).accepted[0]
    assert event["userId"] == hostile["userId"]
    assert event["event"] == hostile["event"]
    assert event["properties"] == hostile["properties"]


def test_events_are_grouped_by_user_id_else_anonymous_id() -> None:
    events = intake(
        {
            "batch": [
                {"type": "track", "event": "a", "userId": "u1", "anonymousId": "x"},
                {"type": "track", "event": "b", "anonymousId": "x"},
                {"type": "track", "event": "c", "userId": "u1"},
            ]
        }
    ).accepted
    groups = collect.group_by_person(events)
    assert {k: [e["event"] for e in v] for k, v in groups.items()} == {"u:u1": ["a", "c"], "a:x": ["b"]}


def test_naive_sent_at_is_rejected_not_a_crash() -> None:
    result = intake(
        {
            "batch": [
                {
                    "type": "track",
                    "event": "x",
                    "userId": "u",
                    "timestamp": "2026-11-22T12:00:00Z",
                    "sentAt": "2026-11-22T12:00:05",
                }
            ]
        }
    )
    assert result.rejected[0].code == "invalid_timestamp"


def test_event_size_limit_counts_bytes_not_characters() -> None:
    # 12,000 three-byte characters: 12,000 characters but 36,000 bytes, over the 32 KB limit.
    wide = {"type": "track", "event": "x", "userId": "u", "properties": {"t": "\u20ac" * 12_000}}
    narrow = {"type": "track", "event": "x", "userId": "u", "properties": {"t": "e" * 12_000}}
    raw = json.dumps({"batch": [wide, narrow]}, ensure_ascii=False).encode()
    document = collect.read_document(raw, "batch", LIMITS)
    result = collect.intake(document, collect.RequestMeta("s", RECEIVED), IDENTITY, LIMITS)
    assert [(r.index, r.code) for r in result.rejected] == [(0, "event_too_large")]
    assert len(result.accepted) == 1


def test_epoch_zero_original_timestamp_is_kept_not_a_crash() -> None:
    result = intake({"batch": [{"type": "track", "event": "x", "userId": "u", "originalTimestamp": 0}]})
    assert result.accepted[0]["originalTimestamp"] == 0
    assert result.accepted[0]["timestamp"] == "1970-01-01T00:00:00.000Z"


def test_absurd_clock_skew_is_rejected_not_a_crash() -> None:
    result = intake(
        {
            "batch": [
                {
                    "type": "track",
                    "event": "x",
                    "userId": "u",
                    "originalTimestamp": "0001-01-01T00:00:00Z",
                    "sentAt": "9999-12-31T00:00:00Z",
                }
            ]
        }
    )
    assert result.rejected[0].code == "invalid_timestamp"


def test_deeply_nested_bodies_are_invalid_json() -> None:
    deep = (
        '{"batch": [{"type": "track", "event": "x", "userId": "u", "properties": '
        + "[" * 100_000
        + "]" * 100_000
        + "}]}"
    )
    with pytest.raises(InvalidInput) as refused:
        collect.read_document(deep.encode(), "batch", LIMITS)
    assert refused.value.code == "invalid_json"
    with pytest.raises(InvalidInput):
        collect.read_document(("[" * 100_000 + "]" * 100_000).encode(), "track", LIMITS)


def test_batch_level_context_counts_toward_each_events_size() -> None:
    body = {"context": {"blob": "x" * 40_000}, "batch": [{"type": "track", "event": "x", "userId": "u"}]}
    result = intake(body)
    assert result.rejected[0].code == "event_too_large"


# ------------------------------------------------------------------------------ storable text and numbers
POISON = {
    "user id": '{"type":"track","userId":"x\\ud800","event":"E"}',
    "event name": '{"type":"track","userId":"u","event":"E \\udfff"}',
    "property key": '{"type":"track","userId":"u","event":"E","properties":{"k\\ud83d":1}}',
    "deep value": '{"type":"track","userId":"u","event":"E","properties":{"a":[{"b":"\\udc00"}]}}',
    "huge exponent": '{"type":"track","userId":"u","event":"E","properties":{"n":1e999999}}',
    "NaN": '{"type":"track","userId":"u","event":"E","properties":{"n":NaN}}',
    "Infinity": '{"type":"identify","userId":"u","traits":{"n":-Infinity}}',
    "long digits": '{"type":"track","userId":"u","event":"E","properties":{"n":' + "9" * 400 + ".0}}",
}


def test_unstorable_events_are_rejected_alone_with_a_clear_code_and_a_storable_excerpt() -> None:
    good = '{"type":"track","userId":"u","event":"Fine \\ud83d\\ude00","properties":{"n":1e300}}'
    raw = '{"batch":[' + ",".join([good, *POISON.values(), good]) + "]}"
    result = intake(raw)
    assert len(result.accepted) == 2
    assert result.accepted[0]["event"] == "Fine \U0001f600"
    codes = {r.index: r.code for r in result.rejected}
    expected_codes = ["invalid_text"] * 4 + ["invalid_number"] * 4
    assert codes == dict(enumerate(expected_codes, start=1))
    for rejection in result.rejected:
        assert rejection.message
        pack({"message": rejection.message, "payload": rejection.payload})  # the quarantine can keep it
    assert "\\ud800" in result.rejected[0].payload


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(alphabet=st.characters(codec=None)),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
        max_leaves=8,
    )
)
def test_whatever_a_client_sends_what_intake_accepts_can_be_stored_and_answered(properties: object) -> None:
    event = {"type": "track", "userId": "u", "event": "E", "properties": {"p": properties}}
    result = intake(json.dumps({"batch": [event]}))  # ensure_ascii: surrogates as escapes, NaN as literals
    for accepted in result.accepted:
        strict = json.dumps(accepted, ensure_ascii=False, allow_nan=False).encode("utf-8")
        assert json.loads(strict) == json.loads(json.dumps(accepted))
    assert len(result.accepted) + len(result.rejected) == 1


# ------------------------------------------------------------------ messageId of a retried event
def accepted(body: dict, endpoint: str = "batch", *, later: timedelta = timedelta(0), source: str = "src_1") -> dict:
    """The one event intake accepts from `body`, received `later` after RECEIVED."""
    document = collect.read_document(json.dumps(body).encode(), endpoint, LIMITS)
    result = collect.intake(document, collect.RequestMeta(source, RECEIVED + later), IDENTITY, LIMITS)
    assert len(result.accepted) == 1, result.rejected
    return result.accepted[0]


def test_a_retried_batch_without_message_ids_gets_the_same_ids_again() -> None:
    # Given a client that sends no messageId and retries after a 503 with a new sentAt
    event = {"type": "track", "event": "Signed Up", "userId": "u", "properties": {"plan": "pro", "seats": 3}}
    # When both attempts reach intake, 3 seconds apart
    sent = accepted({"batch": [event], "sentAt": "2026-11-22T12:00:00Z"})
    again = accepted({"batch": [event], "sentAt": "2026-11-22T12:00:03Z"}, later=timedelta(seconds=3))
    # Then the event has one messageId, a recognisable derived one
    assert sent["messageId"] == again["messageId"]
    assert sent["messageId"].startswith("ms-")


def test_a_retried_single_call_gets_the_same_id_whatever_the_key_order() -> None:
    first = {"event": "Signed Up", "userId": "u", "properties": {"a": 1, "b": 2}, "writeKey": "wk"}
    retry = {"properties": {"b": 2, "a": 1}, "userId": "u", "event": "Signed Up", "writeKey": "wk"}
    assert accepted(first, "track")["messageId"] == accepted(retry, "track", later=timedelta(seconds=1))["messageId"]


def test_the_same_event_in_a_batch_and_as_a_single_call_is_one_event() -> None:
    event = {"event": "Signed Up", "userId": "u", "timestamp": "2026-11-22T11:59:58.000Z"}
    in_batch = accepted({"batch": [{"type": "track", **event}], "sentAt": "2026-11-22T11:59:59Z"})
    single = accepted({**event, "sentAt": "2026-11-22T12:00:09Z"}, "track", later=timedelta(seconds=10))
    assert in_batch["messageId"] == single["messageId"]


def test_a_dated_event_keeps_its_id_however_late_the_retry() -> None:
    event = {"type": "track", "event": "Order Completed", "userId": "u", "timestamp": "2026-11-22T11:00:00Z"}
    assert (
        accepted({"batch": [event]})["messageId"] == accepted({"batch": [event]}, later=timedelta(hours=6))["messageId"]
    )


def test_different_events_sources_or_undated_windows_get_different_ids() -> None:
    event = {"type": "track", "event": "Signed Up", "userId": "u"}
    ids = {
        accepted({"batch": [event]})["messageId"],
        accepted({"batch": [event]}, later=timedelta(hours=1))["messageId"],
        accepted({"batch": [{**event, "userId": "v"}]})["messageId"],
        accepted({"batch": [event]}, source="src_2")["messageId"],
        accepted({"batch": [{**event, "timestamp": "2026-11-22T11:59:00Z"}]})["messageId"],
    }
    assert len(ids) == 5


def test_a_message_id_sent_by_the_client_is_kept() -> None:
    event = {"type": "track", "event": "x", "userId": "u", "messageId": "ajs-1"}
    assert intake({"batch": [event]}).accepted[0]["messageId"] == "ajs-1"


# ------------------------------------------------------------------ clock skew and future timestamps
def test_an_event_dated_a_year_ahead_is_placed_at_its_receipt_and_the_correction_recorded() -> None:
    # Given an event whose own time is a year after it reached us, and no sentAt to correct it
    ahead = {"type": "track", "event": "x", "userId": "u", "timestamp": "2027-11-22T12:00:00Z"}
    result = intake({"batch": [ahead]})
    # Then its time is its receipt, the client's reading is kept, and the correction is counted
    event = result.accepted[0]
    assert event["timestamp"] == "2026-11-22T12:00:00.000Z"
    assert event["originalTimestamp"] == "2027-11-22T12:00:00Z"
    assert event["timestampCorrection"] == "future"
    assert result.future_timestamps == 1


def test_a_clock_two_hours_fast_without_sent_at_does_not_date_the_event_in_the_future() -> None:
    # Given a server library whose clock is 2 hours fast and which sends no sentAt
    event = intake({"batch": [{"type": "track", "event": "x", "userId": "u", "timestamp": "2026-11-22T14:00:00Z"}]})
    assert event.accepted[0]["timestamp"] == "2026-11-22T12:00:00.000Z"


def test_a_clock_two_hours_fast_with_sent_at_is_corrected_to_the_right_time() -> None:
    # Given a device 2 hours fast that made the event 30 s before sending it
    fast = {
        "type": "track",
        "event": "x",
        "userId": "u",
        "originalTimestamp": "2026-11-22T13:59:30Z",
        "sentAt": "2026-11-22T14:00:00Z",
    }
    event = intake({"batch": [fast]}).accepted[0]
    # Then the event is placed 30 s before its receipt, uncorrected by the bound
    assert event["timestamp"] == "2026-11-22T11:59:30.000Z"
    assert "timestampCorrection" not in event


def test_a_time_within_the_tolerance_is_kept_as_sent() -> None:
    soon = iso(RECEIVED + collect.FUTURE_TOLERANCE - timedelta(seconds=1))
    result = intake({"batch": [{"type": "track", "event": "x", "userId": "u", "timestamp": soon}]})
    assert result.accepted[0]["timestamp"] == soon
    assert result.future_timestamps == 0


# ------------------------------------------------------------------ the plain-shape reader equals the model
_TIMES = st.sampled_from(
    [
        "2026-11-22T12:00:00Z",
        "2026-11-22T12:00:00.5Z",
        "2026-11-22T12:00:00.123456+05:30",
        "2026-11-22T12:00:00-00:00",
        "2026-11-22T12:00:00.1234567Z",
        "2026-02-30T00:00:00Z",
        "2026-11-22T24:00:00Z",
        "2026-11-22T23:59:60Z",
        "2026-11-22T12:00:00+24:00",
        "2026-11-22T12:00:00+23:59",
        "2026-11-22 12:00:00Z",
        "2026-11-22t12:00:00z",
        "2026-11-22T12:00:00",
        "2026-11-22",
        "0000-01-01T00:00:00Z",
        "9999-12-31T23:59:59.999999Z",
        "\uff11\uff12\uff13\uff14-11-22T12:00:00Z",  # digits, but not ASCII ones
    ]
)
_VALUES = st.one_of(
    st.none(),
    st.sampled_from(["", " ", "u", "x" * 64, "x" * 65, "x" * 256, "x" * 257, "x" * 512, "x" * 513, "null"]),
    st.text(max_size=8),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
    st.lists(st.integers(), max_size=2),
    _TIMES,
)
_FIELDS = [
    "messageId",
    "userId",
    "anonymousId",
    "previousId",
    "groupId",
    "event",
    "name",
    "category",
    "channel",
    "properties",
    "traits",
    "context",
    "integrations",
    "timestamp",
    "originalTimestamp",
    "sentAt",
]


# Values of the plain shape for each field and values just past its bounds, so that most generated
# events take the plain path or fall just outside it.
_PLAIN = {
    **{
        name: st.sampled_from(["u-1", "", "x" * 512, "x" * 513, "42", 42])
        for name in ("userId", "anonymousId", "previousId", "groupId")
    },
    "messageId": st.sampled_from(["m-1", "x" * 256, "x" * 257, "", 7]),
    "event": st.sampled_from(["Order Completed", " ", "x" * 256, "x" * 257]),
    "name": st.sampled_from(["Home", "x" * 512, "x" * 513]),
    "category": st.sampled_from(["Docs", "x" * 512, "x" * 513]),
    "channel": st.sampled_from(["server", "x" * 64, "x" * 65]),
    **{name: st.dictionaries(st.text(max_size=4), _VALUES, max_size=3) for name in _FIELDS[9:13]},
    **{
        name: st.sampled_from(
            ["2026-11-22T12:00:00Z", "2026-11-22T12:00:00.5+05:30", "2026-11-22T12:00:00.123456-00:00"]
        )
        | _TIMES
        for name in _FIELDS[13:]
    },
}


def _mostly(plain: st.SearchStrategy) -> st.SearchStrategy:
    """A field's plain values 9 times in 10, anything else the tenth."""
    return st.integers(0, 9).flatmap(lambda n: _VALUES if n == 0 else plain)


@settings(max_examples=3000, deadline=None)
@given(
    kind=st.sampled_from(sorted(collect.EVENT_TYPES)),
    values=st.fixed_dictionaries({}, optional={name: _mostly(_PLAIN[name]) for name in _FIELDS}),
    size=st.sampled_from([200, 32 * 1024, 32 * 1024 + 1]),
)
def test_an_event_read_without_the_model_is_validated_exactly_as_the_model_does(
    kind: str, values: dict, size: int
) -> None:
    # Given any event, plain or not: When intake reads it by the plain-shape path and by the model alone
    item = {"type": kind, **values}
    meta = collect.RequestMeta("src_1", RECEIVED, "203.0.113.9", "curl/8")
    fast = collect.enrich(dict(item), 0, size, {}, meta, IDENTITY, collect.Limits(max_event_bytes=64 * 1024))
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(collect, "plain_fields", lambda item, size: None)
        model = collect.enrich(dict(item), 0, size, {}, meta, IDENTITY, collect.Limits(max_event_bytes=64 * 1024))
    # Then both accept the same events with the same result, and refuse the others alike
    assert fast == model


@pytest.mark.parametrize("kind", [["track"], {"track": 1}, 7, None])
def test_a_type_that_is_not_text_is_an_invalid_type_not_a_crash(kind: object) -> None:
    result = intake({"batch": [{"type": kind, "event": "x", "userId": "u"}]})
    assert [r.code for r in result.rejected] == ["invalid_type"]
