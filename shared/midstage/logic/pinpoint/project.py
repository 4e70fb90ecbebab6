"""A Pinpoint project's definitions, as the AWS CLI prints them (`--output json`), converted
together, since they name each other: campaigns and journeys name segments by id and templates
by name, segments name segments.

Each input is one CLI answer: `get-segments` / `get-segment`, `get-campaigns` / `get-campaign`,
`list-journeys` / `get-journey`, `get-email-template`, `get-sms-template`, `get-push-template`,
`list-templates` (names only: reported, with the command that gets each one's content).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from midstage.logic.pinpoint.campaigns import convert_campaign
from midstage.logic.pinpoint.channels import RESPONSES
from midstage.logic.pinpoint.common import Converted, Ids, Note, Refused, Unconvertible, slug
from midstage.logic.pinpoint.journeys import convert_journey
from midstage.logic.pinpoint.segments import convert_segment
from midstage.logic.pinpoint.templates import convert_template

LISTS = {"SegmentsResponse": "segment", "CampaignsResponse": "campaign", "JourneysResponse": "journey"}
SINGLES = {"SegmentResponse": "segment", "CampaignResponse": "campaign", "JourneyResponse": "journey"}
TEMPLATES = {"EmailTemplateResponse": "email", "SMSTemplateResponse": "sms", "PushNotificationTemplateResponse": "push"}
NO_COUNTERPART = {"VoiceTemplateResponse": "voice", "InAppTemplateResponse": "in-app"}
GET_COMMAND = {"EMAIL": "get-email-template", "SMS": "get-sms-template", "PUSH": "get-push-template"}


@dataclass
class Item:
    """One Pinpoint definition read from a file: its type, where it came from, its JSON."""

    kind: str  # segment, campaign, journey, template, listed, unknown
    file: str
    data: Mapping[str, Any]
    channel: str = ""

    @property
    def source(self) -> str:
        name = self.data.get("Name") or self.data.get("TemplateName") or self.data.get("Id") or "?"
        label = f"{self.channel} template" if self.kind == "template" else self.kind
        return f"{self.file}: {label} '{name}'"


@dataclass
class Conversion:
    converted: list[Converted] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)


# get-*-channel and get-channels answers (logic/pinpoint/channels.py reads them).
CHANNEL_ANSWERS = frozenset({*RESPONSES, "ChannelsResponse"})


def items_of(file: str, document: Any) -> tuple[list[Item], list[Refused]]:
    """The definitions in one CLI answer, or why it is not one."""
    if not isinstance(document, dict) or len(document) != 1:
        return [], [Refused(file, [Note("", "not an answer of the AWS CLI's pinpoint commands (one top-level key)")])]
    ((key, value),) = document.items()
    if key in LISTS and isinstance(value, dict) and isinstance(value.get("Item"), list):
        return [Item(LISTS[key], file, v) for v in value["Item"] if isinstance(v, dict)], _more_pages(file, key, value)
    if key in SINGLES and isinstance(value, dict):
        return [Item(SINGLES[key], file, value)], []
    if key in TEMPLATES and isinstance(value, dict):
        return [Item("template", file, value, TEMPLATES[key])], []
    if key == "TemplatesResponse" and isinstance(value, dict) and isinstance(value.get("Item"), list):
        return [Item("listed", file, v) for v in value["Item"] if isinstance(v, dict)], _more_pages(file, key, value)
    if key in NO_COUNTERPART:
        name = value.get("TemplateName", "?") if isinstance(value, dict) else "?"
        return [], [
            Refused(
                f"{file}: {NO_COUNTERPART[key]} template '{name}'",
                [Note("", f"Midstage has no {NO_COUNTERPART[key]} channel")],
            )
        ]
    if key in CHANNEL_ANSWERS:
        why = "a channel's settings: `pinpoint-channels` reads them (what to set up on the AWS side)"
        return [], [Refused(file, [Note(f"/{key}", why)])]
    return [], [
        Refused(
            file, [Note(f"/{key}", "not an answer of get-segments, get-campaigns, list-journeys or get-*-template")]
        )
    ]


def _more_pages(file: str, key: str, value: Mapping[str, Any]) -> list[Refused]:
    """An answer with a NextToken is one page: the items of the next ones are not in it."""
    token = value.get("NextToken")
    if not token:
        return []
    why = f"one page of several: run the command again with --token {token} and add its output"
    return [Refused(f"{file}: the pages after this one", [Note(f"/{key}/NextToken", why)])]


def template_id_for(name: str, channel: str) -> str:
    base = slug(name, "template")
    return base if base.endswith(f"-{channel}") else f"{base[: 63 - len(channel)]}-{channel}"


def convert_project(items: Sequence[Item], now: datetime) -> Conversion:
    """Every item converted (or refused, with why), segments first; `now` judges whether a
    campaign's schedule still has a run ahead."""
    result = Conversion()
    segment_ids, template_ids, campaign_ids, journey_ids = Ids(), Ids(), Ids(), Ids()
    by_kind: dict[str, list[Item]] = {}
    for item in items:
        by_kind.setdefault(item.kind, []).append(item)
    for item in by_kind.get("segment", []):
        segment_ids.assign(str(item.data.get("Id")), slug(str(item.data.get("Name") or ""), "segment"))
    segment_versions = {str(i.data.get("Id")): i.data.get("Version") for i in by_kind.get("segment", [])}
    templates_given = {(str(i.data.get("TemplateName")), i.channel) for i in by_kind.get("template", [])}
    for name, channel in sorted(templates_given):
        template_ids.assign((name, channel), template_id_for(name, channel))

    def lookups(notes: list[Note]) -> tuple[Callable[[str, str], str], Callable[[str, str, str], str]]:
        def segment_of(pinpoint_id: str, where: str) -> str:
            known = segment_ids.get(pinpoint_id)
            if known is not None:
                return known
            named = slug(f"pinpoint-{pinpoint_id}", "pinpoint-segment")
            notes.append(
                Note(
                    where,
                    f"segment {pinpoint_id} is not among the inputs: named '{named}'; convert it "
                    "too (get-segment) or create a segment of that id",
                )
            )
            return named

        def template_of(name: str, channel: str, where: str) -> str:
            known = template_ids.get((name, channel))
            if known is not None:
                return known
            named = template_id_for(name, channel)
            command = GET_COMMAND[channel.upper()]
            notes.append(
                Note(
                    where,
                    f"{channel} template '{name}' is not among the inputs: named '{named}'; add "
                    f"the output of `aws pinpoint {command} --template-name {name}`",
                )
            )
            return named

        return segment_of, template_of

    for item in by_kind.get("listed", []):
        result.refused.extend(_listed(item, templates_given))
    for kind in ("segment", "template", "campaign", "journey"):
        for item in by_kind.get(kind, []):
            notes: list[Note] = []
            segment_of, template_of = lookups(notes)
            data = item.data
            try:
                if kind == "segment":
                    segment_id = segment_ids.assign(str(data.get("Id")), "")
                    made = [convert_segment(data, segment_id, item.source, segment_of)]
                elif kind == "template":
                    template_id = template_ids.assign((str(data.get("TemplateName")), item.channel), "")
                    made = [convert_template(data, item.channel, template_id, item.source)]
                elif kind == "campaign":
                    campaign_id = campaign_ids.assign(
                        str(data.get("Id")), slug(str(data.get("Name") or ""), "campaign")
                    )
                    made = convert_campaign(data, campaign_id, item.source, segment_of, template_of, now)
                else:
                    journey_id = journey_ids.assign(str(data.get("Id")), slug(str(data.get("Name") or ""), "journey"))
                    made = [convert_journey(data, journey_id, item.source, segment_of, template_of)]
            except Unconvertible as error:
                result.refused.append(Refused(item.source, [*notes, *error.notes]))
            except (AttributeError, TypeError, ValueError, KeyError, IndexError) as error:
                # A field of another type than Pinpoint documents (a list where an object goes...).
                why = f"not in the shape Pinpoint documents ({type(error).__name__}: {error})"
                result.refused.append(Refused(item.source, [*notes, Note("", why)]))
            else:
                if kind == "campaign":
                    notes += _pinned_segment(data, segment_versions)
                _keep(result, made, notes)
    return result


def _pinned_segment(campaign: Mapping[str, Any], versions: Mapping[str, Any]) -> list[Note]:
    """A campaign runs on the segment version it names; Midstage reads the current definition."""
    pinned, current = campaign.get("SegmentVersion"), versions.get(str(campaign.get("SegmentId")))
    if pinned is None or current is None or pinned == current:
        return []
    why = f"Pinpoint sends to version {pinned} of the segment; the converted segment is version {current}"
    return [Note("/SegmentVersion", why)]


def _keep(result: Conversion, converted: list[Converted], notes: list[Note]) -> None:
    """The definitions an item made, the notes its lookups took first on the main one."""
    converted[0].notes[:0] = notes
    result.converted.extend(converted)


def _listed(item: Item, given: set[tuple[str, str]]) -> list[Refused]:
    """A list-templates entry: names only, so nothing to convert unless its content is given too."""
    kind = str(item.data.get("TemplateType", ""))
    name = item.data.get("TemplateName")
    if (str(name), kind.lower()) in given:
        return []
    command = GET_COMMAND.get(kind)
    if command:
        why = f"list-templates gives names only: add the output of `aws pinpoint {command} --template-name {name}`"
    else:
        why = f"Midstage has no {kind.lower() or 'such'} channel"
    return [Refused(f"{item.file}: {kind.lower()} template '{name}'", [Note("", why)])]
