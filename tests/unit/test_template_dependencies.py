"""The jinja2 internals the template sandbox leans on are where it expects them.

logic/templates/sandbox.py and guards.py reach past jinja2's public API (`_PassArg`, the code
generator's hooks, Undefined's and Namespace's private attributes). pyproject.toml pins jinja2 to
the minor these tests pass on; when a release moves any of them, a test here names what moved
before a template quietly renders unguarded.
"""

from __future__ import annotations

import re
import time
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from jinja2 import pass_context, pass_environment, pass_eval_context
from jinja2.compiler import CodeGenerator, Frame
from jinja2.filters import FILTERS
from jinja2.runtime import Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace, _PassArg

from midstage.logic.templates import RenderContext, RenderError, render
from midstage.logic.templates.guards import GuardedNamespace
from midstage.logic.templates.sandbox import ENVIRONMENTS

ROOT = Path(__file__).resolve().parents[2]


def _release(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def _pinned_range(spec: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    lower = re.search(r">=\s*([\d.]+)", spec)
    upper = re.search(r"<\s*([\d.]+)", spec)
    assert lower and upper, f"jinja2 is not pinned to a range: {spec!r}"
    return _release(lower.group(1)), _release(upper.group(1))


def test_given_the_project_files_then_jinja2_is_pinned_to_one_tested_minor_in_both() -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    in_pyproject = next(d for d in dependencies if d.startswith("jinja2"))
    in_layer = next(
        line.strip()
        for line in (ROOT / "shared/requirements.txt").read_text().splitlines()
        if line.startswith("jinja2")
    )
    assert in_pyproject == in_layer
    lower, upper = _pinned_range(in_pyproject)
    assert upper[:2] == (lower[0], lower[1] + 1), f"{in_pyproject!r} allows more than the minor {lower[:2]}"


def test_given_the_installed_jinja2_then_it_is_within_the_pinned_range() -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    lower, upper = _pinned_range(next(d for d in dependencies if d.startswith("jinja2")))
    installed = _release(version("jinja2"))
    assert lower <= installed < upper, f"jinja2 {version('jinja2')} is outside the tested {lower}..{upper}"


def test_given_filters_marked_for_a_context_then_pass_arg_tells_which_one_each_wants() -> None:
    def plain(value: object) -> object:
        return value

    assert _PassArg.from_obj(plain) is None
    assert _PassArg.from_obj(pass_context(plain)) is _PassArg.context
    assert _PassArg.from_obj(pass_eval_context(plain)) is _PassArg.eval_context
    assert _PassArg.from_obj(pass_environment(plain)) is _PassArg.environment
    # The guarded filters carry the original's mark, so Jinja still hands them what they expect.
    for name in ("map", "join", "attr", "sum", "upper"):
        assert _PassArg.from_obj(ENVIRONMENTS["text"].filters[name]) is _PassArg.from_obj(FILTERS[name]), name


def test_given_undefined_then_its_operators_alias_the_private_failure_the_sandbox_replaces() -> None:
    assert callable(Undefined._fail_with_undefined_error)
    for operator in ("__add__", "__lt__", "__call__", "__getitem__"):
        assert getattr(Undefined, operator) is Undefined._fail_with_undefined_error, operator
    missing = Undefined(name="first_name")
    assert missing._undefined_name == "first_name"
    assert missing._undefined_exception is not None
    assert "first_name" in missing._undefined_message
    # And so an operator on a missing value fails by the missing variable's full name.
    with pytest.raises(RenderError, match=r"missing variable person\.age"):
        render(
            "sms",
            {"en": {"body": "{{ person.age + 1 }}"}},
            {},
            locale="en",
            default_locale="en",
            context=RenderContext(),
            timer=time.monotonic,
        )


def test_given_the_code_generator_then_the_hooks_the_guards_override_are_there_and_used() -> None:
    for hook in ("buffer", "visit_Concat", "visit_List", "visit_Dict", "visit_Tuple"):
        assert callable(getattr(CodeGenerator, hook)), hook
    for helper in ("temporary_identifier", "writeline", "write", "visit"):
        assert callable(getattr(CodeGenerator, helper)), helper
    assert "buffer" in Frame.__init__.__code__.co_names
    # Each hook on its own, so one that stops being called cannot hide behind another.
    routed = {
        "{% set x %}a{% endset %}{{ x }}": "environment.ms_buffer()",
        "{{ 'a' ~ person.b }}": "environment.ms_concat(",
        "{{ [person.a] }}": "environment.ms_bounded(",
        "{{ {'a': person.a} }}": "environment.ms_bounded(",
        "{{ (person.a, 1) }}": "environment.ms_bounded(",
        "{{ 2 ** 3 }}": "environment.call_binop(",
    }
    for source, guard in routed.items():
        code = ENVIRONMENTS["text"].compile(source, raw=True)
        assert guard in code, f"{source} no longer routes through {guard}"


def test_given_the_sandbox_then_the_operator_table_and_hooks_it_overrides_are_there() -> None:
    assert {"+", "*", "**", "%"} <= set(ENVIRONMENTS["text"].binop_table)
    assert isinstance(ImmutableSandboxedEnvironment.intercepted_binops, frozenset)
    for hook in ("call_binop", "call", "getattr", "wrap_str_format"):
        assert callable(getattr(ImmutableSandboxedEnvironment, hook)), hook


def test_given_a_namespace_then_its_attributes_sit_in_the_private_dict_the_guards_weigh() -> None:
    assert object.__getattribute__(Namespace(a=1), "_Namespace__attrs") == {"a": 1}
    with pytest.raises(RenderError, match="larger than"):
        GuardedNamespace(big="x" * 300_000)
