"""Whole-file checks and the CSV reader the formats share: size, encoding, binary content, records
with their line numbers, the header.
"""

from __future__ import annotations

from collections.abc import Iterator

from midstage.logic.csvfile import prepare as prepare
from midstage.logic.csvfile import read_records as read_records
from midstage.logic.imports.model import (
    MAX_CELL_BYTES,
    MAX_COLUMNS,
    MAX_ROWS,
    ImportRefused,
    RowProblem,
)


# ----------------------------------------------------------------------------- text and CSV
def counted(records: Iterator[tuple[int, list[str], str]]) -> Iterator[tuple[int, list[str], str]]:
    for count, record in enumerate(records, start=1):
        if count > MAX_ROWS:
            raise ImportRefused(f"more than {MAX_ROWS:,} rows; split the file")
        yield record


def read_header(records: Iterator[tuple[int, list[str], str]]) -> list[str]:
    first = next(records, None)
    if first is None:
        raise ImportRefused("the file has no header row")
    line, cells, problem = first
    if problem:
        raise ImportRefused(f"the header row (line {line}) is malformed: {problem}")
    if len(cells) > MAX_COLUMNS:
        raise ImportRefused(f"the header has {len(cells):,} columns; at most {MAX_COLUMNS}")
    return cells


def check_shape(cells: list[str], header: list[str]) -> None:
    if len(cells) != len(header):
        raise RowProblem(f"{len(cells):,} fields where the header has {len(header)}")
    for index, cell in enumerate(cells):
        if len(cell) > MAX_CELL_BYTES // 4 and len(cell.encode()) > MAX_CELL_BYTES:
            raise RowProblem(
                f"column {header[index].strip()[:80]!r} holds {len(cell.encode()):,} bytes; at most {MAX_CELL_BYTES:,}"
            )
