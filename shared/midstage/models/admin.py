"""Configuration objects managed through the admin API."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

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


class Source(BaseModel):
    """Where tracking events come from; its write key authenticates the senders."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(default_factory=lambda: "src_" + secrets.token_hex(6))
    name: str = Field(min_length=1, max_length=200)
    write_key: str
    rate_limit: int | None = Field(default=None, ge=1, le=1_000_000, description="events per second")
    allowed_origins: list[str] = Field(default_factory=list, max_length=100)
    enabled: bool = True
    created_at: str


class SourceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    rate_limit: int | None = Field(default=None, ge=1, le=1_000_000)
    allowed_origins: list[HttpUrl | Literal["*"]] = Field(default_factory=list, max_length=100)


class SourceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    rate_limit: int | None = Field(default=None, ge=1, le=1_000_000)
    allowed_origins: list[HttpUrl | Literal["*"]] | None = Field(default=None, max_length=100)
    enabled: bool | None = None


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


def new_write_key() -> str:
    """A source's write key: public by design (it ships in web pages), unguessable all the same."""
    return "wk_" + secrets.token_urlsafe(24)
