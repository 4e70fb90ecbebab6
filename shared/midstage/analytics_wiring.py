"""Reading the archive, wired from settings: the reports' engine (DuckDB over a local copy of
the bucket, or Athena) and the experiments service that reads its results through it. Used by
the admin API and by the campaign runner, which judges an auto-winner before sending it."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import TYPE_CHECKING

from midstage.clock import Clock
from midstage.config import AnalyticsSettings
from midstage.errors import Unavailable

if TYPE_CHECKING:
    from midstage.services.analytics import Engine
    from midstage.services.experiments import Experiments


def analytics_engine(settings: AnalyticsSettings) -> Engine:
    """The engine over the archive; refused (503 `analytics_not_configured`) while its settings
    or the duckdb package are missing, so a stack without an archive still serves the rest."""
    from midstage.adapters.archive_engines import AthenaEngine, S3Archive

    if settings.analytics_engine == "athena":
        missing = [name for name in ("athena_workgroup", "athena_database") if not getattr(settings, name)]
        if missing:
            raise _not_configured(missing)
        return AthenaEngine(settings.athena_workgroup, settings.athena_database)
    if not settings.archive_bucket:
        raise _not_configured(["archive_bucket"])
    # Looked up without importing it: a cold start never loads DuckDB until a query needs it.
    if importlib.util.find_spec("duckdb") is None:
        raise Unavailable(
            "the duckdb engine needs the duckdb package (the analytics extra) in this function; "
            "install it or set ANALYTICS_ENGINE=athena",
            code="analytics_not_configured",
        )
    return S3Archive(settings.archive_bucket, settings.archive_prefix, settings.analytics_cache_dir)


def experiments_service(
    settings: AnalyticsSettings, engine: Callable[[], Engine], clock: Clock, *, origin_kind: str
) -> Experiments:
    """Experiments stored in the DataTable, their results read from the archive by `engine`
    (called on the first read), exposures put on the archive stream."""
    from midstage.adapters.archive_stream import archive_sink
    from midstage.adapters.experiment_store import ArchiveExposures, ExperimentTable
    from midstage.services.experiments import Experiments
    from midstage.services.experiments.sources import ArchiveStatistics

    table = ExperimentTable(settings.data_table)
    return Experiments(
        table,
        ArchiveStatistics(engine, clock),
        ArchiveExposures(archive_sink(settings.archive_stream), origin_kind=origin_kind),
        table,
        global_control_share=settings.global_control_share,
        global_control_salt=settings.global_control_salt,
    )


def _not_configured(missing: list[str]) -> Unavailable:
    names = ", ".join(name.upper() for name in missing)
    return Unavailable(
        f"reading the archive needs {names} set on this function (docs/api.md, Reports)",
        code="analytics_not_configured",
    )
