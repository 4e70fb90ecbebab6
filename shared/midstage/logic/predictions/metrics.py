"""How good a probability is: ranking (AUC, lift), calibration (per decile), and both (log loss, Brier)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from midstage.logic.predictions.summary import FloatArray

EPSILON = 1e-15  # log loss of a probability of exactly 0 or 1 stays finite


def _ranks(values: FloatArray) -> FloatArray:
    """1-based ranks, ties given their average rank."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    distinct = np.concatenate([[True], ordered[1:] != ordered[:-1]])
    group = np.cumsum(distinct) - 1
    starts = np.flatnonzero(distinct)
    ends = np.concatenate([starts[1:], [len(values)]])
    average = (starts + ends + 1) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(len(values))
    ranks[order] = average[group]
    return ranks


def auc(outcome: npt.NDArray[np.bool_], score: FloatArray) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    positives = int(outcome.sum())
    negatives = len(outcome) - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    rank_sum = float(_ranks(score)[outcome].sum())
    return (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)


def log_loss(outcome: npt.NDArray[np.bool_], probability: FloatArray) -> float:
    p = np.clip(probability, EPSILON, 1.0 - EPSILON)
    return float(-np.mean(np.where(outcome, np.log(p), np.log1p(-p))))


def brier(outcome: npt.NDArray[np.bool_], probability: FloatArray) -> float:
    return float(np.mean((probability - outcome) ** 2))


@dataclass(frozen=True)
class Decile:
    decile: int  # 1 = the highest scores
    people: int
    mean_predicted: float
    observed_rate: float


def deciles(outcome: npt.NDArray[np.bool_], probability: FloatArray, groups: int = 10) -> list[Decile]:
    """People sorted by probability, highest first, cut into `groups` groups of (nearly) equal size."""
    order = np.argsort(-probability, kind="mergesort")
    out = []
    for k, members in enumerate(np.array_split(order, groups), start=1):
        if len(members) == 0:
            continue
        out.append(Decile(k, len(members), float(probability[members].mean()), float(outcome[members].mean())))
    return out


def lift_top_decile(outcome: npt.NDArray[np.bool_], probability: FloatArray) -> float:
    """The outcome rate among the top 10 % by score over the overall rate (1 = no better than chance)."""
    base = float(outcome.mean()) if len(outcome) else 0.0
    if base == 0.0:
        return float("nan")
    return deciles(outcome, probability)[0].observed_rate / base
