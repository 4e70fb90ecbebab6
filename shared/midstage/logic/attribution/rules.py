"""Rule-based models: each path's conversions and value split over its touches by fixed weights.

The weights of one path always add up to 1, so every model's credits add up to the total. A
channel touched twice in a path earns both of its shares.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

from midstage.logic.attribution.paths import DIRECT, Credit, Path

Weights = Callable[[Path], Sequence[float]]

DEFAULT_HALF_LIFE_DAYS = 7.0
DEFAULT_POSITION_WEIGHTS = (0.4, 0.2, 0.4)


def first_touch(paths: Iterable[Path]) -> dict[str, Credit]:
    return _credit(paths, lambda p: [1.0] + [0.0] * (len(p.channels) - 1))


def last_touch(paths: Iterable[Path]) -> dict[str, Credit]:
    return _credit(paths, lambda p: [0.0] * (len(p.channels) - 1) + [1.0])


def last_non_direct(paths: Iterable[Path], direct: str = DIRECT) -> dict[str, Credit]:
    """The last touch that is not `direct`; a path of direct visits only credits direct."""

    def weights(path: Path) -> list[float]:
        chosen = next((i for i in range(len(path.channels) - 1, -1, -1) if path.channels[i] != direct), None)
        index = len(path.channels) - 1 if chosen is None else chosen
        return [1.0 if i == index else 0.0 for i in range(len(path.channels))]

    return _credit(paths, weights)


def linear(paths: Iterable[Path]) -> dict[str, Credit]:
    return _credit(paths, lambda p: [1.0 / len(p.channels)] * len(p.channels))


def time_decay(paths: Iterable[Path], half_life_days: float = DEFAULT_HALF_LIFE_DAYS) -> dict[str, Credit]:
    """Weight 2^(-days before the conversion / half-life), normalised per path."""
    if not half_life_days > 0:
        raise ValueError("half_life_days must be positive")

    def weights(path: Path) -> list[float]:
        if path.days_before is None:
            raise ValueError("time_decay needs days_before on every path")
        # Relative to the nearest touch, so long histories do not underflow to all zeros.
        nearest = min(path.days_before)
        raw = [2.0 ** (-(days - nearest) / half_life_days) for days in path.days_before]
        total = math.fsum(raw)
        return [w / total for w in raw]

    return _credit(paths, weights)


def position_based(
    paths: Iterable[Path], weights: tuple[float, float, float] = DEFAULT_POSITION_WEIGHTS
) -> dict[str, Credit]:
    """U-shaped: `first` to the first touch, `last` to the last, `middle` split evenly between the
    others. Two touches share first + last in their ratio; one touch takes everything."""
    first, middle, last = weights
    if min(weights) < 0 or not math.isclose(first + middle + last, 1.0, abs_tol=1e-9):
        raise ValueError("position weights are three non-negative shares adding up to 1")

    def split(path: Path) -> list[float]:
        n = len(path.channels)
        if n == 1:
            return [1.0]
        if n == 2:
            ends = first + last
            return [0.5, 0.5] if ends == 0 else [first / ends, last / ends]
        return [first] + [middle / (n - 2)] * (n - 2) + [last]

    return _credit(paths, split)


def _credit(paths: Iterable[Path], weights: Weights) -> dict[str, Credit]:
    credits: dict[str, Credit] = {}
    for path in paths:
        if not (path.conversions or path.value):
            continue
        for channel, weight in zip(path.channels, weights(path), strict=True):
            credit = credits.setdefault(channel, Credit())
            credit.add(path.conversions * weight, path.value * weight)
    return credits


RULE_MODELS: dict[str, Callable[[Iterable[Path]], dict[str, Credit]]] = {
    "first_touch": first_touch,
    "last_touch": last_touch,
    "last_non_direct": last_non_direct,
    "linear": linear,
    "time_decay": time_decay,
    "position_based": position_based,
}


def rule_model(
    name: str,
    paths: Iterable[Path],
    *,
    half_life_days: float = DEFAULT_HALF_LIFE_DAYS,
    position_weights: tuple[float, float, float] = DEFAULT_POSITION_WEIGHTS,
    direct: str = DIRECT,
) -> dict[str, Credit]:
    if name == "time_decay":
        return time_decay(paths, half_life_days)
    if name == "position_based":
        return position_based(paths, position_weights)
    if name == "last_non_direct":
        return last_non_direct(paths, direct)
    if name not in RULE_MODELS:
        raise ValueError(f"unknown rule model {name!r}")
    return RULE_MODELS[name](paths)
