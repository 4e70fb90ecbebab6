"""Analyse summary statistics and plan sample sizes: `POST /v1/experiments/analyze` and the planner."""

from __future__ import annotations

import math
from typing import Any, Final

from pydantic import ValidationError

from midstage.errors import InvalidInput, describe
from midstage.logic.experiments import corrections, engines, planning
from midstage.logic.experiments.srm import check_srm
from midstage.logic.experiments.statistics import (
    Proportion,
    Ratio,
    RegressionAdjusted,
    SampleMean,
    Statistic,
    stddev,
)
from midstage.models.experiments import (
    AnalyzeAnswer,
    AnalyzeRequest,
    AnalyzeVariant,
    ArmSummary,
    Engine,
    PlanAnswer,
    PlanRequest,
    VariantAnswer,
)

ENGINES: Final[tuple[Engine, ...]] = ("bayesian", "frequentist", "sequential")


# ------------------------------------------------------------------------------ analyze
def parse_analyze(body: Any) -> AnalyzeRequest:
    """The request from a JSON body, or `InvalidInput` naming every field at fault."""
    try:
        return AnalyzeRequest.model_validate(body)
    except ValidationError as error:
        raise InvalidInput(describe(error, "body")) from None


def _component(n: int, total: float, squares: float | None, proportion: bool) -> Proportion | SampleMean:
    if proportion:
        return Proportion(n, total)
    assert squares is not None
    return SampleMean(n, total, squares)


def statistic_of(request: AnalyzeRequest, variant: AnalyzeVariant) -> Statistic:
    """The engines' statistic for one variant of a validated request."""
    proportion = request.metric_type == "proportion"
    main = _component(variant.n, variant.sum, variant.sum_squares, proportion)
    if request.metric_type == "ratio":
        assert variant.denominator_sum is not None
        assert variant.main_denominator_sum_product is not None
        denominator = SampleMean(variant.n, variant.denominator_sum, variant.denominator_sum_squares or 0.0)
        return Ratio(variant.n, main, denominator, variant.main_denominator_sum_product)
    if request.cuped:
        assert variant.covariate_sum is not None
        assert variant.main_covariate_sum_product is not None
        pre = _component(variant.n, variant.covariate_sum, variant.covariate_sum_squares, proportion)
        return RegressionAdjusted(variant.n, main, pre, variant.main_covariate_sum_product)
    return main


def arm_summary(variant: AnalyzeVariant, statistic: Statistic) -> ArmSummary:
    return ArmSummary(id=variant.id, n=variant.n, mean=statistic.unadjusted_mean, stddev=stddev(statistic))


def analyze(request: AnalyzeRequest) -> AnalyzeAnswer:
    """Every treatment against the first variant with the request's engine, and the SRM check."""
    weights = request.planned_weights()
    srm = check_srm([v.n for v in request.variants], weights)
    statistics = [statistic_of(request, v) for v in request.variants]
    control = statistics[0]
    answers: list[VariantAnswer] = []
    for variant, treatment in zip(request.variants[1:], statistics[1:], strict=True):
        common: dict[str, Any] = {"id": variant.id, "n": variant.n, "mean": treatment.unadjusted_mean}
        if request.engine == "bayesian":
            prior = (
                engines.Prior(request.prior.mean, request.prior.stddev**2, proper=True)
                if request.prior
                else engines.Prior()
            )
            b = engines.bayesian(
                control,
                treatment,
                difference=request.difference,
                alpha=request.alpha,
                inverse=request.inverse,
                prior=prior,
            )
            answers.append(
                VariantAnswer(
                    **common,
                    expected=b.expected,
                    ci=b.ci,
                    uplift_stddev=b.uplift_stddev,
                    chance_to_win=b.chance_to_win,
                    risk=b.risk,
                    error=b.error,
                    error_message=engines.ERROR_MESSAGES.get(b.error) if b.error else None,
                )
            )
            continue
        if request.engine == "sequential":
            f = engines.sequential(
                control,
                treatment,
                difference=request.difference,
                alpha=request.alpha,
                tuning=request.sequential_tuning_parameter,
            )
        else:
            f = engines.t_test(control, treatment, difference=request.difference, alpha=request.alpha)
        answers.append(
            VariantAnswer(
                **common,
                expected=f.expected,
                ci=f.ci,
                uplift_stddev=f.uplift_stddev,
                p_value=f.p_value,
                error=f.error,
                error_message=engines.ERROR_MESSAGES.get(f.error) if f.error else None,
            )
        )
    if request.correction != "none":
        # Comparisons without a p-value of their own (an error's default of 1) are not tests and
        # stay out of the family, as in results; a p-value of exactly 0 is one.
        tested = [i for i, a in enumerate(answers) if a.error is None and a.p_value is not None]
        adjusted = corrections.adjust([answers[i].p_value or 0.0 for i in tested], request.correction)
        for i, p in zip(tested, adjusted, strict=True):
            answers[i] = answers[i].model_copy(update={"p_value_adjusted": p})
    return AnalyzeAnswer(
        srm_p_value=srm.p_value,
        srm_alert=srm.alert,
        engine=request.engine,
        difference=request.difference,
        control=arm_summary(request.variants[0], control),
        variants=answers,
    )


# ------------------------------------------------------------------------------ planner
def parse_plan(body: Any) -> PlanRequest:
    try:
        return PlanRequest.model_validate(body)
    except ValidationError as error:
        raise InvalidInput(describe(error, "body")) from None


def plan(request: PlanRequest) -> PlanAnswer:
    """Units per arm for an effect, or the minimum detectable effect for a number of units."""
    effect = request.effect if request.effect is not None else 0.1
    try:
        design = planning.Design(
            baseline=request.baseline,
            effect=effect,
            stddev=request.stddev,
            difference=request.difference,
            alpha=request.alpha,
            power=request.power,
            engine=request.engine,
            chance_to_win=request.chance_to_win,
            tuning=request.sequential_tuning_parameter,
        )
    except ValueError as error:
        raise InvalidInput(str(error), code="unplannable") from None
    try:
        if request.n_per_arm is not None:
            n = request.n_per_arm
            found = planning.minimum_detectable_effect(design, n)
            power = request.power if found is not None else planning.power_at(design, n)
        else:
            n = planning.sample_size_per_arm(design)
            found = effect
            power = planning.power_at(design, n)
    except (ArithmeticError, ValueError):
        # A baseline, effect or alpha so close to 0 that the variance or a quantile leaves what a
        # double holds.
        message = "these figures are beyond what a double can plan: a rate or alpha is too close to 0"
        raise InvalidInput(message, code="unplannable") from None
    days = 2 * n / request.units_per_day if request.units_per_day else None
    if days is not None and not math.isfinite(days):
        days = None  # fewer units a day than a double can divide by
    return PlanAnswer(n_per_arm=n, total=2 * n, effect=found, power=power, days=days)
