"""`python -m midstage.cli pinpoint-convert`: Amazon Pinpoint definitions into Midstage's.

    aws pinpoint get-segments  --application-id <id> --output json > pinpoint/segments.json
    aws pinpoint get-campaigns --application-id <id> --output json > pinpoint/campaigns.json
    aws pinpoint list-journeys --application-id <id> --output json > pinpoint/journeys.json
    aws pinpoint get-email-template --template-name <name> --output json > pinpoint/<name>.json
    python -m midstage.cli pinpoint-convert pinpoint/ --out converted/ [--approve]
        [--apply --url <api base> --key <key>]

Reads every `*.json` under the folders (or the files) given, converts what it can (see
midstage.logic.pinpoint), checks each result as the admin API checks it on save (a definition
that fails is reported, not written), and writes `templates/`, `segments/`, `rules/`,
`journeys/` (what `midstage.cli apply` loads) and `campaigns/` (POSTed by `--apply`) under
`--out`, with `conversion-report.txt`. It prints the report: converted, converted with notes (each
note with its place in the Pinpoint JSON), not converted (and why).

`--apply` then runs `apply` on the folder and creates each campaign that does not exist yet (as
a draft: schedule it once it is checked). Journeys and rules are written disabled; templates are
approved only with `--approve`, and only those converted without notes. Exit codes: 0 done,
1 stopped (a file refused by the API, or the API could not be reached), 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from midstage.definitions import FOLDERS, Document, Issue, cross_check, read_document
from midstage.errors import validation_issues
from midstage.logic.campaigns import validate_campaign
from midstage.logic.pinpoint import Conversion, Converted, Item, Note, Refused, convert_project, items_of
from midstage.models.campaigns import CampaignBody
from midstage.models.requests import CampaignCreate

try:
    import yaml
except ImportError:  # an operator's dependency (the dev extra has it); the functions do not need it
    yaml = None  # type: ignore[assignment]

CAMPAIGNS = "campaigns"
REPORT = "conversion-report.txt"


@dataclass
class Outcome:
    """What a run made: the definitions written (checked), and those refused, with why."""

    written: list[Converted] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = commands.add_parser(
        "pinpoint-convert", help="convert Amazon Pinpoint segments, campaigns, journeys and templates (CLI JSON)"
    )
    command.add_argument("paths", nargs="+", help="JSON files written by `aws pinpoint ... --output json`, or folders")
    command.add_argument("--out", required=True, help="the folder to write the definitions and the report to")
    command.add_argument("--approve", action="store_true", help="approve the templates converted without notes")
    command.add_argument("--apply", action="store_true", help="then load them into the API (apply, and campaigns)")
    command.add_argument("--url", help="the API's base URL (the stack's ApiUrl output), for --apply")
    command.add_argument(
        "--key", default=os.environ.get("MIDSTAGE_API_KEY"), help="an API key for --apply; default: $MIDSTAGE_API_KEY"
    )


def run(args: argparse.Namespace) -> int:
    from midstage.cli import ApiError, HttpAdminApi, apply  # the command lives beside the CLI that loads it
    from midstage.definitions import LibraryInvalid

    if args.apply and not (args.url and args.key):
        print("pinpoint-convert --apply needs --url and --key (or MIDSTAGE_API_KEY)", file=sys.stderr)
        return 2
    try:
        outcome = convert_files(input_files(args.paths), Path(args.out), now=datetime.now(UTC), approve=args.approve)
    except (OSError, ValueError) as error:
        print(f"pinpoint-convert: {error}", file=sys.stderr)
        return 2
    print(report(outcome))
    if not args.apply:
        return 0
    try:
        apply(args.out, args.url, args.key)
        for line in create_campaigns(Path(args.out), HttpAdminApi(args.url, args.key)):
            print(line)
    except LibraryInvalid as error:
        for issue in error.issues:
            print(issue, file=sys.stderr)
        print(f"{len(error.issues)} problem(s); nothing was sent", file=sys.stderr)
        return 1
    except ApiError as error:
        print(f"stopped: {error}", file=sys.stderr)
        return 1
    return 0


def input_files(paths: Iterable[str]) -> list[Path]:
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*.json") if p.is_file()))
        elif path.is_file():
            found.append(path)
        else:
            raise ValueError(f"{raw}: no such file or folder")
    if not found:
        raise ValueError("no JSON files to read")
    return found


def read_items(files: Iterable[Path]) -> tuple[list[Item], list[Refused]]:
    items: list[Item] = []
    refused: list[Refused] = []
    for path in files:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            refused.append(Refused(str(path), [Note("", f"not JSON: {error}")]))
            continue
        found, problems = items_of(str(path), document)
        items.extend(found)
        refused.extend(problems)
    return items, refused


def convert_files(files: Iterable[Path], out: Path, *, now: datetime, approve: bool = False) -> Outcome:
    """Read, convert, check and write; the report goes to the folder too."""
    _clear(out)
    items, refused = read_items(files)
    conversion = convert_project(items, now)
    outcome = check(conversion, now)
    outcome.refused[:0] = refused
    for converted in outcome.written:
        folder = CAMPAIGNS if converted.kind == "campaign" else FOLDERS[converted.kind]
        target = out / folder / f"{converted.id}.yaml"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(document_text(converted, approve=approve), encoding="utf-8")
        outcome.files.append(target)
    out.mkdir(parents=True, exist_ok=True)
    (out / REPORT).write_text(report(outcome) + "\n", encoding="utf-8")
    return outcome


WRITTEN = ("templates", "segments", "rules", "journeys", CAMPAIGNS)


def _clear(out: Path) -> None:
    """A new folder, or one this command wrote before: its definitions go, so one no longer
    converted (a campaign whose run is now past) is not applied from a previous run."""
    if not out.exists() or not any(out.iterdir()):
        return
    if not (out / REPORT).is_file():
        raise ValueError(f"{out} holds files pinpoint-convert did not write: give a new or empty folder")
    for folder in WRITTEN:
        for stale in (out / folder).glob("*.yaml"):
            stale.unlink()


def document_text(converted: Converted, *, approve: bool = False) -> str:
    _need_yaml()
    body = dict(converted.body)
    if converted.kind == "template" and approve and not converted.notes:
        body["approve"] = True
    header = "".join(f"# {line}\n" for line in converted.source.splitlines())
    if converted.notes:
        header += "# Not carried over exactly (see conversion-report.txt):\n"
        header += "".join(f"#   {line}\n" for note in converted.notes for line in str(note).splitlines())
    text: str = yaml.safe_dump(body, sort_keys=False, allow_unicode=True, width=120)
    return header + text


def check(conversion: Conversion, now: datetime) -> Outcome:
    """Each definition checked as the admin API checks it on save; those that fail are refused
    with the API's own messages, the others kept."""
    outcome = Outcome(refused=list(conversion.refused))
    documents: list[tuple[Converted, Document]] = []
    for converted in conversion.converted:
        problems = _problems(converted, now, documents)
        if problems:
            outcome.refused.append(Refused(converted.source, [*converted.notes, *problems]))
        else:
            outcome.written.append(converted)
    across = cross_check([d for _, d in documents])
    bad = {issue.file for issue in across}
    for converted, document in documents:
        if document.file in bad:
            found = [Note(i.location, f"in Midstage: {i.message}") for i in across if i.file == document.file]
            outcome.written.remove(converted)
            outcome.refused.append(Refused(converted.source, [*converted.notes, *found]))
    return outcome


def _problems(converted: Converted, now: datetime, documents: list[tuple[Converted, Document]]) -> list[Note]:
    if converted.kind == "campaign":
        try:
            body = CampaignCreate.model_validate(converted.body)
        except ValidationError as error:
            return [
                Note(i["location"], f"in Midstage: {i['message']}") for i in validation_issues(error, converted.body)
            ]
        named = set(_templates_of(body))
        issues = validate_campaign(body, segments_known=set(body.audience.segments), templates_known=named, now=now)
        return [Note(i.location, f"in Midstage: {i.message}") for i in issues]
    name = f"{FOLDERS[converted.kind]}/{converted.id}.yaml"
    document, problems = read_document(converted.kind, name, document_text(converted))
    if document is None:
        return [_note(issue) for issue in problems]
    documents.append((converted, document))
    return []


def _templates_of(body: CampaignBody) -> list[str]:
    refs: list[Any] = [body.message.template, *[v.template for v in body.variants or [] if v.template]]
    return [t for ref in refs for t in ([ref] if isinstance(ref, str) else ref.values())]


def _note(issue: Issue) -> Note:
    return Note(issue.location, f"in Midstage: {issue.message}")


def report(outcome: Outcome) -> str:
    exact = [c for c in outcome.written if not c.notes]
    noted = [c for c in outcome.written if c.notes]
    lines = [f"converted ({len(exact)}):"]
    lines += [f"  {c.kind:<8} {c.id:<40} <- {c.source}" for c in exact]
    lines.append(f"converted with notes ({len(noted)}):")
    for converted in noted:
        lines.append(f"  {converted.kind:<8} {converted.id:<40} <- {converted.source}")
        lines += [f"      {note}" for note in converted.notes]
    lines.append(f"not converted ({len(outcome.refused)}):")
    for refused in outcome.refused:
        lines.append(f"  {refused.source}")
        lines += [f"      {note}" for note in refused.notes]
    lines.append(f"{len(exact)} converted, {len(noted)} converted with notes, {len(outcome.refused)} not converted")
    return "\n".join(lines)


def create_campaigns(out: Path, api: Any, echo: Callable[[str], None] | None = None) -> list[str]:
    """POST each campaign file's campaign unless one of that id exists (then it is the operator's)."""
    _need_yaml()
    done: list[str] = []
    folder = out / CAMPAIGNS
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        body = yaml.safe_load(path.read_text(encoding="utf-8"))
        if api.get(f"/v1/campaigns/{body['id']}") is not None:
            done.append(f"campaign {body['id']:<36} exists: left alone")
        else:
            created = api.send("POST", "/v1/campaigns", body)
            done.append(f"campaign {body['id']:<36} created as {created.get('status', 'draft')}")
        if echo is not None:
            echo(done[-1])
    return done


def _need_yaml() -> None:
    if yaml is None:
        raise SystemExit("pinpoint-convert writes YAML files: install PyYAML (pip install pyyaml)")
