"""End-to-end tier: everything over HTTP through one local cloud built from template.yaml."""

from __future__ import annotations

import base64
import gzip
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from infra.localcloud.cloud import LocalCloud
from infra.localcloud.demo import bootstrap


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any


@dataclass
class Platform:
    cloud: LocalCloud
    write_key: str
    source_id: str
    admin_key: str

    @property
    def url(self) -> str:
        return self.cloud.api_url

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> Answer:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(self.url + path, data=data, method=method)
        for name, value in {"content-type": "application/json", **(headers or {})}.items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, answer_headers, payload = response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            status, answer_headers, payload = error.code, dict(error.headers), error.read()
        try:
            parsed: Any = json.loads(payload) if payload else None
        except ValueError:
            parsed = payload.decode("utf-8", "replace")
        return Answer(status, {k.lower(): v for k, v in answer_headers.items()}, parsed)

    def basic(self, write_key: str | None = None) -> dict[str, str]:
        token = base64.b64encode(f"{write_key or self.write_key}:".encode()).decode()
        return {"authorization": f"Basic {token}"}

    def track(self, path: str, body: Any, **kwargs: Any) -> Answer:
        headers = {**self.basic(), **kwargs.pop("headers", {})}
        return self.request("POST", path, body, headers=headers, **kwargs)

    def gzipped(self, path: str, body: Any) -> Answer:
        raw = gzip.compress(json.dumps(body).encode())
        return self.request("POST", path, raw=raw, headers={**self.basic(), "content-encoding": "gzip"})

    def admin(self, method: str, path: str, body: Any = None, key: str | None = None) -> Answer:
        return self.request(method, path, body, headers={"authorization": f"Bearer {key or self.admin_key}"})

    def profile(self, ref: str) -> dict[str, Any]:
        answer = self.admin("GET", f"/v1/profiles/{ref}")
        assert answer.status == 200, (ref, answer.body)
        return answer.body  # type: ignore[no-any-return]

    def settle(self) -> None:
        self.cloud.wait_idle(timeout=120)


def status_of(url: str) -> int:
    """The status a GET of `url` answers, redirects not followed (a tracked link's target is
    outside: there is no internet here)."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    try:
        with urllib.request.build_opener(NoRedirect).open(url, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


@pytest.fixture(scope="session")
def platform() -> Iterator[Platform]:
    # Configuration caches off: a rule saved by a test acts on the test's next event.
    with LocalCloud(
        manual_clock=True, parameters={"ConfigCacheSeconds": "0"}, function_env={"WEBHOOK_ALLOW_LOCAL": "true"}
    ) as cloud:
        source, admin_key = bootstrap(cloud, echo=False)
        yield Platform(cloud, source.write_key, source.id, admin_key)
