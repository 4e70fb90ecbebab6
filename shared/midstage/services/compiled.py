"""The one cache for compiled definitions (rules, journeys, segments): each definition compiled
once per (id, version) and container, and the whole set assembled again only when the versions
in force change. A stored definition that no longer compiles is skipped with a log line
(validation refuses it on save, so this is defence): one broken definition never stops the rest."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, Protocol, TypeVar

from midstage.logic.conditions import ConditionError
from midstage.observability import logger


class Versioned(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def version(self) -> int: ...


Definition = TypeVar("Definition", bound=Versioned)
Compiled = TypeVar("Compiled")
Whole = TypeVar("Whole")

Signature = tuple[tuple[str, int], ...]


def signature_of(definitions: Sequence[Versioned]) -> Signature:
    return tuple(sorted((d.id, d.version) for d in definitions))


class CompiledCache(Generic[Definition, Compiled, Whole]):
    """`compile_one` turns a definition into its compiled form (it may raise ConditionError);
    `assemble` builds the set the service uses from the compiled ones. `kind` names the
    definitions in the log."""

    def __init__(
        self,
        kind: str,
        compile_one: Callable[[Definition], Compiled],
        assemble: Callable[[list[Compiled]], Whole],
    ) -> None:
        self.kind = kind
        self._compile_one = compile_one
        self._assemble = assemble
        self._each: dict[tuple[str, int], Compiled] = {}
        self._whole: tuple[Signature, Whole] | None = None

    def get(self, definitions: Sequence[Definition]) -> Whole:
        signature = signature_of(definitions)
        if self._whole is not None and self._whole[0] == signature:
            return self._whole[1]
        compiled: list[Compiled] = []
        for definition in definitions:
            key = (definition.id, definition.version)
            if key not in self._each:
                try:
                    self._each[key] = self._compile_one(definition)
                except ConditionError as error:
                    logger.error(
                        f"{self.kind} does not compile; skipped", extra={self.kind: definition.id, "issues": str(error)}
                    )
                    continue
            compiled.append(self._each[key])
        self._whole = (signature, self._assemble(compiled))
        return self._whole[1]
