"""One Logger, Tracer and Metrics per container, shared by every module."""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger(utc=True)
tracer = Tracer()
# The template sets the namespace; the default keeps metrics valid wherever this module is
# imported before the environment is (tests, scripts).
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Midstage"))
