"""What is checked before a template runs: the constructs it may not use, its variables, and the
compile (cached by content) that every render goes through.
"""

from __future__ import annotations

import functools
import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from jinja2 import Template, TemplateSyntaxError, meta, nodes

from midstage.logic.templates.formatting import LOCALE_TAG, normalize_locale
from midstage.logic.templates.model import (
    ANY_OF_FIELDS,
    CACHE_SIZE,
    CHANNEL_FIELDS,
    MAX_FIELD_BYTES,
    MAX_LOCALES,
    MAX_LOOP_DEPTH,
    REQUIRED_FIELDS,
    ROOTS,
    Issue,
    RenderError,
)
from midstage.logic.templates.sandbox import ENVIRONMENTS, kind_of
from midstage.models.messaging import VariableSpec

OFFER_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
VARIABLE_PATH = re.compile(r"^[A-Za-z$][\w$-]*(\.[A-Za-z0-9$-][\w$-]*)*$")


def check_template(
    channel: str,
    locales: Mapping[str, Mapping[str, str]],
    variables: Mapping[str, VariableSpec],
    *,
    default_locale: str | None = None,
) -> list[Issue]:
    """Everything wrong with a template, for the admin API to refuse it with (empty = fine)."""
    fields = CHANNEL_FIELDS.get(channel)
    if fields is None:
        return [Issue("channel", f"unknown channel {channel!r}; one of {', '.join(CHANNEL_FIELDS)}")]
    issues: list[Issue] = []
    if not locales:
        issues.append(Issue("locales", "at least one locale is needed"))
    if len(locales) > MAX_LOCALES:
        issues.append(Issue("locales", f"{len(locales)} locales; at most {MAX_LOCALES}"))
    if default_locale is not None and default_locale not in locales:
        issues.append(Issue("default_locale", f"{default_locale!r} has no content in locales"))
    for tag, content in locales.items():
        where = f"locales.{tag}"
        if not isinstance(tag, str) or not LOCALE_TAG.match(tag):
            better = normalize_locale(tag) if isinstance(tag, str) else None
            hint = f" (write {better!r})" if better and better != tag else ""
            issues.append(Issue(where, f"not a locale tag like en, en-GB or pt-BR{hint}"))
        if not isinstance(content, Mapping):
            issues.append(Issue(where, "must map field names to template text"))
            continue
        for name in sorted(set(content) - set(fields), key=str):
            issues.append(Issue(f"{where}.{name}", f"not a field of {channel} templates ({', '.join(fields)})"))
        present = {f for f in fields if isinstance(content.get(f), str) and content[f].strip()}
        for name in REQUIRED_FIELDS[channel]:
            if name not in present:
                issues.append(Issue(f"{where}.{name}", "is required"))
        any_of = ANY_OF_FIELDS.get(channel, ())
        if any_of and not present & set(any_of):
            issues.append(Issue(where, f"needs at least one of {' or '.join(any_of)}"))
        for name in fields:
            source = content.get(name)
            if source is None:
                continue
            if not isinstance(source, str):
                issues.append(Issue(f"{where}.{name}", "must be text"))
                continue
            issues.extend(_check_source(kind_of(channel, name), source, f"{where}.{name}"))
    issues.extend(_check_variables(variables))
    return issues


# ------------------------------------------------------------------------------- static checks
_NOT_AVAILABLE: dict[type[nodes.Node], str] = {
    nodes.Extends: "{% extends %}",
    nodes.Include: "{% include %}",
    nodes.Import: "{% import %}",
    nodes.FromImport: "{% from ... import %}",
    nodes.Macro: "{% macro %}",
    nodes.CallBlock: "{% call %}",
    nodes.Block: "{% block %}",
}
# Filters that look attributes up by a name given as an argument.
_ATTRIBUTE_FILTERS = {"attr", "map", "selectattr", "rejectattr", "sort", "groupby", "sum", "unique", "min", "max"}
_PRIVATE = "names starting with _ are not accessible in templates"


def _refusals(tree: nodes.Template) -> list[tuple[int, str]]:
    """Constructs a template may not use, as (line, reason), in source order."""
    found: list[tuple[int, str]] = []

    def private(value: Any) -> bool:
        return isinstance(value, str) and any(part.startswith("_") for part in value.split("."))

    def walk(node: nodes.Node, depth: int) -> None:
        line = getattr(node, "lineno", 0) or 0
        for kind, label in _NOT_AVAILABLE.items():
            if isinstance(node, kind):
                found.append((line, f"{label} is not available: a message template stands alone"))
        if isinstance(node, nodes.Getattr):
            if node.attr.startswith("_"):
                found.append((line, _PRIVATE))
        elif isinstance(node, nodes.Getitem):
            if isinstance(node.arg, nodes.Const) and private(node.arg.value):
                found.append((line, _PRIVATE))
        elif isinstance(node, nodes.Filter) and node.name in _ATTRIBUTE_FILTERS:
            arguments = [*node.args, *(kw.value for kw in node.kwargs)]
            if any(isinstance(a, nodes.Const) and private(a.value) for a in arguments):
                found.append((line, _PRIVATE))
        elif isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name) and node.node.name == "offer":
            if _offer_named(node) is None:
                found.append((line, "offer() takes one offer id in quotes, like offer('vip-20')"))
        elif isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name) and node.node.name == "asset":
            if _offer_named(node) is None:
                found.append((line, "asset() takes one asset name in quotes, like asset('hero-banner')"))
        elif isinstance(node, nodes.Name) and node.name == "self":
            found.append((line, "`self` is not available"))
        if isinstance(node, nodes.For):
            if node.recursive:
                found.append((line, "recursive loops are not allowed"))
            if depth + 1 > MAX_LOOP_DEPTH:
                found.append((line, f"loops may be nested at most {MAX_LOOP_DEPTH} deep"))
            walk(node.target, depth)
            walk(node.iter, depth)
            for child in node.body:
                walk(child, depth + 1)
            if node.test is not None:
                walk(node.test, depth + 1)
            for child in node.else_:
                walk(child, depth)
            return
        for child in node.iter_child_nodes():
            walk(child, depth)

    walk(tree, 0)
    return sorted(found, key=lambda item: item[0])


def _offer_named(call: nodes.Call) -> str | None:
    """The offer id of an `offer('<id>')` call (or the name of an `asset('<name>')` call: both
    are ids of one pattern), or None when it is not one literal id."""
    if call.kwargs or call.dyn_args or call.dyn_kwargs or len(call.args) != 1:
        return None
    argument = call.args[0]
    if isinstance(argument, nodes.Const) and isinstance(argument.value, str) and OFFER_ID.match(argument.value):
        return argument.value
    return None


def assets_named(channel: str, locales: Mapping[str, Mapping[str, str]]) -> list[str]:
    """The assets a template names with `asset('<name>')` in any locale, in order, each once."""
    named: list[str] = []
    for content in locales.values():
        for name, source in content.items():
            if not isinstance(source, str) or "asset" not in source or name not in CHANNEL_FIELDS.get(channel, ()):
                continue
            found = _calls_in(kind_of(channel, name), source, "asset")
            named.extend(asset for asset in found if asset not in named)
    return named


def offers_named(channel: str, content: Mapping[str, str]) -> list[str]:
    """The offers one locale's content names with `offer('<id>')`, in order, each once: they are
    issued before it renders (a template that does not parse names none; its render fails)."""
    named: list[str] = []
    for name, source in content.items():
        if not isinstance(source, str) or "offer" not in source or name not in CHANNEL_FIELDS.get(channel, ()):
            continue
        named.extend(offer_id for offer_id in _offers_in(kind_of(channel, name), source) if offer_id not in named)
    return named


def _offers_in(kind: str, source: str) -> tuple[str, ...]:
    return _calls_in(kind, source, "offer")


@functools.lru_cache(maxsize=CACHE_SIZE)
def _calls_in(kind: str, source: str, function: str) -> tuple[str, ...]:
    """The ids one field names with `<function>('<id>')`, parsed once per content and container
    (every delivery of a template asks)."""
    try:
        tree = ENVIRONMENTS[kind].parse(source)
    except (TemplateSyntaxError, RecursionError):
        return ()
    calls = [c for c in tree.find_all(nodes.Call) if isinstance(c.node, nodes.Name) and c.node.name == function]
    return tuple(dict.fromkeys(named for call in calls if (named := _offer_named(call)) is not None))


def _guard_loops(tree: nodes.Template) -> None:
    for loop in tree.find_all(nodes.For):
        loop.iter = nodes.Filter(loop.iter, "ms_loop", [], [], None, None, lineno=loop.lineno)


class _LRU:
    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[tuple[str, bytes], Template] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, bytes]) -> Template | None:
        with self._lock:
            template = self._items.get(key)
            if template is not None:
                self._items.move_to_end(key)
            return template

    def put(self, key: tuple[str, bytes], template: Template) -> None:
        with self._lock:
            self._items[key] = template
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


COMPILED = _LRU(CACHE_SIZE)


def compile_template(kind: str, source: str) -> Template:
    """The compiled template for `source`, checked as at save time (cached by content hash)."""
    key = (kind, hashlib.sha256(source.encode()).digest())
    template = COMPILED.get(key)
    if template is not None:
        return template
    if len(source.encode()) > MAX_FIELD_BYTES:
        raise RenderError(f"a template field is limited to {MAX_FIELD_BYTES // 1024} KB")
    environment = ENVIRONMENTS[kind]
    try:
        tree = environment.parse(source)
        refused = _refusals(tree)
        if refused:
            line, reason = refused[0]
            raise RenderError(f"line {line}: {reason}", line=line)
        _guard_loops(tree)
        code = environment.compile(tree)
    except TemplateSyntaxError as error:
        raise RenderError(f"line {error.lineno}: {error.message}", line=error.lineno) from None
    except RecursionError:
        raise RenderError("the template is nested too deeply") from None
    template = environment.template_class.from_code(environment, code, environment.make_globals(None), None)
    COMPILED.put(key, template)
    return template


def _check_source(kind: str, source: str, where: str) -> list[Issue]:
    size = len(source.encode())
    if size > MAX_FIELD_BYTES:
        return [Issue(where, f"is {size} bytes; the limit is {MAX_FIELD_BYTES // 1024} KB")]
    environment = ENVIRONMENTS[kind]
    try:
        tree = environment.parse(source)
        refused = _refusals(tree)
        unknown = meta.find_undeclared_variables(tree) - set(ROOTS) - set(environment.globals)
    except TemplateSyntaxError as error:
        return [Issue(f"{where}:{error.lineno}", error.message or "syntax error", error.lineno)]
    except RecursionError:
        return [Issue(where, "is nested too deeply")]
    issues = [Issue(f"{where}:{line}", reason, line) for line, reason in refused]
    first_use: dict[str, int] = {}
    for use in tree.find_all(nodes.Name):
        first_use.setdefault(use.name, use.lineno)
    for name in sorted(unknown):
        line = first_use.get(name)
        message = f"unknown variable {name!r}: start with one of {', '.join(ROOTS)}"
        issues.append(Issue(f"{where}:{line}" if line else where, message, line))
    if not issues:
        try:
            compile_template(kind, source)  # unknown filters and tests only show when compiling
        except RenderError as error:
            issues.append(Issue(f"{where}:{error.line}" if error.line else where, error.message, error.line))
    return issues


def _check_variables(variables: Mapping[str, VariableSpec]) -> list[Issue]:
    issues = []
    for path in variables:
        where = f"variables.{path}"
        if not isinstance(path, str) or not VARIABLE_PATH.match(path):
            issues.append(Issue(where, "not a dotted variable path like person.first_name"))
        elif path.split(".")[0] not in ROOTS:
            issues.append(Issue(where, f"must start with one of {', '.join(r + '.' for r in ROOTS)}"))
        elif "." not in path:
            issues.append(Issue(where, f"name a value below {path}, like {path}.name"))
    return issues
