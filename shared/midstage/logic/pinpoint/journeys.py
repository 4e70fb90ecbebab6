"""Pinpoint journeys (`JourneyResponse`) as Midstage journeys.

Each activity becomes a step of the same id (lower-cased): EMAIL, SMS and PUSH a `send`, CUSTOM
with an HTTPS `DeliveryUri` a `webhook`, Wait with `WaitFor` a `wait`, ConditionalSplit a
`condition` (after a `wait` for its `EvaluationWaitTime`) or, on a message or app event, a
`wait` for that event, MultiCondition chained `condition` steps, RandomSplit a `random`,
Holdout a `random` branch to the end. An activity without a next one ends the journey (the
`end` step). What has no counterpart (ContactCenter, a wait until a date, a Lambda custom
channel...) is replaced by a one-minute wait that goes on to where the activity went, and
reported; the journey is written disabled either way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from midstage.logic.pinpoint.common import Converted, Ids, Note, Unconvertible, duration_text, iso_minutes, slug
from midstage.logic.pinpoint.dimensions import Condition, combine, event_dimensions, person_dimensions

Lookup = Callable[[str, str], str]
TemplateLookup = Callable[[str, str, str], str]

MESSAGE_CHANNELS = {"EMAIL": "email", "SMS": "sms", "PUSH": "push"}
# Pinpoint's engagement events and the events Midstage records for its own messages.
MESSAGE_EVENTS = {
    "_email.open": "Email Opened",
    "_email.click": "Email Link Clicked",
    "_email.delivered": "Email Delivered",
    "_email.hardbounce": "Email Bounced",
    "_email.softbounce": "Email Bounced",
    "_email.complaint": "Email Marked as Spam",
    "_email.unsubscribe": "Unsubscribed",
}
MAX_WAIT_MINUTES = 365 * 24 * 60
END = "end"
_JOURNEY_SETTINGS = {
    "Schedule": "a start and end time: a Midstage journey runs while it is enabled",
    "QuietTime": "quiet hours are one window for the stack (the QuietHours parameter)",
    "WaitForQuietTime": "messages inside quiet hours are deferred to their end, as Pinpoint's option did",
    "OpenHours": "sending hours per channel: only the stack's quiet hours exist",
    "ClosedDays": "closed days: no counterpart",
    "SendingSchedule": "sending hours per channel: only the stack's quiet hours exist",
    "LocalTime": "waits are counted from entry; `until_time` waits are in each person's zone",
    "RefreshFrequency": "a segment entry is the moment a person enters the segment, not a periodic re-read",
    "RefreshOnSegmentUpdate": "a segment entry is the moment a person enters the segment, not a periodic re-read",
    "JourneyChannelSettings": "Amazon Connect: no counterpart",
    "TimezoneEstimationMethods": "a person's zone is their `timezone` trait or their events' context",
}


class _Journey:
    def __init__(self, item: Mapping[str, Any], templates: TemplateLookup, segments: Lookup) -> None:
        self.activities: Mapping[str, Any] = item.get("Activities") or {}
        self.templates = templates
        self.segments = segments
        self.notes: list[Note] = []
        self.ids = Ids()
        self.ids.assign(None, END)
        for name in self.activities:
            self.ids.assign(name, slug(str(name), "step"))
        self.steps: dict[str, dict[str, Any]] = {}

    def target(self, name: Any, where: str) -> str:
        if not name:
            return END
        if name not in self.activities:
            self.notes.append(
                Note(where, f"names no activity of the journey ({name}); the person's journey ends there")
            )
            return END
        return self.ids.assign(name, "")

    def convert(self, name: str, activity: Mapping[str, Any]) -> None:
        at = f"/Activities/{name}"
        step_id = self.ids.assign(name, "")
        kinds = [k for k in activity if k != "Description"]
        kind = kinds[0] if kinds else ""
        spec = activity.get(kind) or {}
        where = f"{at}/{kind}"
        if kind in MESSAGE_CHANNELS:
            self.steps[step_id] = self._send(MESSAGE_CHANNELS[kind], spec, where)
        elif kind == "CUSTOM" and str(spec.get("DeliveryUri", "")).startswith("https://"):
            self.notes.append(
                Note(
                    where,
                    "a webhook step posts the person's traits and the event, signed; Pinpoint "
                    "posted endpoints and message data: adapt the receiving end",
                )
            )
            self.steps[step_id] = {
                "type": "webhook",
                "url": spec["DeliveryUri"],
                "next": self.target(spec.get("NextActivity"), f"{where}/NextActivity"),
            }
        elif kind == "Wait":
            self.steps[step_id] = self._wait(spec, where)
        elif kind == "ConditionalSplit":
            self._split(step_id, spec, where)
        elif kind == "MultiCondition":
            self._multi(step_id, spec, where)
        elif kind == "RandomSplit":
            branches: list[dict[str, Any]] = [
                {
                    "percent": float(b.get("Percentage") or 0),
                    "next": self.target(b.get("NextActivity"), f"{where}/Branches/{i}/NextActivity"),
                }
                for i, b in enumerate(spec.get("Branches") or [])
            ]
            if len(branches) < 2 or sum(b["percent"] for b in branches) != 100:
                self._placeholder(
                    step_id,
                    branches[0]["next"] if branches else END,
                    where,
                    "a random split needs two branches adding up to 100%",
                )
            else:
                self.steps[step_id] = {"type": "random", "branches": branches}
        elif kind == "Holdout":
            percent = float(spec.get("Percentage") or 0)
            self.notes.append(
                Note(where, f"{percent:g}% leave the journey here; Midstage does not measure them as a holdout")
            )
            onward = self.target(spec.get("NextActivity"), f"{where}/NextActivity")
            self.steps[step_id] = {
                "type": "random",
                "branches": [{"percent": percent, "next": END}, {"percent": 100 - percent, "next": onward}],
            }
        else:
            why = {
                "ContactCenter": "Amazon Connect calls have no counterpart",
                "CUSTOM": "a Lambda function as a channel has no counterpart (an HTTPS webhook has)",
            }.get(kind, f"activity type {kind or 'none'} is not one Pinpoint documents")
            self._placeholder(step_id, self.target(spec.get("NextActivity"), f"{where}/NextActivity"), where, why)

    def _placeholder(self, step_id: str, onward: str, where: str, why: str) -> None:
        self.notes.append(Note(where, f"{why}; not converted: a one-minute wait stands in for it"))
        self.steps[step_id] = {"type": "wait", "duration": "1m", "next": onward}

    def _send(self, channel: str, spec: Mapping[str, Any], where: str) -> dict[str, Any]:
        onward = self.target(spec.get("NextActivity"), f"{where}/NextActivity")
        if not spec.get("TemplateName"):
            raise Unconvertible(where, f"a {channel} activity without a TemplateName")
        for key, value in (spec.get("MessageConfig") or {}).items():
            if value:
                self.notes.append(
                    Note(f"{where}/MessageConfig/{key}", "sender settings are the stack's or the template's")
                )
        if spec.get("TemplateVersion"):
            self.notes.append(Note(f"{where}/TemplateVersion", "Midstage sends a template's approved version"))
        template = self.templates(str(spec["TemplateName"]), channel, f"{where}/TemplateName")
        return {"type": "send", "channels": [channel], "template": template, "next": onward}

    def _wait(self, spec: Mapping[str, Any], where: str) -> dict[str, Any]:
        onward = self.target(spec.get("NextActivity"), f"{where}/NextActivity")
        wait = spec.get("WaitTime") or {}
        minutes = iso_minutes(wait.get("WaitFor"))
        if minutes is not None and 1 <= minutes <= MAX_WAIT_MINUTES:
            return {"type": "wait", "duration": duration_text(minutes), "next": onward}
        why = (
            "waiting until a calendar date is not supported"
            if wait.get("WaitUntil")
            else f"a wait of {wait.get('WaitFor')!r}: Midstage waits whole minutes, from 1 minute to 365 days"
        )
        self.notes.append(Note(f"{where}/WaitTime", f"{why}; not converted: a one-minute wait stands in for it"))
        return {"type": "wait", "duration": "1m", "next": onward}

    def _evaluation_wait(self, step_id: str, spec: Mapping[str, Any], where: str) -> str:
        """The id the split starts at: a wait for its EvaluationWaitTime first, if it has one."""
        wait = spec.get("EvaluationWaitTime") or {}
        if not wait:
            return step_id
        condition_id = self.ids.assign((step_id, "evaluate"), f"{step_id}-evaluate"[:64])
        self.steps[step_id] = self._wait({"WaitTime": wait, "NextActivity": None}, f"{where}/EvaluationWaitTime") | {
            "next": condition_id
        }
        return condition_id

    def _split(self, step_id: str, spec: Mapping[str, Any], where: str) -> None:
        yes = self.target(spec.get("TrueActivity"), f"{where}/TrueActivity")
        no = self.target(spec.get("FalseActivity"), f"{where}/FalseActivity")
        condition = spec.get("Condition") or {}
        simple = condition.get("Conditions") or []
        if any("EventCondition" in c for c in simple):
            if len(simple) == 1 and self._event_wait(
                step_id, simple[0]["EventCondition"], spec, yes, no, f"{where}/Condition/Conditions/0"
            ):
                return
            self._placeholder(
                step_id,
                no,
                f"{where}/Condition",
                "an event condition together with others cannot be "
                "translated (Midstage waits for one event); it goes on to the FalseActivity",
            )
            return
        tests = [
            c
            for i, s in enumerate(simple)
            if (c := self._condition(s, f"{where}/Condition/Conditions/{i}")) is not None
        ]
        joined = combine(str(condition.get("Operator") or "ALL"), tests)
        if joined is None:
            self._placeholder(
                step_id, no, f"{where}/Condition", "no condition could be translated; it goes on to the FalseActivity"
            )
            return
        at = self._evaluation_wait(step_id, spec, where)
        self.steps[at] = {"type": "condition", "condition": joined, "yes": yes, "no": no}

    def _event_wait(
        self, step_id: str, event: Mapping[str, Any], spec: Mapping[str, Any], yes: str, no: str, where: str
    ) -> bool:
        names, where_conditions = event_dimensions(
            event.get("Dimensions") or {}, f"{where}/EventCondition/Dimensions", self.notes
        )
        timeout = iso_minutes((spec.get("EvaluationWaitTime") or {}).get("WaitFor"))
        if len(names) != 1 or timeout is None or not 1 <= timeout <= MAX_WAIT_MINUTES:
            return False
        name = names[0]
        if event.get("MessageActivity"):
            if name not in MESSAGE_EVENTS:
                return False
            name = MESSAGE_EVENTS[name]
            self.notes.append(
                Note(
                    f"{where}/EventCondition/MessageActivity",
                    "Midstage counts the event for any message "
                    "this run of the journey sent, not only the named activity's",
                )
            )
        else:
            self.notes.append(
                Note(
                    f"{where}/EventCondition",
                    f"a wait for {name}: only an event from the moment the person reaches this step counts, "
                    "until the evaluation time ends",
                )
            )
        until: dict[str, Any] = {"event": name}
        joined = combine("ALL", where_conditions)
        if joined is not None:
            until["where"] = joined
        self.steps[step_id] = {
            "type": "wait",
            "until_event": until,
            "timeout": duration_text(timeout),
            "on_event": yes,
            "on_timeout": no,
        }
        return True

    def _condition(self, simple: Mapping[str, Any], where: str) -> Condition | None:
        if "SegmentCondition" in simple:
            segment = self.segments(
                str((simple["SegmentCondition"] or {}).get("SegmentId")), f"{where}/SegmentCondition/SegmentId"
            )
            return {"path": "segments", "op": "contains", "value": segment}
        if "SegmentDimensions" in simple:
            return combine(
                "ALL", person_dimensions(simple["SegmentDimensions"] or {}, f"{where}/SegmentDimensions", self.notes)
            )
        return None

    def _multi(self, step_id: str, spec: Mapping[str, Any], where: str) -> None:
        default = self.target(spec.get("DefaultActivity"), f"{where}/DefaultActivity")
        branches = spec.get("Branches") or []
        tests: list[tuple[Condition, str]] = []
        for i, branch in enumerate(branches):
            condition = branch.get("Condition") or {}
            found = (
                None if "EventCondition" in condition else self._condition(condition, f"{where}/Branches/{i}/Condition")
            )
            if found is None:
                self._placeholder(
                    step_id,
                    default,
                    f"{where}/Branches/{i}",
                    "a branch condition that cannot be translated "
                    "(an event, or no filter Midstage keeps); everyone goes on to the DefaultActivity",
                )
                return
            tests.append((found, self.target(branch.get("NextActivity"), f"{where}/Branches/{i}/NextActivity")))
        if not tests:
            self._placeholder(step_id, default, where, "a multivariate split without branches")
            return
        at = self._evaluation_wait(step_id, spec, where)
        for i, (condition, onward) in enumerate(tests):
            following = (
                self.ids.assign((step_id, i + 1), f"{step_id}-branch-{i + 2}"[:64]) if i + 1 < len(tests) else default
            )
            self.steps[at] = {"type": "condition", "condition": condition, "yes": onward, "no": following}
            at = following


def convert_journey(
    item: Mapping[str, Any], journey_id: str, source: str, segment_of: Lookup, template_of: TemplateLookup
) -> Converted:
    work = _Journey(item, template_of, segment_of)
    try:
        return _convert(item, work, journey_id, source)
    except Unconvertible as error:
        error.earlier[:0] = work.notes
        raise


def _convert(item: Mapping[str, Any], work: _Journey, journey_id: str, source: str) -> Converted:
    if not work.activities or item.get("StartActivity") not in work.activities:
        raise Unconvertible("/StartActivity", "no activities, or a StartActivity that is not one of them")
    body: dict[str, Any] = {
        "id": journey_id,
        "name": str(item.get("Name") or journey_id)[:200],
        "description": f"Converted from Pinpoint journey {item.get('Id', '?')}",
        "enabled": False,
        "entry": _entry(item.get("StartCondition") or {}, work),
    }
    for name, activity in work.activities.items():
        work.convert(name, activity or {})
    if any(_targets(step, END) for step in work.steps.values()):
        work.steps[END] = {"type": "exit"}
    start = work.ids.assign(item["StartActivity"], "")
    reachable = _reachable(start, work.steps)
    for name in work.activities:
        step_id = work.ids.assign(name, "")
        if step_id not in reachable:
            work.notes.append(Note(f"/Activities/{name}", "no path from the start activity reaches it; left out"))
    body["start"] = start
    body["steps"] = {k: v for k, v in work.steps.items() if k in reachable}
    if item.get("StartCondition", {}).get("EventStartCondition", {}).get("SegmentId"):
        segment = work.segments(
            str(item["StartCondition"]["EventStartCondition"]["SegmentId"]),
            "/StartCondition/EventStartCondition/SegmentId",
        )
        body["entry_conditions"] = {"path": "segments", "op": "contains", "value": segment}
    body.update(_limits(item.get("Limits") or {}, work))
    for key, why in _JOURNEY_SETTINGS.items():
        if item.get(key):
            work.notes.append(Note(f"/{key}", f"{why}; not converted"))
    return Converted("journey", journey_id, source, body, work.notes)


def _entry(start: Mapping[str, Any], work: _Journey) -> dict[str, Any]:
    if start.get("SegmentStartCondition"):
        segment = work.segments(
            str(start["SegmentStartCondition"].get("SegmentId")), "/StartCondition/SegmentStartCondition/SegmentId"
        )
        work.notes.append(
            Note(
                "/StartCondition/SegmentStartCondition",
                "people enter when they enter the segment; "
                "those already in it when the journey is enabled do not enter",
            )
        )
        return {"type": "segment_entered", "segment": segment}
    event = start.get("EventStartCondition") or {}
    event_filter = event.get("EventFilter") or {}
    names, conditions = event_dimensions(
        event_filter.get("Dimensions") or {}, "/StartCondition/EventStartCondition/EventFilter/Dimensions", work.notes
    )
    if len(names) != 1:
        raise Unconvertible(
            "/StartCondition",
            f"a journey enters on one segment or one named event; this start condition names {len(names)} events",
        )
    entry: dict[str, Any] = {"type": "event", "event": names[0]}
    joined = combine("ALL", conditions)
    if joined is not None:
        entry["where"] = joined
    return entry


def _limits(limits: Mapping[str, Any], work: _Journey) -> dict[str, Any]:
    found: dict[str, Any] = {}
    cap = limits.get("EndpointReentryCap")
    interval = iso_minutes(limits.get("EndpointReentryInterval"))
    if cap == 1:
        found["reentry"] = {"mode": "never"}
    elif interval is not None and interval >= 24 * 60 and interval % (24 * 60) == 0:
        found["reentry"] = {"mode": "cooldown", "days": interval // (24 * 60)}
    elif limits.get("EndpointReentryInterval"):
        work.notes.append(
            Note("/Limits/EndpointReentryInterval", "re-entry waits whole days in Midstage; not converted")
        )
    if cap not in (None, 0, 1):
        work.notes.append(
            Note(
                "/Limits/EndpointReentryCap",
                f"at most {cap} entries per person: Midstage limits re-entry by "
                "`reentry` (never, after exit, cooldown), not by count; not converted",
            )
        )
    for key, why in (
        ("DailyCap", "messages per participant per day: FrequencyCaps (stack-wide)"),
        ("TotalCap", "messages per participant: FrequencyCaps (stack-wide)"),
        ("MessagesPerSecond", "a journey sends as its people reach each step"),
        ("TimeframeCap", "messages per participant per period: FrequencyCaps (stack-wide)"),
    ):
        if limits.get(key):
            work.notes.append(Note(f"/Limits/{key}", f"{why}; not converted"))
    return found


def _targets(step: Mapping[str, Any], target: str) -> bool:
    return target in _next_of(step)


def _next_of(step: Mapping[str, Any]) -> list[str]:
    found = [step[k] for k in ("next", "yes", "no", "on_event", "on_timeout") if step.get(k)]
    return found + [b["next"] for b in step.get("branches") or []]


def _reachable(start: str, steps: Mapping[str, Mapping[str, Any]]) -> set[str]:
    seen: set[str] = set()
    stack = [start]
    while stack:
        step_id = stack.pop()
        if step_id in seen or step_id not in steps:
            continue
        seen.add(step_id)
        stack.extend(_next_of(steps[step_id]))
    return seen
