"""The asset library's decisions: which files are accepted (content types by kind, sizes, the
first bytes of an image against its declared type), and the review flow of a version.

Pure: the service reads the bucket and the table and hands the facts here.

SVG is refused, not sanitised: an SVG is a document that may carry scripts and links, and
served from the assets' domain it would run there. A raster export (PNG, WebP) is the safe form.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from midstage.errors import AssetStateError, Forbidden
from midstage.models.admin import Caller, RoleRank
from midstage.models.assets import AssetKind, AssetVersion

MiB = 1024 * 1024
# What each kind accepts. Copy is plain text: HTML served from the assets' domain could script it.
ALLOWED_TYPES: Mapping[AssetKind, frozenset[str]] = {
    "image": frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"}),
    "video": frozenset({"video/mp4", "video/webm"}),
    "copy": frozenset({"text/plain", "text/markdown"}),
    "file": frozenset({"application/pdf", "text/plain", "text/csv"}),
}
# The largest file of each kind (presigned uploads); a file sent inline, as base64 in the JSON
# body, is at most INLINE_MAX (the body then stays under Lambda's 6 MB request limit).
MAX_SIZE: Mapping[AssetKind, int] = {"image": 10 * MiB, "video": 200 * MiB, "copy": 1 * MiB, "file": 50 * MiB}
INLINE_MAX = 3 * MiB
# How many first bytes the sniff reads.
SNIFF_BYTES = 16

Action = Literal["submit", "approve", "reject", "publish"]
# Each action: the states it starts from and the state it leads to.
TRANSITIONS: Mapping[Action, tuple[frozenset[str], str]] = {
    "submit": (frozenset({"draft", "rejected"}), "in_review"),
    "approve": (frozenset({"in_review"}), "approved"),
    "reject": (frozenset({"in_review"}), "rejected"),
    "publish": (frozenset({"approved"}), "published"),
}
# Reviewing needs a higher role than writing (the routes declare it) and another key than the
# one that submitted the version.
REVIEW_ROLE = RoleRank.data_operator


def media_type(content_type: str) -> str:
    """`text/plain; charset=utf-8` -> `text/plain`."""
    return content_type.split(";", 1)[0].strip().lower()


def content_type_problem(kind: AssetKind, content_type: str) -> str | None:
    base = media_type(content_type)
    if base == "image/svg+xml":
        return "SVG is not accepted (it can carry scripts); upload a PNG or WebP export"
    allowed = ALLOWED_TYPES[kind]
    if base not in allowed:
        return f"a {kind} asset is one of {', '.join(sorted(allowed))}, not {base}"
    return None


def size_problem(kind: AssetKind, size: int, *, inline: bool) -> str | None:
    cap = min(MAX_SIZE[kind], INLINE_MAX) if inline else MAX_SIZE[kind]
    if size > cap:
        if inline:
            return (
                f"a {kind} file sent inline is at most {cap} bytes; this one is {size} "
                "(larger files go through the presigned upload: give `size`, not `data`)"
            )
        return f"a {kind} file is at most {cap} bytes; this one is {size}"
    if size < 1:
        return "the file is empty"
    return None


def decode_inline(data: str) -> bytes | None:
    """The bytes of a base64 `data` field (standard alphabet, padding required), or None."""
    try:
        return base64.b64decode(data.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None


def sniffed_type(head: bytes) -> str | None:
    """The media type the first bytes announce, for the types whose signature is known."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp":
        return "video/mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    return None


def sniff_problem(content_type: str, head: bytes) -> str | None:
    """Why the first bytes do not fit the declared type (None: they do). Binary types must show
    their signature; text must not start like a known binary type or an SVG/HTML document."""
    declared = media_type(content_type)
    found = sniffed_type(head)
    if declared.startswith("text/"):
        if found is not None:
            return f"declared {declared}, but the file starts like {found}"
        lead = head.lstrip().lower()
        if lead.startswith((b"<svg", b"<?xml", b"<!doctype html", b"<html", b"<script")):
            return f"declared {declared}, but the file is markup (SVG, XML or HTML are not accepted)"
        return None
    if found != declared:
        shown = found or "no known format"
        return f"declared {declared}, but the file's first bytes are {shown}"
    return None


def text_problem(content_type: str, body: bytes) -> str | None:
    """Text assets are UTF-8."""
    if not media_type(content_type).startswith("text/"):
        return None
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return "a text file must be UTF-8"
    return None


@dataclass(frozen=True)
class Step:
    """A review action's outcome: the version as it becomes."""

    version: AssetVersion
    action: Action


def transition(version: AssetVersion, action: Action, caller: Caller, now: str, note: str = "") -> Step:
    """Move a version along the review flow, or refuse: from a state the action does not start
    from (409 `invalid_asset_state`), or an approval or rejection by the key that submitted it
    (403 `self_review`)."""
    starts, ends = TRANSITIONS[action]
    if version.state not in starts:
        raise AssetStateError(
            f"asset '{version.name}' version {version.version} is {version.state}; "
            f"{action} needs it {' or '.join(sorted(starts))}"
        )
    if not version.uploaded and action in ("submit", "approve", "publish"):
        raise AssetStateError(
            f"asset '{version.name}' version {version.version} has no file yet: PUT it to the upload URL first",
            code="asset_not_uploaded",
        )
    changes: dict[str, object] = {"state": ends}
    if action == "submit":
        changes |= {"submitted_at": now, "submitted_by": caller.key_id, "review_note": note}
    elif action in ("approve", "reject"):
        if caller.role < REVIEW_ROLE:
            raise Forbidden(f"reviewing an asset needs the {REVIEW_ROLE.name} role")
        if caller.key_id == version.submitted_by:
            raise Forbidden(
                f"asset '{version.name}' version {version.version} was submitted with this key; "
                "another key must review it",
                code="self_review",
            )
        changes |= {"reviewed_at": now, "reviewed_by": caller.key_id, "review_note": note}
    else:
        changes |= {"published_at": now, "published_by": caller.key_id}
    return Step(version.model_copy(update=changes), action)


def draft_key(name: str, version: int) -> str:
    """Where a version's file is uploaded: never served."""
    return f"drafts/{name}/v{version}"


def public_key(name: str, version: int, filename: str) -> str:
    """Where a published version's file is served from (the distribution reads only public/).
    Each version has its own path, so a message sent with v1 keeps its file when v2 is published."""
    return f"public/{name}/v{version}/{filename}"


def default_filename(name: str, content_type: str) -> str:
    extension = {
        "image/png": "png",
        "image/jpeg": "jpg",
        "image/gif": "gif",
        "image/webp": "webp",
        "video/mp4": "mp4",
        "video/webm": "webm",
        "text/plain": "txt",
        "text/markdown": "md",
        "text/csv": "csv",
        "application/pdf": "pdf",
    }.get(media_type(content_type), "bin")
    return f"{name}.{extension}"
