"""Operator commands against a deployed stack (or the local cloud, via AWS_ENDPOINT_URL).

    python -m midstage.cli create-api-key --table <ConfigTableName> --name ops --role admin
    python -m midstage.cli create-source  --table <ConfigTableName> --name "Web"
    python -m midstage.cli rotate-secret links --table <ConfigTableName> [--keep-days 400 | --remove k0]
    python -m midstage.cli apply library  --url <api base> --key <admin key> [--dry-run]
    python -m midstage.cli apply ./my-rules --url <api base> --key <admin key>
    python -m midstage.cli dead-letters [<queue>] [--redrive] --url <api base> --key <admin key>
    python -m midstage.cli pinpoint-import <segment id> <files, folders, s3://bucket/prefix> --url <api> --key <key>
    python -m midstage.cli pinpoint-convert <aws pinpoint JSON files or folders> --out <folder> [--apply --url --key]
    python -m midstage.cli pinpoint-channels <aws pinpoint get-*-channel JSON files or folders>
    python -m midstage.cli pinpoint-history <files, folders, s3://bucket/prefix> --queue-url <queue> --table <table>
    python -m midstage.cli predict fit --transactions orders.csv --calibration-end 2026-06-30 --unit week
    python -m midstage.cli predict propensity --events events.csv --goal "Order Completed" --window-days 30
    python -m midstage.cli replay events --archive <dir | s3://bucket/prefix> --from 2026-03-01 --to 2026-03-31
    python -m midstage.cli report funnel --spec spec.json --archive <dir | s3://bucket/prefix>

The first admin key has to come from here: the admin API itself needs a key.

`apply` reads `templates/`, `segments/`, `offers/`, `rules/` and `journeys/` (`*.yaml`) under a folder
("library": the examples shipped in midstage.library), one document with an `id` per file,
checks every file locally (the same checks as the admin API: a file with a problem is reported
with its line and nothing is sent), then brings the API in line with them in that order, since
rules and journeys name templates, segments and offers, and segments name segments (a template
naming an offer of the folder waits for the offers): missing documents
are created, changed ones replaced (If-Match the version read), unchanged ones left alone; a
template whose file says `approve: true` has the version it ends up at approved. Running it
twice changes nothing.

A template or segment that a document names must be in the folder or already on the API.
A journey's `enabled` is where a new journey starts; once it exists, enabling or disabling it
is the operator's switch, and `apply` keeps whatever the API has (the shipped journeys start
disabled, and re-applying the library must not turn off one an operator turned on).

It needs PyYAML (`pip install pyyaml`), which the Lambda functions themselves do not.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ValidationError

from midstage import (
    audit_command,
    pinpoint_channels_command,
    pinpoint_command,
    pinpoint_convert_command,
    pinpoint_history_command,
    predict_command,
    replay_command,
)
from midstage.adapters.config_store import ConfigStore, new_write_key
from midstage.clock import system_clock
from midstage.definitions import (
    FOLDERS,
    LIBRARY,
    Document,
    Issue,
    Kind,
    LibraryInvalid,
    dump,
    load_documents,
    referenced_offers,
    referenced_segments,
    referenced_templates,
)
from midstage.errors import MidstageError
from midstage.models.admin import SecretRotation, Source, stamp
from midstage.models.journeys import JourneyBody
from midstage.models.messaging import RuleBody, TemplateBody
from midstage.models.segments import SegmentBody
from midstage.services.admin.settings import SIGNING_SECRETS, SecretAdmin

try:
    import yaml
except ImportError:  # an operator's dependency (the dev extra has it); the functions do not need it
    yaml = None  # type: ignore[assignment]


# ------------------------------------------------------------------------------ the admin API
class ApiError(Exception):
    """The admin API refused a request (or could not be reached: status 0)."""

    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        self.method, self.path, self.status, self.body = method, path, status, body
        details = body if isinstance(body, dict) else {"message": str(body)[:500]}
        answered = f"answered {status} {details.get('code', '')}" if status else "could not reach the API"
        lines = [f"{method} {path} {answered}: {details.get('message', '')}"]
        lines += [
            f"  {i.get('location') or '/'}: {i.get('message')}"
            for i in details.get("issues") or []
            if isinstance(i, dict)
        ]
        super().__init__("\n".join(lines))


class AdminApi(Protocol):
    def get(self, path: str) -> dict[str, Any] | None:
        """The JSON answer, or None when the API answers 404."""
        ...

    def send(self, method: str, path: str, body: Any, *, if_match: int | None = None) -> dict[str, Any]: ...


class HttpAdminApi:
    """The admin API over HTTP(S) with an admin API key (urllib: no dependency)."""

    def __init__(self, url: str, key: str, *, timeout: float = 30.0) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"the API URL must be http(s)://host[/stage], not {url!r}")
        self.url = url.rstrip("/")
        self.key = key
        self.timeout = timeout

    def get(self, path: str) -> dict[str, Any] | None:
        status, body = self._call("GET", path, None, None)
        if status == 404:
            return None
        if status != 200 or not isinstance(body, dict):
            raise ApiError("GET", path, status, body)
        return body

    def send(self, method: str, path: str, body: Any, *, if_match: int | None = None) -> dict[str, Any]:
        status, answer = self._call(method, path, body, if_match)
        if not 200 <= status < 300 or not isinstance(answer, dict):
            raise ApiError(method, path, status, answer)
        return answer

    def _call(self, method: str, path: str, body: Any, if_match: int | None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)  # noqa: S310 (scheme checked)
        request.add_header("authorization", f"Bearer {self.key}")
        request.add_header("accept", "application/json")
        if data is not None:
            request.add_header("content-type", "application/json")
        if if_match is not None:
            request.add_header("if-match", str(if_match))
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 (scheme checked)
                status, payload = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, payload = error.code, error.read()
        except (urllib.error.URLError, TimeoutError) as error:
            raise ApiError(method, path, 0, str(error)) from error
        try:
            return status, json.loads(payload) if payload else None
        except ValueError:
            return status, payload.decode("utf-8", "replace")


# ------------------------------------------------------------------------------ planning
Action = Literal["create", "update", "approve", "unchanged"]


@dataclass(frozen=True)
class Step:
    """What applying one document takes. `version`: the current version (If-Match of an
    update; the version an `approve` step approves). `approve`: approve what create/update makes."""

    document: Document
    action: Action
    version: int | None = None
    approve: bool = False
    changed: tuple[str, ...] = ()

    def describe(self, *, dry_run: bool) -> str:
        would = "would " if dry_run else ""
        and_approve = " and approve" if self.approve else ""
        if self.action == "create":
            text = f"{would}create{and_approve}"
        elif self.action == "update":
            text = f"{would}update v{self.version} ({', '.join(self.changed)}){and_approve}"
        elif self.action == "approve":
            text = f"{would}approve v{self.version}"
        else:
            text = "unchanged"
        return f"{self.document.kind:<8} {self.document.id:<36} {text}"


@dataclass
class Report:
    steps: list[Step]
    dry_run: bool
    done: list[str] = field(default_factory=list)  # what was done, one line a document

    def counts(self) -> dict[str, int]:
        counts = {"create": 0, "update": 0, "approve": 0, "unchanged": 0}
        for step in self.steps:
            counts[step.action] += 1
        return counts

    def summary(self) -> str:
        counts = self.counts()
        verbs = {"create": "created", "update": "updated", "approve": "approved", "unchanged": "unchanged"}
        kinds = [s.document.kind for s in self.steps]
        # Rules and templates are always counted (a folder of them is the common case); the others when present.
        shown = [
            k for k in ("rule", "template", "segment", "offer", "journey") if k in ("rule", "template") or k in kinds
        ]
        head = ", ".join(f"{kinds.count(k)} {k}(s)" for k in shown) + ": "
        done = ", ".join(f"{counts[action]} {verb}" for action, verb in verbs.items())
        return head + done + (" (dry run: nothing was sent)" if self.dry_run else "")


def _normalised(model: type[BaseModel], document: Mapping[str, Any]) -> dict[str, Any]:
    """A stored document's body fields as the model fills them, to compare with a file's."""
    return dump(model.model_validate({k: document[k] for k in model.model_fields if k in document}))


def _differences(wanted: Mapping[str, Any], current: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(sorted(k for k in set(wanted) | set(current) if wanted.get(k) != current.get(k)))


def plan(documents: Sequence[Document], api: AdminApi) -> list[Step]:
    """What it takes to bring the API in line with the documents (reads only), in the order to
    apply it. Raises LibraryInvalid when a document names a template or segment that is neither
    here nor on the server, or a template of the server's on another channel."""
    ordered = in_order(documents)
    steps: list[Step] = []
    for document in ordered:
        current = api.get(f"/v1/{FOLDERS[document.kind]}/{document.id}")
        if document.kind == "template":
            steps.append(_plan_template(document, current))
        elif document.kind == "rule":
            steps.append(_plan_versioned(document, RuleBody, current))
        elif document.kind == "segment":
            steps.append(_plan_versioned(document, SegmentBody, current))
        elif document.kind == "offer":
            # An offer is created from its file once; after that its window, budget and pause are
            # the operator's (PATCH), and its kind and codes are fixed, so apply leaves it alone.
            steps.append(Step(document, "create" if current is None else "unchanged"))
        else:
            steps.append(_plan_journey(document, current))
    missing = _unresolved(ordered, api)
    if missing:
        raise LibraryInvalid(missing)
    return steps


def in_order(documents: Sequence[Document]) -> list[Document]:
    """Kind by kind as FOLDERS lists them, by id within a kind, except that a segment comes
    after the segments it names (the API refuses a segment naming one it does not know), and a
    template naming an offer of the folder with `offer('<id>')` comes after the offers (the API
    refuses a template naming an offer it does not know)."""
    local_offers = {d.id for d in documents if d.kind == "offer"}
    waiting: list[Document] = []
    ordered: list[Document] = []
    for kind in FOLDERS:
        of_kind = sorted((d for d in documents if d.kind == kind), key=lambda d: d.id)
        if kind == "template":
            waiting = [d for d in of_kind if any(o in local_offers for o, _ in referenced_offers(d))]
            of_kind = [d for d in of_kind if d not in waiting]
        ordered += _dependencies_first(of_kind) if kind == "segment" else of_kind
        if kind == "offer":
            ordered += waiting
    return ordered


def _dependencies_first(segments: list[Document]) -> list[Document]:
    local = {d.id for d in segments}
    needs = {d.id: {s for s, _ in referenced_segments(d) if s in local and s != d.id} for d in segments}
    placed: set[str] = set()
    ordered: list[Document] = []
    while len(ordered) < len(segments):
        waiting = [d for d in segments if d.id not in placed]
        # A cycle has no segment ready; load_documents refuses cycles, so this only keeps the loop finite.
        document = next((d for d in waiting if needs[d.id] <= placed), waiting[0])
        placed.add(document.id)
        ordered.append(document)
    return ordered


def _unresolved(ordered: Sequence[Document], api: AdminApi) -> list[Issue]:
    """Templates, segments and offers named but not in the folder, looked up on the server (once each)."""
    local = {(d.kind, d.id): d for d in ordered}
    fetched: dict[tuple[str, str], dict[str, Any] | None] = {}

    def server(kind: Kind, document_id: str) -> dict[str, Any] | None:
        if (kind, document_id) not in fetched:
            fetched[(kind, document_id)] = api.get(f"/v1/{FOLDERS[kind]}/{document_id}")
        return fetched[(kind, document_id)]

    issues: list[Issue] = []
    for document in ordered:
        for channel, template_id, location in referenced_templates(document):
            if ("template", template_id) in local:
                continue  # its channel was checked with the files
            template = server("template", template_id)
            if template is None:
                message = f"no template '{template_id}' in this folder or on the server"
                issues.append(Issue(document.file, location, message))
                continue
            on_server = (template.get("latest") or {}).get("channel")
            if on_server is not None and on_server != channel:
                message = f"template '{template_id}' (on the server) is for {on_server}, not {channel}"
                issues.append(Issue(document.file, location, message))
        for segment_id, location in referenced_segments(document):
            if ("segment", segment_id) in local or server("segment", segment_id) is not None:
                continue
            issues.append(Issue(document.file, location, f"no segment '{segment_id}' in this folder or on the server"))
        for offer_id, location in referenced_offers(document):
            if ("offer", offer_id) in local or server("offer", offer_id) is not None:
                continue
            issues.append(Issue(document.file, location, f"no offer '{offer_id}' in this folder or on the server"))
    return issues


def _plan_versioned(document: Document, model: type[BaseModel], current: dict[str, Any] | None) -> Step:
    if current is None:
        return Step(document, "create")
    changed = _differences(document.body, _normalised(model, current))
    if not changed:
        return Step(document, "unchanged", int(current["version"]))
    return Step(document, "update", int(current["version"]), changed=changed)


def _plan_journey(document: Document, current: dict[str, Any] | None) -> Step:
    """Like a rule, except that an existing journey keeps the `enabled` the API has: switching a
    journey on or off is the operator's, and the file's value is only where a new one starts."""
    if current is not None and isinstance(current.get("enabled"), bool):
        document = replace(document, body={**document.body, "enabled": current["enabled"]})
    return _plan_versioned(document, JourneyBody, current)


def _plan_template(document: Document, current: dict[str, Any] | None) -> Step:
    if current is None:
        return Step(document, "create", approve=document.approve)
    latest = current["latest"]
    version = int(latest["version"])
    changed = _differences(document.body, _normalised(TemplateBody, latest))
    if changed:
        return Step(document, "update", version, approve=document.approve, changed=changed)
    approved = current.get("approved")
    if document.approve and (approved is None or int(approved["version"]) != version):
        return Step(document, "approve", version)
    return Step(document, "unchanged", version)


def execute(steps: Iterable[Step], api: AdminApi, echo: Callable[[str], None] | None = None) -> list[str]:
    """Carry the steps out in order; returns (and echoes as it goes) a line per document.
    Stops at the first refusal (ApiError): later documents may depend on earlier ones."""
    done: list[str] = []
    for step in steps:
        document = step.document
        base = f"/v1/{FOLDERS[document.kind]}"
        version = step.version
        outcome = f"unchanged (v{version})" if version is not None else "unchanged"
        if step.action == "create" and document.kind == "offer":
            api.send("POST", base, {"id": document.id, **document.body})
            outcome = "created"
        elif step.action == "create":
            version = _version_of(api.send("POST", base, {"id": document.id, **document.body}))
            outcome = f"created v{version}"
        elif step.action == "update":
            version = _version_of(api.send("PUT", f"{base}/{document.id}", document.body, if_match=step.version))
            outcome = f"updated v{step.version} -> v{version} ({', '.join(step.changed)})"
        if step.action == "approve" or (step.approve and step.action in ("create", "update")):
            api.send("POST", f"{base}/{document.id}/approve", {"version": version})
            outcome = f"approved v{version}" if step.action == "approve" else f"{outcome}, approved"
        done.append(f"{document.kind:<8} {document.id:<36} {outcome}")
        if echo is not None:
            echo(done[-1])
    return done


def _version_of(answer: Mapping[str, Any]) -> int:
    """The version a POST or PUT made: templates answer {latest, approved}, segments {segment,
    refresh} (the backfill a dynamic segment starts), rules and journeys themselves."""
    if "latest" in answer:
        return int(answer["latest"]["version"])
    if "segment" in answer:
        return int(answer["segment"]["version"])
    return int(answer["version"])


def apply(
    source: str | Path | Traversable,
    url: str,
    key: str,
    *,
    dry_run: bool = False,
    api: AdminApi | None = None,
    echo: Callable[[str], None] | None = print,
) -> Report:
    """Check the documents under `source`, then create, update or approve what differs on the
    API at `url`. Raises LibraryInvalid (nothing sent) or ApiError (stopped at that request)."""
    documents = load_documents(source)
    client = api if api is not None else HttpAdminApi(url, key)
    report = Report(plan(documents, client), dry_run)
    if not dry_run:
        report.done = execute(report.steps, client, echo)
    else:
        report.done = [step.describe(dry_run=True) for step in report.steps]
        if echo is not None:
            for line in report.done:
                echo(line)
    if echo is not None:
        echo(report.summary())
    return report


# ------------------------------------------------------------------------------ the command
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m midstage.cli")
    commands = parser.add_subparsers(dest="command", required=True)
    key = commands.add_parser("create-api-key", help="create an admin API key and print its secret once")
    key.add_argument("--table", required=True, help="the stack's ConfigTableName output")
    key.add_argument("--name", required=True)
    key.add_argument("--role", required=True, choices=["viewer", "marketer", "data_operator", "admin"])
    source = commands.add_parser("create-source", help="create a tracking source and print its write key")
    source.add_argument("--table", required=True)
    source.add_argument("--name", required=True)
    rotating = commands.add_parser(
        "rotate-secret",
        help="give a signing secret (links, webhooks) a new current key; the old one keeps verifying a while",
    )
    rotating.add_argument("name", choices=sorted(SIGNING_SECRETS), help="the signing secret")
    rotating.add_argument("--table", required=True, help="the stack's ConfigTableName output")
    rotating.add_argument(
        "--keep-days",
        type=int,
        default=None,
        help="days the old key keeps verifying (0: refused at once, for a leak); default 400 for links, 1 for webhooks",
    )
    rotating.add_argument("--remove", metavar="KEY_ID", help="instead of rotating, remove this retired key")
    applying = commands.add_parser(
        "apply", help="create or update templates, segments, rules and journeys from YAML files"
    )
    applying.add_argument(
        "folder",
        help=f"a folder with any of {', '.join(f + '/' for f in FOLDERS.values())} or {LIBRARY!r} for the shipped ones",
    )
    applying.add_argument("--url", required=True, help="the API's base URL (the stack's ApiUrl output)")
    applying.add_argument(
        "--key",
        default=os.environ.get("MIDSTAGE_API_KEY"),
        help="an API key (marketer; data_operator to approve templates); default: $MIDSTAGE_API_KEY",
    )
    applying.add_argument("--dry-run", action="store_true", help="check and show what would change; send nothing")
    dead = commands.add_parser(
        "dead-letters", help="list the dead-letter queues, a queue's messages with their errors, or redrive them"
    )
    dead.add_argument("queue", nargs="?", help="a queue's name (ingest, delivery...); none: every queue's count")
    dead.add_argument("--url", required=True, help="the API's base URL (the stack's ApiUrl output)")
    dead.add_argument(
        "--key",
        default=os.environ.get("MIDSTAGE_API_KEY"),
        help="an API key (data_operator to list, admin to redrive); default: $MIDSTAGE_API_KEY",
    )
    dead.add_argument("--redrive", action="store_true", help="send the queue's messages back where they came from")
    dead.add_argument("--limit", type=int, default=None, help="messages to list (10) or redrive (100)")
    dead.add_argument("--id", action="append", dest="ids", help="redrive only this message (repeatable)")
    dead.add_argument("--json", action="store_true", help="print the API's answer as JSON")
    predict_command.add_commands(commands)
    audit_command.add_commands(commands)
    replay_command.add_commands(commands)
    pinpoint_command.add_commands(commands)
    pinpoint_convert_command.add_commands(commands)
    pinpoint_channels_command.add_commands(commands)
    pinpoint_history_command.add_commands(commands)
    args = parser.parse_args(argv)

    if args.command == "audit":
        return audit_command.run(args)
    if args.command == "predict":
        return predict_command.run(args)
    if args.command == "pinpoint-import":
        return pinpoint_command.run(args)
    if args.command == "pinpoint-convert":
        return pinpoint_convert_command.run(args)
    if args.command == "pinpoint-channels":
        return pinpoint_channels_command.run(args)
    if args.command == "pinpoint-history":
        return pinpoint_history_command.run(args)
    if args.command in ("replay", "report"):
        return replay_command.run(args)
    if args.command == "apply":
        return _apply_command(args)
    if args.command == "dead-letters":
        return _dead_letters_command(args)
    store = ConfigStore(args.table)
    if args.command == "rotate-secret":
        return _rotate_secret_command(args, store)
    if args.command == "create-api-key":
        api_key, secret = store.create_api_key(args.name, args.role, now=system_clock())
        print(json.dumps({**api_key.model_dump(exclude={"digest"}), "secret": secret}, indent=2))
    else:
        new = Source(name=args.name, write_key=new_write_key(), created_at=stamp(system_clock()))
        created = store.create_source(new)
        print(json.dumps(created.model_dump(), indent=2))
    return 0


def _rotate_secret_command(args: argparse.Namespace, store: ConfigStore) -> int:
    admin = SecretAdmin(store, clock=system_clock)
    try:
        if args.remove:
            ring = admin.remove_key(args.name, args.remove)
        else:
            ring = admin.rotate(args.name, SecretRotation(keepOldKeyDays=args.keep_days))
    except (MidstageError, ValidationError) as error:
        print(f"rotate-secret {args.name}: {getattr(error, 'message', error)}", file=sys.stderr)
        return 2
    print(json.dumps(ring, indent=2))
    return 0


def _apply_command(args: argparse.Namespace) -> int:
    if not args.key:
        print("apply needs --key (or MIDSTAGE_API_KEY)", file=sys.stderr)
        return 2
    try:
        apply(args.folder, args.url, args.key, dry_run=args.dry_run)
    except LibraryInvalid as error:
        for issue in error.issues:
            print(issue, file=sys.stderr)
        print(f"{len(error.issues)} problem(s); nothing was sent", file=sys.stderr)
        return 1
    except ApiError as error:
        print(f"stopped: {error}", file=sys.stderr)
        return 1
    except ValueError as error:
        print(str(error), file=sys.stderr)
        return 2
    return 0


def _dead_letters_command(args: argparse.Namespace) -> int:
    if not args.key:
        print("dead-letters needs --key (or MIDSTAGE_API_KEY)", file=sys.stderr)
        return 2
    if args.redrive and not args.queue:
        print("--redrive needs a queue's name", file=sys.stderr)
        return 2
    try:
        api = HttpAdminApi(args.url, args.key)
        if args.queue is None:
            answer = api.send("GET", "/v1/dead-letters", None)
        elif args.redrive:
            request: dict[str, Any] = {}
            if args.limit is not None:
                request["limit"] = args.limit
            if args.ids:
                request["messageIds"] = args.ids
            answer = api.send("POST", f"/v1/dead-letters/{urllib.parse.quote(args.queue)}/redrive", request)
        else:
            query = f"?limit={args.limit}" if args.limit is not None else ""
            answer = api.send("GET", f"/v1/dead-letters/{urllib.parse.quote(args.queue)}{query}", None)
    except ApiError as error:
        print(f"stopped: {error}", file=sys.stderr)
        return 1
    except ValueError as error:
        print(str(error), file=sys.stderr)
        return 2
    print(json.dumps(answer, indent=2) if args.json else describe_dead_letters(answer))
    return 0


def describe_dead_letters(answer: Mapping[str, Any]) -> str:
    """An answer of the dead-letter routes, for people."""
    if "queues" in answer:
        width = max((len(q["queue"]) for q in answer["queues"]), default=5)
        return "\n".join(
            f"{q['queue']:<{width}}  {q['messages']:>6}  ({q['kind']}; redrive: {q['redrive']})"
            for q in answer["queues"]
        )
    if "redriven" in answer:
        lines = [f"{answer['queue']}: {answer['redriven']} redriven, about {answer['approximateLeft']} left"]
        lines += [f"  skipped {s['id']}: {s['reason']}" for s in answer["skipped"]]
        return "\n".join(lines)
    lines = [f"{answer['queue']}: showing {len(answer['messages'])} of about {answer['approximateTotal']}"]
    for message in answer["messages"]:
        error = message.get("error") or {}
        why = f"{error.get('errorType') or '?'}: {error.get('errorMessage') or 'no error recorded'}"
        lines.append(f"  {message['id']}  sent {message['sentAt']}  received {message['receiveCount']}x  {why}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
