"""The `StatisticsSource` port over the archive: a phase's sums by one query on the reports'
engine (DuckDB over the archive's Parquet, or Athena), the same engine and records the reports
and the campaigns' holdout lift read, not a second pipeline."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from midstage.logic.experiments.archive_sums import phase_statistics, phase_sums_query
from midstage.models.experiments import Experiment, PhaseStatistics
from midstage.services.analytics import Engine
from midstage.services.experiments.results import phase_of


class ArchiveStatistics:
    """`engine` is called on the first read (a stack without an archive refuses then, 503);
    `clock` ends a running phase's span at now."""

    def __init__(self, engine: Callable[[], Engine], clock: Callable[[], datetime]) -> None:
        self.engine = engine
        self.clock = clock

    def phase_statistics(self, experiment: Experiment, phase: int) -> PhaseStatistics:
        stretch = phase_of(experiment, phase)
        query = phase_sums_query(experiment, stretch, self.clock())
        return phase_statistics(experiment, stretch, self.engine().run(query).records())
