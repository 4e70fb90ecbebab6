"""Reports over the archive: build the SQL, run it on an engine, answer with freshness and bytes.

The reports routes, the replay command and the console call `report`; attribution over the
archive calls `attribute`. Engines are adapters (`adapters/archive_engines.py`): DuckDB over
local or S3-copied Parquet, or Athena.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel

from midstage.logic import attribution
from midstage.logic.analytics.answers import Answer, QueryResult, answer, freshness_query
from midstage.logic.analytics.reports import PathsSpec, Query, build


class Engine(Protocol):
    dialect: str

    def run(self, query: Query) -> QueryResult: ...


def report(spec: BaseModel, engine: Engine, now: datetime) -> Answer:
    query = build(spec)
    result = engine.run(query)
    fresh = engine.run(freshness_query(query))
    return answer(query, result, fresh, now)


def paths_from_archive(spec: PathsSpec, engine: Engine) -> tuple[list[attribution.Path], QueryResult]:
    result = engine.run(build(spec))
    paths = [
        attribution.Path(
            tuple(str(row["path"]).split(">")),
            conversions=float(row["conversions"] or 0),
            nulls=float(row["nulls"] or 0),
            value=float(row["value"] or 0),
        )
        for row in result.records()
    ]
    return paths, result


def attribute(
    spec: PathsSpec, engine: Engine, now: datetime, *, models: tuple[str, ...] = ("last_touch", "linear", "markov")
) -> Answer:
    """Attribution over the archive's touches: paths by SQL, the models in Python (time-decay is
    left out: aggregated paths carry no per-touch times)."""
    paths, result = paths_from_archive(spec, engine)
    fresh = engine.run(freshness_query(build(spec)))
    credits: dict[str, Any] = {}
    effects: dict[str, float] = {}
    for name in models:
        if name == "markov":
            chain = attribution.markov(paths)
            credits[name], effects = chain.credits, chain.removal_effects
        elif name == "shapley":
            credits[name] = attribution.shapley(paths)
        else:
            credits[name] = attribution.rule_model(name, paths)
    shaped = answer(build(spec), result, fresh, now)
    shaped.summary = {
        "models": {
            name: {c: {"conversions": k.conversions, "value": k.value} for c, k in sorted(table.items())}
            for name, table in credits.items()
        },
        "removal_effects": dict(sorted(effects.items())),
        "paths": len(paths),
    }
    return shaped
