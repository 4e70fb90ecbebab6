"""Sources (where tracking events come from, with their write keys), their quarantine, and the
admin API keys."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from midstage.clock import Clock
from midstage.errors import InvalidInput, NotFound, describe
from midstage.models.admin import (
    ApiKeyCreate,
    Source,
    SourceCreate,
    SourceUpdate,
    new_signing_secret,
    new_write_key,
    stamp,
)
from midstage.services.admin.ports import ApiKeys, ProfileReader, SourceStore


class SourceAdmin:
    def __init__(self, config: SourceStore, profiles: ProfileReader, *, clock: Clock) -> None:
        self.config = config
        self.profiles = profiles
        self.clock = clock

    def list_sources(self) -> dict[str, Any]:
        return {"sources": [s.public() for s in self.config.list_sources()]}

    def create_source(self, request: SourceCreate) -> dict[str, Any]:
        secret = request.signing_secret
        if request.kind == "generic" and secret is None:
            secret = new_signing_secret()
        source = Source(
            name=request.name,
            write_key=new_write_key(),
            rate_limit=request.rate_limit,
            allowed_origins=[str(o).rstrip("/") for o in request.allowed_origins],
            created_at=stamp(self.clock()),
            kind=request.kind,
            signing_secret=secret,
            mapping=request.mapping,
            imports=request.imports or {},
        )
        created = self.config.create_source(source)
        # Shown once, as an admin API key's secret is: the sender has to be given it.
        return {**created.public(), "signing_secret": secret} if created.webhook else created.public()

    def get_source(self, source_id: str) -> dict[str, Any]:
        return self.config.get_source(source_id).public()

    def update_source(self, source_id: str, request: SourceUpdate) -> dict[str, Any]:
        changes = request.model_dump(exclude_unset=True)
        if "imports" in changes and changes["imports"] is None:
            changes["imports"] = {}
        if "allowed_origins" in changes and changes["allowed_origins"] is not None:
            changes["allowed_origins"] = [str(o).rstrip("/") for o in request.allowed_origins or []]
        current = self.config.get_source(source_id).model_dump()
        try:
            updated = Source.model_validate({**current, **changes})
        except ValidationError as error:
            raise InvalidInput(describe(error, "body"), code="invalid_body") from error
        return self.config.save_source(updated).public()

    def delete_source(self, source_id: str) -> None:
        self.config.delete_source(source_id)

    def rotate_write_key(self, source_id: str) -> dict[str, Any]:
        return self.config.rotate_write_key(self.config.get_source(source_id)).public()

    def quarantine(self, source_id: str, limit: int, cursor: str | None) -> dict[str, Any]:
        self.config.get_source(source_id)
        entries, next_cursor = self.profiles.quarantined(source_id, limit=limit, cursor=cursor)
        return {"entries": entries, "cursor": next_cursor}


class ApiKeyAdmin:
    """Keys are shown without their digest; the secret is shown once, when the key is made."""

    def __init__(self, config: ApiKeys, *, clock: Clock) -> None:
        self.config = config
        self.clock = clock

    def list_keys(self) -> dict[str, Any]:
        return {"apiKeys": [k.model_dump(exclude={"digest"}) for k in self.config.list_api_keys()]}

    def describe(self, key_id: str) -> dict[str, Any]:
        """The calling key as listed (name, role, dates), never its digest."""
        for key in self.config.list_api_keys():
            if key.id == key_id:
                return key.model_dump(exclude={"digest"})
        raise NotFound(f"no API key '{key_id}'")

    def create_key(self, request: ApiKeyCreate) -> dict[str, Any]:
        key, secret = self.config.create_api_key(request.name, request.role, now=self.clock())
        return {**key.model_dump(exclude={"digest"}), "secret": secret}

    def revoke_key(self, key_id: str) -> dict[str, Any]:
        return self.config.revoke_api_key(key_id).model_dump(exclude={"digest"})
