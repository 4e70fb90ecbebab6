"""How an admin route is declared: on a resource's Powertools Router, with the least role it
needs beside it, and whether it returns a person's data (`personal`). The role is checked by a
per-route middleware before the route runs; the same middleware records the call in the audit
log after it (midstage.admin.auditing). Each declaration is kept as data (`Routes.table`), so
the route table can be read (the OpenAPI test compares it with docs/openapi.yaml, the role
matrix test walks it) instead of parsed out of the code."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from pydantic import BaseModel

from midstage import http
from midstage.admin.auditing import audited_call
from midstage.errors import Forbidden, Unauthorized
from midstage.models.admin import Caller, RoleRank
from midstage.observability import logger

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
    from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

    from midstage.adapters.config_store import ConfigStore
    from midstage.admin.wiring import AdminWiring

F = TypeVar("F", bound=Callable[..., Any])
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class RouteSpec:
    """One admin route: its method (lower-case), its path (`<name>` for a path parameter), the
    least role that may call it, the function that answers it, and whether it names or returns
    a person's data (its reads are audited, its path parameters kept only as digests)."""

    method: str
    path: str
    role: RoleRank
    name: str
    personal: bool = False

    def under(self, prefix: str) -> RouteSpec:
        path = prefix if self.path == "/" else prefix + self.path
        return RouteSpec(self.method, path, self.role, self.name, self.personal)


def authenticate(headers: dict[str, str], config: ConfigStore, minimum: RoleRank) -> Caller:
    """The caller behind `Authorization: Bearer <key>` or `x-api-key`, if their key's role is at
    least `minimum`."""
    secret = headers.get("x-api-key")
    authorization = headers.get("authorization") or ""
    if not secret and authorization.lower().startswith("bearer "):
        secret = authorization[7:].strip()
    if not secret:
        raise Unauthorized("an API key is required (Authorization: Bearer <key> or x-api-key)")
    key = config.api_key(secret)
    if key is None:
        raise Unauthorized("the API key is not valid")
    role = RoleRank[key.role]
    if role < minimum:
        raise Forbidden(f"this needs the {minimum.name} role; the key has {key.role}")
    logger.append_keys(api_key_id=key.id, role=key.role)
    return Caller(key_id=key.id, role=role)


def requires(
    minimum: RoleRank, *, personal: bool = False
) -> Callable[[ApiGatewayResolver, NextMiddleware], Response[Any]]:
    """The middleware that admits a route's callers: it authenticates, records the caller in
    the request's context for the route to read, and has the call audited."""

    def guard(app: ApiGatewayResolver, next_middleware: NextMiddleware) -> Response[Any]:
        wiring: AdminWiring = app.context["wiring"]
        caller = authenticate(app.current_event.headers or {}, wiring.config, minimum)
        app.append_context(caller=caller)
        return audited_call(app, next_middleware, caller, personal=personal)

    guard.__name__ = f"requires_{minimum.name}"
    return guard


class Routes:
    """One resource's routes: a Powertools Router, the table of what each route needs, and what
    a route reads of its call (the request, the caller, the services)."""

    def __init__(self) -> None:
        self.router = Router()
        self.table: list[RouteSpec] = []

    def _declare(self, method: str, rule: str, role: RoleRank, personal: bool) -> Callable[[F], F]:
        def register(function: F) -> F:
            self.table.append(RouteSpec(method.lower(), rule, role, function.__name__, personal))
            self.router.route(rule, method, middlewares=[requires(role, personal=personal)])(function)
            return function

        return register

    def get(self, rule: str, *, role: RoleRank, personal: bool = False) -> Callable[[F], F]:
        return self._declare("GET", rule, role, personal)

    def post(self, rule: str, *, role: RoleRank, personal: bool = False) -> Callable[[F], F]:
        return self._declare("POST", rule, role, personal)

    def put(self, rule: str, *, role: RoleRank, personal: bool = False) -> Callable[[F], F]:
        return self._declare("PUT", rule, role, personal)

    def patch(self, rule: str, *, role: RoleRank, personal: bool = False) -> Callable[[F], F]:
        return self._declare("PATCH", rule, role, personal)

    def delete(self, rule: str, *, role: RoleRank, personal: bool = False) -> Callable[[F], F]:
        return self._declare("DELETE", rule, role, personal)

    # -------------------------------------------------------------- the call
    @property
    def request(self) -> APIGatewayProxyEventV2:
        return cast("APIGatewayProxyEventV2", self.router.current_event)

    @property
    def services(self) -> AdminWiring:
        return cast("AdminWiring", self.router.context["wiring"])

    @property
    def caller(self) -> Caller:
        return cast(Caller, self.router.context["caller"])

    def query(self, name: str) -> str | None:
        return self.request.get_query_string_value(name)

    def body(self, model: type[M], limit: int = http.MAX_BODY_BYTES, *, required: bool = True) -> M:
        return http.body(self.request, model, limit, required=required)

    def payload(self) -> Any:
        return http.payload(self.request)

    def limit(self, default: int = http.DEFAULT_LIMIT, maximum: int = http.MAX_LIMIT) -> int:
        return http.page_limit(self.request, default, maximum)

    def cursor(self) -> str | None:
        return http.cursor(self.request)

    def if_match(self) -> int | None:
        return http.if_match(self.request)


def json_answer(status: int, body: Any) -> Response[Any]:
    return Response(status_code=status, content_type="application/json", body=http.to_json(body))


def no_content() -> Response[Any]:
    return Response(status_code=204, body="")
