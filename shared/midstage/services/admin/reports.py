"""Reports over the archive and attribution for the admin API: each answer computed once and kept
in the function's memory for a while, keyed by the report and its request as validated (so two
bodies that mean the same report share one answer), and `POST /v1/attribution/analyze` over the
paths a caller sends.

The engine is a port (`services.analytics.Engine`), made by the wiring on the first report that
misses the cache: a function that never reports never builds one, and an engine that is not
configured refuses the report (503), not the cold start.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from midstage.clock import Clock
from midstage.errors import InvalidInput, IssuesError, MidstageError, Unavailable
from midstage.logic.analytics.answers import QueryResult
from midstage.logic.analytics.reports import PathsSpec, Query, build
from midstage.logic.timefmt import iso
from midstage.models.attribution import AnalyzeAnswer, AnalyzeRequest
from midstage.observability import logger
from midstage.services import analytics
from midstage.services.analytics import Engine
from midstage.services.attribution import analyze

# How many answers one function keeps at most; the oldest goes first.
MAX_CACHED_ANSWERS = 256
# The Markov model solves one linear system per channel over every state of the chain, in pure
# Python: past this many states an analysis would outlast the request, so it is refused instead.
MAX_MARKOV_STATES = 64

# Aggregated archive paths carry no per-touch times, so time_decay is not offered here.
ArchiveModel = Literal["first_touch", "last_touch", "last_non_direct", "linear", "position_based", "markov", "shapley"]
DEFAULT_ARCHIVE_MODELS: tuple[ArchiveModel, ...] = ("last_touch", "linear", "markov")


class AttributionReport(PathsSpec):
    """`POST /v1/reports/attribution`: the archive's paths (PathsSpec) and the models to run."""

    models: list[ArchiveModel] = Field(default_factory=lambda: list(DEFAULT_ARCHIVE_MODELS), min_length=1)

    @field_validator("models")
    @classmethod
    def _distinct(cls, models: list[ArchiveModel]) -> list[ArchiveModel]:
        return list(dict.fromkeys(models))

    def paths(self) -> PathsSpec:
        return PathsSpec.model_validate(self.model_dump(exclude={"models"}))


@dataclass(frozen=True)
class _Kept:
    body: dict[str, Any]
    until: datetime


class _Guarded:
    """The engine, its failures (the bucket, Athena, the local disk) answered as 503: the caller
    may retry; what failed is logged with the request's correlation id."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.dialect = engine.dialect

    def run(self, query: Query) -> QueryResult:
        try:
            return self._engine.run(query)
        except MidstageError:
            raise
        except Exception as error:
            logger.exception("the analytics engine failed", extra={"report": query.report})
            raise Unavailable(
                f"the analytics engine could not answer the {query.report} report ({type(error).__name__}); "
                "retry later",
                code="analytics_unavailable",
            ) from error


class ReportAdmin:
    def __init__(
        self,
        engine: Callable[[], Engine],
        *,
        cache_seconds: float,
        clock: Clock,
        max_cached: int = MAX_CACHED_ANSWERS,
    ) -> None:
        self._engine = engine
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._max_cached = max_cached
        self._kept: OrderedDict[tuple[str, str], _Kept] = OrderedDict()

    # -------------------------------------------------------------- reports over the archive
    def report(self, spec: BaseModel, *, fresh: bool = False) -> dict[str, Any]:
        """A report's answer (rows, summary, freshness, bytes scanned, engine), `cached` saying
        whether it was kept from an earlier call, `generated_at` when it was computed. `fresh`
        (the request's `Cache-Control: no-cache`) computes it again and keeps the new one."""
        report = str(getattr(spec, "report", type(spec).__name__))
        return self._answer(report, spec, fresh, lambda engine, now: analytics.report(spec, engine, now).to_body())

    def attribute(self, request: AttributionReport, *, fresh: bool = False) -> dict[str, Any]:
        """The attribution models over the archive's paths (`summary.models`, `summary.removal_effects`)."""
        paths, models = request.paths(), tuple(request.models)

        def compute(engine: Engine, now: datetime) -> dict[str, Any]:
            return analytics.attribute(paths, engine, now, models=models).to_body()

        return self._answer("attribution", request, fresh, compute)

    def _answer(
        self, report: str, spec: BaseModel, fresh: bool, compute: Callable[[Engine, datetime], dict[str, Any]]
    ) -> dict[str, Any]:
        _check_calendar(spec)
        key = (report, json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":")))
        now = self._clock()
        kept = self._kept.get(key)
        if kept is not None and not fresh and now < kept.until:
            return {**kept.body, "cached": True}
        body = {**compute(_Guarded(self._engine()), now), "generated_at": iso(now)}
        if self._cache_seconds > 0:
            self._keep(key, _Kept(body, now + timedelta(seconds=self._cache_seconds)), now)
        return {**body, "cached": False}

    def _keep(self, key: tuple[str, str], kept: _Kept, now: datetime) -> None:
        for stale in [k for k, v in self._kept.items() if v.until <= now]:
            del self._kept[stale]
        self._kept.pop(key, None)
        self._kept[key] = kept
        while len(self._kept) > self._max_cached:
            self._kept.popitem(last=False)

    # -------------------------------------------------------------- paths in the body
    def analyze(self, request: AnalyzeRequest) -> AnalyzeAnswer:
        if "markov" in request.models:
            states = _markov_states(request)
            if states > MAX_MARKOV_STATES:
                raise InvalidInput(
                    f"the Markov chain of these paths has {states} states (order {request.markov_order}); "
                    f"at most {MAX_MARKOV_STATES} are solved per request: group rare channels, or lower markov_order",
                    code="too_many_states",
                )
        try:
            answer = analyze(request)
        except (ArithmeticError, ValueError) as error:
            raise InvalidInput(f"the models cannot run on these paths: {error}", code="unanswerable_paths") from error
        if not _finite(answer):
            raise InvalidInput(
                "the figures of these paths are too large to add up (their sum is not a finite number)",
                code="unanswerable_paths",
            )
        return answer


def _check_calendar(spec: BaseModel) -> None:
    """A report reads days around its own (lookbacks, the previous period, the day after the
    end): those must be days of the calendar too (years 1 to 9999)."""
    try:
        build(spec.paths() if isinstance(spec, AttributionReport) else spec)
    except OverflowError as error:
        message = "the report's dates, with its lookback or previous period, reach past the calendar (years 1 to 9999)"
        raise IssuesError(message, [{"location": "", "message": message}], code="invalid_body") from error


def _markov_states(request: AnalyzeRequest) -> int:
    """How many channel states the chain of order k has: the distinct runs of up to k channels
    that end a prefix of a counted path (what logic.attribution.removal builds)."""
    order = request.markov_order
    states: set[tuple[str, ...]] = set()
    for path in request.paths:
        if not (path.conversions or (request.use_nulls and path.nulls)):
            continue
        for index in range(len(path.channels)):
            states.add(tuple(path.channels[max(0, index + 1 - order) : index + 1]))
    return len(states)


def _finite(answer: AnalyzeAnswer) -> bool:
    figures = [answer.totals.conversions, answer.totals.value, answer.totals.nulls]
    figures += [f for table in answer.models.values() for c in table.values() for f in (c.conversions, c.value)]
    figures += list(answer.removal_effects.values())
    return all(math.isfinite(f) for f in figures)
