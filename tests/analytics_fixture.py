"""A scripted month (March 2026) of six people's events, one campaign's emails, a journey's SMS,
spend lines and a holdout, turned into archive records by logic/archive/records.py and spend.py
(the pipeline does not write the archive yet, so the script calls them directly). The figures
each report must give are worked out by hand in tests/integration/test_reports.py.

Mar 2 2026 is a Monday: the weeks are Mar 2, 9, 16, 23.
"""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import count
from typing import Any

from midstage.logic.archive import records
from midstage.logic.archive.spend import parse_spend_csv
from midstage.models.archive import ArchiveRecord
from midstage.models.messaging import MessageRequest

ARCHIVED = datetime(2026, 4, 1, 0, 5, tzinfo=UTC)
GOOGLE = {"source": "google", "medium": "cpc", "name": "spring"}
NEWSLETTER = {"source": "newsletter", "medium": "email", "name": "spring"}
FACEBOOK = {"source": "facebook", "medium": "social", "name": "retarget"}


def at(day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, second, tzinfo=UTC)


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event(
    person: str,
    name: str,
    moment: datetime,
    *,
    message_id: str,
    kind: str = "track",
    utm: dict[str, str] | None = None,
    **properties: Any,
) -> tuple[dict[str, Any], str]:
    """An enriched event as collect hands it off, and the profile it lands on (`p<n>` → `prof-p<n>`)."""
    body: dict[str, Any] = {
        "type": kind,
        "messageId": message_id,
        "userId": person,
        "timestamp": _stamp(moment),
        "receivedAt": _stamp(moment),
        "sourceId": "src_web",
        "context": {"campaign": utm} if utm else {},
    }
    if kind == "track":
        body["event"] = name
        body["properties"] = properties
    elif kind == "page":
        body["name"] = name
        body["properties"] = properties
    else:
        body["traits"] = properties
    return body, f"prof-{person}"


def request(person: str, origin: str, kind: str, channel: str, moment: datetime) -> MessageRequest:
    return MessageRequest(
        key=f"{kind}:{origin}:{person}",
        origin={"kind": kind, "id": origin, "version": 1, "step": "send"},
        profile_id=f"prof-{person}",
        channels=[channel],
        template="spring-email" if channel == "email" else "welcome-sms",
        requested_at=_stamp(moment),
    )


def build() -> list[ArchiveRecord]:
    """The same records on every call: ids derive from the script alone, so two builds archive
    byte for byte the same files."""
    out: list[ArchiveRecord] = []
    serial = count(1)

    def ev(*args: Any, **kwargs: Any) -> None:
        body, profile = event(*args, message_id=f"m-{next(serial)}", **kwargs)
        out.append(records.event_record(body, profile, ARCHIVED))

    ev("p1", "Product Viewed", at(2, 10), utm=GOOGLE, plan="pro")
    ev("p1", "", at(2, 10, 30), kind="identify", email_opt_in=True)
    ev("p1", "Product Added", at(3, 10))
    ev("p1", "Order Completed", at(5, 10), revenue=100, currency="USD")
    ev("p1", "Product Viewed", at(17, 9))

    ev("p2", "Product Viewed", at(2, 12), plan="basic")
    ev("p2", "Landing", at(19, 8), kind="page", utm=FACEBOOK)
    ev("p2", "Product Added", at(20, 12))
    ev("p2", "Order Completed", at(21, 12), revenue=40, currency="USD")

    ev("p3", "Product Viewed", at(4, 9), utm=NEWSLETTER, plan="pro")
    ev("p3", "Product Added", at(4, 9, 30))
    ev("p3", "Coupon Applied", at(4, 9, 40))
    ev("p3", "Order Completed", at(4, 10), total=50, currency="USD")

    ev("p4", "Product Added", at(6, 10))
    ev("p4", "Product Viewed", at(7, 10))
    ev("p4", "Order Completed", at(8, 10), revenue="30.00")

    ev("p5", "Product Viewed", at(10, 10), utm=GOOGLE, plan="basic")
    ev("p5", "Product Added", at(12, 10))
    ev("p5", "Product Viewed", at(24, 10))

    ev("p6", "Order Completed", at(15, 10), revenue=20)

    # The spring campaign's emails (sent on Mar 1) and what became of them.
    spring = {p: request(p, "spring", "campaign", "email", at(1, 9)) for p in ("p1", "p2", "p3", "p4", "p5")}
    out.extend(records.message_requested(req, ARCHIVED) for req in spring.values())
    blocked = records.message_outcome(
        spring["p2"], "blocked", "no_consent: none for email", "email", at(1, 9), ARCHIVED
    )
    out.append(_some(blocked))
    for second, person in enumerate(("p1", "p3", "p4", "p5"), 1):
        out.append(_some(records.message_outcome(spring[person], "sent", "", "email", at(1, 9, 0, second), ARCHIVED)))

    def fb(person: str, kind: str, moment: datetime, provider: str, **kw: Any) -> None:
        out.append(
            _some(
                records.message_feedback(
                    spring[person], kind, moment, ARCHIVED, channel="email", provider_event_id=provider, **kw
                )
            )
        )

    fb("p1", "delivery", at(1, 9, 1), "d1")
    fb("p1", "open", at(1, 12), "o1")
    fb("p1", "click", at(2, 9, 55), "c1", link="https://shop.example/spring")
    fb("p3", "delivery", at(3, 8), "d3")
    fb("p3", "open", at(4, 8), "o3a")
    fb("p3", "open", at(4, 8, 30), "o3b")
    fb("p3", "click", at(4, 8, 59), "c3", link="https://shop.example/spring")
    fb("p4", "bounce", at(1, 9, 2), "b4", permanent=True, reason="550 mailbox unknown user4@example.com")
    fb("p5", "delivery", at(1, 9, 1), "d5")
    fb("p5", "subscription", at(11, 10), "u5")
    out.append(
        records.message_converted(
            spring["p3"], at(4, 10), ARCHIVED, channel="email", event_message_id="m-13", value=50.0
        )
    )

    # The welcome journey's SMS to p6, and p6's moves.
    welcome = request("p6", "welcome", "journey", "sms", at(14, 10))
    out.append(records.message_requested(welcome, ARCHIVED))
    out.append(_some(records.message_outcome(welcome, "sent", "", "sms", at(14, 10, 0, 1), ARCHIVED)))
    delivered = records.message_feedback(
        welcome, "delivery", at(14, 10, 1), ARCHIVED, channel="sms", provider_event_id="s6"
    )
    out.append(_some(delivered))
    for seq, (transition, step, previous) in enumerate(
        [("entered", "send", None), ("moved", "wait", "send"), ("exited", None, "wait")], 1
    ):
        out.append(
            records.journey_move(
                journey_id="welcome",
                journey_version=1,
                profile_id="prof-p6",
                run=1,
                seq=seq,
                transition=transition,
                step=step,
                previous_step=previous,
                at=at(14, 10, seq),
                archived_at=ARCHIVED,
            )
        )

    # The spring campaign held p2 out; the others were treated.
    for person in ("p1", "p2", "p3", "p4", "p5"):
        out.append(
            records.exposure(
                experiment_id="spring",
                variant="holdout" if person == "p2" else "treatment",
                profile_id=f"prof-{person}",
                at=at(1, 9),
                archived_at=ARCHIVED,
                origin_kind="campaign",
                origin_id="spring",
            )
        )
    out.append(
        records.segment_transition(
            "segment.entered",
            {"profileId": "prof-p1", "segmentId": "buyers", "at": _stamp(at(5, 10)), "occurrence": "x"},
            ARCHIVED,
        )
    )
    spend, problems = parse_spend_csv(
        "date,channel,campaign,amount,currency\n"
        "2026-03-02,google,spring,60,USD\n"
        "2026-03-19,facebook,retarget,10,USD\n"
        "2026-03-01,email,spring,5,usd\n",
        archived_at=ARCHIVED,
        source_id="spend-import-1",
    )
    assert not problems, problems
    out.extend(spend)
    return out


def _some(record: ArchiveRecord | None) -> ArchiveRecord:
    assert record is not None
    return record
