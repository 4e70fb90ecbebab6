"""Definition files read and checked locally, as `python -m midstage.cli apply` does before it
sends anything: `templates/`, `segments/`, `offers/`, `rules/` and `journeys/` (`*.yaml`) under a folder
("library": the examples shipped in midstage.library), one document with an `id` per file, each
checked as the admin API checks it and reported with its line; then checked across files (what
a document names must be there or on the API).

It needs PyYAML (`pip install pyyaml`), which the Lambda functions themselves do not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from midstage.errors import validation_issues
from midstage.logic import segments as segment_logic
from midstage.logic import templates
from midstage.logic.conditions import ConditionError
from midstage.logic.journeys import validate_journey
from midstage.logic.rules import compile_rule
from midstage.models.journeys import IssueOfferStep, JourneyBody, SendStep
from midstage.models.messaging import IssueOfferAction, Rule, RuleBody, SendAction, TemplateBody
from midstage.models.offers import OfferBody, OfferCreate
from midstage.models.requests import JourneyCreate, RuleCreate, SegmentCreate, TemplateCreate
from midstage.models.segments import Segment, SegmentBody
from midstage.services.admin.templates import template_issue

try:
    import yaml
except ImportError:  # an operator's dependency (the dev extra has it); the functions do not need it
    yaml = None  # type: ignore[assignment]

LIBRARY = "library"  # `apply library`: the documents shipped in the midstage.library package
Kind = Literal["template", "segment", "offer", "rule", "journey"]
# In the order they are applied: rules and journeys name templates, segments and offers.
FOLDERS: dict[Kind, str] = {
    "template": "templates",
    "segment": "segments",
    "offer": "offers",
    "rule": "rules",
    "journey": "journeys",
}
SUFFIXES = (".yaml", ".yml")
MAX_FILE_BYTES = 256 * 1024  # the admin API's body limit


# ------------------------------------------------------------------------------ documents
@dataclass(frozen=True)
class Issue:
    """A problem with one file, at a line of it and a JSON pointer into its document."""

    file: str
    location: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.location}: {self.message}" if self.location else f"{where}: {self.message}"


class LibraryInvalid(Exception):
    """Some files are not valid documents; nothing was sent."""

    def __init__(self, issues: Sequence[Issue]) -> None:
        self.issues = list(issues)
        super().__init__(f"{len(self.issues)} problem(s):\n" + "\n".join(f"  {i}" for i in self.issues))


@dataclass(frozen=True)
class Document:
    """One document as its file defines it; `body` is the normalised RuleBody, TemplateBody,
    SegmentBody or JourneyBody (defaults filled in, as the API returns it), without the id."""

    kind: Kind
    id: str
    file: str
    body: dict[str, Any]
    approve: bool = False


def library_root() -> Traversable:
    """The folder of the documents shipped with the package (one subfolder per kind)."""
    return files("midstage.library")


def load_documents(source: str | Path | Traversable) -> list[Document]:
    """Every document under `source` ("library", a folder path, or a Traversable), checked
    locally; raises LibraryInvalid listing every problem found in every file."""
    root = _root(source)
    documents: list[Document] = []
    issues: list[Issue] = []
    for kind, folder in FOLDERS.items():
        directory = root.joinpath(folder)
        if not directory.is_dir():
            continue
        for entry in sorted(directory.iterdir(), key=lambda e: e.name):
            if not entry.name.endswith(SUFFIXES) or not entry.is_file():
                continue
            name = f"{folder}/{entry.name}"
            try:
                text = entry.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                issues.append(Issue(name, "", "not UTF-8 text"))
                continue
            document, problems = read_document(kind, name, text)
            issues.extend(problems)
            if document is not None:
                documents.append(document)
    issues.extend(cross_check(documents))
    if issues:
        raise LibraryInvalid(issues)
    return documents


def _root(source: str | Path | Traversable) -> Traversable:
    if isinstance(source, str):
        if source == LIBRARY:
            return library_root()
        source = Path(source)
    if not any(source.joinpath(folder).is_dir() for folder in FOLDERS.values()):
        folders = ", ".join(f"{folder}/" for folder in FOLDERS.values())
        raise LibraryInvalid([Issue(str(source), "", f"has none of the folders {folders}")])
    return source


def read_document(kind: Kind, name: str, text: str) -> tuple[Document | None, list[Issue]]:
    """One file's document, or the problems that keep it from being one (with line numbers)."""
    _need_yaml()
    if len(text.encode()) > MAX_FILE_BYTES:
        return None, [Issue(name, "", f"the file is over {MAX_FILE_BYTES // 1024} KB, the admin API's limit")]
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or str(error)
        return None, [Issue(name, "", f"not valid YAML: {problem}", mark.line + 1 if mark else None)]
    if not isinstance(data, dict) or node is None:
        return None, [Issue(name, "", f"must hold one {kind} as a YAML mapping, with an `id`", 1)]
    misread = _boolean_keys(node)
    if misread:
        return None, [Issue(name, "", message, line) for line, message in misread]

    def issue(location: str, message: str, field_line: int | None = None) -> Issue:
        return Issue(name, location, message, line_of(node, location, field_line))

    readers = {
        "rule": _rule_document,
        "template": _template_document,
        "segment": _segment_document,
        "offer": _offer_document,
        "journey": _journey_document,
    }
    return readers[kind](name, data, issue)


def _boolean_keys(root: yaml.Node) -> list[tuple[int, str]]:
    """Keys YAML reads as booleans: a condition step's `yes:` and `no:` unquoted are true and
    false to YAML 1.1, and the step would only be reported as missing both."""
    found: list[tuple[int, str]] = []
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag == "tag:yaml.org,2002:bool" and not key.style:
                    message = f'YAML reads the key {key.value} as a boolean; quote it: "{key.value}":'
                    found.append((key.start_mark.line + 1, message))
                stack.append(value)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return sorted(found)


def _rule_document(name: str, data: dict[str, Any], issue: Callable[..., Issue]) -> tuple[Document | None, list[Issue]]:
    try:
        created = RuleCreate.model_validate(data)
    except ValidationError as error:
        return None, [issue(i["location"], i["message"]) for i in validation_issues(error, data)]
    body = RuleBody.model_validate(created.model_dump(exclude={"id"}))
    try:
        compile_rule(Rule(**body.model_dump(), id=created.id))
    except ConditionError as error:
        return None, [issue(i.location, i.message) for i in error.issues]
    return Document("rule", created.id, name, dump(body)), []


def _template_document(
    name: str, data: dict[str, Any], issue: Callable[..., Issue]
) -> tuple[Document | None, list[Issue]]:
    approve = data.pop("approve", False)
    problems = [] if isinstance(approve, bool) else [issue("/approve", "must be true or false")]
    try:
        created = TemplateCreate.model_validate(data)
    except ValidationError as error:
        return None, problems + [issue(i["location"], i["message"]) for i in validation_issues(error, data)]
    body = TemplateBody.model_validate(created.model_dump(exclude={"id"}))
    found = templates.check_template(body.channel, body.locales, body.variables, default_locale=body.default_locale)
    for shown in map(template_issue, found):
        problems.append(issue(shown["location"], shown["message"], shown.get("line")))
    if problems:
        return None, problems
    return Document("template", created.id, name, dump(body), approve=approve is True), []


def _segment_document(
    name: str, data: dict[str, Any], issue: Callable[..., Issue]
) -> tuple[Document | None, list[Issue]]:
    try:
        created = SegmentCreate.model_validate(data)
    except ValidationError as error:
        return None, [issue(i["location"], i["message"]) for i in validation_issues(error, data)]
    body = SegmentBody.model_validate(created.model_dump(exclude={"id"}))
    # Whether the segments it names exist is a question for the folder (cross_check) and the API
    # (plan): here each is taken as known, so a file is judged on its own.
    named = {s: _opaque(s) for s in segment_logic.referenced_segments(body.condition) if s != created.id}
    problems = segment_logic.validate_segment(created.id, body, named)
    if problems:
        return None, [issue(i.location, i.message) for i in problems]
    return Document("segment", created.id, name, dump(body)), []


def _offer_document(
    name: str, data: dict[str, Any], issue: Callable[..., Issue]
) -> tuple[Document | None, list[Issue]]:
    try:
        created = OfferCreate.model_validate(data)
    except ValidationError as error:
        return None, [issue(i["location"], i["message"]) for i in validation_issues(error, data)]
    return Document("offer", created.id, name, dump(OfferBody.model_validate(created.model_dump(exclude={"id"})))), []


def _opaque(segment_id: str) -> Segment:
    """A stand-in for a segment known only by its id: static, so it depends on nothing."""
    return Segment(id=segment_id, name=segment_id, kind="static")


def _journey_document(
    name: str, data: dict[str, Any], issue: Callable[..., Issue]
) -> tuple[Document | None, list[Issue]]:
    try:
        created = JourneyCreate.model_validate(data)
    except ValidationError as error:
        return None, [issue(i["location"], i["message"]) for i in validation_issues(error, data)]
    body = JourneyBody.model_validate(created.model_dump(exclude={"id"}))
    problems = validate_journey(body)
    if problems:
        return None, [issue(i.location, i.message) for i in problems]
    return Document("journey", created.id, name, dump(body)), []


def dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")


def line_of(root: yaml.Node, pointer: str, field_line: int | None = None) -> int | None:
    """The 1-based line in the file of what a JSON pointer names (or of its closest existing
    parent); `field_line` is a line inside a template field, counted from the field's first."""
    node = root
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]] if pointer else []
    for part in parts:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            child = node.value[int(part)]
        if child is None:
            break
        node = child
    line: int = node.start_mark.line + 1
    if field_line is not None and isinstance(node, yaml.ScalarNode):
        # A block scalar's text starts on the line after its `|` or `>`.
        return line + field_line if node.style in ("|", ">") else line + field_line - 1
    return line


def referenced_templates(document: Document) -> list[tuple[str, str, str]]:
    """(channel, template id, JSON pointer) for every template a rule's send actions or a
    journey's send steps name (none for templates and segments)."""
    sends: list[tuple[str, SendAction]] = []
    if document.kind == "rule":
        rule = RuleBody.model_validate(document.body)
        sends = [(f"/actions/{i}", a) for i, a in enumerate(rule.actions) if isinstance(a, SendAction)]
    elif document.kind == "journey":
        journey = JourneyBody.model_validate(document.body)
        sends = [(f"/steps/{s}", step) for s, step in journey.steps.items() if isinstance(step, SendStep)]
    found: list[tuple[str, str, str]] = []
    for where, action in sends:
        for channel in action.channels:
            if isinstance(action.template, str):
                found.append((channel, action.template, f"{where}/template"))
            else:
                found.append((channel, action.template[channel], f"{where}/template/{channel}"))
    return found


def referenced_offers(document: Document) -> list[tuple[str, str]]:
    """(offer id, JSON pointer) for every offer a rule's issue_offer actions, a journey's
    issue_offer steps or a template's `offer('<id>')` name."""
    if document.kind == "template":
        template = TemplateBody.model_validate(document.body)
        return [
            (offer_id, f"/locales/{locale}/{field}")
            for locale, content in template.locales.items()
            for field in content
            for offer_id in templates.offers_named(template.channel, {field: content[field]})
        ]
    if document.kind == "rule":
        rule = RuleBody.model_validate(document.body)
        return [(a.offer, f"/actions/{i}/offer") for i, a in enumerate(rule.actions) if isinstance(a, IssueOfferAction)]
    if document.kind == "journey":
        journey = JourneyBody.model_validate(document.body)
        return [(s.offer, f"/steps/{i}/offer") for i, s in journey.steps.items() if isinstance(s, IssueOfferStep)]
    return []


def referenced_segments(document: Document) -> list[tuple[str, str]]:
    """(segment id, JSON pointer) for every segment a document names: a trigger's or entry's
    segment, and `segments` tested in any of its conditions (a segment's own id included)."""
    body = document.body
    found: list[tuple[str, str]] = []
    if document.kind == "segment":
        found += _segments_in(body.get("condition"), "/condition")
    elif document.kind == "rule":
        trigger = body["trigger"]
        if trigger.get("segment"):
            found.append((trigger["segment"], "/trigger/segment"))
        found += _segments_in(trigger.get("where"), "/trigger/where")
        found += _segments_in(body.get("conditions"), "/conditions")
    elif document.kind == "journey":
        entry = body["entry"]
        if entry["type"] == "segment_entered":
            found.append((entry["segment"], "/entry/segment"))
        found += _segments_in(entry.get("where"), "/entry/where")
        found += _segments_in(body.get("entry_conditions"), "/entry_conditions")
        for step_id, step in body["steps"].items():
            found += _segments_in(step.get("condition"), f"/steps/{step_id}/condition")
            found += _segments_in((step.get("until_event") or {}).get("where"), f"/steps/{step_id}/until_event/where")
        for index, goal in enumerate(body.get("exit_when") or []):
            found += _segments_in(goal.get("where"), f"/exit_when/{index}/where")
    return found


def _segments_in(spec: Any, location: str) -> Iterator[tuple[str, str]]:
    """The segments a condition tests membership of, each at its comparison's pointer."""
    return segment_logic.segment_references(spec, location)


def cross_check(documents: Sequence[Document]) -> list[Issue]:
    """Problems between files: an id used twice, a rule or journey sending a template on another
    channel, segments that depend on each other in a cycle."""
    issues: list[Issue] = []
    seen: dict[tuple[str, str], str] = {}
    for document in documents:
        key = (document.kind, document.id)
        if key in seen:
            issues.append(Issue(document.file, "/id", f"{document.kind} '{document.id}' is also in {seen[key]}", 1))
        seen.setdefault(key, document.file)
    channels = {d.id: d.body["channel"] for d in documents if d.kind == "template"}
    for document in documents:
        for channel, template_id, location in referenced_templates(document):
            if template_id in channels and channels[template_id] != channel:
                message = f"template '{template_id}' is for {channels[template_id]}, not {channel}"
                issues.append(Issue(document.file, location, message))
    local = {d.id: Segment(id=d.id, **d.body) for d in documents if d.kind == "segment"}
    for document in documents:
        if document.kind != "segment":
            continue
        # Each file passed on its own; with the folder's segments in place, only a cycle is left to find.
        others = {s: local.get(s) or _opaque(s) for s, _ in referenced_segments(document)} | local
        body = SegmentBody.model_validate(document.body)
        problems = segment_logic.validate_segment(document.id, body, others)
        issues.extend(Issue(document.file, i.location, i.message) for i in problems)
    return issues


def _need_yaml() -> None:
    if yaml is None:
        raise SystemExit("apply reads YAML files: install PyYAML (pip install pyyaml)")
