"""The Markov removal effect, computed exactly from the absorbing chain (no simulation).

States: `(start)`, one per channel (or per run of the last k channels for order k), and the two
absorbing states `(conversion)` and `(null)`. Transition probabilities are path counts: a path
c1 > ... > ck with a conversions and b nulls adds a + b to start -> c1 and to each ci -> ci+1, a to
ck -> conversion and b to ck -> null.

With Q the transient block and R the transient -> absorbing block, the fundamental matrix
N = (I - Q)^-1 gives the absorption probabilities B = N R, and P(conversion) = B[start, conversion].
We never form N: B's conversion column is the one vector x solving (I - Q) x = R[:, conversion],
the same number with n^2 less work. Removing channel c sends every transition into a state that
holds c to (null); RE(c) = 1 - P'(conversion) / P(conversion), and c is credited
total x RE(c) / sum(RE).

Small chains are solved in rational arithmetic (`fractions.Fraction`), so textbook cases give
textbook numbers exactly; larger ones in floating point with partial pivoting. Pure Python keeps
numpy (about 70 MB unzipped) out of the admin function's package; the chains here have one state
per channel, so tens of states, and the O(n^3) elimination per channel is milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction

from midstage.logic.attribution.paths import Credit, Path

START = "(start)"
CONVERSION = "(conversion)"
NULL = "(null)"
# Rational arithmetic up to this many transient states; past it denominators grow too fast.
EXACT_STATE_LIMIT = 12

State = tuple[str, ...]
Number = Fraction | float


@dataclass(frozen=True)
class MarkovResult:
    credits: dict[str, Credit]
    removal_effects: dict[str, float]
    conversion_probability: float
    transitions: dict[str, dict[str, float]]  # from -> to -> probability, for reproducibility


def markov(paths: Iterable[Path], *, order: int = 1, use_nulls: bool = True) -> MarkovResult:
    if order < 1:
        raise ValueError("order is 1 or more")
    given = list(paths)
    listed = [p for p in given if p.conversions or (use_nulls and p.nulls)]
    # Every channel named is in the answer, those on no counted path with nothing.
    channels = sorted({c for p in given for c in p.channels})
    total_conversions = sum(p.conversions for p in given)
    total_value = sum(p.value for p in given)
    counts = _transition_counts(listed, order, use_nulls)
    states = sorted({s for s in counts if s != (START,)})
    exact = len(states) < EXACT_STATE_LIMIT

    base = _conversion_probability(counts, states, removed=None, exact=exact)
    effects: dict[str, float] = {}
    for channel in channels:
        if base == 0 or all(channel not in s for s in states):
            effects[channel] = 0.0
            continue
        without = _conversion_probability(counts, states, removed=channel, exact=exact)
        effects[channel] = float(1 - Fraction(without) / Fraction(base)) if exact else float(1 - without / base)

    credits: dict[str, Credit] = {c: Credit() for c in channels}
    share_total = sum(Fraction(e) for e in effects.values())
    if share_total > 0:
        for channel in channels:
            share = Fraction(effects[channel]) / share_total
            credits[channel] = Credit(float(share * Fraction(total_conversions)), float(share * Fraction(total_value)))
    return MarkovResult(credits, effects, float(base), _probabilities(counts))


def removal_effects(paths: Iterable[Path], *, order: int = 1, use_nulls: bool = True) -> dict[str, float]:
    return markov(paths, order=order, use_nulls=use_nulls).removal_effects


def _transition_counts(paths: Sequence[Path], order: int, use_nulls: bool) -> dict[State, dict[State, Fraction]]:
    counts: dict[State, dict[State, Fraction]] = {}

    def add(source: State, target: State, weight: Fraction) -> None:
        if weight:
            row = counts.setdefault(source, {})
            row[target] = row.get(target, Fraction(0)) + weight

    for path in paths:
        conversions = Fraction(path.conversions)
        nulls = Fraction(path.nulls) if use_nulls else Fraction(0)
        walked = conversions + nulls
        previous: State = (START,)
        for index in range(len(path.channels)):
            state = tuple(path.channels[max(0, index + 1 - order) : index + 1])
            add(previous, state, walked)
            previous = state
        add(previous, (CONVERSION,), conversions)
        add(previous, (NULL,), nulls)
    return counts


def _conversion_probability(
    counts: dict[State, dict[State, Fraction]], states: Sequence[State], *, removed: str | None, exact: bool
) -> Fraction | float:
    """x[start] where (I - Q) x = R[:, conversion], over the states that remain."""
    transient = [(START,)] + [s for s in states if s[0] not in {CONVERSION, NULL} and removed not in s]
    index = {state: i for i, state in enumerate(transient)}
    size = len(transient)
    zero: Fraction | float = Fraction(0) if exact else 0.0
    one: Fraction | float = Fraction(1) if exact else 1.0
    matrix = [[zero] * size for _ in range(size)]
    rhs = [zero] * size
    for state, i in index.items():
        row = counts.get(state, {})
        out = sum(row.values(), Fraction(0))
        matrix[i][i] = one
        if not out:
            continue  # a state with no way out never converts (only (start) of an empty set)
        for target, weight in row.items():
            probability = weight / out if exact else float(weight) / float(out)
            if target == (CONVERSION,):
                rhs[i] += probability
            elif target in index:
                matrix[i][index[target]] -= probability
            # else: (null), or a removed state, whose mass is lost to (null)
    solution = _solve(matrix, rhs)
    return solution[0]


def _solve(matrix: list[list[Number]], rhs: list[Number]) -> list[Number]:
    """Gaussian elimination with partial pivoting (pivoting is harmless with exact numbers)."""
    size = len(rhs)
    for column in range(size):
        pivot = max(range(column, size), key=lambda r: abs(float(matrix[r][column])))
        if matrix[pivot][column] == 0:
            raise ArithmeticError("the chain has a closed loop of transient states")
        if pivot != column:
            matrix[column], matrix[pivot] = matrix[pivot], matrix[column]
            rhs[column], rhs[pivot] = rhs[pivot], rhs[column]
        lead = matrix[column][column]
        for row in range(column + 1, size):
            factor = matrix[row][column] / lead
            if factor:
                source, target = matrix[column], matrix[row]
                for k in range(column, size):
                    target[k] -= factor * source[k]
                rhs[row] -= factor * rhs[column]
    solution = list(rhs)
    for row in range(size - 1, -1, -1):
        acc = rhs[row]
        for k in range(row + 1, size):
            acc -= matrix[row][k] * solution[k]
        solution[row] = acc / matrix[row][row]
    return solution


def _probabilities(counts: dict[State, dict[State, Fraction]]) -> dict[str, dict[str, float]]:
    table: dict[str, dict[str, float]] = {}
    for source, row in sorted(counts.items()):
        out = sum(row.values(), Fraction(0))
        table[">".join(source)] = {">".join(target): float(w / out) for target, w in sorted(row.items())}
    return table
