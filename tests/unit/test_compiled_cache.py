"""The one cache for compiled definitions: once per (id, version), the set rebuilt only when
the versions in force change, a definition that no longer compiles skipped."""

from __future__ import annotations

from dataclasses import dataclass

from midstage.logic.conditions import ConditionError, Issue
from midstage.services.compiled import CompiledCache


@dataclass(frozen=True)
class Definition:
    id: str
    version: int
    broken: bool = False


class Compiler:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.assembled = 0

    def compile(self, definition: Definition) -> str:
        self.calls.append((definition.id, definition.version))
        if definition.broken:
            raise ConditionError([Issue("/", "no longer compiles")])
        return f"{definition.id}@{definition.version}"

    def assemble(self, compiled: list[str]) -> tuple[str, ...]:
        self.assembled += 1
        return tuple(compiled)


def test_each_version_compiles_once_and_the_set_is_rebuilt_only_when_versions_change() -> None:
    # Given a cache over two definitions
    compiler = Compiler()
    cache: CompiledCache[Definition, str, tuple[str, ...]] = CompiledCache("rule", compiler.compile, compiler.assemble)
    first = [Definition("a", 1), Definition("b", 1)]
    # When the same versions are asked for twice
    assert cache.get(first) == ("a@1", "b@1")
    assert cache.get(list(reversed(first))) == ("a@1", "b@1")
    # Then each compiled once and the set was assembled once
    assert compiler.calls == [("a", 1), ("b", 1)] and compiler.assembled == 1
    # When one definition moves to a new version
    assert cache.get([Definition("a", 2), Definition("b", 1)]) == ("a@2", "b@1")
    # Then only the new version compiles, and the set is assembled again
    assert compiler.calls[-1] == ("a", 2) and len(compiler.calls) == 3 and compiler.assembled == 2


def test_a_definition_that_no_longer_compiles_is_skipped_and_the_rest_stay() -> None:
    compiler = Compiler()
    cache: CompiledCache[Definition, str, tuple[str, ...]] = CompiledCache(
        "journey", compiler.compile, compiler.assemble
    )
    assert cache.get([Definition("good", 1), Definition("bad", 1, broken=True)]) == ("good@1",)
