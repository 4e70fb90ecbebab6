"""The entry points: which format a file is, and the plain CSV format."""

from __future__ import annotations

from datetime import datetime

from midstage.config import IdentitySettings
from midstage.logic.imports.model import (
    IDENTIFIER_COLUMNS,
    LEADING_SPACE,
    TRAIT,
    ImportFormat,
    ImportRefused,
    ImportReport,
    RowProblem,
    new_job,
)
from midstage.logic.imports.people import Person, csv_person, emit
from midstage.logic.imports.pinpoint import PINPOINT_SECTIONS, parse_pinpoint_csv, parse_pinpoint_endpoints
from midstage.logic.imports.text import counted, prepare, read_header, read_records


# ------------------------------------------------------------------------------ entry points
def detect_format(text: str | bytes) -> ImportFormat:
    """Which of the three formats a file is, from its first record."""
    prepared = prepare(text)
    start = LEADING_SPACE.match(prepared)
    if prepared.startswith("{", start.end() if start else 0):
        return "pinpoint-json"
    header = next(read_records(prepared), None)
    names = [cell.strip() for cell in header[1]] if header else []
    if "ChannelType" in names or any(name.startswith(("User.", *PINPOINT_SECTIONS)) for name in names):
        return "pinpoint-csv"
    return "csv"


def parse_import(
    text: str | bytes,
    *,
    segment_id: str,
    import_id: str,
    now: datetime,
    fmt: ImportFormat | None = None,
    identity: IdentitySettings | None = None,
) -> ImportReport:
    """Parse a file in the given format, or the detected one."""
    parser = {"csv": parse_csv, "pinpoint-json": parse_pinpoint_endpoints, "pinpoint-csv": parse_pinpoint_csv}[
        fmt or detect_format(text)
    ]
    return parser(text, segment_id=segment_id, import_id=import_id, now=now, identity=identity)


def parse_csv(
    text: str | bytes,
    *,
    segment_id: str,
    import_id: str,
    now: datetime,
    identity: IdentitySettings | None = None,
) -> ImportReport:
    """A CSV of people: identifier columns and trait columns (see the module's docstring)."""
    job = new_job(segment_id, import_id, now, identity)
    records = read_records(prepare(text))
    header = read_header(records)
    roles: dict[int, str] = {}
    traits: dict[int, str] = {}
    for index, raw_name in enumerate(header):
        name = raw_name.strip()
        role = IDENTIFIER_COLUMNS.get(name.lower())
        if role is not None:
            if role in roles.values():
                raise ImportRefused(f"two columns hold {role}; keep one (column {index + 1}, {name!r})")
            roles[index] = role
        elif not TRAIT.fullmatch(name):
            raise ImportRefused(
                f"column {index + 1} ({name[:80]!r}) is not a valid trait name: "
                "1 to 64 of A-Z a-z 0-9 _ $ . -, not starting with a dot"
            )
        elif name in traits.values():
            raise ImportRefused(f"column {name!r} appears twice")
        else:
            traits[index] = name
    if not roles:
        raise ImportRefused(
            "no identifier column: the header needs at least one of user_id, email, phone or anonymous_id"
        )

    report = ImportReport()
    people: dict[tuple[str, str], Person] = {}
    for line, cells, problem in counted(records):
        if problem:
            report.reject(line, problem)
            continue
        try:
            person = csv_person(job, line, header, cells, roles, traits)
        except RowProblem as why:
            report.reject(line, str(why))
            continue
        report.accepted += 1
        known = people.get(person.key)
        if known is None:
            people[person.key] = person
        else:
            known.absorb(person)
    emit(job, report, people.values())
    return report
