"""Privacy requests' pure parts (logic/privacy.py): subjects normalised as OneID keeps them, the
salted hash, what makes two requests the same, due dates by jurisdiction, the export manifest."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable
from datetime import UTC, datetime

import pytest

from midstage.config import ComputedTraitSettings, IdentitySettings
from midstage.logic import privacy
from midstage.logic.ingest import IngestSettings, UnitOutcome
from midstage.logic.privacy import (
    csv_file,
    due_date,
    identifier_hash,
    is_overdue,
    json_file,
    manifest,
    normalise_subjects,
    person_identifiers,
    request_digest,
    subject_identifier,
    subjects_digest,
)
from midstage.services.ingest import drop_suppressed

SALT = b"s" * 32
SETTINGS = IngestSettings(IdentitySettings(), ComputedTraitSettings())


# ------------------------------------------------------------------------------ subjects
@pytest.mark.parametrize(
    ("subject_type", "raw", "expected"),
    [
        ("EMAIL", "  Ann@Example.COM ", ("email", "ann@example.com")),
        ("PHONE", "+1 (415) 555-0100", ("phone", "+14155550100")),
        ("PHONE", "0044 20 7946 0958", ("phone", "+442079460958")),
        ("USER_ID", " ann ", ("user_id", "ann")),
        ("ANONYMOUS_ID", "5b6c0c1e", ("anonymous_id", "5b6c0c1e")),
        ("PROFILE_ID", "4fdf423a", ("profile_id", "4fdf423a")),
        ("EMAIL", "not-an-email", None),
        ("PHONE", "4155550100", None),  # no country code: it cannot be linked safely
        ("USER_ID", "   ", None),
        ("USER_ID", "a\x00b", None),
        ("USER_ID", "x" * 513, None),
    ],
)
def test_a_subject_is_normalised_as_oneid_keeps_it_or_refused(
    subject_type: str, raw: str, expected: tuple[str, str] | None
) -> None:
    assert subject_identifier(subject_type, raw) == expected


def test_subjects_are_deduplicated_sorted_and_the_invalid_ones_located() -> None:
    subjects = normalise_subjects("EMAIL", ["b@example.com", "A@example.com", "a@example.com ", "nope"])
    assert subjects.identifiers == (("email", "a@example.com"), ("email", "b@example.com"))
    assert subjects.invalid == (3,)


def test_a_person_is_known_by_their_profiles_and_every_identity() -> None:
    found = person_identifiers("p1", ["p0"], {"email": ["ann@example.com"], "user_id": ["ann"]})
    assert found == [("email", "ann@example.com"), ("profile_id", "p0"), ("profile_id", "p1"), ("user_id", "ann")]


# ------------------------------------------------------------------------------ hashes
def test_the_hash_is_stable_per_salt_and_type_and_keeps_no_identifier() -> None:
    email = ("email", "ann@example.com")
    digest = identifier_hash(SALT, email)
    assert digest == identifier_hash(SALT, email)
    assert len(digest) == 64 and "ann" not in digest
    assert digest != identifier_hash(b"t" * 32, email)  # another deployment's hash does not match
    assert digest != identifier_hash(SALT, ("user_id", "ann@example.com"))  # the type is part of it
    assert digest != hashlib.sha256(b"ann@example.com").hexdigest()  # not an unsalted hash


def test_the_digest_ignores_order_and_duplicates_but_not_type_or_jurisdiction() -> None:
    one = normalise_subjects("EMAIL", ["a@example.com", "B@example.com"]).identifiers
    other = normalise_subjects("EMAIL", ["b@example.com", "a@example.com", "A@EXAMPLE.com"]).identifiers
    base = request_digest("SUPPRESS_ONLY", "EMAIL", one, "GDPR")
    assert base == request_digest("SUPPRESS_ONLY", "EMAIL", other, "GDPR")
    assert base != request_digest("UNSUPPRESS", "EMAIL", one, "GDPR")
    assert base != request_digest("SUPPRESS_ONLY", "EMAIL", one, "CCPA")
    assert base != request_digest("SUPPRESS_ONLY", "EMAIL", one[:1], "GDPR")


def test_the_subjects_digest_names_the_set_of_subjects_whatever_is_asked() -> None:
    one = normalise_subjects("EMAIL", ["a@example.com", "B@example.com"]).identifiers
    same = normalise_subjects("EMAIL", ["b@example.com", " a@example.com"]).identifiers
    assert subjects_digest("EMAIL", one) == subjects_digest("EMAIL", same)
    assert subjects_digest("EMAIL", one) != subjects_digest("EMAIL", one[:1])
    assert subjects_digest("EMAIL", one) != subjects_digest("USER_ID", one)


# ------------------------------------------------------------------------------ due dates
@pytest.mark.parametrize(
    ("received", "jurisdiction", "due"),
    [
        (datetime(2026, 11, 22, 10, tzinfo=UTC), "GDPR", datetime(2026, 12, 22, 10, tzinfo=UTC)),
        (datetime(2026, 1, 31, 10, tzinfo=UTC), "GDPR", datetime(2026, 2, 28, 10, tzinfo=UTC)),
        (datetime(2028, 1, 31, 10, tzinfo=UTC), "GDPR", datetime(2028, 2, 29, 10, tzinfo=UTC)),
        (datetime(2026, 12, 15, 10, tzinfo=UTC), "GDPR", datetime(2027, 1, 15, 10, tzinfo=UTC)),
        (datetime(2026, 11, 22, 10, tzinfo=UTC), "CCPA", datetime(2027, 1, 6, 10, tzinfo=UTC)),
        # Sunday 22 Nov 2026: 15 working days are three weeks of Monday to Friday
        (datetime(2026, 11, 22, 10, tzinfo=UTC), "PIPL", datetime(2026, 12, 11, 10, tzinfo=UTC)),
        # Wednesday 2 Dec 2026: Thu, Fri, then two full weeks and Mon-Wed
        (datetime(2026, 12, 2, 10, tzinfo=UTC), "PIPL", datetime(2026, 12, 23, 10, tzinfo=UTC)),
    ],
)
def test_each_jurisdiction_has_its_due_date(received: datetime, jurisdiction: str, due: datetime) -> None:
    assert due_date(received, jurisdiction) == due


def test_overdue_requests_are_listed_oldest_due_first() -> None:
    records = [
        {"regulateId": "b", "status": "RUNNING", "dueAt": "2026-12-20T00:00:00.000Z"},
        {"regulateId": "a", "status": "INITIALIZED", "dueAt": "2026-12-10T00:00:00.000Z"},
        {"regulateId": "c", "status": "INITIALIZED", "dueAt": "2027-01-10T00:00:00.000Z"},
        {"regulateId": "d", "status": "FAILED", "dueAt": "2026-12-01T00:00:00.000Z"},
    ]
    assert privacy.overdue(records, "2026-12-25T00:00:00.000Z") == ["a", "b"]


def test_a_request_is_overdue_only_past_its_date_and_not_ended() -> None:
    assert is_overdue({"status": "RUNNING", "dueAt": "2026-12-22T10:00:00.000Z"}, "2026-12-23T00:00:00.000Z")
    assert not is_overdue({"status": "RUNNING", "dueAt": "2026-12-22T10:00:00.000Z"}, "2026-12-21T00:00:00.000Z")
    assert not is_overdue({"status": "FINISHED", "dueAt": "2026-12-22T10:00:00.000Z"}, "2026-12-23T00:00:00.000Z")


# ------------------------------------------------------------------------------ bundles
def test_the_manifest_lists_each_file_with_its_hash_and_size() -> None:
    files = [json_file("profile.json", {"traits": {"name": "Ann"}}), csv_file("traits.csv", [{"field": "name"}])]
    listed = json.loads(manifest(files, {"regulateId": "reg_1"}).content)
    assert listed["regulateId"] == "reg_1"
    for entry, file in zip(listed["files"], files, strict=True):
        assert entry["name"] == file.name
        assert entry["sha256"] == hashlib.sha256(file.content).hexdigest()
        assert entry["bytes"] == len(file.content)


def test_csv_files_quote_what_needs_it_and_keep_nested_values_as_json() -> None:
    rows = [{"field": "note", "value": 'a "quoted", multi\r\nline'}, {"field": "tags", "value": ["a", "b"]}]
    content = csv_file("x.csv", rows).content.decode()
    assert list(csv.reader(io.StringIO(content, newline=""))) == [
        ["field", "value"],
        ["note", 'a "quoted", multi\r\nline'],
        ["tags", '["a", "b"]'],
    ]


def test_a_cell_a_spreadsheet_would_run_as_a_formula_is_kept_as_text() -> None:
    rows = [{"value": v} for v in ('=HYPERLINK("http://x")', "+1", "-2", "@SUM(A1)", "\tx", "plain", 5, -3)]
    read = list(csv.reader(io.StringIO(csv_file("x.csv", rows).content.decode(), newline="")))
    assert [cell for (cell,) in read[1:]] == [
        '\'=HYPERLINK("http://x")',
        "'+1",
        "'-2",
        "'@SUM(A1)",
        "'\tx",
        "plain",
        "5",
        "-3",  # a number is a number
    ]


def test_flatten_gives_dotted_paths_to_every_leaf() -> None:
    assert privacy.flatten({"a": {"b": 1, "c": {}}, "d": [1]}) == [
        {"field": "a.b", "value": 1},
        {"field": "a.c", "value": {}},
        {"field": "d", "value": [1]},
    ]


# ------------------------------------------------------------------------------ the updater's drop
class HeldIdentifiers:
    """Privacy suppressions in memory: identifier -> the request that suppressed it."""

    def __init__(self, held: dict[tuple[str, str], str]) -> None:
        self.held = held
        self.asked: list[set[tuple[str, str]]] = []
        self.counted: list[tuple[str, int]] = []

    def matching(self, identifiers: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
        wanted = set(identifiers)
        self.asked.append(wanted)
        return {i: r for i, r in self.held.items() if i in wanted}

    def count_dropped(self, regulate_id: str, events: int) -> None:
        self.counted.append((regulate_id, events))


def test_events_naming_a_suppressed_identifier_are_dropped_and_counted_per_request() -> None:
    events = {
        "s|1": {"type": "track", "event": "A", "userId": "ann", "messageId": "1", "sourceId": "s"},
        "s|2": {"type": "identify", "anonymousId": "anon-1", "traits": {"email": "Ann@Example.com"}, "messageId": "2"},
        "s|3": {"type": "track", "event": "B", "userId": "bob", "messageId": "3", "sourceId": "s"},
        "s|4": {"type": "alias", "userId": "new", "previousId": "ann", "messageId": "4", "sourceId": "s"},
    }
    held = HeldIdentifiers({("user_id", "ann"): "reg_b", ("email", "ann@example.com"): "reg_a"})
    outcome = UnitOutcome()

    kept = drop_suppressed(events, held, SETTINGS, outcome)

    assert list(kept) == ["s|3"]
    assert outcome.suppressed == 3
    assert held.counted == [("reg_a", 1), ("reg_b", 2)]  # the alias names ann only as its previousId
    assert ("user_id", "bob") in held.asked[0]


def test_a_unit_without_suppressed_identifiers_is_kept_whole_and_nothing_is_counted() -> None:
    events = {"s|1": {"type": "track", "event": "A", "userId": "bob", "messageId": "1", "sourceId": "s"}}
    held = HeldIdentifiers({("user_id", "ann"): "reg_a"})
    outcome = UnitOutcome()
    assert drop_suppressed(events, held, SETTINGS, outcome) is events
    assert (outcome.suppressed, held.counted) == (0, [])
