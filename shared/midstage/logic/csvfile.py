"""CSV files as the platform reads them, whatever sent them (imports, spend, offer codes, an
experiment's export): whole-file checks (size, encoding, binary content; any line ends) and RFC
4180 records with the line each starts on, a malformed one reported and reading resumed on the
next line. Dependency-free, so a function that reads a CSV now and then pays nothing at import.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from midstage.errors import ImportRefused

MAX_TEXT_BYTES = 20 * 1024 * 1024
QUOTED = re.compile(r'"([^"]*(?:""[^"]*)*)"')
BARE = re.compile(r"[^,\n]*")
SNIFF_CHARACTERS = 64 * 1024
CONTROL = re.compile(r"[\x01-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd]")


def prepare(text: str | bytes) -> str:
    """Whole-file checks: size, encoding, binary content. Line ends become \\n."""
    if isinstance(text, bytes | bytearray):
        if len(text) > MAX_TEXT_BYTES:
            raise ImportRefused(f"the file is {len(text):,} bytes; imports are limited to {MAX_TEXT_BYTES:,}")
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as error:
            raise ImportRefused(f"the file is not UTF-8 text (byte {error.start + 1})") from error
    if len(text) > MAX_TEXT_BYTES:
        raise ImportRefused(f"the file has {len(text):,} characters; imports are limited to {MAX_TEXT_BYTES:,} bytes")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as error:
        raise ImportRefused("the file is not valid Unicode text") from error
    if size > MAX_TEXT_BYTES:
        raise ImportRefused(f"the file is {size:,} bytes; imports are limited to {MAX_TEXT_BYTES:,}")
    text = text.removeprefix("\ufeff")
    if "\x00" in text:
        raise ImportRefused("the file is binary (it holds NUL bytes); upload UTF-8 text")
    sample = text[:SNIFF_CHARACTERS]
    if len(CONTROL.findall(sample)) > max(8, len(sample) // 100):
        raise ImportRefused("the file looks binary (many control characters); upload UTF-8 text")
    if not text.strip():
        raise ImportRefused("the file is empty")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_records(text: str) -> Iterator[tuple[int, list[str], str]]:
    """RFC 4180 records: (line the record starts on, cells, problem or ""). Quoted fields may
    hold commas, quotes ("") and newlines. A malformed record is reported and reading resumes
    on the next line. Blank records are skipped."""
    at, line, end = 0, 1, len(text)
    while at < end:
        start = line
        cells: list[str] = []
        problem = ""
        while True:
            if text.startswith('"', at):
                quoted = QUOTED.match(text, at)
                if quoted is None:
                    problem = "a quoted field is never closed"
                elif quoted.end() < end and text[quoted.end()] not in ",\n":
                    problem = "text after a closing quote; quote the whole field and double inner quotes"
                if problem:
                    newline = text.find("\n", at)
                    at = end if newline < 0 else newline + 1
                    line += 1
                    break
                assert quoted is not None
                cells.append(quoted.group(1).replace('""', '"'))
                line += quoted.group(1).count("\n")
                at = quoted.end()
            else:
                bare = BARE.match(text, at)
                assert bare is not None  # it matches the empty string
                cells.append(bare.group())
                at = bare.end()
            if at >= end:
                break
            separator = text[at]
            at += 1
            if separator == "\n":
                line += 1
                break
        if problem or any(cell.strip() for cell in cells):
            yield start, cells, problem
