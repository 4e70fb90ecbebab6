"""The Jinja sandbox templates run in: missing variables named by path, guarded filters and
operators, and a code generator that routes inline building through the guards.

This module leans on jinja2 internals (`_PassArg`, `CodeGenerator` hooks, `Undefined`'s private
attributes), as does guards.py (`Namespace`'s private attribute dict);
tests/unit/test_template_dependencies.py fails loudly if a jinja2 release moves them, which is why
pyproject pins jinja2 to a tested minor version.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from functools import wraps
from typing import Any, NoReturn

from jinja2 import nodes, pass_context
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import TemplateRuntimeError, UndefinedError
from jinja2.filters import FILTERS
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Cycler, Joiner, _PassArg, missing
from markupsafe import Markup, soft_str

from midstage.logic.templates.formatting import format_date, format_datetime, format_money
from midstage.logic.templates.guards import (
    DROPPED_FILTERS,
    GUARDED_FILTERS,
    RENDER_STATE,
    CaptureBuffer,
    GuardedNamespace,
    asset_url,
    bounded,
    check_format,
    check_int_arguments,
    check_power,
    check_printf,
    check_repeat,
    check_str_method,
    current_state,
    join_filter,
    loop_guard,
    offer_code,
    recommended_items,
    safe_range,
    too_large,
)
from midstage.logic.templates.model import MAX_VALUE_SIZE


class MissingVariable(UndefinedError):
    def __init__(self, name: str) -> None:
        super().__init__(f"missing variable {name}")
        self.name = name


class Scope(dict[str, Any]):
    """A dict that knows its dotted path, so a missing key can be reported by full name."""

    __slots__ = ("_ms_path",)

    def __init__(self, path: str) -> None:
        super().__init__()
        self._ms_path = path


class Items(list[Any]):
    __slots__ = ("_ms_path",)

    def __init__(self, path: str, items: Iterable[Any]) -> None:
        super().__init__(items)
        self._ms_path = path


class _Undefined(Undefined):
    """Falsy and comparable, so `{% if person.x %}` and `| default` work; fails when output."""

    __slots__ = ()

    def __init__(
        self,
        hint: str | None = None,
        obj: Any = missing,
        name: str | None = None,
        exc: type[TemplateRuntimeError] = UndefinedError,
    ) -> None:
        if isinstance(obj, Scope | Items) and name is not None:
            name = child_path(obj._ms_path, name)
        super().__init__(hint, obj, name, exc)

    @property
    def _dotted(self) -> str:
        return str(self._undefined_name) if self._undefined_name is not None else "(unnamed)"

    def _fail_with_undefined_error(self, *args: Any, **kwargs: Any) -> NoReturn:
        if self._undefined_exception is not UndefinedError:  # the sandbox's SecurityError
            raise self._undefined_exception(self._undefined_message)
        raise MissingVariable(self._dotted)

    def _preview_missing(self) -> bool:
        state = RENDER_STATE.get()
        if state is None or not state.preview or self._undefined_exception is not UndefinedError:
            return False
        if self._dotted not in state.missing:
            state.missing.append(self._dotted)
        return True

    def __str__(self) -> str:
        if not self._preview_missing():
            self._fail_with_undefined_error()
        return ""

    def __iter__(self) -> Iterator[Any]:
        if not self._preview_missing():
            self._fail_with_undefined_error()
        return iter(())

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        # `person.address.city` with no address names the whole path, which a default can cover.
        return type(self)(name=child_path(self._dotted, name), exc=self._undefined_exception)

    def __getitem__(self, key: Any) -> Any:
        return type(self)(name=child_path(self._dotted, key), exc=self._undefined_exception)


# Undefined aliases its operators (`+`, `<`, `()`...) to the base class's failure at class
# creation; point them at ours so they too name the missing variable.
for _name, _value in vars(Undefined).items():
    if _value is Undefined._fail_with_undefined_error and _name not in vars(_Undefined):
        setattr(_Undefined, _name, _Undefined._fail_with_undefined_error)


def child_path(path: str, key: Any) -> str:
    return f"{path}.{key}" if isinstance(key, str) else f"{path}[{key!r}]"


class _GuardedCodeGenerator(CodeGenerator):
    """Routes what Jinja builds inline (`~`, literals, captured blocks) through the guards."""

    def buffer(self, frame: Frame) -> None:
        frame.buffer = self.temporary_identifier()
        self.writeline(f"{frame.buffer} = environment.ms_buffer()")

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        escaping = "context.eval_ctx.autoescape" if frame.eval_ctx.volatile else repr(frame.eval_ctx.autoescape)
        self.write(f"environment.ms_concat({escaping}, (")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self.write("environment.ms_bounded(")
        super().visit_List(node, frame)
        self.write(")")

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self.write("environment.ms_bounded(")
        super().visit_Dict(node, frame)
        self.write(")")

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        if node.ctx != "load":  # an assignment target (`for k, v in ...`) is not a value
            super().visit_Tuple(node, frame)
            return
        self.write("environment.ms_bounded(")
        super().visit_Tuple(node, frame)
        self.write(")")


def _guard_filter(name: str, check: Callable[..., None] | None = None) -> Callable[..., Any]:
    original = FILTERS[name]
    # Checks take the filter's own arguments, without the context Jinja may pass first.
    skip = 0 if _PassArg.from_obj(original) is None else 1

    @wraps(original)  # keeps jinja_pass_arg, so context-taking filters still get one
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if check is not None:
            check(*args[skip:], **kwargs)
        return bounded(original(*args, **kwargs))

    return guarded


@pass_context
def _money_filter(context: Context, amount: Any, currency: str = "USD") -> str:
    return format_money(amount, currency, current_state().locale)


@pass_context
def _date_filter(context: Context, value: Any, format: str = "medium") -> str:
    state = current_state()
    return format_date(value, format, locale=state.locale, tz=state.tz)


@pass_context
def _datetime_filter(context: Context, value: Any, format: str = "medium") -> str:
    state = current_state()
    return format_datetime(value, format, locale=state.locale, tz=state.tz)


def _plain_finalize(value: Any) -> Any:
    return "" if value is None else value


def _json_finalize(value: Any) -> Any:
    """In a JSON body, `{{ }}` inside quotes writes an escaped string; outside, a JSON value."""
    if isinstance(value, Undefined | Markup):  # Markup: already JSON (`tojson`)
        return value
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)[1:-1]
    if isinstance(value, Decimal):
        return str(value)
    return json.dumps(value, ensure_ascii=False, default=str)


class _Sandbox(ImmutableSandboxedEnvironment):
    # Intercepted operators are also never folded at compile time, where `10**10**10` would hang.
    intercepted_binops = frozenset({"+", "*", "**", "%"})
    code_generator_class = _GuardedCodeGenerator

    def __init__(self, kind: str) -> None:
        super().__init__(
            autoescape=kind == "html",
            undefined=_Undefined,
            finalize=_json_finalize if kind == "json" else _plain_finalize,
            keep_trailing_newline=True,
            cache_size=0,
            auto_reload=False,
        )
        self.globals = {
            "range": safe_range,
            "dict": dict,
            "cycler": Cycler,
            "joiner": Joiner,
            "namespace": GuardedNamespace,
            "offer": offer_code,
            "asset": asset_url,
            "recommendations": recommended_items,
        }
        filters: dict[str, Callable[..., Any]] = {}
        for name in FILTERS:
            if name not in DROPPED_FILTERS:
                filters[name] = _guard_filter(name, GUARDED_FILTERS.get(name))
        filters["join"] = join_filter
        filters["money"] = _money_filter
        filters["date"] = _date_filter
        filters["datetime"] = _datetime_filter
        filters["ms_loop"] = loop_guard
        self.filters = filters

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            check_repeat(left, right)
        elif operator == "**":
            check_power(left, right)
        elif operator == "%" and isinstance(left, str):
            check_printf(left, right)
        return bounded(self.binop_table[operator](left, right))

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(obj, Undefined):
            owner = getattr(obj, "__self__", None)
            if isinstance(owner, str | bytes):
                args = check_str_method(owner, getattr(obj, "__name__", ""), args, kwargs)
            elif isinstance(owner, int):
                check_int_arguments(args, kwargs)
        return bounded(super().call(context, obj, *args, **kwargs))

    def getattr(self, obj: Any, attribute: str) -> Any:
        # In person/event/vars data a key wins over a dict method: `event.properties.items` is
        # the cart's items, not dict.items.
        if isinstance(obj, Scope) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        owner: str = value.__self__
        by_map = value.__name__ == "format_map"

        def checked(*args: Any, **kwargs: Any) -> str:
            check_format(owner, args, kwargs, by_map)
            return bounded(wrapped(*args, **kwargs))

        return checked

    def ms_bounded(self, value: Any) -> Any:
        return bounded(value)

    def ms_concat(self, autoescape: bool, values: tuple[Any, ...]) -> str:
        parts = []
        size = 0
        for value in values:
            text = soft_str(value)
            size += len(text)
            if size > MAX_VALUE_SIZE:
                raise too_large("a joined string")
            parts.append(text)
        if autoescape and any(hasattr(part, "__html__") for part in parts):
            return bounded(Markup("").join(parts))
        return "".join(parts)

    def ms_buffer(self) -> CaptureBuffer:
        return CaptureBuffer()


ENVIRONMENTS = {kind: _Sandbox(kind) for kind in ("html", "text", "json")}


def kind_of(channel: str, field_name: str) -> str:
    if field_name == "html":
        return "html"
    return "json" if channel == "webhook" else "text"
