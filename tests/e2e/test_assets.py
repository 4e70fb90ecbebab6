"""The asset library end to end in the local cloud: an image uploaded, reviewed by another key,
published, named by a template, sent in an email whose image URL the local cloud serves over
HTTP, and replaced by a new version while the sent email's URL keeps answering."""

from __future__ import annotations

import base64
import re
import urllib.error
import urllib.request

import pytest

from tests.e2e.test_rules_delivery import DAYTIME, Scenario, scenario, wait_for, zone_at_local_hour

__all__ = ["scenario"]  # the fixture, used by name

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
GIF = base64.b64decode("R0lGODlhAQABAIAAAP///wAAACH5BAAAAAAALAAAAAABAAEAAAICRAEAOw==")


def fetched(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        body: bytes = response.read()
        return body


def test_an_image_is_published_sent_in_an_email_served_and_replaced_without_breaking_it(scenario: Scenario) -> None:
    # Given a reviewer's key besides the admin's, and an image uploaded and taken through review
    t, platform = scenario.tag, scenario.platform
    made = platform.admin("POST", "/v1/api-keys", {"name": f"reviewer-{t}", "role": "data_operator"})
    assert made.status == 201, made.body
    reviewer = made.body["secret"]
    name = f"hero-{t}"
    body = {"name": name, "kind": "image", "content_type": "image/png", "data": base64.b64encode(PNG).decode()}
    assert platform.admin("POST", "/v1/assets", body).status == 201
    assert platform.admin("POST", f"/v1/assets/{name}/submit", {"version": 1}).status == 200
    assert platform.admin("POST", f"/v1/assets/{name}/approve", {"version": 1}).status == 403  # its own submitter
    assert platform.admin("POST", f"/v1/assets/{name}/approve", {"version": 1}, key=reviewer).status == 200
    published = platform.admin("POST", f"/v1/assets/{name}/publish", {"version": 1})
    assert published.status == 200, published.body
    first = published.body["url"]

    # When a template shows it and a rule emails it
    html = f'<p>New season</p><img src="{{{{ asset(\'{name}\') }}}}" alt="">'
    scenario.template(f"season-{t}", "email", {"subject": "New season", "html": html, "text": "New season"})
    scenario.rule(
        f"season-{t}",
        "Signed Up",
        [{"type": "send", "channels": ["email"], "template": f"season-{t}", "category": "transactional"}],
    )
    scenario.identify(zone_at_local_hour(DAYTIME))
    scenario.track("Signed Up")

    # Then the email's image is the published file, served over HTTP by the local cloud
    [email] = wait_for(scenario.emails, "the email with the image")
    assert email.html is not None
    [src] = re.findall(r'<img src="([^"]+)" alt="">', email.html)
    assert src == first and fetched(src) == PNG

    # When a new version is uploaded, reviewed and published
    replacement = {"content_type": "image/gif", "data": base64.b64encode(GIF).decode()}
    assert platform.admin("POST", f"/v1/assets/{name}/versions", replacement).status == 201
    assert platform.admin("POST", f"/v1/assets/{name}/submit", {"version": 2}).status == 200
    assert platform.admin("POST", f"/v1/assets/{name}/approve", {"version": 2}, key=reviewer).status == 200
    second = platform.admin("POST", f"/v1/assets/{name}/publish", {"version": 2}).body["url"]

    # Then the new URL serves the new file, and the sent email's URL still serves the old one
    assert second != first and fetched(second) == GIF
    assert fetched(first) == PNG
    # And an upload is never served as it is, only its published copy
    draft = first.split("/public/")[0] + f"/drafts/{name}/v1"
    with pytest.raises(urllib.error.HTTPError) as refused:
        fetched(draft)
    assert refused.value.code == 403
    used = platform.admin("GET", f"/v1/assets/{name}").body["usedBy"]
    assert used == [{"kind": "template", "id": f"season-{t}", "version": "1"}]
