"""The asset library on moto, through the real admin handler: upload (inline and presigned), the
review flow by role and by key, publishing and where a published file is served, templates that
name an asset, and hostile uploads refused with a clear 4xx."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlparse

import pytest
import requests
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from midstage.adapters.config_store import ConfigStore
from midstage.logic.timefmt import iso
from midstage.models.messaging import MessageRequest, Origin
from midstage.models.profile import Profile
from tests.integration.conftest import Context, Stack, sample
from tests.integration.test_admin_messaging import ROLES, Answer, Api
from tests.integration.test_campaign_runs import CONSENT, ENTERED, Rig, rig, sqs_event
from tests.integration.test_delivery_holds import Clock
from tests.integration.test_offer_delivery import html_of
from tests.integration.test_offers import documented

__all__ = ["rig"]  # the campaign-run tests' fixture, used by name

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
# A 1x1 PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
GIF = base64.b64decode("R0lGODlhAQABAIAAAP///wAAACH5BAAAAAAALAAAAAABAAEAAAICRAEAOw==")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def admin_api(stack: Stack) -> Api:
    config = ConfigStore(stack.output("ConfigTableName"), client=stack.clients.dynamodb())
    for role in ROLES:
        config.create_api_key(role, role, f"msk_{role}", now=NOW)
    # A second reviewer key, to tell "another key" from "a higher role".
    config.create_api_key("reviewer-2", "data_operator", "msk_reviewer2", now=NOW)
    return Api(stack, stack.load("AdminFunction"))


@pytest.fixture
def api(stack: Stack) -> Api:
    stack.load("ProfileUpdaterFunction").lambda_handler(sample("profile_updater", "sqs-batch"), Context())
    return admin_api(stack)


def served(api: Api, url: str) -> bytes:
    """What the assets' domain answers for a URL: the object at its path in the bucket, which the
    distribution (locally, the local cloud's S3) reads. Only public/ is readable through it."""
    key = urlparse(url).path.lstrip("/")
    assert key.startswith("public/"), url
    s3 = api.stack.clients.s3()
    body: bytes = s3.get_object(Bucket=api.stack.output("AssetsBucketName"), Key=key)["Body"].read()
    return body


def upload_png(api: Api, name: str = "hero-banner", **extra: Any) -> Answer:
    body = {"name": name, "kind": "image", "content_type": "image/png", "data": b64(PNG), "tags": ["hero"], **extra}
    return api.post("/v1/assets", body, role="marketer")


def publish(api: Api, name: str, version: int) -> Answer:
    assert api.post(f"/v1/assets/{name}/submit", {"version": version}, role="marketer").status == 200
    approved = api.post(f"/v1/assets/{name}/approve", {"version": version}, role="data_operator")
    assert approved.status == 200, approved.body
    return api.post(f"/v1/assets/{name}/publish", {"version": version}, role="marketer")


# ------------------------------------------------------------------------------ the flow
def test_an_image_goes_from_upload_through_review_to_a_served_url(api: Api) -> None:
    # Given a marketer uploads a PNG
    created = upload_png(api)
    assert created.status == 201, created.body
    documented(created, "AssetAnswer")
    assert created["version"]["state"] == "draft" and created["version"]["uploaded"] is True
    assert created["version"]["sha256"] == hashlib.sha256(PNG).hexdigest()
    assert "url" not in created.body  # a draft is not served

    # When it is submitted, approved by a data operator and published
    submitted = api.post("/v1/assets/hero-banner/submit", {"version": 1}, role="marketer")
    assert submitted["version"]["state"] == "in_review"
    approved = api.post("/v1/assets/hero-banner/approve", {"version": 1, "note": "ok"}, role="data_operator")
    assert approved["version"]["state"] == "approved"
    assert approved["version"]["reviewedBy"] not in (None, approved["version"]["submittedBy"])
    published = api.post("/v1/assets/hero-banner/publish", {"version": 1}, role="marketer")

    # Then it has a URL on the assets' domain, which serves the file
    assert published.status == 200, published.body
    url = published["url"]
    assert url.startswith("https://") and url.endswith("/public/hero-banner/v1/hero-banner.png")
    assert served(api, url) == PNG
    shown = api.get("/v1/assets/hero-banner", role="viewer")
    documented(shown, "Asset")
    assert shown["publishedVersion"] == 1 and shown["url"] == url
    assert [a["name"] for a in documented(api.get("/v1/assets", role="viewer"), "AssetList")["assets"]] == [
        "hero-banner"
    ]


def test_a_new_version_of_a_published_asset_is_a_draft_and_the_published_one_stays_served(api: Api) -> None:
    upload_png(api)
    first = publish(api, "hero-banner", 1)["url"]

    second = api.post("/v1/assets/hero-banner/versions", {"content_type": "image/gif", "data": b64(GIF)})

    assert second.status == 201 and second["version"]["version"] == 2 and second["version"]["state"] == "draft"
    shown = api.get("/v1/assets/hero-banner")
    assert shown["publishedVersion"] == 1 and shown["url"] == first
    # And once v2 is published, v1 is archived but its file is still served (sent emails keep it)
    newer = publish(api, "hero-banner", 2)["url"]
    assert newer != first and served(api, newer) == GIF and served(api, first) == PNG
    states = {v["version"]: v["state"] for v in api.get("/v1/assets/hero-banner")["versions"]}
    assert states == {1: "archived", 2: "published"}


def test_the_key_that_submitted_a_version_cannot_approve_it(api: Api) -> None:
    upload_png(api)
    api.post("/v1/assets/hero-banner/submit", {"version": 1}, role="data_operator")

    own = api.post("/v1/assets/hero-banner/approve", {"version": 1}, role="data_operator")
    marketer = api.post("/v1/assets/hero-banner/approve", {"version": 1}, role="marketer")
    other = api.call(
        "POST",
        "/v1/assets/hero-banner/approve",
        {"version": 1},
        role=None,
        headers={"authorization": "Bearer msk_reviewer2"},
    )

    assert own.status == 403 and own["code"] == "self_review"
    assert marketer.status == 403 and marketer["code"] == "forbidden"
    assert other.status == 200
    assert other["version"]["reviewedBy"] not in (None, other["version"]["submittedBy"])


def test_states_are_kept_in_order_and_a_rejection_can_be_resubmitted(api: Api) -> None:
    upload_png(api)
    assert api.post("/v1/assets/hero-banner/publish", {"version": 1})["code"] == "invalid_asset_state"
    assert api.post("/v1/assets/hero-banner/approve", {"version": 1}, role="data_operator").status == 409
    api.post("/v1/assets/hero-banner/submit", {"version": 1}, role="marketer")
    rejected = api.post("/v1/assets/hero-banner/reject", {"version": 1, "reason": "blurry"}, role="data_operator")
    assert rejected["version"]["state"] == "rejected" and rejected["version"]["reviewNote"] == "blurry"
    assert api.post("/v1/assets/hero-banner/submit", {"version": 1}, role="marketer")["version"]["state"] == "in_review"
    assert api.post("/v1/assets/hero-banner/submit", {"version": 9}, role="marketer").status == 404


def test_an_unpublished_asset_has_no_url_and_its_file_is_not_under_public(api: Api) -> None:
    upload_png(api)
    api.post("/v1/assets/hero-banner/submit", {"version": 1}, role="marketer")
    api.post("/v1/assets/hero-banner/approve", {"version": 1}, role="data_operator")

    shown = api.get("/v1/assets/hero-banner")

    assert shown["url"] is None and "url" not in shown["versions"][0]
    assert "previewUrl" in shown["versions"][0]  # reviewers see the draft through a short-lived link
    s3 = api.stack.clients.s3()
    listed = s3.list_objects_v2(Bucket=api.stack.output("AssetsBucketName"), Prefix="public/")
    assert listed.get("KeyCount", 0) == 0


def test_archiving_withdraws_the_asset_from_new_templates(api: Api) -> None:
    upload_png(api)
    url = publish(api, "hero-banner", 1)["url"]

    archived = api.post("/v1/assets/hero-banner/archive", role="marketer")

    assert archived["publishedVersion"] is None and archived["archived"] is True and archived["url"] is None
    assert served(api, url) == PNG  # messages already sent keep their image
    refused = api.post("/v1/templates", template_naming("hero-banner"), role="marketer")
    assert refused.status == 400 and refused["code"] == "invalid_template"


# ------------------------------------------------------------------------------ presigned uploads
def test_a_large_file_goes_through_a_presigned_put_checked_at_submit(api: Api) -> None:
    # Given an asset declared by size, not sent inline
    created = api.post(
        "/v1/assets",
        {"name": "promo-video", "kind": "video", "content_type": "video/mp4", "size": 64},
        role="marketer",
    )
    assert created.status == 201, created.body
    upload = created["upload"]
    assert upload["method"] == "PUT" and created["version"]["uploaded"] is False
    # A submit before the file is there is refused
    early = api.post("/v1/assets/promo-video/submit", {"version": 1}, role="marketer")
    assert early.status == 409 and early["code"] == "asset_not_uploaded"

    # When the file is PUT to the presigned URL (the bucket and key it names)
    mp4 = b"\x00\x00\x00\x20ftypisom" + bytes(52)
    assert "X-Amz-Signature" in urlparse(upload["url"]).query  # Signature Version 4: headers signed
    put = requests.put(upload["url"], data=mp4, headers=upload["headers"], timeout=10)
    assert put.status_code == 200, put.text

    # Then submitting checks it and records its digest
    submitted = api.post("/v1/assets/promo-video/submit", {"version": 1}, role="marketer")
    assert submitted.status == 200, submitted.body
    assert (
        submitted["version"]["uploaded"] is True and submitted["version"]["sha256"] == hashlib.sha256(mp4).hexdigest()
    )


def test_a_presigned_upload_that_is_not_what_was_declared_is_refused_at_submit(api: Api) -> None:
    created = api.post("/v1/assets", {"name": "pic", "kind": "image", "content_type": "image/png", "size": 12})
    key = "drafts/pic/v1"
    api.stack.clients.s3().put_object(Bucket=api.stack.output("AssetsBucketName"), Key=key, Body=b"<svg></svg>!")
    assert created.status == 201

    refused = api.post("/v1/assets/pic/submit", {"version": 1}, role="marketer")

    assert refused.status == 400 and refused["code"] == "invalid_asset"
    assert api.get("/v1/assets/pic")["versions"][0]["state"] == "draft"


def test_a_file_put_again_after_review_is_not_published(api: Api) -> None:
    # Given a presigned upload, checked at submit and approved
    mp4 = b"\x00\x00\x00\x20ftypisom" + bytes(52)
    created = api.post("/v1/assets", {"name": "clip", "kind": "video", "content_type": "video/mp4", "size": 64})
    upload = created["upload"]
    assert requests.put(upload["url"], data=mp4, headers=upload["headers"], timeout=10).status_code == 200
    assert api.post("/v1/assets/clip/submit", {"version": 1}, role="marketer").status == 200
    assert api.post("/v1/assets/clip/approve", {"version": 1}, role="data_operator").status == 200

    # When other bytes are PUT through the same (still valid) URL before publishing
    other = b"\x00\x00\x00\x20ftypmp42" + bytes(52)
    assert requests.put(upload["url"], data=other, headers=upload["headers"], timeout=10).status_code == 200
    refused = api.post("/v1/assets/clip/publish", {"version": 1}, role="marketer")

    # Then nothing is published
    assert (refused.status, refused["code"]) == (409, "asset_changed"), refused.body
    listed = api.stack.clients.s3().list_objects_v2(Bucket=api.stack.output("AssetsBucketName"), Prefix="public/")
    assert listed.get("KeyCount", 0) == 0
    assert api.get("/v1/assets/clip")["publishedVersion"] is None


# ------------------------------------------------------------------------------ templates
def template_naming(asset: str, template_id: str = "welcome") -> dict[str, Any]:
    html = f'<p>Hi</p><img src="{{{{ asset(\'{asset}\') }}}}" alt="">'
    return {
        "id": template_id,
        "name": "Welcome",
        "channel": "email",
        "locales": {"en": {"subject": "Hi", "html": html, "text": "Hi"}},
    }


def test_a_template_names_a_published_asset_and_renders_its_url(api: Api) -> None:
    upload_png(api)
    url = publish(api, "hero-banner", 1)["url"]

    created = api.post("/v1/templates", template_naming("hero-banner"), role="marketer")

    assert created.status == 201, created.body
    assert created["latest"]["assets"] == {"hero-banner": url}
    preview = api.post("/v1/templates/welcome/preview", {}, role="marketer")
    assert url in preview["fields"]["html"]
    used = api.get("/v1/assets/hero-banner")["usedBy"]
    assert used == [{"kind": "template", "id": "welcome", "version": "1"}]


def test_a_template_naming_an_unknown_or_unpublished_asset_is_refused_where_it_names_it(api: Api) -> None:
    upload_png(api)  # a draft

    draft = api.post("/v1/templates", template_naming("hero-banner"), role="marketer")
    unknown = api.post("/v1/templates", template_naming("nowhere"), role="marketer")
    dynamic = api.post(
        "/v1/templates",
        {**template_naming("x"), "locales": {"en": {"subject": "Hi", "html": "{{ asset(vars.a) }}", "text": "x"}}},
    )

    for answer in (draft, unknown):
        assert answer.status == 400 and answer["code"] == "invalid_template"
        assert answer["issues"][0]["location"] == "/locales/en/html"
    assert dynamic.status == 400 and "asset() takes one asset name" in dynamic["issues"][0]["message"]


# ------------------------------------------------------------------------------ hostile input
@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({"content_type": "image/png", "data": "not base64!!"}, "/data"),
        ({"content_type": "image/png", "data": b64(b"GIF89a" + bytes(20))}, "/data"),
        ({"content_type": "image/svg+xml", "data": b64(b"<svg onload='x'/>")}, "/content_type"),
        ({"content_type": "application/x-msdownload", "data": b64(b"MZ")}, "/content_type"),
        ({"content_type": "image/png", "size": 50 * 1024 * 1024}, "/size"),
        ({"content_type": "image/png"}, "/size"),
        ({"content_type": "image/png", "data": b64(PNG), "sha256": "0" * 64}, "/sha256"),
        ({"content_type": "image/png", "data": b64(PNG), "size": 3}, "/size"),
    ],
)
def test_hostile_uploads_are_refused_with_where_and_why(api: Api, body: dict[str, Any], location: str) -> None:
    answer = api.post("/v1/assets", {"name": "bad", "kind": "image", **body}, role="marketer")

    assert answer.status == 400 and answer["code"] == "invalid_asset", answer.body
    assert answer["issues"][0]["location"] == location
    assert api.get("/v1/assets/bad").status == 404  # nothing was kept


def test_copy_must_be_utf8_text_not_markup(api: Api) -> None:
    latin1 = api.post(
        "/v1/assets", {"name": "c", "kind": "copy", "content_type": "text/plain", "data": b64(b"caf\xe9")}
    )
    html = api.post("/v1/assets", {"name": "c", "kind": "copy", "content_type": "text/plain", "data": b64(b"<html>")})
    fine = api.post(
        "/v1/assets",
        {
            "name": "c",
            "kind": "copy",
            "content_type": "text/plain; charset=utf-8",
            "data": b64("Soldes d'été".encode()),
        },
    )

    assert latin1.status == 400 and html.status == 400
    assert fine.status == 201, fine.body


def test_an_inline_body_over_the_cap_is_413_and_odd_names_are_404(api: Api) -> None:
    huge = api.post(
        "/v1/assets", {"name": "big", "kind": "image", "content_type": "image/png", "data": "A" * (5 * 1024 * 1024)}
    )
    assert huge.status == 413
    assert api.get("/v1/assets/" + "x" * 3000).status == 404
    assert api.post("/v1/assets/%F0%9F%98%80/submit", {"version": 1}).status == 404
    assert api.get("/v1/assets", query={"kind": "sound"})["code"] == "invalid_query"
    assert upload_png(api).status == 201 and upload_png(api)["code"] == "asset_exists"


def test_the_routes_need_their_roles(api: Api) -> None:
    assert upload_png(api, name="v").status == 201
    assert (
        api.post(
            "/v1/assets", {"name": "x", "kind": "image", "content_type": "image/png", "size": 1}, role="viewer"
        ).status
        == 403
    )
    assert api.post("/v1/assets/v/reject", {"version": 1, "reason": "no"}, role="marketer").status == 403


# ------------------------------------------------------------------------------ in a sent email
def test_an_image_in_a_sent_email_stays_served_when_a_new_version_is_published(rig: Rig) -> None:
    # Given a published image, and an approved email template showing it
    rig.stack.clients.sesv2().create_email_identity(EmailIdentity="example.com")
    api = admin_api(rig.stack)
    upload_png(api)
    first = publish(api, "hero-banner", 1)["url"]
    assert api.post("/v1/templates", template_naming("hero-banner"), role="marketer").status == 201
    assert api.post("/v1/templates/welcome/approve", {"version": 1}, role="data_operator").status == 200
    rig.store([Profile(id="p00", created_at=ENTERED, traits={"email": "p00@example.org"}, consent=CONSENT)])

    def send(key: str) -> str:
        # A fresh container each time: a warm one reuses the approved template it read (its cache).
        deliverer = rig.stack.load("DeliverFunction", Clock(NOW + timedelta(minutes=1)))
        request = MessageRequest(
            key=key,
            origin=Origin(kind="api", id="asset-test"),
            profile_id="p00",
            channels=["email"],
            template="welcome",
            requested_at=iso(NOW),
        )
        assert deliverer.lambda_handler(sqs_event([request.model_dump_json()]), Context()) == {"batchItemFailures": []}
        return html_of(ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages[-1])

    # When an email is sent, then a new version is published and the template approved again
    sent = send("api:asset-test:1")
    api.post("/v1/assets/hero-banner/versions", {"content_type": "image/gif", "data": b64(GIF)}, role="marketer")
    second = publish(api, "hero-banner", 2)["url"]
    put = api.put("/v1/templates/welcome", {k: v for k, v in template_naming("hero-banner").items() if k != "id"})
    assert put.status == 200, put.body
    assert api.post("/v1/templates/welcome/approve", {"version": 2}, role="data_operator").status == 200
    later = send("api:asset-test:2")

    # Then the first email shows v1's URL, still served; the next one shows v2's
    assert f'src="{first}"' in sent and served(api, first) == PNG
    assert f'src="{second}"' in later and served(api, second) == GIF


# ------------------------------------------------------------------------------ publish races
class RacedFiles:
    """The real bucket, with another writer getting to the asset's record between each publish's
    copy and its conditional write (`rival`, called right after the copy)."""

    def __init__(self, files: Any, rival: Any) -> None:
        self.files, self.rival = files, rival

    def __getattr__(self, name: str) -> Any:
        return getattr(self.files, name)

    def publish(self, source: str, target: str, content_type: str, etag: str) -> None:
        self.files.publish(source, target, content_type, etag)
        self.rival()


def _admin(api: Api, rival: Any = None) -> Any:
    from midstage.adapters.asset_store import AssetFiles, AssetStore
    from midstage.services.admin.assets import AssetAdmin

    stack = api.stack
    files: Any = AssetFiles(stack.output("AssetsBucketName"), client=stack.clients.s3())
    records = AssetStore(stack.output("ConfigTableName"), client=stack.clients.dynamodb())
    if rival is not None:
        files = RacedFiles(files, rival)
    return AssetAdmin(records, files, base_url="https://assets.example.com", clock=lambda: NOW), records


def _public(api: Api) -> list[str]:
    listed = api.stack.clients.s3().list_objects_v2(Bucket=api.stack.output("AssetsBucketName"), Prefix="public/")
    return [o["Key"] for o in listed.get("Contents", [])]


def test_a_publish_that_keeps_losing_its_write_race_leaves_no_file_under_public(api: Api) -> None:
    from midstage.errors import Unavailable
    from midstage.models.admin import Caller, RoleRank
    from midstage.models.assets import AssetVersionRef

    # Given an approved version, and another writer that changes the asset's record each time
    # this publish has copied the file (and before its conditional write)
    upload_png(api)
    api.post("/v1/assets/hero-banner/submit", {"version": 1}, role="marketer")
    api.post("/v1/assets/hero-banner/approve", {"version": 1}, role="data_operator")
    _, records = _admin(api)

    def rival() -> None:
        asset = records.asset("hero-banner")
        records.write(asset.model_copy(update={"updated_at": iso(NOW)}), asset.revision, [])

    admin, _ = _admin(api, rival)

    # When the publish loses every attempt
    with pytest.raises(Unavailable):
        admin.publish("hero-banner", AssetVersionRef(version=1), Caller("msk_marketer", RoleRank.marketer))

    # Then the version is not published and its file is not left under public/
    assert records.version("hero-banner", 1).state == "approved"  # type: ignore[union-attr]
    assert _public(api) == []
    # And a publish that wins afterwards serves it
    assert api.post("/v1/assets/hero-banner/publish", {"version": 1}, role="marketer").status == 200
    assert len(_public(api)) == 1


def test_a_publish_that_loses_to_a_publish_of_the_same_version_keeps_the_winners_file(api: Api) -> None:
    from midstage.errors import AssetStateError
    from midstage.models.admin import Caller, RoleRank
    from midstage.models.assets import AssetVersionRef

    # Given an approved version, and another caller publishing it between this publish's copy and
    # its write
    upload_png(api)
    api.post("/v1/assets/hero-banner/submit", {"version": 1}, role="marketer")
    api.post("/v1/assets/hero-banner/approve", {"version": 1}, role="data_operator")
    winner, records = _admin(api)
    caller = Caller("msk_marketer", RoleRank.marketer)
    raced = iter([lambda: winner.publish("hero-banner", AssetVersionRef(version=1), caller)])
    loser, _ = _admin(api, lambda: next(raced, lambda: None)())

    # When this publish loses its write and finds the version published
    with pytest.raises(AssetStateError):
        loser.publish("hero-banner", AssetVersionRef(version=1), caller)

    # Then the winner's file stays served
    shown = api.get("/v1/assets/hero-banner")
    assert shown["versions"][0]["state"] == "published"
    assert served(api, shown["url"]) == PNG
    assert records.version("hero-banner", 1).published_at is not None  # type: ignore[union-attr]
