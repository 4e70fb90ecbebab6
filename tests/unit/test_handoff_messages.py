"""Hand-off messages: one person's events per message, split only past a unit's event bound or
the SQS size limit."""

from __future__ import annotations

import json

from midstage.adapters.handoff import MAX_EVENTS_PER_MESSAGE, MAX_MESSAGE_BYTES, messages_for


def test_a_persons_events_travel_in_one_message() -> None:
    groups = {"u:ann": [{"messageId": str(i), "event": "x"} for i in range(50)], "a:b": [{"messageId": "z"}]}
    messages = messages_for(groups)
    assert [key for key, _ in messages] == ["u:ann", "a:b"]
    assert len(json.loads(messages[0][1])["events"]) == 50


def test_large_groups_split_under_the_limit_and_lose_nothing() -> None:
    events = [{"messageId": str(i), "properties": {"blob": "\u00e9" * 3000}} for i in range(200)]
    messages = messages_for({"u:big": events})
    assert len(messages) > 1
    assert all(len(body.encode()) <= MAX_MESSAGE_BYTES for _, body in messages)
    assert [e["messageId"] for _, body in messages for e in json.loads(body)["events"]] == [str(i) for i in range(200)]
    assert json.loads(messages[0][1])["events"][0]["properties"]["blob"] == "\u00e9" * 3000


def test_a_persons_events_past_a_units_bound_split_in_order_and_lose_nothing() -> None:
    events = [{"messageId": str(i), "event": "x"} for i in range(2 * MAX_EVENTS_PER_MESSAGE + 1)]
    messages = messages_for({"u:busy": events})
    assert [len(json.loads(body)["events"]) for _, body in messages] == [MAX_EVENTS_PER_MESSAGE] * 2 + [1]
    assert {key for key, _ in messages} == {"u:busy"}
    assert [e["messageId"] for _, body in messages for e in json.loads(body)["events"]] == [str(i) for i in range(201)]
