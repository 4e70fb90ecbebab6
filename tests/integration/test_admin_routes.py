"""The admin route table walked through the real handler on moto: every route it lists is
served, and its declared role is exactly the least one admitted. The route x role matrix: no
key gets 401; a key of every rank below the route's role gets 403; a key of its role and of
every rank above it gets past the guard to the route itself (roles are checked by the one
middleware every route is declared with, midstage.admin.routing.requires)."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime

from midstage.adapters.audit_store import AuditStore
from midstage.adapters.config_store import ConfigStore
from midstage.admin import route_table
from midstage.logic import audit
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
        for role in RoleRank:
            answer = api.call(method, path, role=role.name)
            if role < route.role:
                # When it is called with a key of a lower rank, then it is forbidden
                assert (answer.status, answer["code"]) == (403, "forbidden"), f"{method} {path} as {role.name}"
            else:
                # When it is called with a key of its rank or higher, then the route itself
                # answers (about the missing thing or body), not the guard, nor a server error
                assert answer.status not in (401, 403), f"{method} {path} as {role.name}: {answer.body}"
                assert answer.status < 500, f"{method} {path} as {role.name}: {answer.body}"
                # And a route that answers 404 does so about its thing, not as an unknown route
                if answer.status == 404:
                    assert answer.body["message"] != "no such route", f"{method} {path} is not served"
    # And every admitted call to a write or to a read of a person's data is in the audit log,
    # once, under its route's template; no other call is (the same middleware records them)
    log = AuditStore(stack.output("AuditTableName"), client=stack.clients.dynamodb())
    head = log.head()
    recorded = Counter(entry["action"] for entry in log.walk(head["seq"] if head else 0))
    for route in table:
        template = re.sub(r"<([^>]+)>", r"{\1}", route.path)
        action = f"{route.method.upper()} {template}"
        admitted = len([role for role in RoleRank if role >= route.role])
        expected = admitted if audit.audited(route.method, personal=route.personal) else 0
        assert recorded[action] == expected, action


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
