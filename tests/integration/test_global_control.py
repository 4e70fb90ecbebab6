"""The global control group on the real deliver function (its wiring, its settings from the
environment the template gives every function) on moto: marketing to a person of the group is
blocked with the `global_control` guard and never reaches SES; a transactional message to the
same person is sent; people outside the group get their marketing. The group is the one the
experiments plane leaves out (logic/experiments/assignment.in_global_control)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from midstage.adapters.config_store import ConfigStore
from midstage.adapters.messaging_store import MessageLedger
from midstage.adapters.profile_store import ProfileStore
from midstage.logic.experiments.assignment import in_global_control
from midstage.logic.timefmt import iso
from midstage.models.messaging import MessageRequest, Origin, Template
from midstage.models.profile import Profile, WritePlan
from tests.integration.conftest import Context, Stack
from tests.integration.test_campaign_runs import sqs_event
from tests.integration.test_channel_pauses import Clock, sent_by_ses

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)  # daytime: quiet hours do not defer
PEOPLE = 40
SHARE, SALT = "0.25", "programme-2026"
CONSENT = {"email:marketing": {"granted": True, "stamp": "2026-11-01T10:00:00.000Z|m|src", "source": "src"}}


def message(n: int, category: str) -> MessageRequest:
    return MessageRequest(
        key=f"api:{category}:{n}",
        origin=Origin(kind="api", id=category),
        profile_id=f"p{n}",
        channels=["email"],
        template={"email": "note"},
        category=category,  # type: ignore[arg-type]
        requested_at=iso(NOW),
    )


@pytest.fixture
def stack_with_people(stack: Stack) -> Stack:
    dynamodb = stack.clients.dynamodb()
    note = Template(id="note", name="Note", channel="email", locales={"en": {"subject": "Hi", "text": "Hello"}})
    approved = note.model_copy(update={"status": "approved"})
    ConfigStore(stack.output("ConfigTableName"), client=dynamodb).save_template(approved, approved)
    stack.clients.sesv2().create_email_identity(EmailIdentity="example.com")
    profiles = ProfileStore(stack.output("DataTableName"), client=dynamodb)
    for n in range(PEOPLE):
        person = Profile(id=f"p{n}", created_at=iso(NOW), traits={"email": f"p{n}@example.org"}, consent=CONSENT)
        profiles.save(WritePlan(person))
    return stack


def test_marketing_skips_the_global_control_group_and_transactional_messages_reach_it(
    stack_with_people: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = stack_with_people
    deliverer = stack.load("DeliverFunction", Clock(NOW))
    # Set after the template's environment: the function reads its settings on the first message.
    monkeypatch.setenv("GLOBAL_CONTROL_SHARE", SHARE)
    monkeypatch.setenv("GLOBAL_CONTROL_SALT", SALT)
    held = {f"p{n}" for n in range(PEOPLE) if in_global_control(f"p{n}", float(SHARE), SALT)}
    assert 0 < len(held) < PEOPLE  # the scripted population has people on both sides

    marketing = [message(n, "marketing") for n in range(PEOPLE)]
    assert deliverer.lambda_handler(sqs_event([m.model_dump_json() for m in marketing]), Context()) == {
        "batchItemFailures": []
    }
    ledger = MessageLedger(stack.output("DataTableName"), client=stack.clients.dynamodb())
    records = {str(r["profileId"]): r for r in ledger.many([m.message_id for m in marketing])}
    blocked = {p for p, r in records.items() if r["status"] == "blocked"}
    assert blocked == held
    assert all(str(records[p]["reason"]).startswith("global_control: ") for p in held)
    assert {p for p, r in records.items() if r["status"] == "sent"} == {f"p{n}" for n in range(PEOPLE)} - held
    assert sent_by_ses() == Counter({f"{p}@example.org": 1 for p in records if p not in held})

    # A transactional message to the held-out people is sent.
    receipts = [message(int(p[1:]), "transactional") for p in sorted(held)]
    assert deliverer.lambda_handler(sqs_event([m.model_dump_json() for m in receipts]), Context()) == {
        "batchItemFailures": []
    }
    assert {str(r["status"]) for r in ledger.many([m.message_id for m in receipts])} == {"sent"}
    # Everyone has now had exactly one email: marketing outside the group, the receipt inside it.
    assert sent_by_ses() == Counter({f"p{n}@example.org": 1 for n in range(PEOPLE)})
