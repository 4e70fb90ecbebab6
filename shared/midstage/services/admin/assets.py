"""The asset library through the admin API: upload a file (inline or to a presigned URL), take a
version through review (submit, approve or reject by another key, publish), and answer where a
published version is served. docs/assets.md describes the flow."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from midstage.clock import Clock
from midstage.errors import Conflict, IssuesError, NotFound, Stale, Unavailable, summary
from midstage.logic import assets as rules
from midstage.logic.timefmt import iso
from midstage.models.admin import Caller
from midstage.models.assets import (
    ASSET_NAME,
    Asset,
    AssetContent,
    AssetCreate,
    AssetKind,
    AssetRejection,
    AssetReview,
    AssetVersion,
    AssetVersionRef,
)
from midstage.observability import logger

UPLOAD_URL_SECONDS = 900
PREVIEW_URL_SECONDS = 900
# Without a distribution in front of the bucket a published file is answered as a presigned GET
# (at most a week, and no longer than the credentials that signed it).
PRESIGNED_SERVE_SECONDS = 7 * 24 * 3600
VERSIONS_SHOWN = 20
_RETRIES = 5


class AssetRecords(Protocol):
    def asset(self, name: str) -> Asset | None: ...
    def assets(self) -> list[Asset]: ...
    def version(self, name: str, number: int) -> AssetVersion | None: ...
    def versions(self, name: str, limit: int, before: int | None = None) -> list[AssetVersion]: ...
    def write(self, asset: Asset, read_revision: int | None, versions: Sequence[AssetVersion]) -> Asset: ...


class AssetBucket(Protocol):
    def put(self, key: str, body: bytes, content_type: str) -> str: ...
    def upload_url(self, key: str, content_type: str, size: int, expires_s: int) -> str: ...
    def download_url(self, key: str, expires_s: int) -> str: ...
    def stat(self, key: str) -> tuple[int, str] | None: ...
    def head(self, key: str, length: int, etag: str) -> bytes: ...
    def read(self, key: str, etag: str) -> bytes: ...
    def sha256(self, key: str, etag: str) -> str: ...
    def publish(self, source: str, target: str, content_type: str, etag: str) -> None: ...
    def remove(self, key: str) -> None: ...


def refuse(location: str, message: str) -> IssuesError:
    issue = {"location": location, "message": message}
    return IssuesError(summary("invalid asset", [issue]), [issue], code="invalid_asset")


class AssetAdmin:
    def __init__(
        self,
        records: AssetRecords,
        files: AssetBucket | None,
        *,
        base_url: str,
        clock: Clock,
        used_by: Callable[[str], list[dict[str, str]]] | None = None,
    ) -> None:
        self.records = records
        self._files = files
        self.base_url = base_url.rstrip("/")
        self.clock = clock
        self.used_by = used_by or (lambda name: [])

    @property
    def files(self) -> AssetBucket:
        if self._files is None:
            raise Unavailable("the asset library is not configured here (ASSETS_BUCKET)")
        return self._files

    def _asset(self, name: str) -> Asset:
        asset = self.records.asset(name) if re.fullmatch(ASSET_NAME, name) else None
        if asset is None:
            raise NotFound(f"no asset '{name[:64]}'")
        return asset

    def _version(self, asset: Asset, number: int) -> AssetVersion:
        version = self.records.version(asset.name, number) if 1 <= number <= asset.latest else None
        if version is None:
            raise NotFound(f"asset '{asset.name}' has no version {number} (the latest is {asset.latest})")
        return version

    # ---------------------------------------------------------------- uploads
    def _content(
        self, name: str, number: int, kind: AssetKind, body: AssetContent, caller: Caller
    ) -> tuple[AssetVersion, bytes | None]:
        """The new version's facts, and its bytes when sent inline (checked here; a presigned
        upload is checked when the version is submitted)."""
        problem = rules.content_type_problem(kind, body.content_type)
        if problem:
            raise refuse("/content_type", problem)
        data: bytes | None = None
        if body.data is not None:
            data = rules.decode_inline(body.data)
            if data is None:
                raise refuse("/data", "`data` is not valid base64 (standard alphabet, padded)")
            size = len(data)
            if body.size is not None and body.size != size:
                raise refuse("/size", f"`size` says {body.size} bytes; `data` holds {size}")
        elif body.size is None:
            raise refuse("/size", "give the file as base64 in `data`, or its `size` for a presigned upload")
        else:
            size = body.size
        problem = rules.size_problem(kind, size, inline=data is not None)
        if problem:
            raise refuse("/data" if data is not None else "/size", problem)
        digest = None
        if data is not None:
            problem = rules.sniff_problem(body.content_type, data[: rules.SNIFF_BYTES]) or rules.text_problem(
                body.content_type, data
            )
            if problem:
                raise refuse("/data", problem)
            digest = hashlib.sha256(data).hexdigest()
            if body.sha256 is not None and body.sha256 != digest:
                raise refuse("/sha256", f"`sha256` does not match the file sent (its sha256 is {digest})")
        version = AssetVersion(
            name=name,
            version=number,
            content_type=body.content_type,
            size=size,
            sha256=digest or body.sha256,
            filename=body.filename or rules.default_filename(name, body.content_type),
            uploaded=data is not None,
            created_at=iso(self.clock()),
            created_by=caller.key_id,
        )
        return version, data

    def _store_file(self, version: AssetVersion, data: bytes | None) -> tuple[AssetVersion, dict[str, Any] | None]:
        """The version with its stored file's ETag, or with the presigned upload to send it to."""
        key = rules.draft_key(version.name, version.version)
        if data is not None:
            return version.model_copy(update={"etag": self.files.put(key, data, version.content_type)}), None
        url = self.files.upload_url(key, version.content_type, version.size, UPLOAD_URL_SECONDS)
        headers = {"content-type": version.content_type, "content-length": str(version.size)}
        return version, {"method": "PUT", "url": url, "headers": headers, "expiresIn": UPLOAD_URL_SECONDS}

    def create(self, body: AssetCreate, caller: Caller) -> dict[str, Any]:
        if self.records.asset(body.name) is not None:
            raise Conflict(
                f"asset '{body.name}' exists; POST /v1/assets/{body.name}/versions uploads a new version",
                code="asset_exists",
            )
        version, data = self._content(body.name, 1, body.kind, body, caller)
        version, upload = self._store_file(version, data)
        now = iso(self.clock())
        asset = Asset(
            name=body.name,
            kind=body.kind,
            description=body.description,
            tags=list(dict.fromkeys(body.tags or [])),
            created_at=now,
            updated_at=now,
        )
        try:
            asset = self.records.write(asset, None, [version])
        except Stale as error:
            raise Conflict(f"asset '{body.name}' was just created by another call", code="asset_exists") from error
        return self._answer(asset, version, upload)

    def add_version(self, name: str, body: AssetContent, caller: Caller) -> dict[str, Any]:
        """A new draft version; the published one (if any) stays published until this one is."""
        for _ in range(_RETRIES):
            asset = self._asset(name)
            version, data = self._content(name, asset.latest + 1, asset.kind, body, caller)
            changed = asset.model_copy(update={"latest": version.version, "updated_at": iso(self.clock())})
            if body.tags is not None:
                changed.tags = list(dict.fromkeys(body.tags))
            version, upload = self._store_file(version, data)
            try:
                return self._answer(self.records.write(changed, asset.revision, [version]), version, upload)
            except Stale:
                continue
        raise Unavailable(f"asset '{name}' is changing too often; try again")

    # ---------------------------------------------------------------- review
    def submit(self, name: str, body: AssetReview, caller: Caller) -> dict[str, Any]:
        return self._step(name, body.version, "submit", caller, body.note)

    def approve(self, name: str, body: AssetReview, caller: Caller) -> dict[str, Any]:
        return self._step(name, body.version, "approve", caller, body.note)

    def reject(self, name: str, body: AssetRejection, caller: Caller) -> dict[str, Any]:
        return self._step(name, body.version, "reject", caller, body.reason)

    def publish(self, name: str, body: AssetVersionRef, caller: Caller) -> dict[str, Any]:
        return self._step(name, body.version, "publish", caller, "")

    def _step(self, name: str, number: int, action: rules.Action, caller: Caller, note: str) -> dict[str, Any]:
        copied: list[str] = []  # the public files this step wrote
        try:
            return self._steps(name, number, action, caller, note, copied)
        except Exception:
            if copied:
                try:
                    self._withdraw_unpublished(name, number, copied[-1])
                except Exception:  # the step's own failure is what the caller must hear
                    logger.exception("asset publish: the copied file could not be withdrawn", key=copied[-1])
            raise

    def _withdraw_unpublished(self, name: str, number: int, key: str) -> None:
        """A publish that lost its write race and then could not publish (the version was
        rejected, or changed too often) leaves no file under public/ for a version that was
        never published. A version some other step published keeps it: that step's record
        names the same file, and a version's state only allows a publish to win while it has
        not been published, so no winning publish can still be on its way when this one reads
        the version as never published."""
        asset = self.records.asset(name)
        current = self.records.version(name, number) if asset is not None else None
        if current is None or current.published_at is None:
            self.files.remove(key)

    def _steps(
        self, name: str, number: int, action: rules.Action, caller: Caller, note: str, copied: list[str]
    ) -> dict[str, Any]:
        for _ in range(_RETRIES):
            asset = self._asset(name)
            version = self._version(asset, number)
            if action == "submit" and not version.uploaded and version.state in ("draft", "rejected"):
                version = self._received(version)
            step = rules.transition(version, action, caller, iso(self.clock()), note)
            changed, versions = asset.model_copy(update={"updated_at": iso(self.clock())}), [step.version]
            if action == "publish":
                target = rules.public_key(name, number, version.filename)
                self.files.publish(rules.draft_key(name, number), target, version.content_type, version.etag or "")
                copied.append(target)
                if asset.published is not None and asset.published != number:
                    before = self._version(asset, asset.published)
                    versions.append(before.model_copy(update={"state": "archived"}))
                changed.published = number
                changed.archived = False
            try:
                saved = self.records.write(changed, asset.revision, versions)
            except Stale:
                continue
            return self._answer(saved, step.version, None)
        raise Unavailable(f"asset '{name}' is changing too often; try again")

    def _received(self, version: AssetVersion) -> AssetVersion:
        """A presigned upload, checked as an inline one is: there, of the declared size, its first
        bytes those of its type, its digest the declared one."""
        key = rules.draft_key(version.name, version.version)
        found = self.files.stat(key)
        if found is None:
            return version  # the transition refuses it: no file yet
        size, etag = found
        if size != version.size:
            raise refuse("/version", f"the uploaded file has {size} bytes; the version declared {version.size}")
        # Every read is of that one object (its ETag): a file PUT again meanwhile fails the check.
        problem = rules.sniff_problem(version.content_type, self.files.head(key, rules.SNIFF_BYTES, etag))
        if problem is None and rules.media_type(version.content_type).startswith("text/"):
            problem = rules.text_problem(version.content_type, self.files.read(key, etag))
        if problem:
            raise refuse("/version", f"the uploaded file: {problem}")
        digest = self.files.sha256(key, etag)
        if version.sha256 is not None and version.sha256 != digest:
            raise refuse("/version", f"the uploaded file's sha256 is {digest}, not the one declared")
        return version.model_copy(update={"uploaded": True, "sha256": digest, "etag": etag})

    def archive(self, name: str, caller: Caller) -> dict[str, Any]:
        """Withdraw the published version: templates can no longer be saved naming the asset. Its
        file stays where it is served, so messages already sent keep showing it."""
        for _ in range(_RETRIES):
            asset = self._asset(name)
            versions = []
            if asset.published is not None:
                versions.append(self._version(asset, asset.published).model_copy(update={"state": "archived"}))
            changed = asset.model_copy(update={"published": None, "archived": True, "updated_at": iso(self.clock())})
            try:
                return self.get(self.records.write(changed, asset.revision, versions).name)
            except Stale:
                continue
        raise Unavailable(f"asset '{name}' is changing too often; try again")

    # ---------------------------------------------------------------- reading
    def url(self, asset: Asset) -> str | None:
        """Where the published version is served, or None when none is."""
        if asset.published is None:
            return None
        version = self.records.version(asset.name, asset.published)
        return self._served(version) if version is not None else None

    def _served(self, version: AssetVersion) -> str:
        key = rules.public_key(version.name, version.version, version.filename)
        if self.base_url:
            return f"{self.base_url}/{key}"
        return self.files.download_url(key, PRESIGNED_SERVE_SECONDS)

    def published_url(self, name: str) -> str | None:
        """The URL a template gets for `asset('<name>')`: None unless the asset is published."""
        asset = self.records.asset(name) if re.fullmatch(ASSET_NAME, name) else None
        return self.url(asset) if asset is not None and not asset.archived else None

    def list(self, kind: str | None, tag: str | None) -> dict[str, Any]:
        chosen = [
            a for a in self.records.assets() if (kind is None or a.kind == kind) and (tag is None or tag in a.tags)
        ]
        return {"assets": [_summary(a) for a in chosen]}

    def get(self, name: str) -> dict[str, Any]:
        asset = self._asset(name)
        versions = self.records.versions(name, VERSIONS_SHOWN)
        shown = [self._version_view(v) for v in versions]
        return {**_summary(asset), "url": self.url(asset), "versions": shown, "usedBy": self.used_by(name)}

    def _version_view(self, version: AssetVersion) -> dict[str, Any]:
        view = _version_json(version)
        if version.uploaded and self._files is not None:
            # Reviewers look at the file before it is published: a short-lived link to the draft.
            view["previewUrl"] = self.files.download_url(
                rules.draft_key(version.name, version.version), PREVIEW_URL_SECONDS
            )
        if version.state in ("published", "archived") and version.published_at:
            view["url"] = self._served(version)
        return view

    def _answer(self, asset: Asset, version: AssetVersion, upload: dict[str, Any] | None) -> dict[str, Any]:
        answer: dict[str, Any] = {**_summary(asset), "version": _version_json(version)}
        if version.state == "published":
            answer["url"] = self._served(version)
        if upload is not None:
            answer["upload"] = upload
        return answer


def _summary(asset: Asset) -> dict[str, Any]:
    return {
        "name": asset.name,
        "kind": asset.kind,
        "description": asset.description,
        "tags": asset.tags,
        "latestVersion": asset.latest,
        "publishedVersion": asset.published,
        "archived": asset.archived,
        "createdAt": asset.created_at,
        "updatedAt": asset.updated_at,
    }


def _version_json(version: AssetVersion) -> dict[str, Any]:
    return {
        "version": version.version,
        "state": version.state,
        "contentType": version.content_type,
        "size": version.size,
        "sha256": version.sha256,
        "filename": version.filename,
        "uploaded": version.uploaded,
        "createdAt": version.created_at,
        "createdBy": version.created_by,
        "submittedBy": version.submitted_by,
        "reviewedBy": version.reviewed_by,
        "reviewNote": version.review_note,
        "publishedAt": version.published_at,
    }


def names_in_use(templates: Iterable[dict[str, Any]], name: str) -> list[dict[str, str]]:
    """The templates whose latest or approved version names the asset."""
    used: list[dict[str, str]] = []
    for entry in templates:
        for which in ("latest", "approved"):
            doc = entry.get(which) or {}
            found = {"kind": "template", "id": str(doc.get("id")), "version": str(doc.get("version"))}
            if name in (doc.get("assets") or {}) and found not in used:
                used.append(found)
    return used
