"""Who is in which arm: by hash, never by chance, so the answer is the same on every send,
in every worker, after every retry and redelivery.

- An arm is drawn from sha256("<experiment id>:<phase>:<unit id>"): its first 64 bits, a
  uniform whole number below 2⁶⁴, fall in one arm's slice of [0, 2⁶⁴), the slices cut in
  proportion to the arms' weights with exact arithmetic. The phase is part of the hash, so a
  new phase (a change under a running experiment) deals everyone again: units do not carry
  an earlier phase's treatment into the new analysis as a bias.
- A holdout arm is an arm like the others in the draw; it receives nothing but its units are
  measured, so the treatment's lift over no message can be read.
- The global control group is a stable share of all people excluded from every marketing
  message (transactional ones still go), drawn from a hash salted apart from any experiment's,
  so it is a fair sample of everyone and of every arm, and the whole programme's lift can be
  measured against it. Changing the salt deals a new group.

**The unit is the person's profile id, and across a merge the surviving profile's id wins.**
OneID picks the survivor of a merge (the profile with the best identifier, then the earliest
activity; `logic.ingest`), and every later send, exposure and conversion is recorded under the
survivor's id, so hashing the survivor's id is the only choice under which the arm a person
is treated in from now on is the arm their outcomes are counted in. The merged profile's
earlier exposures stay in the archive under its old id; `person_arms` maps them to the survivor,
and a person who was exposed in two different arms (one arm per former profile) is reported as
a multiple exposure and left out of every arm's statistics rather than counted twice or in the
wrong arm (as GrowthBook does with its `__multiple__` variation).
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Final

__all__ = [
    "MULTIPLE",
    "Split",
    "assign",
    "assigner",
    "in_global_control",
    "person_arms",
    "unit_hash",
]

_SPACE: Final = 1 << 64
MULTIPLE: Final = "__multiple__"  # a person exposed in more than one arm


def unit_hash(*parts: str | int) -> int:
    """A uniform whole number in [0, 2⁶⁴) from the parts joined by ':' (the last part may hold ':')."""
    text = ":".join(str(part) for part in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


@dataclass(frozen=True, slots=True)
class Split:
    """Arms and their weights, cut into slices of [0, 2⁶⁴); build once per experiment phase."""

    arms: tuple[str, ...]
    edges: tuple[int, ...]  # exclusive upper edge of each arm's slice

    @classmethod
    def of(cls, weighted_arms: Sequence[tuple[str, float]]) -> Split:
        if not weighted_arms:
            raise ValueError("an experiment needs at least one arm")
        if any(weight < 0 for _, weight in weighted_arms):
            raise ValueError("weights cannot be negative")
        weights = [Fraction(weight) for _, weight in weighted_arms]  # exact: floats are dyadic
        total = sum(weights)
        if total <= 0:
            raise ValueError("the weights must add up to more than 0")
        edges, running = [], Fraction(0)
        for weight in weights:
            running += weight
            edges.append(int(running / total * _SPACE))
        edges[-1] = _SPACE  # exactly all of the space, whatever the rounding above
        return cls(tuple(arm for arm, _ in weighted_arms), tuple(edges))

    def arm_of(self, hashed: int) -> str:
        return self.arms[bisect_right(self.edges, hashed)]


def assign(split: Split, experiment_id: str, phase: int, unit_id: str) -> str:
    """The unit's arm in this phase of the experiment."""
    return split.arm_of(unit_hash(experiment_id, phase, unit_id))


def assigner(split: Split, experiment_id: str, phase: int) -> Callable[[str], str]:
    """`assign` for one experiment phase, for a whole audience: the hash of the common prefix is
    computed once and copied per unit (the same digest, about half the cost)."""
    prefix = hashlib.sha256(f"{experiment_id}:{phase}:".encode())

    def arm(unit_id: str) -> str:
        digest = prefix.copy()
        digest.update(unit_id.encode())
        return split.arm_of(int.from_bytes(digest.digest()[:8], "big"))

    return arm


def in_global_control(unit_id: str, share: float, salt: str = "") -> bool:
    """Whether the person is in the global control group holding `share` (0 to 1) of everyone."""
    if share <= 0:
        return False
    if share >= 1:
        return True
    # share·2⁶⁴ is exact in floating point (a power of two), so no Fraction is needed per person.
    return unit_hash("global-control", salt, unit_id) < int(share * _SPACE)


def person_arms(exposures: Iterable[tuple[str, str]], survivor_of: Mapping[str, str]) -> dict[str, str]:
    """Each person's arm from exposures logged as (unit id, arm), with ids merged since mapped to
    their survivor (`survivor_of`: merged id -> surviving id, followed to the end of a chain).
    A person seen in two arms gets `MULTIPLE`."""
    arms: dict[str, str] = {}
    for unit, arm in exposures:
        person = _survivor(unit, survivor_of)
        seen = arms.get(person)
        arms[person] = arm if seen is None or seen == arm else MULTIPLE
    return arms


def _survivor(unit: str, survivor_of: Mapping[str, str]) -> str:
    visited = {unit}
    while unit in survivor_of:
        unit = survivor_of[unit]
        if unit in visited:  # a cycle is a data error; stop at a stable point rather than loop
            break
        visited.add(unit)
    return unit
