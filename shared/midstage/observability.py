"""One Logger, Tracer and Metrics per container, shared by every module."""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger(utc=True)
# Only botocore is patched (every AWS call a subsegment): by default the X-Ray SDK probes and
# patches every library it knows that happens to be installed (requests, sqlite3, pymongo, ...),
# none of which the functions use, and importing them cost every handler tens of milliseconds of
# cold import (bench_import_time --against).
tracer = Tracer(patch_modules=("botocore",))
# The template sets the namespace; the default keeps metrics valid wherever this module is
# imported before the environment is (tests, scripts).
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Midstage"))
