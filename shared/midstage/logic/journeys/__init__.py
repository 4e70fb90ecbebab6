"""Journeys: validating a definition, deciding entries, and the stepper that runs an instance.

Everything here is pure. The service loads the instance and profile, calls `advance` with what
woke the instance, and writes back what it returns: the new instance, messages to deliver,
events for the profile updater and timers to schedule. Every effect is named by (journey,
person, run, step, seq), so a wake handled twice yields the same ids, and the ledger and the
updater's dedupe absorb the repeat; timers are named the same way, so a stale one (a wait that
already ended) is recognised and ignored.

Instances run the definition they are given: an instance whose current step is missing from it
(the journey was edited) exits with the reason saying so.
"""

from __future__ import annotations

from midstage.logic.journeys.definition import (
    MAX_PATH,
    CompiledGoal,
    CompiledJourney,
    compile_journey,
    validate_journey,
)
from midstage.logic.journeys.entry import (
    Instance,
    WaitState,
    adopted,
    date_entry_key,
    entry_key_for,
    may_enter,
    start_instance,
)
from midstage.logic.journeys.stepper import Progress, Timer, Wake, advance, next_local_time
from midstage.models.journeys import duration_of

__all__ = [
    "MAX_PATH",
    "CompiledGoal",
    "CompiledJourney",
    "Instance",
    "Progress",
    "Timer",
    "WaitState",
    "Wake",
    "adopted",
    "advance",
    "compile_journey",
    "date_entry_key",
    "duration_of",
    "entry_key_for",
    "may_enter",
    "next_local_time",
    "start_instance",
    "validate_journey",
]
