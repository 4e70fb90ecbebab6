"""The local cloud's journal: only committed cuts are read back, a torn tail never breaks a restore."""

from __future__ import annotations

from pathlib import Path

from infra.localcloud.persistence import _committed_batches, _dumps, _write_atomically


def _journal(path: Path, *lines: str) -> Path:
    path.write_text("".join(lines), encoding="utf-8")
    return path


def test_committed_cuts_are_read_in_order_with_their_numbers(tmp_path: Path) -> None:
    journal = _journal(
        tmp_path / "journal.jsonl",
        '{"k":"ddb","n":1}\n',
        '{"k":"commit","n":7}\n',
        '{"k":"sqs","n":2}\n',
        '{"k":"sqs","n":3}\n',
        '{"k":"commit","n":8}\n',
    )

    batches = list(_committed_batches(journal))

    assert [(number, [line["n"] for line in lines]) for number, lines in batches] == [(7, [1]), (8, [2, 3])]


def test_a_cut_without_its_commit_line_is_dropped(tmp_path: Path) -> None:
    journal = _journal(tmp_path / "journal.jsonl", '{"k":"ddb"}\n{"k":"commit","n":1}\n{"k":"ddb"}\n{"k":"sqs"}\n')

    assert [number for number, _ in _committed_batches(journal)] == [1]


def test_a_line_torn_by_a_kill_ends_the_journal_there(tmp_path: Path) -> None:
    # The process died while writing: the last line has no newline, or is not JSON at all.
    for tail in ('{"k":"ddb","tb":"x"', '{"k":"ddb"}\n{"k":"commit","n":2}'):
        journal = _journal(tmp_path / "journal.jsonl", '{"k":"ddb"}\n{"k":"commit","n":1}\n', tail)
        assert [number for number, _ in _committed_batches(journal)] == [1]
    garbage = _journal(tmp_path / "garbage.jsonl", '{"k":"ddb"}\n{"k":"commit","n":1}\n\x00\x00\x00\n')
    assert [number for number, _ in _committed_batches(garbage)] == [1]


def test_binary_values_survive_the_round_trip(tmp_path: Path) -> None:
    # DynamoDB binary attributes are bytes in moto; JSON has no bytes.
    line = {"k": "ddb", "item": {"doc": {"B": b"\x00\xffzlib"}, "set": {"BS": [b"\x01", b"\x02"]}}}
    journal = _journal(tmp_path / "journal.jsonl", _dumps(line) + "\n", '{"k":"commit","n":1}\n')

    [(_, [restored])] = list(_committed_batches(journal))

    assert restored == line


def test_files_are_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "manifest.json"
    _write_atomically(target, "first\n")
    _write_atomically(target, "second\n")

    assert target.read_text() == "second\n"
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]
