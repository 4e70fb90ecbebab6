"""`midstage.cli pinpoint-import`: export files read each on its own, cut into imports, and every
rejected line reported by its file and its line in that file.

The admin API is an in-memory stand-in that runs the real parser on each import it is sent, as
the segment import route does (services/admin/segments.py).
"""

from __future__ import annotations

import base64
import gzip
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from midstage.cli import ApiError, main
from midstage.logic.imports import ImportRefused, parse_import
from midstage.pinpoint_command import chunks, export_files, import_files

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


class ParsingApi:
    """POST /v1/segments/{id}/import, answered by the import parser itself."""

    def __init__(self) -> None:
        self.files: list[bytes] = []

    def send(self, method: str, path: str, body: Any, *, if_match: int | None = None) -> dict[str, Any]:
        raw = gzip.decompress(base64.b64decode(body["data_base64"]))
        self.files.append(raw)
        fmt = None if body["format"] == "auto" else body["format"]
        try:
            report = parse_import(raw, segment_id="migrated", import_id=f"imp_{len(self.files)}", now=NOW, fmt=fmt)
        except ImportRefused as error:
            raise ApiError(method, path, 400, {"code": "invalid_import", "message": error.message}) from error
        return {"format": fmt, **report.summary()}


def endpoint(n: int, **fields: Any) -> str:
    document = {"Id": f"ep-{n}", "ChannelType": "EMAIL", "Address": f"person{n}@example.com", **fields}
    return json.dumps(document, separators=(",", ":"))


def export_file(path: Path, lines: list[str]) -> Path:
    """An export job's file: gzip'd JSON lines, the last without its newline."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress("\n".join(lines).encode()))
    return path


def test_two_export_files_without_trailing_newlines_import_completely(tmp_path: Path) -> None:
    export_file(tmp_path / "export" / "job-1" / "a.gz", [endpoint(n) for n in range(3)])
    export_file(tmp_path / "export" / "job-1" / "b.gz", [endpoint(n) for n in range(3, 6)])
    (tmp_path / "export" / ".DS_Store").write_bytes(b"\x00\x00")  # hidden files are left out
    api, said = ParsingApi(), []

    totals = import_files(
        export_files([str(tmp_path / "export")]), "migrated", api, fmt="auto", lines=500, echo=said.append
    )

    assert (totals.imports, totals.accepted, totals.people, totals.rejected) == (2, 6, 6, 0)
    assert [len(raw.splitlines()) for raw in api.files] == [3, 3]  # one import per file, never a seam
    assert said[0].endswith("a.gz lines 1-3: 3 accepted, 0 rejected")


def test_a_person_whose_endpoints_fall_in_two_files_and_imports_is_counted_once(tmp_path: Path) -> None:
    # Given one user's email endpoint in one file and their SMS endpoint in another, and a file
    # cut into two imports with a user in each half
    user = {"User": {"UserId": "user-7"}}
    sms = {"ChannelType": "SMS", "Address": "+14255550100"}
    first = export_file(tmp_path / "a.gz", [endpoint(1, **user), endpoint(2), endpoint(3, User={"UserId": "user-9"})])
    second = export_file(tmp_path / "b.gz", [endpoint(4, **user, **sms), endpoint(5, User={"UserId": "user-9"})])
    api = ParsingApi()

    # When both files are imported two lines at a time
    totals = import_files([first, second], "migrated", api, fmt="auto", lines=2, echo=lambda _: None)

    # Then each import counts its own people, and the total counts user-7 and user-9 once each
    assert totals.imports == 3
    assert totals.accepted == 5
    assert totals.people == 3  # user-7, the user-less ep-2, user-9


def test_rejected_lines_are_reported_by_file_and_line_in_that_file(tmp_path: Path) -> None:
    lines = [endpoint(n) for n in range(7)]
    lines[4] = endpoint(4, Address="not-an-email")
    lines[6] = '{"Id": "cut off'
    first = export_file(tmp_path / "a.gz", [endpoint(n) for n in range(10, 13)])
    second = export_file(tmp_path / "b.gz", lines)
    said: list[str] = []

    totals = import_files([first, second], "migrated", ParsingApi(), fmt="auto", lines=3, echo=said.append)

    assert (totals.imports, totals.accepted, totals.rejected) == (4, 8, 2)
    assert f"  {second}:5: EMAIL address 'not-an-email' is not a valid email address" in said
    assert any(line.startswith(f"  {second}:7: not valid JSON") for line in said)
    assert f"{second} lines 4-6: 2 accepted, 1 rejected" in said


def test_a_csv_is_cut_between_records_with_its_header_in_each_import(tmp_path: Path) -> None:
    rows = [f"EMAIL,person{n}@example.com,user-{n},plan {n}" for n in range(5)]
    rows[1] = 'EMAIL,person1@example.com,user-1,"two\nlines"'  # a record over two lines stays whole
    rows[3] = "EMAIL,wrong address,user-3,x"
    path = tmp_path / "segment.csv"
    path.write_text("ChannelType,Address,User.UserId,User.UserAttributes.plan\n" + "\n".join(rows))
    api, said = ParsingApi(), []

    cut = list(chunks(path, "auto", 2))
    totals = import_files([path], "migrated", api, fmt="auto", lines=2, echo=said.append)

    assert [(c.first_line, c.lines) for c in cut] == [(2, 3), (5, 2), (7, 1)]
    assert all(raw.startswith(b"ChannelType,Address,") for raw in api.files)
    assert (totals.accepted, totals.rejected) == (4, 1)
    assert f"  {path}:6: EMAIL address 'wrong address' is not a valid email address" in said


def test_a_file_the_api_refuses_is_reported_and_the_others_go_on(tmp_path: Path, capsys: Any) -> None:
    bad = tmp_path / "a-binary.gz"
    bad.write_bytes(gzip.compress(b"\x00\x01\x02" * 100))
    good = export_file(tmp_path / "b.gz", [endpoint(1)])

    totals = import_files([bad, good], "migrated", ParsingApi(), fmt="auto", lines=500, echo=lambda _: None)

    assert (totals.imports, totals.accepted, totals.refused) == (1, 1, [f"{bad} lines 1-1"])
    assert "binary" in capsys.readouterr().err


def test_bad_arguments_are_refused_before_anything_is_sent(tmp_path: Path, capsys: Any) -> None:
    base = ["pinpoint-import", "migrated", "--url", "http://127.0.0.1:9", "--key", "msk_x"]
    assert main([*base, str(tmp_path / "missing.gz")]) == 2
    assert "no file or folder" in capsys.readouterr().err
    assert main([*base, str(tmp_path)]) == 2  # an empty folder
    assert "no export files" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*base, "--format", "xml", str(tmp_path)])


def test_a_damaged_export_file_is_reported_and_the_files_after_it_go_on(tmp_path: Path, capsys: Any) -> None:
    whole = gzip.compress("\n".join(endpoint(n) for n in range(50)).encode())
    cut = tmp_path / "a.gz"
    cut.write_bytes(whole[: len(whole) // 2])  # a download that stopped half way
    good = export_file(tmp_path / "b.gz", [endpoint(1)])

    totals = import_files([cut, good], "migrated", ParsingApi(), fmt="auto", lines=500, echo=lambda _: None)

    assert (totals.accepted, totals.refused) == (1, [str(cut)])
    assert f"{cut}: could not be read" in capsys.readouterr().err
