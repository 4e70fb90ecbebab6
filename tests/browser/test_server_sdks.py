"""The Node and Python SDKs, with their default paths and settings, unchanged but for the host.

Each runs the browser tests' scenario (page and track while anonymous, identify, group, alias, an
order) against the tier's local cloud and must build the same one profile.
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime

import pytest
from rudderstack.analytics import Client as RudderClient
from segment.analytics import Client as SegmentClient

from tests.browser.conftest import HERE, arrivals, one_profile, person
from tests.e2e.conftest import Platform


@pytest.mark.parametrize("sdk", ["segment", "rudderstack"])
def test_a_node_sdk_builds_one_profile_through_its_default_path(platform: Platform, node_sdks: str, sdk: str) -> None:
    person_ = person()
    since = datetime.now(UTC)

    done = subprocess.run(
        [node_sdks, str(HERE / "node_sdks.mjs"), sdk, platform.url, platform.write_key, json.dumps(person_)],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"errors": []}
    one_profile(platform, person_, person_["anonymous"])
    paths = {a.path for a in arrivals(platform, since) if a.method == "POST"}
    assert paths == {"/v1/batch"}


@pytest.mark.parametrize("sdk", ["segment", "rudderstack"])
def test_a_python_sdk_builds_one_profile_through_its_default_path(platform: Platform, sdk: str) -> None:
    person_ = person()
    errors: list[str] = []
    since = datetime.now(UTC)
    client_class = SegmentClient if sdk == "segment" else RudderClient
    client = client_class(platform.write_key, host=platform.url, on_error=lambda e, _: errors.append(str(e)))
    anonymous = person_["anonymous"]

    client.page(anonymous_id=anonymous, name="Pricing", properties={"plan": "pro"})
    client.track(anonymous_id=anonymous, event="Product Viewed", properties={"sku": "A-1"})
    client.identify(person_["user"], {"email": person_["email"], "plan": "pro"}, anonymous_id=anonymous)
    client.group(person_["user"], person_["group"], {"name": "Acme"})
    client.alias(person_["previous"], person_["user"])
    client.track(person_["user"], "Order Completed", {"revenue": 42})
    client.flush()
    client.join()

    assert errors == []
    one_profile(platform, person_, anonymous)
    assert {a.path for a in arrivals(platform, since) if a.method == "POST"} == {"/v1/batch"}
