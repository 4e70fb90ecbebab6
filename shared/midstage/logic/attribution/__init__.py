"""Multi-touch attribution: paths of touches, rule models, the Markov removal effect and Shapley.

Everything here is pure and deterministic. Paths come either from touchpoints and conversions
(`build_paths`) or straight from a caller (`POST /v1/attribution/analyze`); each model turns them
into credit per channel, and every model's credits add up to the paths' conversions and value.
"""

from __future__ import annotations

from midstage.logic.attribution.coalition import EXACT_ENUMERATION_LIMIT, shapley
from midstage.logic.attribution.paths import (
    DIRECT,
    Conversion,
    ConversionSpec,
    Credit,
    Path,
    Touch,
    aggregate,
    build_paths,
    totals,
)
from midstage.logic.attribution.removal import MarkovResult, markov, removal_effects
from midstage.logic.attribution.rules import (
    RULE_MODELS,
    first_touch,
    last_non_direct,
    last_touch,
    linear,
    position_based,
    rule_model,
    time_decay,
)

__all__ = [
    "DIRECT",
    "EXACT_ENUMERATION_LIMIT",
    "RULE_MODELS",
    "Conversion",
    "ConversionSpec",
    "Credit",
    "MarkovResult",
    "Path",
    "Touch",
    "aggregate",
    "build_paths",
    "first_touch",
    "last_non_direct",
    "last_touch",
    "linear",
    "markov",
    "position_based",
    "removal_effects",
    "rule_model",
    "shapley",
    "time_decay",
    "totals",
]
