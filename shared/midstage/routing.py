"""How the HTTP functions route: Powertools' `APIGatewayHttpResolver`, each route declared with a
decorator beside its function, matched against the path API Gateway itself matched.

API Gateway matches routes on the percent-decoded path, without a named stage's prefix, and still
hands over `rawPath` as the client sent it. The resolver matches `rawPath` as it is, and whenever
the stage is named it cuts the stage's length off the front, prefix or not (a custom domain maps a
stage without one). So a function hands the resolver its event with the matched path in `rawPath`
and the `$default` stage; the path as sent stays readable as `app.context[RAW_PATH]`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

RAW_PATH = "raw_path"


def matched_path(raw_path: str, stage: str) -> str:
    """The path API Gateway routed: percent-decoded, without the prefix of a named stage."""
    path = unquote(raw_path)
    if stage != "$default" and (path == f"/{stage}" or path.startswith(f"/{stage}/")):
        path = path[len(stage) + 1 :] or "/"
    return path


def resolve(app: APIGatewayHttpResolver, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """`app`'s answer to `event`, its routes matched against the path API Gateway matched."""
    request_context = event.get("requestContext") or {}
    raw_path = str(event.get("rawPath", ""))
    matched = {
        **event,
        "rawPath": matched_path(raw_path, str(request_context.get("stage", "$default"))),
        "requestContext": {**request_context, "stage": "$default"},
    }
    app.append_context(**{RAW_PATH: raw_path})
    return app.resolve(matched, context)


def headers(app: APIGatewayHttpResolver) -> dict[str, str]:
    """The request's headers by lower-case name (API Gateway sends them so; tests and tools may not)."""
    return {k.lower(): v for k, v in (app.current_event.raw_event.get("headers") or {}).items()}


def query(app: APIGatewayHttpResolver) -> dict[str, str]:
    found: dict[str, str] = app.current_event.raw_event.get("queryStringParameters") or {}
    return found


def response(shaped: dict[str, Any], extra_headers: dict[str, str] | None = None) -> Response[str]:
    """An answer built by midstage.http as the resolver's Response, its headers kept as written."""
    headers = {**shaped["headers"], **(extra_headers or {})}
    return Response(status_code=shaped["statusCode"], headers=headers, body=shaped["body"])
