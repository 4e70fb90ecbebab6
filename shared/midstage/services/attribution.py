"""What `POST /v1/attribution/analyze` runs: the requested models over the paths in the body."""

from __future__ import annotations

from midstage.logic import attribution
from midstage.models.attribution import AnalyzeAnswer, AnalyzeRequest, AnalyzeTotals, ChannelCredit


def analyze(request: AnalyzeRequest) -> AnalyzeAnswer:
    paths = [
        attribution.Path(
            tuple(p.channels),
            conversions=p.conversions,
            nulls=p.nulls,
            value=p.value,
            days_before=tuple(p.days_before) if p.days_before is not None else None,
        )
        for p in request.paths
    ]
    answer: dict[str, dict[str, attribution.Credit]] = {}
    effects: dict[str, float] = {}
    probability: float | None = None
    for name in request.models:
        if name == "markov":
            result = attribution.markov(paths, order=request.markov_order, use_nulls=request.use_nulls)
            answer[name], effects, probability = result.credits, result.removal_effects, result.conversion_probability
        elif name == "shapley":
            answer[name] = attribution.shapley(paths)
        else:
            answer[name] = attribution.rule_model(
                name,
                paths,
                half_life_days=request.half_life_days,
                position_weights=request.position_weights,
                direct=request.direct_channel,
            )
    total = attribution.totals(paths)
    return AnalyzeAnswer(
        models={
            name: {c: ChannelCredit(conversions=k.conversions, value=k.value) for c, k in sorted(credits.items())}
            for name, credits in answer.items()
        },
        removal_effects=dict(sorted(effects.items())),
        totals=AnalyzeTotals(conversions=total.conversions, value=total.value, nulls=total.nulls),
        conversion_probability=probability,
    )
