"""Bulk imports of profiles, orders and offline conversions: the request, its column mapping, and
the queue messages that run an import in parts (services/bulk_import.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from midstage.models.messages import _Message

BulkKind = Literal["profiles", "orders", "conversions"]
BulkFormat = Literal["csv", "jsonl"]
BulkStatus = Literal["planning", "running", "done", "failed"]

# A column of a CSV header or a field of a JSON line (a dotted path reaches into objects).
_COLUMN = Field(default=None, min_length=1, max_length=200)
_SOURCE_ID = r"^[A-Za-z0-9_-]{1,64}$"
_S3_KEY = r"^imports/[A-Za-z0-9_-]{1,64}/.{1,900}$"
# An inline body is for small files: up to what the admin function accepts in one request.
MAX_INLINE_BYTES = 4 * 1024 * 1024


class BulkMapping(BaseModel):
    """Which column is what. Identifier columns: at least one of `userId`, `email`, `phone`,
    `anonymousId`. `traits` (profiles) and `properties` (conversions) are columns copied as they
    are, given as a list (the column's name is kept) or a map of column to name."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    userId: str | None = _COLUMN
    email: str | None = _COLUMN
    phone: str | None = _COLUMN
    anonymousId: str | None = _COLUMN
    traits: dict[str, str] = Field(default_factory=dict, max_length=64)
    # The column naming a row across files: the messageId derives from it instead of the line, so
    # the same row in another file (an export run again) is the same event. Orders default to
    # their order_id.
    key: str | None = _COLUMN
    timestamp: str | None = _COLUMN
    # orders
    order_id: str | None = _COLUMN
    revenue: str | None = _COLUMN
    currency: str | None = _COLUMN
    products: str | None = _COLUMN
    # conversions: the event's name from a column, or one name for every row
    event: str | None = _COLUMN
    event_name: str | None = Field(default=None, min_length=1, max_length=200)
    properties: dict[str, str] = Field(default_factory=dict, max_length=64)

    @field_validator("traits", "properties", mode="before")
    @classmethod
    def _list_means_same_names(cls, value: Any) -> Any:
        if isinstance(value, list):
            if not all(isinstance(column, str) for column in value):
                raise ValueError("a list of columns holds their names, as strings")
            return {column: column for column in value}
        return value

    @field_validator("traits", "properties")
    @classmethod
    def _names(cls, value: dict[str, str]) -> dict[str, str]:
        for column, name in value.items():
            if not column or not name or len(column) > 200 or len(name) > 64:
                raise ValueError("every column and name is 1 to 200 (a name 1 to 64) characters")
        return value

    def columns_named(self) -> list[str]:
        """Every column (or JSON field) the mapping reads."""
        named = [*self.identifier_columns().values(), *self.traits, *self.properties]
        named += [c for c in (self.key, self.timestamp, self.order_id, self.revenue) if c]
        named += [c for c in (self.currency, self.products, self.event) if c]
        return named

    def identifier_columns(self) -> dict[str, str]:
        given = {"userId": self.userId, "email": self.email, "phone": self.phone, "anonymousId": self.anonymousId}
        return {role: column for role, column in given.items() if column}

    def problems(self, kind: str) -> list[str]:
        """What this mapping lacks for `kind` (empty when it is complete)."""
        found: list[str] = []
        if not self.identifier_columns():
            found.append("name at least one identifier column: userId, email, phone or anonymousId")
        if kind == "orders":
            found += [
                f"an order import needs the '{name}' column"
                for name in ("order_id", "revenue")
                if not getattr(self, name)
            ]
        if kind == "conversions" and not (self.event or self.event_name):
            found.append("a conversion import needs an 'event' column or one 'event_name'")
        if kind != "profiles" and self.traits:
            found.append("'traits' are for profile imports; an order or a conversion carries 'properties'")
        if kind == "profiles" and (self.properties or self.event or self.event_name):
            found.append("a profile import carries 'traits', not 'properties' or an event")
        return found


class SourceImport(BaseModel):
    """How a source's files of one kind are read, kept on the source (`imports` of /v1/sources):
    an import of that kind that gives no `mapping` (or a dropped file without a sidecar) uses it.
    `columns`, when given, is the header the source's files have; the mapping is checked against
    it when saved, so a mapping naming a column the files lack is refused then, not at import."""

    model_config = ConfigDict(extra="forbid")

    format: BulkFormat | None = None
    mapping: BulkMapping
    columns: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(
        default=None, min_length=1, max_length=500
    )


def source_import_problems(imports: Mapping[BulkKind, SourceImport]) -> list[str]:
    """What is wrong with a source's stored mappings (empty when each is complete)."""
    found: list[str] = []
    for kind, stored in imports.items():
        found += [f"imports.{kind}: {problem}" for problem in stored.mapping.problems(kind)]
        if stored.columns is not None:
            unknown = sorted(set(stored.mapping.columns_named()) - set(stored.columns))
            if unknown:
                listed = ", ".join(repr(c) for c in unknown[:20])
                found.append(f"imports.{kind}: the mapping names columns that are not among `columns`: {listed}")
    return found


class BulkImportRequest(BaseModel):
    """POST /v1/imports: a file in the bucket (`s3Key`, under `imports/{sourceId}/`) or a small
    file inline (`data`: text, or `data_base64`: bytes, gzip'd or not). Without `mapping`, the
    source's stored mapping for `kind` is used; without `format`, the stored one or the name's."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    sourceId: str = Field(pattern=_SOURCE_ID)
    kind: BulkKind
    format: BulkFormat | None = None
    mapping: BulkMapping | None = None
    s3Key: str | None = Field(default=None, pattern=_S3_KEY)
    data: str | None = Field(default=None, min_length=1, max_length=MAX_INLINE_BYTES)
    data_base64: str | None = Field(default=None, min_length=1, max_length=MAX_INLINE_BYTES * 4 // 3 + 4)

    @model_validator(mode="after")
    def _one_file(self) -> BulkImportRequest:
        if sum(given is not None for given in (self.s3Key, self.data, self.data_base64)) != 1:
            raise ValueError("give the file as one of `s3Key`, `data` (text) or `data_base64`")
        if self.s3Key is not None and not self.s3Key.startswith(f"imports/{self.sourceId}/"):
            raise ValueError(f"`s3Key` must lie under imports/{self.sourceId}/, the source's prefix")
        problems = self.mapping.problems(self.kind) if self.mapping is not None else []
        if problems:
            raise ValueError("; ".join(problems))
        return self


class Sidecar(BaseModel):
    """`<key>.mapping.json` beside a dropped file, or `imports/{sourceId}/_mapping.json` for every
    file of a source: how a file dropped in the bucket is read."""

    model_config = ConfigDict(extra="forbid")

    kind: BulkKind
    format: BulkFormat | None = None  # else from the file's name: .csv, .jsonl, .ndjson (.gz after)
    mapping: BulkMapping

    @model_validator(mode="after")
    def _complete(self) -> Sidecar:
        problems = self.mapping.problems(self.kind)
        if problems:
            raise ValueError("; ".join(problems))
        return self


class ImportTask(_Message):
    """The import queue: plan an import (find its parts), or run one part of it."""

    kinds: ClassVar[tuple[str, ...]] = ("import.plan", "import.part")
    what: ClassVar[str] = "import task"
    kind: Literal["import.plan", "import.part"]
    import_id: str = Field(alias="importId", min_length=1)
    part: int | None = Field(default=None, ge=0)
