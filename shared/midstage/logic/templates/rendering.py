"""Rendering one send: choose the locale, fill defaults, run each field under its budget, track links."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from jinja2 import Template
from jinja2.exceptions import SecurityError

from midstage.logic.templates.checks import compile_template
from midstage.logic.templates.formatting import choose_locale, formatting_locale, zone
from midstage.logic.templates.guards import RENDER_STATE, RenderState
from midstage.logic.templates.model import (
    ANY_OF_FIELDS,
    CHANNEL_FIELDS,
    MAX_OUTPUT_BYTES,
    MAX_RENDER_SECONDS,
    REQUIRED_FIELDS,
    SINGLE_LINE_FIELDS,
    RenderContext,
    Rendered,
    RenderError,
    Timer,
)
from midstage.logic.templates.sandbox import Items, MissingVariable, Scope, child_path, kind_of
from midstage.models.messaging import VariableSpec
from midstage.models.profile import Profile


def render(
    channel: str,
    locales: Mapping[str, Mapping[str, str]],
    variables_spec: Mapping[str, VariableSpec],
    *,
    locale: str | None,
    default_locale: str,
    context: RenderContext,
    timer: Timer,
) -> Rendered:
    """Every field of the best locale for `locale`, or RenderError (send nothing).

    `timer` is the stopwatch each field's time budget runs on (elapsed seconds, not a time of
    day): the caller's, so a test can run a render past its budget without waiting for it.
    """
    return _render(channel, locales, variables_spec, locale, default_locale, context, timer, preview=False)


def preview(
    channel: str,
    locales: Mapping[str, Mapping[str, str]],
    variables_spec: Mapping[str, VariableSpec],
    *,
    locale: str | None,
    default_locale: str,
    context: RenderContext,
    timer: Timer,
) -> Rendered:
    """Like render, but a missing variable renders as nothing and is listed in `missing`."""
    return _render(channel, locales, variables_spec, locale, default_locale, context, timer, preview=True)


def person_context(profile: Profile) -> dict[str, Any]:
    """`person` for a profile: its traits, plus an id, email and phone where any is known."""
    person = dict(profile.traits)
    person["profile_id"] = profile.id
    if person.get("id") is None:
        user_ids = profile.identities.get("user_id")
        person["id"] = user_ids[0] if user_ids else profile.id
    for kind in ("email", "phone"):
        # The trait as the person typed it, else the normalised identifier.
        if not person.get(kind) and profile.identities.get(kind):
            person[kind] = profile.identities[kind][0]
    # Segment's spec names them firstName and lastName (the Shopify and Stripe mappings too);
    # templates say first_name and last_name.
    for spec_name, name in (("firstName", "first_name"), ("lastName", "last_name")):
        if person.get(name) is None and person.get(spec_name) is not None:
            person[name] = person[spec_name]
    for name, value in (("locale", profile.locale), ("timezone", profile.timezone)):
        if person.get(name) is None and value is not None:
            person[name] = value
    person.setdefault("tags", list(profile.tags))
    return person


def event_context(event: Mapping[str, Any]) -> dict[str, Any]:
    """`event` for a slim event (see profile.slim_event): name, type, properties, timestamp."""
    kind = event.get("type")
    name = event.get("event") if kind == "track" else event.get("name") or kind
    return {
        "name": name,
        "type": kind,
        "properties": event.get("properties") or {},
        "timestamp": event.get("timestamp"),
        "message_id": event.get("messageId"),
    }


# ------------------------------------------------------------------------------- rendering
def _render(
    channel: str,
    locales: Mapping[str, Mapping[str, str]],
    variables_spec: Mapping[str, VariableSpec],
    wanted: str | None,
    default_locale: str,
    context: RenderContext,
    timer: Timer,
    *,
    preview: bool,
) -> Rendered:
    fields = CHANNEL_FIELDS.get(channel)
    if fields is None:
        raise RenderError(f"unknown channel {channel!r}")
    chosen = choose_locale(locales, wanted, default_locale)
    content = locales[chosen]
    present = [name for name in fields if isinstance(content.get(name), str) and content[name].strip()]
    for name in REQUIRED_FIELDS[channel]:
        if name not in present:
            raise RenderError(f"the {chosen} content has no {name}", field=name, locale=chosen)
    any_of = ANY_OF_FIELDS.get(channel, ())
    if any_of and not set(any_of) & set(present):
        raise RenderError(f"the {chosen} content has no {' or '.join(any_of)}", locale=chosen)

    data = _data(context)
    missing: list[str] = []
    for path, spec in variables_spec.items():
        if spec.default is not None and _blank(_lookup(data, path)):
            _put(data, path, spec.default)
    for path, spec in variables_spec.items():
        if spec.required and _blank(_lookup(data, path)):
            if not preview:
                raise RenderError(f"missing variable {path}", variable=path, locale=chosen)
            missing.append(path)

    formatting = formatting_locale(wanted, chosen)
    tz = zone(context.tz)
    rendered: dict[str, str] = {}
    links: list[str] = []
    for name in present:
        state = RenderState(
            formatting,
            tz,
            preview,
            missing,
            timer=timer,
            seconds=MAX_RENDER_SECONDS,
            offers=context.offers,
            assets=context.assets,
            recommendations=context.recommendations,
        )
        text = _run(compile_template(kind_of(channel, name), content[name]), data, state, name, chosen)
        if (channel, name) in SINGLE_LINE_FIELDS:
            text = re.sub(r"\s*[\r\n]+\s*", " ", text).strip()
        if channel == "webhook":
            try:
                json.loads(text)
            except ValueError as error:
                raise RenderError(f"the rendered body is not JSON: {error}", field=name, locale=chosen) from None
        if name == "html":
            text, links = _track(text, context)
        rendered[name] = text
    return Rendered(rendered, chosen, links, missing)


def _track(html: str, context: RenderContext) -> tuple[str, list[str]]:
    from midstage.logic.links import add_open_pixel, track_links

    urls: list[str] = []
    if context.click_url is not None:
        html, urls = track_links(html, context.click_url, keep=set(_links(context).values()))
    if context.open_pixel_url:
        html = add_open_pixel(html, context.open_pixel_url)
    return html, urls


def _run(template: Template, data: dict[str, Any], state: RenderState, field_name: str, locale: str) -> str:
    state.start()
    token = RENDER_STATE.set(state)
    pieces: list[str] = []
    size = 0
    try:
        for piece in template.generate(data):
            size += len(piece)
            if size > MAX_OUTPUT_BYTES:
                raise RenderError(f"the rendered {field_name} is larger than {MAX_OUTPUT_BYTES // 1024} KB")
            state.tick()
            pieces.append(piece)
        text = "".join(pieces)
        if len(text.encode()) > MAX_OUTPUT_BYTES:
            raise RenderError(f"the rendered {field_name} is larger than {MAX_OUTPUT_BYTES // 1024} KB")
    except RenderError as error:
        error.field, error.locale = field_name, locale
        raise
    except MissingVariable as error:
        raise RenderError(str(error), variable=error.name, field=field_name, locale=locale) from None
    except SecurityError as error:
        raise RenderError(f"not allowed in templates: {error}", field=field_name, locale=locale) from None
    except RecursionError:
        raise RenderError("the template recursed too deeply", field=field_name, locale=locale) from None
    except Exception as error:  # anything a template can make data or Jinja raise
        message = f"could not render {field_name}: {type(error).__name__}: {str(error)[:200]}"
        raise RenderError(message, field=field_name, locale=locale) from None
    finally:
        RENDER_STATE.reset(token)
    return text


def _links(context: RenderContext) -> dict[str, str]:
    links = dict(context.links)
    if context.unsubscribe_url:
        links["unsubscribe"] = context.unsubscribe_url
    return links


def _data(context: RenderContext) -> dict[str, Any]:
    roots: dict[str, Any] = {
        "person": context.person,
        "event": context.event,
        "computed": context.computed,
        "vars": context.vars,
        "links": _links(context),
    }
    return {name: _wrap(value or {}, name, 0) for name, value in roots.items()}


def _wrap(value: Any, path: str, depth: int) -> Any:
    """A private copy of caller data in which every dict and list knows its path.

    None is dropped: a null trait is missing, so it takes the default or fails by name.
    """
    if depth > 32:
        return value
    if isinstance(value, Mapping):
        scope = Scope(path)
        for key, item in value.items():
            if item is not None:
                scope[key] = _wrap(item, child_path(path, key), depth + 1)
        return scope
    if isinstance(value, list | tuple):
        return Items(path, (_wrap(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)))
    return value


def _lookup(data: Mapping[str, Any], path: str) -> Any:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def _put(data: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node: dict[str, Any] = data
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = Scope(".".join(parts[: i + 1]))
        if not isinstance(child, dict):
            return  # `person.address.city` when address is text: leave it to fail by name
        node = child
    node[parts[-1]] = _wrap(value, path, len(parts))


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())
