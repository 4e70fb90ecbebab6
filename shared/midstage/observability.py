"""One Logger, Tracer and Metrics per container, shared by every module."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer

from midstage import correlation

logger = Logger(utc=True)
# Only botocore is patched (every AWS call a subsegment): by default the X-Ray SDK probes and
# patches every library it knows that happens to be installed (requests, sqlite3, pymongo, ...),
# none of which the functions use, and importing them cost every handler tens of milliseconds of
# cold import (bench_import_time --against).
tracer = Tracer(patch_modules=("botocore",))
# The template sets the namespace; the default keeps metrics valid wherever this module is
# imported before the environment is (tests, scripts).
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Midstage"))


def correlation_id() -> str | None:
    """The correlation id of the work in hand (set by the handler), for what it sends on."""
    value = logger.get_correlation_id()
    return value if isinstance(value, str) and value else None


def correlate(value: str | None) -> None:
    """Put `value` on every log line from here on, and on every message this work sends."""
    logger.set_correlation_id(value)


def count(**counts: int) -> None:
    """Count metrics, each only when it is above zero (a metric with nothing to say is left out)."""
    from aws_lambda_powertools.metrics import MetricUnit

    for name, value in counts.items():
        if value > 0:
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def bus_event_id(event: Any) -> str | None:
    """An EventBridge event's own id: the correlation id of a domain event published without one."""
    return correlation.clean(event.get("id")) if isinstance(event, dict) else None


def correlate_schedule(event: Any, context: Any) -> None:
    """A scheduled invocation starts its own work: the firing's event id, else the invocation's."""
    correlate(correlation.from_schedule(event, getattr(context, "aws_request_id", None)))


def correlate_http(event: Any) -> None:
    """An HTTP request starts its own work: the caller's `x-correlation-id`, else the request id."""
    correlate(correlation.from_http(event))
