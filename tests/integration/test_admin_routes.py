"""The admin route table walked through the real handler on moto: every route it lists is
served, and its declared role is exactly the least one admitted (no key: 401; a key one rank
below: 403; a key of that role gets past the guard to the route itself)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from midstage.adapters.config_store import ConfigStore
from midstage.admin import route_table
from midstage.models.admin import RoleRank
from tests.integration.conftest import Stack
from tests.integration.test_admin_messaging import ROLES, Api


def _path(rule: str) -> str:
    """A concrete path for a route: each parameter filled with a value no stored thing has."""
    return re.sub(r"<([^>]+)>", lambda found: "none-" + found.group(1).replace("_", "-"), rule)


def test_every_admin_route_admits_exactly_the_roles_from_the_one_it_declares(stack: Stack) -> None:
    # Given the admin API with one key per role
    config = ConfigStore(stack.output("ConfigTableName"), client=stack.clients.dynamodb())
    for role in ROLES:
        config.create_api_key(role, role, f"msk_{role}", now=datetime.now(UTC))
    api = Api(stack, stack.load("AdminFunction"))
    table = route_table()
    assert len(table) == len({(r.method, r.path) for r in table}), "a route is declared twice"
    for route in table:
        method, path = route.method.upper(), _path(route.path)
        # When a route is called without a key, then it asks for one
        anonymous = api.call(method, path, role=None)
        assert (anonymous.status, anonymous["code"]) == (401, "unauthorized"), f"{method} {path}"
        # When it is called with a key one rank below its role, then it is forbidden
        if route.role > RoleRank.viewer:
            below = api.call(method, path, role=RoleRank(route.role - 1).name)
            assert (below.status, below["code"]) == (403, "forbidden"), f"{method} {path}"
        # When it is called with a key of exactly its role, then the route itself answers
        # (about the missing thing or body), not the guard, and not with a server error
        admitted = api.call(method, path, role=route.role.name)
        assert admitted.status not in (401, 403) and admitted.status < 500, f"{method} {path}: {admitted.body}"
        # And a route that answers 404 does so about its thing, not as an unknown route
        if admitted.status == 404:
            assert admitted.body["message"] != "no such route", f"{method} {path} is not served"


def test_each_key_reads_itself_with_its_role_and_never_its_secret(stack: Stack) -> None:
    # Given one key per role
    config = ConfigStore(stack.output("ConfigTableName"), client=stack.clients.dynamodb())
    created = {
        role: config.create_api_key(f"{role} key", role, f"msk_{role}", now=datetime.now(UTC))[0] for role in ROLES
    }
    api = Api(stack, stack.load("AdminFunction"))
    for role in ROLES:
        # When the key asks who it is
        answer = api.call("GET", "/v1/api-keys/current", role=role)
        # Then it is told its own id, name and role, and nothing secret
        assert answer.status == 200, answer.body
        assert (answer["id"], answer["name"], answer["role"]) == (created[role].id, f"{role} key", role)
        assert "digest" not in answer.body and "secret" not in answer.body
    # And a wrong key is told so
    assert api.call("GET", "/v1/api-keys/current", headers={"x-api-key": "msk_wrong"}, role=None).status == 401
