"""The asset library's pure decisions: what a file may be, and the review flow of a version."""

from __future__ import annotations

import base64

import pytest

from infra.localcloud.cloud import local_assets
from midstage.errors import AssetStateError, Forbidden
from midstage.logic import assets
from midstage.logic import templates as template_logic
from midstage.models.admin import Caller, RoleRank
from midstage.models.assets import AssetVersion

NOW = "2026-11-22T10:00:00.000Z"
WRITER = Caller("key-writer", RoleRank.marketer)
REVIEWER = Caller("key-reviewer", RoleRank.data_operator)


def version(state: str = "draft", *, uploaded: bool = True, submitted_by: str | None = None) -> AssetVersion:
    return AssetVersion.model_validate(
        {
            "name": "hero-banner",
            "version": 1,
            "state": state,
            "content_type": "image/png",
            "size": 70,
            "filename": "hero-banner.png",
            "uploaded": uploaded,
            "created_at": NOW,
            "created_by": WRITER.key_id,
            "submitted_by": submitted_by,
        }
    )


# ------------------------------------------------------------------------------ sniffing
@pytest.mark.parametrize(
    ("head", "found"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image/png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
        (b"GIF87a\x01\x00", "image/gif"),
        (b"GIF89a\x01\x00", "image/gif"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"\x00\x00\x00\x20ftypisom", "video/mp4"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81", "video/webm"),
        (b"%PDF-1.7\n", "application/pdf"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", None),
        (b"<svg xmlns=", None),
        (b"", None),
    ],
)
def test_first_bytes_name_their_format(head: bytes, found: str | None) -> None:
    assert assets.sniffed_type(head) == found


def test_an_image_whose_bytes_are_another_format_is_refused() -> None:
    assert assets.sniff_problem("image/png", b"GIF89a\x01\x00") == (
        "declared image/png, but the file's first bytes are image/gif"
    )
    assert assets.sniff_problem("image/jpeg", b"<svg onload=alert(1)>") is not None
    assert assets.sniff_problem("image/png", b"\x89PNG\r\n\x1a\n....") is None


def test_text_must_not_be_a_binary_format_or_markup() -> None:
    assert assets.sniff_problem("text/plain; charset=utf-8", b"Spring sale: 20 % off") is None
    assert assets.sniff_problem("text/plain", b"%PDF-1.4") is not None
    assert assets.sniff_problem("text/markdown", b"  <SVG viewBox='0 0 1 1'>") is not None
    assert assets.sniff_problem("text/plain", b"<!DOCTYPE html><html>") is not None
    assert assets.text_problem("text/plain", "café".encode()) is None
    assert assets.text_problem("text/plain", b"caf\xe9") == "a text file must be UTF-8"
    assert assets.text_problem("image/png", b"\xff") is None


def test_svg_is_refused_with_the_reason_and_types_are_checked_by_kind() -> None:
    assert "scripts" in (assets.content_type_problem("image", "image/svg+xml") or "")
    assert assets.content_type_problem("image", "IMAGE/PNG") is None
    assert assets.content_type_problem("copy", "text/plain; charset=utf-8") is None
    assert assets.content_type_problem("copy", "text/html") is not None
    assert assets.content_type_problem("image", "video/mp4") is not None
    assert assets.content_type_problem("file", "application/x-msdownload") is not None


def test_sizes_are_capped_by_kind_and_more_tightly_inline() -> None:
    assert assets.size_problem("image", 10 * assets.MiB, inline=False) is None
    assert assets.size_problem("image", 10 * assets.MiB + 1, inline=False) is not None
    assert assets.size_problem("image", assets.INLINE_MAX + 1, inline=True) is not None
    assert assets.size_problem("video", 150 * assets.MiB, inline=False) is None
    assert assets.size_problem("copy", 0, inline=True) == "the file is empty"


def test_base64_is_strict() -> None:
    assert assets.decode_inline(base64.b64encode(b"\x89PNG").decode()) == b"\x89PNG"
    assert assets.decode_inline("not base64!!") is None
    assert assets.decode_inline("QUJD") == b"ABC"
    assert assets.decode_inline("QUJ") is None  # unpadded
    assert assets.decode_inline("Q\u00e9JD") is None  # not ASCII


# ------------------------------------------------------------------------------ review flow
def test_a_version_goes_draft_in_review_approved_published() -> None:
    submitted = assets.transition(version(), "submit", WRITER, NOW).version
    approved = assets.transition(submitted, "approve", REVIEWER, NOW, "fine").version
    published = assets.transition(approved, "publish", WRITER, NOW).version

    assert [submitted.state, approved.state, published.state] == ["in_review", "approved", "published"]
    assert submitted.submitted_by == WRITER.key_id and approved.reviewed_by == REVIEWER.key_id
    assert approved.review_note == "fine" and published.published_at == NOW


@pytest.mark.parametrize(
    ("state", "action"),
    [
        ("draft", "approve"),
        ("draft", "publish"),
        ("in_review", "publish"),
        ("approved", "submit"),
        ("published", "submit"),
        ("published", "approve"),
        ("archived", "publish"),
        ("rejected", "approve"),
    ],
)
def test_actions_from_the_wrong_state_are_refused(state: str, action: assets.Action) -> None:
    with pytest.raises(AssetStateError) as refused:
        assets.transition(version(state, submitted_by=WRITER.key_id), action, REVIEWER, NOW)
    assert refused.value.status == 409 and refused.value.code == "invalid_asset_state"


def test_a_rejected_version_can_be_submitted_again() -> None:
    rejected = assets.transition(version("in_review", submitted_by=WRITER.key_id), "reject", REVIEWER, NOW, "blurry")
    assert rejected.version.state == "rejected" and rejected.version.review_note == "blurry"
    assert assets.transition(rejected.version, "submit", WRITER, NOW).version.state == "in_review"


def test_the_submitting_key_cannot_review_its_own_version_whatever_its_role() -> None:
    admin = Caller("key-admin", RoleRank.admin)
    mine = version("in_review", submitted_by=admin.key_id)

    for action in ("approve", "reject"):
        with pytest.raises(Forbidden) as refused:
            assets.transition(mine, action, admin, NOW)  # type: ignore[arg-type]
        assert refused.value.code == "self_review"
    with pytest.raises(Forbidden):
        assets.transition(version("in_review", submitted_by="someone"), "approve", WRITER, NOW)


def test_a_version_without_its_file_cannot_go_on() -> None:
    with pytest.raises(AssetStateError) as refused:
        assets.transition(version(uploaded=False), "submit", WRITER, NOW)
    assert refused.value.code == "asset_not_uploaded"


def test_published_files_have_a_path_per_version_and_drafts_are_apart() -> None:
    assert assets.public_key("hero-banner", 2, "hero.png") == "public/hero-banner/v2/hero.png"
    assert not assets.draft_key("hero-banner", 2).startswith("public/")
    assert assets.default_filename("hero-banner", "image/jpeg") == "hero-banner.jpg"


# ------------------------------------------------------------------------------ templates
def test_templates_name_assets_only_by_a_literal_name() -> None:
    locales = {"en": {"subject": "Hi", "html": "<img src=\"{{ asset('hero-banner') }}\">{{ asset('logo') }}"}}
    assert template_logic.assets_named("email", locales) == ["hero-banner", "logo"]
    found = template_logic.check_template("email", {"en": {"subject": "Hi", "html": "{{ asset(vars.x) }}"}}, {})
    assert any("asset() takes one asset name" in issue.message for issue in found)


def test_a_rendered_template_shows_the_url_it_was_saved_with() -> None:
    context = template_logic.RenderContext(assets={"hero-banner": "https://cdn.example/public/hero-banner/v1/h.png"})
    rendered = template_logic.render(
        "email",
        {"en": {"subject": "Hi", "html": "<img src=\"{{ asset('hero-banner') }}\">", "text": "x"}},
        {},
        locale="en",
        default_locale="en",
        context=context,
        timer=lambda: 0.0,
    )
    assert 'src="https://cdn.example/public/hero-banner/v1/h.png"' in rendered.fields["html"]
    with pytest.raises(template_logic.RenderError):
        template_logic.render(
            "email",
            {"en": {"subject": "Hi", "html": "{{ asset('other') }}", "text": "x"}},
            {},
            locale="en",
            default_locale="en",
            context=context,
            timer=lambda: 0.0,
        )


# ------------------------------------------------------------------------------ local cloud
def test_the_local_cloud_serves_published_assets_from_its_own_s3() -> None:
    environment = {"ASSETS_BUCKET": "stack-assetsbucket", "ASSETS_BASE_URL": "https://d1.cloudfront.net"}
    assert local_assets(environment, "http://127.0.0.1:5000/") == {
        "ASSETS_BASE_URL": "http://127.0.0.1:5000/stack-assetsbucket"
    }
    assert local_assets({"ASSETS_BUCKET": "b"}, "http://127.0.0.1:5000") == {}
