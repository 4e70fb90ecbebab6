"""Shapley values of channels, with v(S) = the conversions (or value) of the paths whose channel
set is a subset of S (Dalessandro et al. 2012; the "simplified Shapley" of Zhao et al. 2018).

Up to `EXACT_ENUMERATION_LIMIT` channels the value is computed by the definition: v over all 2^n
coalitions (a subset-sum transform over the paths' channel sets), then
phi_i = sum over S without i of |S|! (n - |S| - 1)! / n! * (v(S + i) - v(S)).
Past that, enumeration is too slow, and the closed form takes over: this v is a sum of unanimity
games (one per channel set T, worth the conversions of the paths with exactly that set), and a
unanimity game's Shapley value splits its worth evenly over T. Both are exact; the tests check
that they agree. Efficiency holds either way: the credits add up to v(all channels), the total.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from math import factorial, lcm

from midstage.logic.attribution.paths import Credit, Path

EXACT_ENUMERATION_LIMIT = 15


def shapley(paths: Iterable[Path], *, enumerate_up_to: int = EXACT_ENUMERATION_LIMIT) -> dict[str, Credit]:
    worth: dict[frozenset[str], list[Fraction]] = {}
    for path in paths:
        if path.conversions or path.value:
            entry = worth.setdefault(frozenset(path.channels), [Fraction(0), Fraction(0)])
            entry[0] += Fraction(path.conversions)
            entry[1] += Fraction(path.value)
    channels = sorted({c for coalition in worth for c in coalition})
    if len(channels) <= enumerate_up_to:
        conversions = _enumerated({k: v[0] for k, v in worth.items()}, channels)
        value = _enumerated({k: v[1] for k, v in worth.items()}, channels)
    else:
        conversions = _unanimity({k: v[0] for k, v in worth.items()}, channels)
        value = _unanimity({k: v[1] for k, v in worth.items()}, channels)
    return {c: Credit(float(conversions[c]), float(value[c])) for c in channels}


def _enumerated(worth: dict[frozenset[str], Fraction], channels: list[str]) -> dict[str, Fraction]:
    n = len(channels)
    # Whole numbers throughout: worth scaled by the common denominator, weights by n!.
    scale = lcm(1, *(amount.denominator for amount in worth.values()))
    bit = {c: 1 << i for i, c in enumerate(channels)}
    v = [0] * (1 << n)
    for coalition, amount in worth.items():
        v[sum(bit[c] for c in coalition)] += int(amount * scale)
    # v(S) = sum of worth over the subsets of S: the subset-sum (zeta) transform, n 2^n additions.
    for i in range(n):
        step = 1 << i
        for mask in range(1 << n):
            if mask & step:
                v[mask] += v[mask ^ step]
    weight = [factorial(s) * factorial(n - s - 1) for s in range(n)]
    sizes = [mask.bit_count() for mask in range(1 << n)]
    values: dict[str, Fraction] = {}
    for i, channel in enumerate(channels):
        step = 1 << i
        total = 0
        for mask in range(1 << n):
            if not mask & step:
                total += weight[sizes[mask]] * (v[mask | step] - v[mask])
        values[channel] = Fraction(total, factorial(n) * scale)
    return values


def _unanimity(worth: dict[frozenset[str], Fraction], channels: list[str]) -> dict[str, Fraction]:
    values = {c: Fraction(0) for c in channels}
    for coalition, amount in worth.items():
        for channel in coalition:
            values[channel] += amount / len(coalition)
    return values
