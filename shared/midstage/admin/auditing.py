"""The audit log's one point of entry: the role middleware of every admin route hands the call to
`audited_call` once the caller is admitted, and it records the call after the route answers, so
no route records anything itself (docs/privacy.md, "Audit log").

Recorded: every write (any method but GET), whatever its outcome, and every GET whose route is
declared `personal` (it returns a person's data). When the entry cannot be appended:
- a read of personal data fails closed: the answer is withheld (503 `audit_unavailable`), so
  no person's data leaves without its trace;
- a write has already happened and cannot be taken back: its answer stands, and the entry
  (which holds no personal data) is logged as an error and counted (`AuditAppendFailed`,
  alarmed), so the trace is recovered from the logs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from midstage.errors import MidstageError, Unavailable
from midstage.logic import audit
from midstage.observability import correlation_id, logger, metrics
from midstage.services.admin.audit import AuditCall

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
    from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

    from midstage.admin.wiring import AdminWiring
    from midstage.models.admin import Caller


def audited_call(
    app: ApiGatewayResolver, next_middleware: NextMiddleware, caller: Caller, *, personal: bool
) -> Response[Any]:
    """The route's answer, its call recorded in the audit log when it is one to record."""
    method = app.current_event.http_method.upper()
    if not audit.audited(method, personal=personal):
        return next_middleware(app)
    try:
        response = next_middleware(app)
    except MidstageError as error:
        _record(app, caller, personal, error.status, None, withheld=False)
        raise
    except Exception:
        _record(app, caller, personal, 500, None, withheld=False)
        raise
    body = response.body if isinstance(response.body, str) else None
    # Only an answer that carries the person's data is withheld when it cannot be traced.
    withheld = method == "GET" and response.status_code < 300
    _record(app, caller, personal, response.status_code, body, withheld=withheld)
    return response


def _record(
    app: ApiGatewayResolver, caller: Caller, personal: bool, status: int, result: str | None, *, withheld: bool
) -> None:
    wiring: AdminWiring = app.context["wiring"]
    event = app.current_event
    route = app.context.get("_route")
    template = getattr(route, "openapi_path", None) or event.path
    call = AuditCall(
        caller=caller,
        kind="write" if event.http_method.upper() != "GET" else "read",
        action=f"{event.http_method.upper()} {template}",
        target=audit.target(app.context.get("_route_args") or {}, personal=personal),
        request_id=(event.raw_event.get("requestContext") or {}).get("requestId") or None,
        correlation_id=correlation_id(),
        body=event.body or None,
        result=result,
        status=status,
    )
    log = wiring.audit
    fields = log.fields(call)
    try:
        log.append(fields)
    except Exception as error:  # the log's failure, whatever it is, is handled by the policy above
        logger.error("audit entry not appended", extra={"audit_entry": fields}, exc_info=error)
        with single_metric(
            name="AuditAppendFailed", unit=MetricUnit.Count, value=1, namespace=metrics.namespace
        ) as metric:
            metric.add_dimension(name="service", value="admin")
        if withheld:
            raise Unavailable(
                "the audit log could not record this read, so its answer is withheld; retry",
                code="audit_unavailable",
            ) from error
