"""Resource guards: every value a template builds is bounded before it can grow past the caps.

The state of the field being rendered (its locale, zone, loop budget and deadline) travels in a
context variable, because Jinja calls filters and operators without a way to pass it along.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import tzinfo
from functools import wraps
from itertools import islice
from string import Formatter
from typing import Any

from jinja2 import pass_context
from jinja2.filters import FILTERS
from jinja2.runtime import Context, Undefined
from jinja2.utils import Namespace

from midstage.logic.templates.model import (
    MAX_INT_BITS,
    MAX_LOOP_ITERATIONS,
    MAX_OUTPUT_BYTES,
    MAX_RANGE,
    MAX_VALUE_SIZE,
    RenderError,
)

_MAX_JSON_INDENT = 8


# ------------------------------------------------------------------------------- rendering state
@dataclass
class RenderState:
    """One field being rendered: read by filters and guards through `RENDER_STATE`."""

    locale: str
    tz: tzinfo
    preview: bool
    missing: list[str]
    # Seconds on a monotonic timer the render is given (`timer`), not a time of day: the budget
    # is a watchdog, and a test drives it with a timer of its own.
    timer: Callable[[], float]
    seconds: float
    iterations_left: int = MAX_LOOP_ITERATIONS
    deadline: float = 0.0
    # `offer('<id>')`'s answers: the person's code of each offer the field names, None if refused.
    offers: Mapping[str, str | None] = field(default_factory=dict)
    # `asset('<name>')`'s answers: the URL of each published asset the template names.
    assets: Mapping[str, str] = field(default_factory=dict)
    # `recommendations(n)`'s answers: the person's next products, best first.
    recommendations: Sequence[str] = ()

    def start(self) -> None:
        self.deadline = self.timer() + self.seconds

    def tick(self) -> None:
        if self.timer() > self.deadline:
            raise RenderError(f"rendering took longer than {self.seconds:g} s")


def offer_code(offer_id: Any) -> str:
    """`offer('vip-20')` in a template: the person's code of that offer, issued before rendering
    (services/offers.py), or "" when none could be given (so `{% if offer('vip-20') %}` can
    branch). A preview shows a placeholder, since nothing is issued for it."""
    state = current_state()
    if not isinstance(offer_id, str):
        raise RenderError("offer() takes an offer id in quotes, like offer('vip-20')")
    if offer_id in state.offers:
        return state.offers[offer_id] or ""
    if state.preview:
        return f"[{offer_id} code]"
    raise RenderError(f"offer({offer_id!r}): no code was issued for this message")


def asset_url(name: Any) -> str:
    """`asset('hero-banner')` in a template: where the asset's published version is served. The
    URL is resolved when the template version is saved or approved (an asset not published is
    refused then), so rendering reads no store."""
    state = current_state()
    if not isinstance(name, str):
        raise RenderError("asset() takes an asset name in quotes, like asset('hero-banner')")
    if name in state.assets:
        return state.assets[name]
    if state.preview:
        return f"[{name} asset]"
    raise RenderError(f"asset({name!r}) is not one this template version was saved with")


MAX_RECOMMENDATIONS = 50


def recommended_items(count: Any = 3) -> list[str]:
    """`recommendations(3)` in a template: the person's next products (item ids), best first,
    from the weekly refit's item-to-item model, or its best sellers for someone it has no history
    of (docs/predictions.md); fewer when the catalogue has fewer. A preview with none shows
    placeholders."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_RECOMMENDATIONS:
        raise RenderError(
            f"recommendations() takes a whole number from 1 to {MAX_RECOMMENDATIONS}, like recommendations(3)"
        )
    state = current_state()
    listed = [str(item) for item in state.recommendations[:count]]
    if not listed and state.preview:
        return [f"[recommendation {n}]" for n in range(1, count + 1)]
    return listed


RENDER_STATE: ContextVar[RenderState | None] = ContextVar("midstage_template_state", default=None)


def current_state() -> RenderState:
    state = RENDER_STATE.get()
    if state is None:  # only reachable if a state-dependent filter ran outside _run
        raise RenderError("template code ran outside a render")
    return state


# ------------------------------------------------------------------------------- resource guards
def weight(value: Any, limit: int = MAX_VALUE_SIZE) -> int:
    """About how many characters `value` makes as text, counting no further than past `limit`.

    Containers count their items, so `[big] * 1000` weighs 1000 bigs even though it holds
    one string: it is what `{{ }}`, `~` or `join` would turn it into.
    """
    total = 0
    stack = [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, bool) or item is None:
            total += 1
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 1
        elif isinstance(item, dict):
            total += len(item) + 1
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            total += len(item) + 1
            stack.extend(item)
        elif isinstance(item, Namespace):
            stack.append(_namespace_attrs(item))
        else:
            total += 1
    return total


def _namespace_attrs(namespace: Namespace) -> dict[str, Any]:
    # Namespace keeps its attributes in a private dict and hides every other attribute.
    attrs: dict[str, Any] = object.__getattribute__(namespace, "_Namespace__attrs")
    return attrs


def too_large(what: str = "a value") -> RenderError:
    return RenderError(f"{what} would be larger than {MAX_VALUE_SIZE // 1024} KB")


def bounded(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        raise RenderError(f"a number larger than {MAX_INT_BITS} bits")
    containers = str | bytes | list | tuple | dict | set | frozenset | Namespace
    if isinstance(value, containers) and weight(value) > MAX_VALUE_SIZE:
        raise too_large()
    return value


def check_repeat(left: Any, right: Any) -> None:
    """`'x' * 10**9` is computed before any check after it could run: refuse it up front."""
    for sequence, times in ((left, right), (right, left)):
        repeated = isinstance(sequence, str | bytes | list | tuple) and isinstance(times, int) and times > 0
        if repeated and weight(sequence) * times > MAX_VALUE_SIZE:
            raise too_large("a repeated value")


def check_power(base: Any, exponent: Any) -> None:
    integers = isinstance(base, int) and isinstance(exponent, int) and abs(base) > 1 and exponent > 0
    if integers and abs(base).bit_length() * exponent > MAX_INT_BITS:
        raise RenderError(f"a number larger than {MAX_INT_BITS} bits")


_PRINTF_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?([a-zA-Z%])")


def check_printf(fmt: str, args: Any) -> None:
    """`'%999999999d' % 1` and `'%(x)s' * n % {x: big}` allocate before anything can look."""
    specs = 0
    total = len(fmt)
    for match in _PRINTF_SPEC.finditer(fmt):
        width, precision, conversion = match.groups()
        if "*" in (width, precision):
            raise RenderError("`*` widths are not supported in % formatting")
        total += int(width or 0) + int(precision or 0)
        specs += conversion != "%"
    if total + specs * weight(args) > MAX_VALUE_SIZE:
        raise too_large("a formatted string")


def check_format(fmt: str, args: tuple[Any, ...], kwargs: Mapping[str, Any], by_map: bool) -> None:
    """The same for `str.format`: widths, and fields that repeat one large argument."""
    mapping = args[0] if by_map and args else kwargs
    total = 0
    auto = 0
    try:
        parsed = list(Formatter().parse(fmt))
    except ValueError:
        return  # the call itself raises it
    for literal, name, spec, _ in parsed:
        total += len(literal)
        if name is None:
            continue
        if spec and "{" in spec:
            raise RenderError("nested replacement fields are not supported in format()")
        total += sum(int(n) for n in re.findall(r"\d+", spec or ""))
        first = re.match(r"[^.\[]*", name)
        key = first.group() if first else ""
        argument: Any = None
        if key == "" or key.isdigit():
            index = auto if key == "" else int(key)
            auto += key == ""
            argument = args[index] if not by_map and index < len(args) else None
        elif isinstance(mapping, Mapping):
            argument = mapping.get(key)
        total += weight(argument)
        if total > MAX_VALUE_SIZE:
            raise too_large("a formatted string")


def check_str_method(
    owner: str | bytes, name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> tuple[Any, ...]:
    """Bounds for the str (and bytes) methods whose result can outgrow their inputs."""
    if name in ("format", "format_map"):
        return args  # str.format is wrapped, and checked, when it is looked up: wrap_str_format
    if name == "join" and args:
        items = list(islice(iter(args[0]), MAX_VALUE_SIZE + 1))
        if weight(items) + len(owner) * max(0, len(items) - 1) > MAX_VALUE_SIZE:
            raise too_large("a joined string")
        return (items, *args[1:])
    if name == "replace" and len(args) >= 2:
        old, new = args[0], args[1]
        count = args[2] if len(args) > 2 else kwargs.get("count", -1)
        if isinstance(old, str | bytes) and isinstance(new, str | bytes):
            found = len(owner) // len(old) if old else len(owner) + 1
            if isinstance(count, int) and count >= 0:
                found = min(found, count)
            if len(owner) + found * max(0, len(new) - len(old)) > MAX_VALUE_SIZE:
                raise too_large("a replaced string")
        return args
    if name == "expandtabs":
        size = args[0] if args else kwargs.get("tabsize", 8)
        tab = "\t" if isinstance(owner, str) else b"\t"
        if isinstance(size, int) and len(owner) + owner.count(tab) * size > MAX_VALUE_SIZE:  # type: ignore[arg-type]
            raise too_large("an expanded string")
    if name == "translate" and args and isinstance(args[0], Mapping):
        longest = max((len(v) for v in args[0].values() if isinstance(v, str | bytes)), default=1)
        if len(owner) * longest > MAX_VALUE_SIZE:
            raise too_large("a translated string")
    check_int_arguments(args, kwargs)
    return args


def check_int_arguments(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    # Widths and lengths (`center`, `zfill`, `to_bytes`...) past the value cap can only blow up.
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_VALUE_SIZE:
            raise too_large("a sized value")


def safe_range(*args: int) -> range:
    numbers = range(*args)
    try:
        size = len(numbers)
    except OverflowError:
        size = MAX_RANGE + 1
    if size > MAX_RANGE:
        raise RenderError(f"range() is limited to {MAX_RANGE} items")
    return numbers


class GuardedNamespace(Namespace):
    """`namespace()` is the only state a loop can carry between iterations: bound what it holds."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        bounded(self)

    def __setitem__(self, name: str, value: Any) -> None:
        super().__setitem__(name, value)
        bounded(self)


class _Steps:
    """A loop's items, counted against the field's iteration budget, checking the deadline."""

    __slots__ = ("_items", "_state")

    def __init__(self, items: list[Any], state: RenderState) -> None:
        self._items = items
        self._state = state

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Any]:
        for item in self._items:
            self._state.tick()
            yield item


@pass_context  # never folded at compile time: it needs the render's budget
def loop_guard(context: Context, iterable: Any) -> Any:
    if isinstance(iterable, Undefined):
        return iterable  # iterating it fails by name (or, in a preview, yields nothing)
    state = current_state()
    items = list(islice(iter(iterable), state.iterations_left + 1))
    if len(items) > state.iterations_left:
        raise RenderError(f"loops may run at most {MAX_LOOP_ITERATIONS} times in one field")
    state.iterations_left -= len(items)
    return _Steps(items, state)


class CaptureBuffer(list[Any]):
    """What `{% set x %}...{% endset %}` and `{% filter %}` capture, capped like output."""

    __slots__ = ("_size",)

    def __init__(self) -> None:
        super().__init__()
        self._size = 0

    def append(self, item: Any) -> None:
        self._size += len(item) if isinstance(item, str) else weight(item)
        if self._size > MAX_OUTPUT_BYTES:
            raise RenderError(f"a captured block is larger than {MAX_OUTPUT_BYTES // 1024} KB")
        super().append(item)

    def extend(self, items: Iterable[Any]) -> None:
        for item in items:
            self.append(item)


def _check_center(value: Any, width: Any = 80) -> None:
    check_int_arguments((width,), {})


def _check_indent(s: Any, width: Any = 4, first: bool = False, blank: bool = False) -> None:
    text = str(s)
    step = width if isinstance(width, int) else len(str(width))
    if len(text) + (text.count("\n") + 1) * max(0, step) > MAX_VALUE_SIZE:
        raise too_large("an indented string")


def _check_wordwrap(s: Any, width: Any = 79, break_long_words: Any = True, wrapstring: Any = None, *_: Any) -> None:
    if wrapstring is not None and (len(str(s)) + 1) * (len(str(wrapstring)) + 1) > MAX_VALUE_SIZE:
        raise too_large("a wrapped string")


def _check_format_filter(value: Any, *args: Any, **kwargs: Any) -> None:
    check_printf(str(value), kwargs or args)


def _check_replace(s: Any, old: Any, new: Any, count: Any = None) -> None:
    check_str_method(str(s), "replace", (str(old), str(new), -1 if count is None else count), {})


def _check_batch(value: Any, linecount: Any, fill_with: Any = None) -> None:
    check_int_arguments((linecount,), {})
    if fill_with is not None and isinstance(linecount, int) and linecount * weight(fill_with) > MAX_VALUE_SIZE:
        raise too_large("a batch")


def _check_tojson(value: Any, indent: Any = None) -> None:
    size = indent if isinstance(indent, int) else len(str(indent)) if indent is not None else 0
    if size > _MAX_JSON_INDENT:
        raise RenderError(f"tojson indents by at most {_MAX_JSON_INDENT}")


def _check_sum(iterable: Any, attribute: Any = None, start: Any = 0) -> None:
    if isinstance(start, list | tuple) and weight(iterable) + weight(start) > MAX_VALUE_SIZE:
        raise too_large("a sum")


@wraps(FILTERS["join"])
def join_filter(eval_ctx: Any, value: Any, d: str = "", attribute: Any = None) -> Any:
    items = value if isinstance(value, Undefined) else list(islice(iter(value), MAX_VALUE_SIZE + 1))
    if not isinstance(items, Undefined) and weight(items) + len(str(d)) * len(items) > MAX_VALUE_SIZE:
        raise too_large("a joined string")
    return bounded(FILTERS["join"](eval_ctx, items, d, attribute))


GUARDED_FILTERS: dict[str, Callable[..., None] | None] = {
    "center": _check_center,
    "indent": _check_indent,
    "wordwrap": _check_wordwrap,
    "format": _check_format_filter,
    "replace": _check_replace,
    "batch": _check_batch,
    "slice": _check_batch,
    "tojson": _check_tojson,
    "sum": _check_sum,
}
# Debugging and link-making helpers that templates for messages do not need.
DROPPED_FILTERS = {"pprint", "urlize"}
