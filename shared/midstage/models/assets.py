"""The asset library: images, video, copy and files uploaded once, reviewed, approved and published,
then referenced by templates (`{{ asset('hero-banner') }}`). docs/assets.md describes the model."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from midstage.models.messaging import _ID, _TAG

ASSET_NAME = _ID
AssetKind = Literal["image", "video", "copy", "file"]
# A version's state; the asset as a whole has at most one published version at a time.
AssetState = Literal["draft", "in_review", "approved", "published", "rejected", "archived"]
SHA256 = r"^[0-9a-f]{64}$"
Tag = Annotated[str, Field(pattern=_TAG)]
CONTENT_TYPE = r"^[a-z]+/[a-z0-9.+-]{1,100}(; ?charset=[A-Za-z0-9_-]{1,40})?$"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AssetContent(_Body):
    """One version's file: inline as base64 (`data`, small files), or uploaded afterwards to the
    presigned PUT URL the answer gives (`size` declared, and `sha256` if known)."""

    content_type: str = Field(pattern=CONTENT_TYPE, max_length=160)
    data: str | None = Field(default=None, description="the file as base64 (standard alphabet, padded)")
    size: StrictInt | None = Field(default=None, ge=1, description="bytes; for a presigned upload")
    sha256: str | None = Field(default=None, pattern=SHA256, description="checked when the file arrives")
    filename: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
    tags: list[Tag] | None = Field(default=None, max_length=20, description="replace the asset's tags")


class AssetCreate(AssetContent):
    name: str = Field(pattern=ASSET_NAME, description="the asset's name, which templates use")
    kind: AssetKind
    description: str = Field(default="", max_length=1000)


class AssetVersionRef(_Body):
    version: StrictInt = Field(ge=1)


class AssetReview(AssetVersionRef):
    note: str = Field(default="", max_length=1000)


class AssetRejection(AssetVersionRef):
    reason: str = Field(min_length=1, max_length=1000)


class AssetVersion(BaseModel):
    """One stored version: its file's facts and where it is in the review flow."""

    model_config = ConfigDict(extra="ignore")

    name: str
    version: int
    state: AssetState = "draft"
    content_type: str
    size: int
    sha256: str | None = None
    filename: str
    uploaded: bool = False  # the file is in the bucket and passed the checks
    # The S3 ETag of the file that passed the checks: publishing copies that object or nothing (a
    # presigned URL may still be used to PUT another file after the checks).
    etag: str | None = None
    created_at: str
    created_by: str
    submitted_at: str | None = None
    submitted_by: str | None = None
    reviewed_at: str | None = None
    reviewed_by: str | None = None
    review_note: str = ""
    published_at: str | None = None
    published_by: str | None = None


class Asset(BaseModel):
    """The asset: its name, kind and tags, its latest version and the one published (if any)."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(pattern=ASSET_NAME)
    kind: AssetKind
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    latest: int = 1
    published: int | None = None
    archived: bool = False
    created_at: str
    updated_at: str
    revision: int = 0  # moved by every write (a conditional write's guard)
