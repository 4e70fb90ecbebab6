"""Configuration objects managed through the admin API."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

from midstage.models.bulk_imports import BulkKind, SourceImport, source_import_problems
from midstage.models.webhooks import WEBHOOK_KINDS, SourceKind, WebhookMapping

Role = Literal["viewer", "marketer", "data_operator", "admin"]


class RoleRank(IntEnum):
    viewer = 1
    marketer = 2
    data_operator = 3
    admin = 4


@dataclass
class Caller:
    """Who is calling: the key's id is recorded as author or approver; the role decides masking."""

    key_id: str
    role: RoleRank

    @property
    def masked(self) -> bool:
        return self.role < RoleRank.data_operator


def stamp(moment: datetime) -> str:
    """How a source or key records when it was created (to the second, UTC)."""
    return moment.astimezone(UTC).isoformat(timespec="seconds")


_SECRET = Field(default=None, min_length=8, max_length=512)
# Bulk imports' mappings kept on a source, by kind (models/bulk_imports.py, SourceImport).
SourceImports = dict[BulkKind, SourceImport]


def _checked_imports(imports: SourceImports | None) -> None:
    problems = source_import_problems(imports or {})
    if problems:
        raise ValueError("; ".join(problems))


def _webhook_fields(kind: str, secret: str | None, mapping: WebhookMapping | None, *, drawn: bool) -> None:
    """What a kind needs: a Shopify or Stripe source the secret its provider signs with, a generic
    source a secret (`drawn` for it when not given) and its mapping; a segment source neither."""
    if kind in ("shopify", "stripe") and not secret:
        raise ValueError(f"a {kind} source needs the `signing_secret` {kind.capitalize()} shows for the webhook")
    if kind == "generic" and not (secret or drawn):
        raise ValueError("a generic source needs a `signing_secret`")
    if kind == "generic" and mapping is None:
        raise ValueError("a generic source needs a `mapping`")
    if kind != "generic" and mapping is not None:
        raise ValueError("only a generic source has a `mapping`")
    if kind == "segment" and secret:
        raise ValueError("a segment source authenticates by its write key and has no `signing_secret`")


class Source(BaseModel):
    """Where tracking events come from; its write key authenticates the senders. A webhook source
    (`kind` shopify, stripe or generic) is posted to at /v1/webhooks/{id} and authenticated by
    its signing secret, which the API shows only when the source is created."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(default_factory=lambda: "src_" + secrets.token_hex(6))
    name: str = Field(min_length=1, max_length=200)
    write_key: str
    rate_limit: int | None = Field(default=None, ge=1, le=1_000_000, description="events per second")
    allowed_origins: list[str] = Field(default_factory=list, max_length=100)
    enabled: bool = True
    created_at: str
    kind: SourceKind = "segment"
    signing_secret: str | None = _SECRET
    mapping: WebhookMapping | None = None
    imports: SourceImports = Field(default_factory=dict)

    @model_validator(mode="after")
    def _kind_complete(self) -> Source:
        _webhook_fields(self.kind, self.signing_secret, self.mapping, drawn=False)
        _checked_imports(self.imports)
        return self

    @property
    def webhook(self) -> bool:
        return self.kind in WEBHOOK_KINDS

    def public(self) -> dict[str, object]:
        """The source as the admin API shows it after creation: the signing secret never."""
        shown = self.model_dump(mode="json", exclude={"signing_secret"}, exclude_none=False)
        shown["imports"] = {
            kind: kept.model_dump(mode="json", exclude_defaults=True) for kind, kept in self.imports.items()
        }
        if self.webhook:
            shown["signing_secret_set"] = self.signing_secret is not None
        else:
            shown.pop("mapping", None)
        return shown


class SourceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    rate_limit: int | None = Field(default=None, ge=1, le=1_000_000)
    allowed_origins: list[HttpUrl | Literal["*"]] = Field(default_factory=list, max_length=100)
    kind: SourceKind = "segment"
    # Shopify and Stripe show the secret they sign with; a generic source's is drawn when not given.
    signing_secret: str | None = _SECRET
    mapping: WebhookMapping | None = None
    imports: SourceImports | None = None

    @model_validator(mode="after")
    def _kind_complete(self) -> SourceCreate:
        _webhook_fields(self.kind, self.signing_secret, self.mapping, drawn=True)
        _checked_imports(self.imports)
        return self


class SourceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    rate_limit: int | None = Field(default=None, ge=1, le=1_000_000)
    allowed_origins: list[HttpUrl | Literal["*"]] | None = Field(default=None, max_length=100)
    enabled: bool | None = None
    # The kind stays what it was created as; the secret and the mapping may change (a provider's
    # secret is rotated, a mapping corrected). A new secret is written, never shown back.
    signing_secret: str | None = _SECRET
    mapping: WebhookMapping | None = None
    # The whole map is replaced; `null` or {} removes every stored import mapping.
    imports: SourceImports | None = None

    @model_validator(mode="after")
    def _imports_complete(self) -> SourceUpdate:
        _checked_imports(self.imports)
        return self


class ApiKey(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    name: str
    role: Role
    digest: str
    revoked: bool = False
    created_at: str


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    role: Role


class SecretRotation(BaseModel):
    """`POST /v1/settings/secrets/{name}/rotate`: how long the retired key keeps verifying (days;
    0 refuses it at once, for a leaked secret; absent: the secret's default)."""

    model_config = ConfigDict(extra="forbid")

    keepOldKeyDays: int | None = Field(default=None, ge=0, le=3650)


def new_signing_secret() -> str:
    """A generic source's signing secret when its sender does not choose one."""
    return "whsec_" + secrets.token_urlsafe(32)


def new_write_key() -> str:
    """A source's write key: public by design (it ships in web pages), unguessable all the same."""
    return "wk_" + secrets.token_urlsafe(24)
