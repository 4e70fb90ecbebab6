"""What every experiments model shares: the literal vocabularies, limits, the strict base model,
and the checks that sums describe some possible data set.
"""

from __future__ import annotations

import math
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

MetricType = Literal["proportion", "mean", "ratio"]
Engine = Literal["bayesian", "frequentist", "sequential"]
Difference = Literal["relative", "absolute"]
Correction = Literal["none", "holm", "benjamini-hochberg"]
CorrectionFamily = Literal["all", "metric", "variant"]

MAX_ARMS: Final = 20
MAX_UNITS: Final = 10**12
MAX_METRICS: Final = 20
DEFAULT_WINDOW_HOURS: Final = 72  # GrowthBook's DEFAULT_METRIC_WINDOW_HOURS
DEFAULT_CUPED_LOOKBACK_DAYS: Final = 14  # GrowthBook's default CUPED lookback
DEFAULT_PROPER_PRIOR_STDDEV: Final = 0.3  # GrowthBook's app default when a proper prior is on
# Sums computed in floating point may undershoot what exact arithmetic gives by a few ulps;
# only a shortfall beyond this share is an impossible data set.
_SLACK: Final = 1e-9

VARIANT_ID = r"^[A-Za-z0-9][A-Za-z0-9 _.:-]{0,63}$"
EVENT_NAME = r"^\S(.{0,198}\S)?$"
PROPERTY_PATH = r"^[A-Za-z0-9_$-]{1,64}(\.[A-Za-z0-9_$-]{1,64}){0,7}$"
RATIO_FIELDS: Final = ("denominator_sum", "denominator_sum_squares", "main_denominator_sum_product")
CUPED_FIELDS: Final = ("covariate_sum", "covariate_sum_squares", "main_covariate_sum_product")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


Units = Annotated[int, Field(ge=0, le=MAX_UNITS, description="units (people) in the arm")]


# ------------------------------------------------------------------------------ consistency
def impossible_spread(n: float, total: float, squares: float, label: str) -> str | None:
    """Why Σx² cannot go with Σx over n units (Σx² ≥ (Σx)²/n for any data), or None."""
    if n > 0 and squares < total * total / n * (1 - _SLACK) - _SLACK:
        return f"{label}_squares ({squares:g}) is below {label}²/n ({total * total / n:g}): no data has these sums"
    if squares < 0:
        return f"{label}_squares cannot be negative"
    return None


def impossible_product(
    n: float, x: float, x2: float, y: float, y2: float, xy: float, field: str, is_proportion: tuple[bool, bool]
) -> str | None:
    """Why a cross product breaks Cauchy-Schwarz (|cov| ≤ sd·sd) for the sums given, or None."""
    if n <= 1:
        return None
    var_x = x * (1 - x / n) if is_proportion[0] else x2 - x * x / n
    var_y = y * (1 - y / n) if is_proportion[1] else y2 - y * y / n
    cov = xy - x * y / n
    bound = math.sqrt(max(var_x, 0.0) * max(var_y, 0.0))
    if abs(cov) > bound * (1 + 1e-6) + _SLACK * (abs(xy) + abs(x * y / n)) + _SLACK:
        return f"{field} ({xy:g}) is impossible with these sums: |Σxy - ΣxΣy/n| exceeds √(SSx·SSy)"
    return None
