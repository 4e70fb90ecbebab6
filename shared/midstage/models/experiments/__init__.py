"""Experiments: the analyze request and answer, the experiment object, its metrics, and the
per-arm sufficient statistics its results are computed from.

`POST /v1/experiments/analyze` analyses summary statistics given in the body, so anyone can
check a test, including one run elsewhere. The fields are the issue's, spelled as there:

    {"metric_type": "proportion" | "mean" | "ratio",
     "engine": "bayesian" | "frequentist" | "sequential",
     "difference": "relative" | "absolute", "alpha": 0.05, "weights": [0.5, 0.5], "cuped": false,
     "variants": [{"id": "control", "n": 5000, "sum": 500, "sum_squares": 500}, {"id": "b", ...}]}

ratio metrics add `denominator_sum`, `denominator_sum_squares`, `main_denominator_sum_product`;
CUPED adds `covariate_sum`, `covariate_sum_squares`, `main_covariate_sum_product`. The answer is
`{"srm_p_value", "variants": [{"id", "expected", "ci", "p_value" | "chance_to_win", "risk"}]}`,
each treatment against the first variant. Added beside them (nothing renamed): `srm_alert`,
the control's summary, each arm's `n` and `mean`, `uplift_stddev`, an `error` code when an
answer cannot be computed, and optional `inverse`, `prior`, `sequential_tuning_parameter`
and `correction` in the request.

Bad input is refused with every problem named (pydantic's errors, with our messages): sums
that no data set can have (a proportion's conversions above n, Σx² < (Σx)²/n), fields of
another metric type, CUPED without its covariate sums, weights that do not match the arms.

The package, by concern: `common` (vocabularies, limits, the strict base), `analysis` (analyze and
plan), `experiment` (the experiment object), `results` (statistics in, results out). Import from
the package.
"""

from midstage.models.experiments.analysis import (
    AnalyzeAnswer,
    AnalyzeRequest,
    AnalyzeVariant,
    ArmSummary,
    PlanAnswer,
    PlanRequest,
    PriorSettings,
    VariantAnswer,
    variant_problems,
)
from midstage.models.experiments.common import (
    DEFAULT_CUPED_LOOKBACK_DAYS,
    DEFAULT_PROPER_PRIOR_STDDEV,
    DEFAULT_WINDOW_HOURS,
    MAX_ARMS,
    MAX_METRICS,
    MAX_UNITS,
    Correction,
    CorrectionFamily,
    Difference,
    Engine,
    MetricType,
    Units,
)
from midstage.models.experiments.experiment import (
    STANDARD_GUARDRAILS,
    Arm,
    AutoWinner,
    Experiment,
    ExperimentBody,
    ExperimentCreate,
    ExperimentStatus,
    ExperimentTarget,
    Metric,
    MetricKind,
    Phase,
)
from midstage.models.experiments.results import (
    ArmMetricStatistics,
    ArmResult,
    CandidateNumbers,
    DaysToDecisionAnswer,
    ExperimentResults,
    MetricResults,
    PhaseStatistics,
    SrmAnswer,
    WinnerAction,
    WinnerDecision,
)

__all__ = [
    "DEFAULT_CUPED_LOOKBACK_DAYS",
    "DEFAULT_PROPER_PRIOR_STDDEV",
    "DEFAULT_WINDOW_HOURS",
    "MAX_ARMS",
    "MAX_METRICS",
    "MAX_UNITS",
    "STANDARD_GUARDRAILS",
    "AnalyzeAnswer",
    "AnalyzeRequest",
    "AnalyzeVariant",
    "Arm",
    "ArmMetricStatistics",
    "ArmResult",
    "ArmSummary",
    "AutoWinner",
    "CandidateNumbers",
    "Correction",
    "CorrectionFamily",
    "DaysToDecisionAnswer",
    "Difference",
    "Engine",
    "Experiment",
    "ExperimentBody",
    "ExperimentCreate",
    "ExperimentResults",
    "ExperimentStatus",
    "ExperimentTarget",
    "Metric",
    "MetricKind",
    "MetricResults",
    "MetricType",
    "Phase",
    "PhaseStatistics",
    "PlanAnswer",
    "PlanRequest",
    "PriorSettings",
    "SrmAnswer",
    "Units",
    "VariantAnswer",
    "WinnerAction",
    "WinnerDecision",
    "variant_problems",
]
