"""The experiments plane's service: analyse summary statistics, assemble an experiment's results,
export and re-read their raw sums, plan sample sizes, and decide an auto-winner honestly.

Composition over `logic.experiments`, with no clock (`now` is an argument). The functions do no
I/O at all, so the admin route and the campaign and journey runners call them with what they
have read:

- `POST /v1/experiments/analyze`: `analyze(parse_analyze(body)).to_body()`;
- a planner route: `plan(parse_plan(body))`;
- results of a phase: `results(experiment, statistics, now=...)`, its CSV `results_csv(...)`;
- the auto-winner step of a campaign: `decide_winner(experiment, results, now=...)`;
- `Experiments`, the same over its ports, typed as Protocols (the experiment store, the
  statistics read from the archive and counters, the exposure log, the ledger of final
  decisions): create, revise (frozen at start), start, stop, assign, results, CSV, decide.

The package, by concern: `analysis` (analyze, plan), `results` (results, decide_winner), `export`
(the CSV both ways), `service` (`Experiments` and its ports). Import from the package.
"""

from midstage.services.experiments.analysis import ENGINES, analyze, parse_analyze, parse_plan, plan, statistic_of
from midstage.services.experiments.export import CSV_COLUMNS, analyze_requests_from_csv, results_csv
from midstage.services.experiments.results import decide_winner, results
from midstage.services.experiments.service import (
    Assignment,
    DecisionLedger,
    Experiments,
    ExperimentStore,
    ExposureLog,
    RecordedDecision,
    StatisticsSource,
)

__all__ = [
    "CSV_COLUMNS",
    "ENGINES",
    "Assignment",
    "DecisionLedger",
    "ExperimentStore",
    "Experiments",
    "ExposureLog",
    "RecordedDecision",
    "StatisticsSource",
    "analyze",
    "analyze_requests_from_csv",
    "decide_winner",
    "parse_analyze",
    "parse_plan",
    "plan",
    "results",
    "results_csv",
    "statistic_of",
]
