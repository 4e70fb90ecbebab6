"""Amazon EventBridge event-pattern matching for the local cloud.

The semantics follow the EventBridge user guide ("Event patterns", "Content filtering in
Amazon EventBridge event patterns", "Comparison operators", "Matching events on null values
and empty strings", "Arrays in event patterns") and, where the guide is silent, the matcher
AWS open-sourced as the engine behind EventBridge rules (github.com/aws/event-ruler):

* A pattern is an object whose fields nest like the event's. A leaf is a non-empty array of
  alternatives (OR); every field named by the pattern must match (AND); event fields the
  pattern does not name are ignored.
* Exact values compare by JSON type: the string "1" never matches the number 1, numbers compare
  numerically (5 matches 5.0), ``null`` matches a JSON null but not an absent field, and ``""``
  does not match ``null``.
* An array in the event matches when any of its elements matches. Objects inside arrays are
  matched element by element, so two fields of one pattern object must be found in the same
  array element (event-ruler's "array-consistent" matching).
* Only leaf values (strings, numbers, booleans, null) are matchable: ``exists: true`` does not
  match a field whose value is an object or an empty array, and ``exists: false`` does.
* ``anything-but`` needs a present leaf value: it never matches an absent field. A value of
  another JSON type than the excluded ones counts as "anything but" them (the number 5 matches
  ``{"anything-but": "x"}``, and ``{"anything-but": {"prefix": "x"}}``).
* ``numeric`` and ``cidr`` only match JSON numbers and strings holding an IP address.

Not modelled: event-ruler compares numbers at six decimal places and bounds them to a fixed
range; here numbers compare exactly and any size is accepted.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import operator
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

__all__ = ["EventMatcher", "InvalidEventPattern", "compile_pattern", "matches", "validate_pattern"]

EventMatcher = Callable[[Mapping[str, Any]], bool]

# Matches one node of the event: an object, an array, a leaf value or _MISSING.
_NodeMatcher = Callable[[Any], bool]
# Matches the leaf values found at one field (empty when the field has none).
_LeavesMatcher = Callable[[list[Any]], bool]
_ValueTest = Callable[[Any], bool]

_MISSING: Final = object()
_OR_KEY: Final = "$or"
_IGNORE_CASE: Final = "equals-ignore-case"
_PLAIN_KEY: Final = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]*")


class InvalidEventPattern(ValueError):
    """A pattern EventBridge would refuse; ``path`` is the JSON path of the offending part."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


def validate_pattern(pattern: Mapping[str, Any]) -> None:
    """Raise InvalidEventPattern if EventBridge would reject ``pattern``."""
    compile_pattern(pattern)


def compile_pattern(pattern: Mapping[str, Any]) -> EventMatcher:
    """Validate ``pattern`` once and return a function that matches events against it."""
    if not isinstance(pattern, Mapping):
        raise InvalidEventPattern("$", f"an event pattern must be a JSON object, got {_json_type(pattern)}")
    return _compile_object(pattern, "$", inside_or=False)


def matches(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """Whether ``event`` matches ``pattern``; raises InvalidEventPattern for an invalid pattern."""
    return _compiled(json.dumps(pattern, sort_keys=True))(event)


@functools.lru_cache(maxsize=512)
def _compiled(pattern_json: str) -> EventMatcher:
    # Rules are matched against every event on a bus, so each distinct pattern is compiled once.
    return compile_pattern(json.loads(pattern_json))


def _compile_object(pattern: Mapping[str, Any], path: str, *, inside_or: bool) -> _NodeMatcher:
    if not pattern:
        raise InvalidEventPattern(path, "empty objects are not allowed")
    fields: list[tuple[str, _NodeMatcher]] = []
    or_groups: list[list[_NodeMatcher]] = []
    for key, value in pattern.items():
        child_path = _child_path(path, key)
        if key == _OR_KEY:
            or_groups.append(_compile_or(value, child_path))
            continue
        if inside_or and key in _OPERATORS:
            # event-ruler reserves operator names there, so "$or": [{"prefix": ...}] is an error
            # rather than a silently different pattern.
            raise InvalidEventPattern(
                child_path, f"{key!r} is an operator name and cannot be used as a field name inside $or"
            )
        if isinstance(value, Mapping):
            fields.append((key, _compile_object(value, child_path, inside_or=inside_or)))
        elif isinstance(value, list):
            fields.append((key, _compile_leaf(value, child_path)))
        else:
            raise InvalidEventPattern(
                child_path,
                f"must be an object of nested fields or a non-empty array of match values, got {_json_type(value)}",
            )

    def matches_one(node: Any) -> bool:
        children = node if isinstance(node, Mapping) else {}
        return all(field(children.get(key, _MISSING)) for key, field in fields) and all(
            any(branch(node) for branch in group) for group in or_groups
        )

    def matches_node(node: Any) -> bool:
        if isinstance(node, list):
            elements = list(_array_elements(node))
            # An empty array holds none of the pattern's fields, which exists:false may still want.
            return any(matches_one(element) for element in elements) if elements else matches_one(_MISSING)
        return matches_one(node)

    return matches_node


def _compile_or(branches: Any, path: str) -> list[_NodeMatcher]:
    if not isinstance(branches, list):
        raise InvalidEventPattern(path, f"must be an array of at least 2 objects, got {_json_type(branches)}")
    if len(branches) < 2:
        raise InvalidEventPattern(path, f"must be an array of at least 2 objects, got {len(branches)}")
    compiled: list[_NodeMatcher] = []
    for index, branch in enumerate(branches):
        branch_path = f"{path}[{index}]"
        if not isinstance(branch, Mapping):
            raise InvalidEventPattern(branch_path, f"each $or alternative must be an object, got {_json_type(branch)}")
        compiled.append(_compile_object(branch, branch_path, inside_or=True))
    return compiled


def _compile_leaf(alternatives: list[Any], path: str) -> _NodeMatcher:
    if not alternatives:
        raise InvalidEventPattern(path, "empty arrays are not allowed; list at least one value to match")
    tests = [_compile_alternative(value, f"{path}[{index}]") for index, value in enumerate(alternatives)]

    def matches_leaf(node: Any) -> bool:
        leaves = _leaf_values(node)
        return any(test(leaves) for test in tests)

    return matches_leaf


def _compile_alternative(value: Any, path: str) -> _LeavesMatcher:
    if isinstance(value, Mapping):
        return _compile_operator(value, path)
    if value is None or isinstance(value, str | bool) or _is_number(value):
        return _any_leaf(_equals(value))
    raise InvalidEventPattern(
        path,
        f"a match value must be a string, number, boolean, null or operator object, got {_json_type(value)}",
    )


def _compile_operator(expression: Mapping[str, Any], path: str) -> _LeavesMatcher:
    if len(expression) != 1:
        keys = ", ".join(sorted(map(str, expression))) or "none"
        raise InvalidEventPattern(path, f"an operator object must have exactly one key, got {len(expression)} ({keys})")
    ((name, argument),) = expression.items()
    compile_argument = _OPERATORS.get(name)
    if compile_argument is None:
        raise InvalidEventPattern(path, f"unknown operator {name!r}; expected one of {', '.join(sorted(_OPERATORS))}")
    return compile_argument(argument, f"{path}.{name}")


def _compile_exists(argument: Any, path: str) -> _LeavesMatcher:
    if not isinstance(argument, bool):
        raise InvalidEventPattern(path, f"must be true or false, got {_json_type(argument)}")
    return lambda leaves: bool(leaves) is argument


def _compile_prefix(argument: Any, path: str) -> _LeavesMatcher:
    prefix, ignore_case = _affix_argument(argument, path)
    if ignore_case:
        folded = prefix.lower()
        return _any_leaf(lambda value: isinstance(value, str) and value.lower().startswith(folded))
    return _any_leaf(lambda value: isinstance(value, str) and value.startswith(prefix))


def _compile_suffix(argument: Any, path: str) -> _LeavesMatcher:
    suffix, ignore_case = _affix_argument(argument, path)
    if ignore_case:
        folded = suffix.lower()
        return _any_leaf(lambda value: isinstance(value, str) and value.lower().endswith(folded))
    return _any_leaf(lambda value: isinstance(value, str) and value.endswith(suffix))


def _affix_argument(argument: Any, path: str) -> tuple[str, bool]:
    if isinstance(argument, str):
        return argument, False
    if isinstance(argument, Mapping) and set(argument) == {_IGNORE_CASE}:
        return _string_argument(argument[_IGNORE_CASE], f"{path}.{_IGNORE_CASE}"), True
    raise InvalidEventPattern(path, f'must be a string or {{"{_IGNORE_CASE}": <string>}}, got {_json_type(argument)}')


def _compile_equals_ignore_case(argument: Any, path: str) -> _LeavesMatcher:
    expected = _string_argument(argument, path).lower()
    return _any_leaf(lambda value: isinstance(value, str) and value.lower() == expected)


def _compile_wildcard(argument: Any, path: str) -> _LeavesMatcher:
    regex = _wildcard_regex(_string_argument(argument, path), path)
    return _any_leaf(lambda value: isinstance(value, str) and regex.fullmatch(value) is not None)


def _wildcard_regex(wildcard: str, path: str) -> re.Pattern[str]:
    # Backslash escapes "*" and itself only, as in event-ruler; "**" is rejected because it
    # means nothing more than "*".
    parts: list[str] = []
    index = 0
    while index < len(wildcard):
        char = wildcard[index]
        if char == "\\":
            escaped = wildcard[index + 1 : index + 2]
            if escaped not in ("*", "\\"):
                raise InvalidEventPattern(
                    path,
                    f"invalid escape at position {index} in {wildcard!r}: only \\* and \\\\ may be escaped",
                )
            parts.append(re.escape(escaped))
            index += 2
            continue
        if char == "*":
            if wildcard[index + 1 : index + 2] == "*":
                raise InvalidEventPattern(path, f"consecutive wildcard characters at position {index} in {wildcard!r}")
            parts.append(".*")
        else:
            parts.append(re.escape(char))
        index += 1
    return re.compile("".join(parts), re.DOTALL)


def _compile_cidr(argument: Any, path: str) -> _LeavesMatcher:
    block = _string_argument(argument, path)
    try:
        network = ipaddress.ip_network(block, strict=False)
    except ValueError:
        raise InvalidEventPattern(path, f"{block!r} is not a valid IPv4 or IPv6 CIDR block") from None

    def in_network(value: Any) -> bool:
        if not isinstance(value, str):
            return False
        try:
            return ipaddress.ip_address(value) in network
        except ValueError:
            return False

    return _any_leaf(in_network)


_LOWER_BOUNDS: Final[dict[str, Callable[[Any, Any], bool]]] = {">": operator.gt, ">=": operator.ge}
_UPPER_BOUNDS: Final[dict[str, Callable[[Any, Any], bool]]] = {"<": operator.lt, "<=": operator.le}
_COMPARISONS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "=": operator.eq,
    **_LOWER_BOUNDS,
    **_UPPER_BOUNDS,
}


def _compile_numeric(argument: Any, path: str) -> _LeavesMatcher:
    if not isinstance(argument, list):
        raise InvalidEventPattern(path, f'must be an array such as [">", 0, "<=", 5], got {_json_type(argument)}')
    if len(argument) not in (2, 4):
        raise InvalidEventPattern(
            path,
            f"must hold one comparison or a lower and an upper bound (2 or 4 elements), got {len(argument)}",
        )
    checks: list[tuple[str, Any]] = []
    for index in range(0, len(argument), 2):
        symbol, bound = argument[index], argument[index + 1]
        if not isinstance(symbol, str) or symbol not in _COMPARISONS:
            raise InvalidEventPattern(
                f"{path}[{index}]",
                f"unknown comparison {symbol!r}; expected one of {', '.join(_COMPARISONS)}",
            )
        if not _is_number(bound):
            raise InvalidEventPattern(
                f"{path}[{index + 1}]",
                f"the value after {symbol!r} must be a number, got {_json_type(bound)}",
            )
        checks.append((symbol, bound))
    if len(checks) == 2:
        (lower_symbol, lower), (upper_symbol, upper) = checks
        if lower_symbol not in _LOWER_BOUNDS or upper_symbol not in _UPPER_BOUNDS:
            raise InvalidEventPattern(
                path,
                "a range must be a lower bound ('>' or '>=') followed by an upper bound ('<' or '<='), "
                f"got {lower_symbol!r} then {upper_symbol!r}",
            )
        if lower >= upper:
            raise InvalidEventPattern(path, f"the lower bound {lower} must be less than the upper bound {upper}")
    comparisons = [(_COMPARISONS[symbol], bound) for symbol, bound in checks]
    return _any_leaf(lambda value: _is_number(value) and all(compare(value, bound) for compare, bound in comparisons))


def _compile_anything_but(argument: Any, path: str) -> _LeavesMatcher:
    if isinstance(argument, Mapping):
        return _compile_anything_but_operator(argument, path)
    excluded = argument if isinstance(argument, list) else [argument]
    if not excluded:
        raise InvalidEventPattern(path, "empty arrays are not allowed")
    if all(isinstance(value, str) for value in excluded):
        excluded_strings = frozenset(excluded)
        return _any_leaf(lambda value: not (isinstance(value, str) and value in excluded_strings))
    if all(_is_number(value) for value in excluded):
        excluded_numbers = frozenset(excluded)
        return _any_leaf(lambda value: not (_is_number(value) and value in excluded_numbers))
    raise InvalidEventPattern(
        path,
        "must be a string, a number, a non-empty array of only strings or only numbers, or an object "
        f"with one of equals-ignore-case, prefix, suffix, wildcard; got {_describe_anything_but(argument)}",
    )


def _describe_anything_but(argument: Any) -> str:
    if isinstance(argument, list):
        return "an array of " + " and ".join(sorted({_json_type(value) for value in argument}))
    return _json_type(argument)


def _compile_anything_but_operator(expression: Mapping[str, Any], path: str) -> _LeavesMatcher:
    if len(expression) != 1:
        raise InvalidEventPattern(path, f"must have exactly one key, got {len(expression)}")
    ((name, argument),) = expression.items()
    inner_path = f"{path}.{name}"
    if name in ("prefix", "suffix"):
        # The guide documents a single affix only, not a list, and event-ruler refuses "".
        affix = _string_argument(argument, inner_path)
        if not affix:
            raise InvalidEventPattern(inner_path, "must not be empty")
        has_affix = str.startswith if name == "prefix" else str.endswith
        return _any_leaf(lambda value: not (isinstance(value, str) and has_affix(value, affix)))
    if name == _IGNORE_CASE:
        excluded = frozenset(text.lower() for text in _strings_argument(argument, inner_path))
        return _any_leaf(lambda value: not (isinstance(value, str) and value.lower() in excluded))
    if name == "wildcard":
        regexes = [_wildcard_regex(text, inner_path) for text in _strings_argument(argument, inner_path)]
        return _any_leaf(
            lambda value: not (isinstance(value, str) and any(regex.fullmatch(value) for regex in regexes))
        )
    raise InvalidEventPattern(
        inner_path, f"anything-but supports equals-ignore-case, prefix, suffix or wildcard, not {name!r}"
    )


_OPERATORS: Final[dict[str, Callable[[Any, str], _LeavesMatcher]]] = {
    "anything-but": _compile_anything_but,
    "cidr": _compile_cidr,
    _IGNORE_CASE: _compile_equals_ignore_case,
    "exists": _compile_exists,
    "numeric": _compile_numeric,
    "prefix": _compile_prefix,
    "suffix": _compile_suffix,
    "wildcard": _compile_wildcard,
}


def _string_argument(argument: Any, path: str) -> str:
    if not isinstance(argument, str):
        raise InvalidEventPattern(path, f"must be a string, got {_json_type(argument)}")
    return argument


def _strings_argument(argument: Any, path: str) -> list[str]:
    if isinstance(argument, str):
        return [argument]
    if isinstance(argument, list) and argument and all(isinstance(text, str) for text in argument):
        return argument
    raise InvalidEventPattern(path, f"must be a string or a non-empty array of strings, got {_json_type(argument)}")


def _equals(expected: Any) -> _ValueTest:
    if expected is None:
        return lambda value: value is None
    if isinstance(expected, bool):
        return lambda value: isinstance(value, bool) and value == expected
    if isinstance(expected, str):
        return lambda value: isinstance(value, str) and value == expected
    return lambda value: _is_number(value) and value == expected


def _any_leaf(test: _ValueTest) -> _LeavesMatcher:
    return lambda leaves: any(test(value) for value in leaves)


def _leaf_values(node: Any) -> list[Any]:
    if isinstance(node, list):
        return [leaf for element in node for leaf in _leaf_values(element)]
    if node is _MISSING or isinstance(node, Mapping):
        return []
    return [node]


def _array_elements(array: list[Any]) -> Iterator[Any]:
    for element in array:
        if isinstance(element, list):
            yield from _array_elements(element)
        else:
            yield element


def _is_number(value: Any) -> bool:
    # bool is an int in Python but a distinct type in JSON.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if _is_number(value):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


def _child_path(path: str, key: str) -> str:
    return f"{path}.{key}" if _PLAIN_KEY.fullmatch(key) else f"{path}[{json.dumps(key)}]"
