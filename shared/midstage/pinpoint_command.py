"""`python -m midstage.cli pinpoint-import`: Amazon Pinpoint export files into a static segment.

    python -m midstage.cli pinpoint-import <segment id> <file | folder | s3://bucket/prefix>... \
        --url <api base> --key <key> [--format auto | pinpoint-json | pinpoint-csv | csv] [--lines 500]

An export job writes several `.gz` files, each ending without a newline. Each file is read on
its own (gzip'd or plain; a folder or an S3 prefix for every file under it, read with the AWS
credentials of the environment), cut into imports of at most
`--lines` lines at record boundaries of that file (a CSV's header goes with each), and each
import is sent gzip'd to `POST /v1/segments/{id}/import`. No import holds lines of two files, so
the last endpoint of one file and the first of the next never become one line, and every
rejected line is reported by its file and its line in that file.

Running it again is safe: a Pinpoint endpoint's events are named by what they say (endpoint id,
EffectiveDate, content), so endpoints imported already are absorbed by the profile updater's
dedupe, whichever files or cut they come in. Exit codes: 0 done (rejected lines included),
1 stopped (the API refused a request other than for its content, or could not be reached),
2 bad input (no file, an unreadable one).
"""

from __future__ import annotations

import argparse
import base64
import gzip
import itertools
import os
import sys
import urllib.parse
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

from midstage.clock import system_clock
from midstage.errors import MidstageError
from midstage.logic.imports import ImportFormat, bulk, parse_import

GZIP_MAGIC = b"\x1f\x8b"
DEFAULT_LINES = 500
# Raw bytes per import: well inside the admin API's 6 MiB body once gzip'd and base64'd, and its
# 20 MiB text limit.
MAX_IMPORT_BYTES = 4 * 1024 * 1024
FORMATS = ("auto", "pinpoint-json", "pinpoint-csv", "csv")


class Api(Protocol):
    def send(self, method: str, path: str, body: Any, *, if_match: int | None = None) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Chunk:
    """One import: a file's lines from `first_line`, with a CSV's header in front (`header`)."""

    file: str
    first_line: int
    lines: int
    data: bytes
    header: bool

    def file_line(self, line: int) -> int:
        """A line the API reports (counted in the import) as a line of the file."""
        return self.first_line + line - (2 if self.header else 1)


@dataclass
class Totals:
    imports: int = 0
    accepted: int = 0
    events: int = 0
    rejected: int = 0
    refused: list[str] = field(default_factory=list)
    # Everyone the accepted imports named: a person whose endpoints fall in two imports (or two
    # files) is one person, so the total is of distinct keys, not the sum of each import's count.
    people_keys: set[tuple[str, str]] = field(default_factory=set)

    @property
    def people(self) -> int:
        return len(self.people_keys)


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = commands.add_parser(
        "pinpoint-import", help="import Amazon Pinpoint export files (each on its own) into a static segment"
    )
    command.add_argument("segment", help="the static segment's id")
    command.add_argument("paths", nargs="+", help="export files (.gz or plain), folders of them, or s3://bucket/prefix")
    command.add_argument("--url", required=True, help="the API's base URL (the stack's ApiUrl output)")
    command.add_argument(
        "--key", default=os.environ.get("MIDSTAGE_API_KEY"), help="a marketer's API key; default: $MIDSTAGE_API_KEY"
    )
    command.add_argument("--format", default="auto", choices=FORMATS, help="the files' format (default: detected)")
    command.add_argument("--lines", type=int, default=DEFAULT_LINES, help=f"lines per import (default {DEFAULT_LINES})")


def run(args: argparse.Namespace) -> int:
    from midstage.cli import ApiError, HttpAdminApi  # the command lives beside the CLI that loads it

    if not args.key:
        print("pinpoint-import needs --key (or MIDSTAGE_API_KEY)", file=sys.stderr)
        return 2
    if args.lines < 1:
        print("--lines must be at least 1", file=sys.stderr)
        return 2
    try:
        files = export_files(args.paths)
        api = HttpAdminApi(args.url, args.key)
        totals = import_files(files, args.segment, api, fmt=args.format, lines=args.lines, echo=print)
    except (OSError, ValueError) as error:
        print(f"pinpoint-import: {error}", file=sys.stderr)
        return 2
    except ApiError as error:
        print(f"stopped: {error}\nrunning the command again is safe: what was imported is absorbed", file=sys.stderr)
        return 1
    print(
        f"{len(files)} file(s), {totals.imports} import(s): {totals.accepted} endpoints accepted, "
        f"{totals.people} people, {totals.events} events, {totals.rejected} lines rejected, "
        f"{len(totals.refused)} import(s) or file(s) refused"
    )
    return 0


@dataclass(frozen=True)
class S3File:
    """An export file in a bucket, read as a stream of chunks."""

    bucket: str
    key: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


ExportFile = Path | S3File


def export_files(paths: Iterable[str], bucket_keys: Callable[[str, str], list[str]] | None = None) -> list[ExportFile]:
    """The files named, every file under a folder named (hidden ones left out) and every object
    under an S3 prefix named, each folder's and prefix's in name order."""
    found: list[ExportFile] = []
    for name in paths:
        path = Path(name)
        if name.startswith("s3://"):
            bucket, _, prefix = name.removeprefix("s3://").partition("/")
            if not bucket:
                raise ValueError(f"{name!r}: no bucket (s3://bucket/prefix)")
            listed = (bucket_keys or _bucket_keys)(bucket, prefix)
            if not listed:
                raise ValueError(f"no objects under {name!r}")
            found += [S3File(bucket, key) for key in listed if not key.endswith("/")]
        elif path.is_dir():
            found += sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and not any(s.startswith(".") for s in p.relative_to(path).parts)
            )
        elif path.is_file():
            found.append(path)
        else:
            raise ValueError(f"no file or folder {name!r}")
    if not found:
        raise ValueError("no export files in the folders named")
    return found


def _bucket_keys(bucket: str, prefix: str) -> list[str]:
    from midstage.adapters.import_store import export_keys

    return export_keys(bucket, prefix)


def import_files(
    files: Iterable[ExportFile], segment: str, api: Api, *, fmt: str, lines: int, echo: Callable[[str], None]
) -> Totals:
    totals = Totals()
    path = f"/v1/segments/{urllib.parse.quote(segment, safe='')}/import"
    for file in files:
        try:
            for chunk in chunks(file, fmt, lines):
                _import(api, path, chunk, fmt, totals, echo)
        except (OSError, EOFError, zlib.error, MidstageError) as error:  # a damaged or unreadable file
            totals.refused.append(str(file))
            reason = getattr(error, "message", None) or str(error)
            print(f"{file}: could not be read ({reason}); the files after it go on", file=sys.stderr)
    return totals


def _import(api: Api, path: str, chunk: Chunk, fmt: str, totals: Totals, echo: Callable[[str], None]) -> None:
    answer = _send(api, path, chunk, fmt, totals)
    if answer is None:
        return
    totals.imports += 1
    totals.accepted += answer["accepted"]
    totals.people_keys.update(people_of(chunk, fmt))
    totals.events += answer["events"]
    totals.rejected += answer["rejected_total"]
    last = chunk.first_line + chunk.lines - 1
    echo(
        f"{chunk.file} lines {chunk.first_line}-{last}: {answer['accepted']} accepted, "
        f"{answer['rejected_total']} rejected"
    )
    for rejection in answer["rejected"]:
        echo(f"  {chunk.file}:{chunk.file_line(rejection['line'])}: {rejection['reason']}")
    unlisted = answer["rejected_total"] - len(answer["rejected"])
    if unlisted > 0:
        echo(f"  ... and {unlisted} more in these lines (lower --lines to see each)")


def people_of(chunk: Chunk, fmt: str) -> list[tuple[str, str]]:
    """Who an import the API accepted names, read as the API reads it (the same parser), so that
    the totals count each person once however the files are cut."""
    try:
        report = parse_import(
            chunk.data,
            segment_id="pinpoint-import",
            import_id="count",
            now=system_clock(),
            fmt=None if fmt == "auto" else cast("ImportFormat", fmt),
        )
    except (MidstageError, ValueError):  # the API took it: a difference here only loses the count
        return []
    return report.person_keys


def _send(api: Api, path: str, chunk: Chunk, fmt: str, totals: Totals) -> dict[str, Any] | None:
    """The import's answer, or None when the API refused its content (reported; the next goes on)."""
    from midstage.cli import ApiError

    body = {"format": fmt, "data_base64": base64.b64encode(gzip.compress(chunk.data)).decode()}
    try:
        return api.send("POST", path, body)
    except ApiError as error:
        if error.status == 400 and isinstance(error.body, dict) and error.body.get("code") == "invalid_import":
            where = f"{chunk.file} lines {chunk.first_line}-{chunk.first_line + chunk.lines - 1}"
            totals.refused.append(where)
            print(f"{where}: refused: {error.body.get('message')}", file=sys.stderr)
            return None
        raise


def chunks(file: ExportFile, fmt: str, lines: int) -> Iterator[Chunk]:
    """A file's imports: at most `lines` lines and MAX_IMPORT_BYTES each, cut between records."""
    if isinstance(file, S3File):
        from midstage.adapters.import_store import export_chunks

        pieces = export_chunks(file.bucket, file.key)
        first = next(pieces, b"")
        stream = itertools.chain([first], pieces)
        decoded = bulk.gunzipped(stream) if bulk.is_gzip(first) else stream
        yield from _cut(str(file), _lines(_split(decoded)), fmt, lines)
        return
    with file.open("rb") as raw:
        gzipped = raw.read(2) == GZIP_MAGIC
    opener: Any = gzip.open if gzipped else open
    with opener(file, "rb") as opened:
        yield from _cut(str(file), _lines(opened), fmt, lines)


def _split(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """Chunks of bytes as lines (the last one as it ends)."""
    rest = b""
    for piece in pieces:
        *complete, rest = (rest + piece).split(b"\n")
        yield from (line + b"\n" for line in complete)
    if rest:
        yield rest


def _lines(stream: Iterable[bytes]) -> Iterator[bytes]:
    """The file's lines, each ending with a newline (an export's last line has none)."""
    for line in stream:
        yield line if line.endswith(b"\n") else line + b"\n"


def _cut(name: str, found: Iterator[bytes], fmt: str, lines: int) -> Iterator[Chunk]:
    first = next(found, None)
    if first is None:
        return
    # A CSV's header goes with each import; JSON lines (a `{` first) have none.
    csv = fmt in ("pinpoint-csv", "csv") or (fmt == "auto" and not first.lstrip(b"\xef\xbb\xbf \t").startswith(b"{"))
    header = first if csv else b""
    pending: list[bytes] = [] if csv else [first]
    start = 2 if csv else 1
    size = len(header) + len(first) * (not csv)
    quotes = header.count(b'"')  # a CSV record ends at a newline outside quotes (an even count of `"`)
    for line in found:
        complete = not quotes % 2
        if complete and pending and (len(pending) >= lines or size + len(line) > MAX_IMPORT_BYTES):
            yield Chunk(name, start, len(pending), header + b"".join(pending), csv)
            start += len(pending)
            pending, size = [], len(header)
        pending.append(line)
        size += len(line)
        if csv:
            quotes += line.count(b'"')
    if pending:
        yield Chunk(name, start, len(pending), header + b"".join(pending), csv)
    elif start == 2 and csv:  # a header alone, or one line that is not JSON: the API says what it is
        yield Chunk(name, 1, 1, header, False)
