"""Pinpoint message templates (`EmailTemplateResponse`, `SMSTemplateResponse`,
`PushNotificationTemplateResponse`) and campaigns' inline messages as Midstage templates.

Handlebars becomes the sandboxed Jinja: `{{User.UserAttributes.FirstName}}` and
`{{Attributes.plan}}` are the traits `pinpoint-import` made of them (`{{ person.FirstName }}`),
`{{User.UserId}}` the user id, `{{Address}}` the email address or phone number,
`{{Location.City}}`... the location traits; `{{#if}}`, `{{else}}`, `{{#unless}}` and comments
carry over. Pinpoint renders a variable without a value as nothing, so each variable gets a
default: its `DefaultSubstitutions` value, else "" (Midstage would otherwise fail the message).
Anything else (other helpers, `{{#each}}`, partials, endpoint fields the import does not keep,
recommendations) is left in the text as a Jinja comment and reported.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from midstage.logic.imports.pinpoint import _trait_name
from midstage.logic.pinpoint.common import Converted, Note, Unconvertible

_TAG = re.compile(r"\{\{\{(.*?)\}\}\}|\{\{(.*?)\}\}", re.DOTALL)
_JINJA_OPENING = re.compile(r"\{[{%#]")
_PATH = re.compile(r"[A-Za-z_$][\w$-]*(\.[\w$-]+)*")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ENDPOINT_TRAITS = {
    "User.UserId": "id",
    "Location.Country": "country",
    "Location.Region": "region",
    "Location.City": "city",
    "Location.PostalCode": "postal_code",
    "Demographic.Timezone": "timezone",
    "Demographic.Locale": "locale",
}
_ADDRESS = {"email": "email", "sms": "phone"}


class Translation:
    """Handlebars text turned into Jinja, collecting the variables used and the notes."""

    def __init__(self, channel: str, defaults: Mapping[str, Any], notes: list[Note]) -> None:
        self.channel = channel
        self.defaults = defaults
        self.notes = notes
        self.variables: dict[str, dict[str, Any]] = {}

    def text(self, source: str, where: str) -> str:
        out: list[str] = []
        at = 0
        blocks: list[str] = []
        for match in _TAG.finditer(source):
            out.append(_literal(source[at : match.start()]))
            at = match.end()
            triple, inner = match.group(1), match.group(2)
            tag = (triple if triple is not None else inner).strip()
            line = source.count("\n", 0, match.start()) + 1
            out.append(self._tag(tag, triple is not None, blocks, f"{where} line {line}", match.group(0)))
        out.append(_literal(source[at:]))
        for block in blocks:
            self.notes.append(Note(where, f"{{{{#{block.lstrip('?')}}}}} is never closed"))
        return "".join(out)

    def _tag(self, tag: str, triple: bool, blocks: list[str], where: str, original: str) -> str:
        if tag.startswith("!"):
            return ""  # a Handlebars comment renders as nothing
        if tag.startswith("#"):
            helper, _, argument = tag[1:].partition(" ")
            variable = self.variable(argument.strip(), where) if helper in ("if", "unless") else None
            if variable is None:
                # Kept as a block so its else and closing tag pair up; its content stays in the text.
                blocks.append(f"?{helper}")
                why = "a block with no translation; what it holds is kept as it is, whatever the condition"
                return self._untranslated(original, where, why)
            blocks.append(helper)
            return f"{{% if {'not ' if helper == 'unless' else ''}{variable} %}}"
        if tag == "else" and blocks:
            if blocks[-1].startswith("?"):
                return self._untranslated(original, where, "the else of a block with no translation")
            return "{% else %}"
        if tag.startswith("/") and blocks and blocks[-1].lstrip("?") == tag[1:]:
            if blocks.pop().startswith("?"):
                return self._untranslated(original, where, "the end of a block with no translation")
            return "{% endif %}"
        if not _PATH.fullmatch(tag):
            return self._untranslated(original, where, "a helper, block or partial with no translation")
        value = self.variable(tag, where)
        if value is None:
            return self._untranslated(original, where, "not a value Midstage keeps")
        if triple:
            self.notes.append(
                Note(where, f"{original} was inserted unescaped by Pinpoint; Midstage escapes it in HTML")
            )
        return f"{{{{ {value} }}}}"

    def _untranslated(self, original: str, where: str, why: str) -> str:
        self.notes.append(Note(where, f"{original}: {why}; left in the text as a comment, write it by hand"))
        return "{# pinpoint: " + original.replace("#}", "# }") + " #}"

    def variable(self, path: str, where: str) -> str | None:
        """The Jinja expression of a Pinpoint message variable, declared with its default."""
        trait: str | None = None
        if path.startswith("User.UserAttributes."):
            trait = _trait_name(path.removeprefix("User.UserAttributes."))
        elif path.startswith("Attributes."):
            trait = _trait_name(path.removeprefix("Attributes."))
        elif path in _ENDPOINT_TRAITS:
            trait = _ENDPOINT_TRAITS[path]
        elif path == "Address" and self.channel in _ADDRESS:
            trait = _ADDRESS[self.channel]
        if trait is None:
            return None
        default = self.defaults.get(path, "")
        if "." in trait:
            self.notes.append(
                Note(where, f"{{{{{path}}}}}: a trait named with a dot has no default; a message without it fails")
            )
        else:
            self.variables[f"person.{trait}"] = {"default": default}
        return f"person.{trait}" if _IDENTIFIER.fullmatch(trait) else f"person[{json.dumps(trait)}]"


def _literal(text: str) -> str:
    """Text Handlebars printed as it is: Jinja's own delimiters in it are printed, not read."""
    return _JINJA_OPENING.sub(lambda m: "{{ " + json.dumps(m.group()) + " }}", text)


def defaults_of(item: Mapping[str, Any], notes: list[Note]) -> dict[str, Any]:
    raw = item.get("DefaultSubstitutions")
    if not raw:
        return {}
    try:
        found = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        notes.append(Note("/DefaultSubstitutions", "not JSON; no defaults were kept"))
        return {}
    return {str(k): v for k, v in found.items()} if isinstance(found, dict) else {}


def _common_notes(item: Mapping[str, Any], notes: list[Note]) -> None:
    if item.get("RecommenderId"):
        notes.append(Note("/RecommenderId", "recommendation models (Amazon Personalize) are not supported"))
    if item.get("Headers"):
        notes.append(Note("/Headers", "custom email headers are not supported"))


def convert_template(item: Mapping[str, Any], channel: str, template_id: str, source: str) -> Converted:
    """One template returned by get-email-template, get-sms-template or get-push-template."""
    notes: list[Note] = []
    translation = Translation(channel, defaults_of(item, notes), notes)
    _common_notes(item, notes)
    content: dict[str, str] = {}
    if channel == "email":
        for field, name in (("Subject", "subject"), ("HtmlPart", "html"), ("TextPart", "text")):
            if item.get(field):
                content[name] = translation.text(str(item[field]), f"/{field}")
        if "subject" not in content or not ({"html", "text"} & set(content)):
            raise Unconvertible("/Subject", "an email template needs a Subject and an HtmlPart or TextPart")
    elif channel == "sms":
        if not item.get("Body"):
            raise Unconvertible("/Body", "an SMS template without a Body")
        content["body"] = translation.text(str(item["Body"]), "/Body")
    else:
        content = _push(item, translation, notes)
    body: dict[str, Any] = {
        "id": template_id,
        "name": str(item.get("TemplateName") or template_id)[:200],
        "channel": channel,
        "locales": {"en": content},
    }
    if translation.variables:
        body["variables"] = translation.variables
    return Converted("template", template_id, source, body, notes)


def _push(item: Mapping[str, Any], translation: Translation, notes: list[Note]) -> dict[str, str]:
    default = item.get("Default") or {}
    platforms = [p for p in ("APNS", "GCM", "ADM", "Baidu") if item.get(p)]
    chosen = default if default.get("Body") else (item.get(platforms[0]) if platforms else {}) or {}
    where = "/Default" if chosen is default else f"/{platforms[0]}" if platforms else "/Default"
    for platform in platforms:
        if item[platform] is not chosen:
            notes.append(
                Note(f"/{platform}", "Midstage sends one title and body to every device; this override is not kept")
            )
    for extra in ("Action", "Url", "Sound", "ImageUrl", "ImageIconUrl", "SmallImageIconUrl", "MediaUrl", "RawContent"):
        if chosen.get(extra):
            notes.append(Note(f"{where}/{extra}", "push notifications carry a title and a body only"))
    if not chosen.get("Body") or not chosen.get("Title"):
        raise Unconvertible(where, "a push template needs a Title and a Body")
    return {
        "title": translation.text(str(chosen["Title"]), f"{where}/Title"),
        "body": translation.text(str(chosen["Body"]), f"{where}/Body"),
    }


def inline_template(
    message: Mapping[str, Any], channel: str, template_id: str, name: str, source: str, notes: list[Note], at: str
) -> dict[str, Any] | None:
    """A template made from a campaign's inline `EmailMessage` or `SMSMessage` (None if empty)."""
    translation = Translation(channel, {}, notes)
    content: dict[str, str] = {}
    if channel == "email":
        if message.get("Title"):
            content["subject"] = translation.text(str(message["Title"]), f"{at}/Title")
        if message.get("HtmlBody"):
            content["html"] = translation.text(str(message["HtmlBody"]), f"{at}/HtmlBody")
        if message.get("Body"):
            content["text"] = translation.text(str(message["Body"]), f"{at}/Body")
        if "subject" not in content or len(content) < 2:
            return None
    elif message.get("Body"):
        content["body"] = translation.text(str(message["Body"]), f"{at}/Body")
    else:
        return None
    body: dict[str, Any] = {"id": template_id, "name": name[:200], "channel": channel, "locales": {"en": content}}
    if channel == "email" and message.get("FromAddress"):
        body["sender"] = str(message["FromAddress"])
    if translation.variables:
        body["variables"] = translation.variables
    return body
