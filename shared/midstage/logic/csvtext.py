"""CSV text read with Python's `csv` module, without its exceptions reaching a caller.

`csv` raises on a carriage return inside an unquoted field when the text is not read in
newline="" mode, and on a field above its size limit. Text from an HTTP body is anything a
client sends, so the text is read in the mode the module documents, and a record it cannot read
becomes a problem with its line while reading goes on with the next one.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class CsvRecord:
    line: int  # the line the record ends on, 1-based, the header being line 1
    cells: list[str]
    problem: str  # "" when the record was read


def csv_records(text: str) -> Iterator[CsvRecord]:
    """Every record of the text, in order; an unreadable one carries its problem and no cells."""
    reader = csv.reader(io.StringIO(text, newline=""))
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield CsvRecord(reader.line_num, [], f"unreadable CSV: {error}")
            continue
        yield CsvRecord(reader.line_num, cells, "")


def csv_dicts(text: str) -> tuple[list[str], Iterator[tuple[int, dict[str, str | None], str]]]:
    """The header's names and the rows after it as (line, {name: cell}, problem); a short row's
    missing cells are None, as `csv.DictReader` gives them; an unreadable row has no cells and its
    problem. An unreadable header gives no names. Blank lines are skipped."""
    records = csv_records(text)
    header = next(records, None)
    names = header.cells if header is not None and not header.problem else []

    def rows() -> Iterator[tuple[int, dict[str, str | None], str]]:
        for record in records:
            if record.problem:
                yield record.line, {}, record.problem
            elif record.cells:
                values: list[str | None] = list(record.cells)
                values += [None] * (len(names) - len(values))
                yield record.line, dict(zip(names, values, strict=False)), ""

    return names, rows()
