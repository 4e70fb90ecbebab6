"""Message templates: per-channel, per-locale Jinja content rendered in a sandbox.

Templates are written by workspace users, not by us, so rendering assumes the source is
hostile. Three layers keep it harmless:

- Jinja's immutable sandbox: no `_` attributes, no mutation of lists or dicts, no loaders.
- A static check of the parsed template (run at save time and again before any compile):
  no include/extends/import/macro/call/block, no recursive loops, loops nested at most twice.
- Resource guards: every value a template builds (operators, `~`, literals, filters, method
  calls, namespaces, captured blocks) is bounded *before* it is allocated where it could grow
  by more than a constant factor, loops share an iteration budget and a deadline, and each
  rendered field is capped. A bad template fails fast with RenderError, never hangs or OOMs.

A variable that is missing when rendered fails the render by name (`missing variable
person.first_name`) unless the template declares a default: a message never says "Hello ,".
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import wraps
from itertools import islice
from string import Formatter
from typing import Any, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import Template, TemplateSyntaxError, meta, nodes, pass_context
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError, TemplateRuntimeError, UndefinedError
from jinja2.filters import FILTERS
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Cycler, Joiner, Namespace, _PassArg, missing
from markupsafe import Markup, soft_str

from midstage.errors import MidstageError
from midstage.models.messaging import VariableSpec
from midstage.models.profile import Profile

CHANNEL_FIELDS: dict[str, tuple[str, ...]] = {
    "email": ("subject", "html", "text"),
    "sms": ("body",),
    "push": ("title", "body"),
    "inbox": ("title", "body"),
    "webhook": ("body",),
}
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "email": ("subject",),
    "sms": ("body",),
    "push": ("title", "body"),
    "inbox": ("title", "body"),
    "webhook": ("body",),
}
ANY_OF_FIELDS: dict[str, tuple[str, ...]] = {"email": ("html", "text")}  # at least one of these
# Rendered on one line: a newline in a subject or a notification title is always a mistake.
SINGLE_LINE_FIELDS = frozenset({("email", "subject"), ("push", "title"), ("inbox", "title")})
ROOTS = ("person", "event", "computed", "vars", "links")

MAX_LOCALES = 20
MAX_FIELD_BYTES = 100 * 1024  # template source, per field
MAX_OUTPUT_BYTES = 256 * 1024  # rendered text, per field
MAX_RANGE = 1000
MAX_LOOP_DEPTH = 2
MAX_LOOP_ITERATIONS = 100_000  # per field, all loops together
MAX_RENDER_SECONDS = 1.0  # per field; checked between loop iterations and output pieces
MAX_VALUE_SIZE = 256 * 1024  # characters of any value a template builds (containers: roughly, as text)
MAX_INT_BITS = 4096
CACHE_SIZE = 256  # compiled templates kept per container

_LOCALE = re.compile(r"^[a-z]{2,3}(-[A-Z][a-z]{3})?(-(?:[A-Z]{2}|\d{3}))?$")
_PATH = re.compile(r"^[A-Za-z$][\w$-]*(\.[A-Za-z0-9$-][\w$-]*)*$")
_MAX_JSON_INDENT = 8
_MAX_STRFTIME = 200


class RenderError(MidstageError):
    """A template could not be rendered for this person; nothing should be sent."""

    status = 422
    code = "render_failed"

    def __init__(
        self,
        message: str,
        *,
        variable: str | None = None,
        field: str | None = None,
        locale: str | None = None,
        line: int | None = None,
    ) -> None:
        super().__init__(message)
        self.variable = variable
        self.field = field
        self.locale = locale
        self.line = line


@dataclass(frozen=True)
class Issue:
    """One problem found when a template is saved. `location` is like `locales.en.html:3`."""

    location: str
    message: str
    line: int | None = None


@dataclass
class RenderContext:
    """Everything a template can see about one send, and how links in its HTML are tracked."""

    person: Mapping[str, Any] = field(default_factory=dict)
    event: Mapping[str, Any] = field(default_factory=dict)
    computed: Mapping[str, Any] = field(default_factory=dict)
    vars: Mapping[str, Any] = field(default_factory=dict)
    tz: str | None = None  # IANA zone of the recipient; UTC when unknown
    # `links.<name>` in templates: our own URLs (unsubscribe, preferences), never click-tracked.
    links: Mapping[str, str] = field(default_factory=dict)
    unsubscribe_url: str | None = None  # shorthand for links["unsubscribe"]
    click_url: Callable[[str], str] | None = None  # original URL -> tracked URL, for HTML links
    open_pixel_url: str | None = None


@dataclass
class Rendered:
    fields: dict[str, str]
    locale: str  # the locale whose content was used
    links: list[str] = field(default_factory=list)  # original URLs rewritten for click tracking
    missing: list[str] = field(default_factory=list)  # preview only: variables that had no value


# ------------------------------------------------------------------------------- public API
def normalize_locale(tag: str | None) -> str | None:
    """`en_us`, `EN-us`, `en-US.UTF-8` -> `en-US`; None when it is not a usable tag."""
    if not isinstance(tag, str) or not tag or len(tag) > 64:
        return None
    parts = re.split(r"[.@]", tag.strip(), maxsplit=1)[0].replace("_", "-").split("-")
    canonical = [parts[0].lower()]
    for part in parts[1:]:
        if len(part) == 4 and part.isalpha() and len(canonical) == 1:
            canonical.append(part.title())
        elif (len(part) == 2 and part.isalpha()) or (len(part) == 3 and part.isdigit()):
            canonical.append(part.upper())
            break
        else:
            break  # variants and extensions (`-u-ca-...`) do not choose content
    result = "-".join(canonical)
    return result if _LOCALE.match(result) else None


def choose_locale(available: Iterable[str], wanted: str | None, default_locale: str) -> str:
    """exact (`pt-BR`) -> shorter tags (`pt`) -> same language elsewhere (`pt-PT`) -> default."""
    keys = list(available)
    by_tag = {normalize_locale(key) or key: key for key in keys}
    tag = normalize_locale(wanted)
    if tag:
        parts = tag.split("-")
        for size in range(len(parts), 0, -1):
            candidate = "-".join(parts[:size])
            if candidate in by_tag:
                return by_tag[candidate]
        # A reader of pt-BR is better served by pt-PT than by the default language.
        same = sorted(key for canonical, key in by_tag.items() if canonical.split("-")[0] == parts[0])
        if same:
            return default_locale if default_locale in same else same[0]
    if default_locale in keys:
        return default_locale
    raise RenderError(f"no content for locale {wanted!r} and none for the default locale {default_locale!r}")


def check_template(
    channel: str,
    locales: Mapping[str, Mapping[str, str]],
    variables: Mapping[str, VariableSpec],
    *,
    default_locale: str | None = None,
) -> list[Issue]:
    """Everything wrong with a template, for the admin API to refuse it with (empty = fine)."""
    fields = CHANNEL_FIELDS.get(channel)
    if fields is None:
        return [Issue("channel", f"unknown channel {channel!r}; one of {', '.join(CHANNEL_FIELDS)}")]
    issues: list[Issue] = []
    if not locales:
        issues.append(Issue("locales", "at least one locale is needed"))
    if len(locales) > MAX_LOCALES:
        issues.append(Issue("locales", f"{len(locales)} locales; at most {MAX_LOCALES}"))
    if default_locale is not None and default_locale not in locales:
        issues.append(Issue("default_locale", f"{default_locale!r} has no content in locales"))
    for tag, content in locales.items():
        where = f"locales.{tag}"
        if not isinstance(tag, str) or not _LOCALE.match(tag):
            better = normalize_locale(tag) if isinstance(tag, str) else None
            hint = f" (write {better!r})" if better and better != tag else ""
            issues.append(Issue(where, f"not a locale tag like en, en-GB or pt-BR{hint}"))
        if not isinstance(content, Mapping):
            issues.append(Issue(where, "must map field names to template text"))
            continue
        for name in sorted(set(content) - set(fields), key=str):
            issues.append(Issue(f"{where}.{name}", f"not a field of {channel} templates ({', '.join(fields)})"))
        present = {f for f in fields if isinstance(content.get(f), str) and content[f].strip()}
        for name in REQUIRED_FIELDS[channel]:
            if name not in present:
                issues.append(Issue(f"{where}.{name}", "is required"))
        any_of = ANY_OF_FIELDS.get(channel, ())
        if any_of and not present & set(any_of):
            issues.append(Issue(where, f"needs at least one of {' or '.join(any_of)}"))
        for name in fields:
            source = content.get(name)
            if source is None:
                continue
            if not isinstance(source, str):
                issues.append(Issue(f"{where}.{name}", "must be text"))
                continue
            issues.extend(_check_source(_kind_of(channel, name), source, f"{where}.{name}"))
    issues.extend(_check_variables(variables))
    return issues


def render(
    channel: str,
    locales: Mapping[str, Mapping[str, str]],
    variables_spec: Mapping[str, VariableSpec],
    *,
    locale: str | None,
    default_locale: str,
    context: RenderContext,
) -> Rendered:
    """Every field of the best locale for `locale`, or RenderError (send nothing)."""
    return _render(channel, locales, variables_spec, locale, default_locale, context, preview=False)


def preview(
    channel: str,
    locales: Mapping[str, Mapping[str, str]],
    variables_spec: Mapping[str, VariableSpec],
    *,
    locale: str | None,
    default_locale: str,
    context: RenderContext,
) -> Rendered:
    """Like render, but a missing variable renders as nothing and is listed in `missing`."""
    return _render(channel, locales, variables_spec, locale, default_locale, context, preview=True)


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


# ------------------------------------------------------------------------------- money and dates
_CURRENCIES: dict[str, tuple[str, int]] = {
    "USD": ("$", 2),
    "EUR": ("€", 2),
    "GBP": ("£", 2),
    "JPY": ("¥", 0),
    "CNY": ("CN¥", 2),
    "KRW": ("₩", 0),
    "INR": ("₹", 2),
    "BRL": ("R$", 2),
    "CAD": ("CA$", 2),
    "AUD": ("A$", 2),
    "NZD": ("NZ$", 2),
    "MXN": ("MX$", 2),
    "HKD": ("HK$", 2),
    "SGD": ("SGD", 2),
    "CHF": ("CHF", 2),
    "SEK": ("SEK", 2),
    "NOK": ("NOK", 2),
    "DKK": ("DKK", 2),
    "PLN": ("PLN", 2),
}
# Where the local dollar is "$", the US dollar needs its "US" to tell them apart.
_LOCAL_DOLLARS = {"CA": "CAD", "AU": "AUD", "NZ": "NZD", "MX": "MXN", "HK": "HKD", "SG": "SGD"}
_LOCAL_SYMBOLS = {
    ("ja", "JPY"): "￥",
    ("zh", "CNY"): "¥",
    ("sv", "SEK"): "kr",
    ("nb", "NOK"): "kr",
    ("da", "DKK"): "kr.",
}


@dataclass(frozen=True)
class _NumberStyle:
    group: str
    decimal: str
    symbol_first: bool
    spaced: bool  # a (no-break) space between symbol and number
    min_grouping: int = 1  # 2: "1234" stays ungrouped, "12 345" is grouped


_EN_NUMBERS = _NumberStyle(",", ".", True, False)
_NUMBER_STYLES: dict[str, _NumberStyle] = {
    "en": _EN_NUMBERS,
    "ja": _EN_NUMBERS,
    "zh": _EN_NUMBERS,
    "ko": _EN_NUMBERS,
    "de": _NumberStyle(".", ",", False, True),
    "it": _NumberStyle(".", ",", False, True),
    "es": _NumberStyle(".", ",", False, True, 2),
    "pt": _NumberStyle(".", ",", True, True),  # pt-BR: R$ 1.234,56
    "pt-PT": _NumberStyle("\u00a0", ",", False, True, 2),
    "nl": _NumberStyle(".", ",", True, True),
    "fr": _NumberStyle("\u202f", ",", False, True),
    "da": _NumberStyle(".", ",", False, True),
    "sv": _NumberStyle("\u00a0", ",", False, True),
    "nb": _NumberStyle("\u00a0", ",", False, True),
    "fi": _NumberStyle("\u00a0", ",", False, True),
    "pl": _NumberStyle("\u00a0", ",", False, True, 2),
}


def format_money(amount: Any, currency: str = "USD", locale: str = "en") -> str:
    """`1234.5, "EUR", "fr"` -> `1 234,50 €`: symbol, decimals and separators from small tables."""
    value = _decimal(amount)
    code = str(currency).strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", code):
        raise RenderError(f"money: not a currency code: {str(currency)[:20]!r}")
    symbol, digits = _CURRENCIES.get(code, (code, 2))
    language, _, region = locale.partition("-")
    region = region.rsplit("-", 1)[-1]
    if _LOCAL_DOLLARS.get(region) == code:
        symbol = "$"
    elif code == "USD" and region in _LOCAL_DOLLARS:
        symbol = "US$"
    symbol = _LOCAL_SYMBOLS.get((language, code), symbol)
    style = _NUMBER_STYLES.get(locale) or _NUMBER_STYLES.get(language) or _EN_NUMBERS
    rounded = value.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    sign = "-" if rounded < 0 else ""
    whole, _, fraction = f"{abs(rounded):f}".partition(".")
    if len(whole) > 3 and len(whole) - 3 >= style.min_grouping:
        head = len(whole) % 3 or 3
        whole = style.group.join([whole[:head]] + [whole[i : i + 3] for i in range(head, len(whole), 3)])
    number = f"{whole}{style.decimal}{fraction}" if digits else whole
    gap = "\u00a0" if style.spaced or symbol[-1].isalpha() else ""
    return f"{sign}{symbol}{gap}{number}" if style.symbol_first else f"{sign}{number}{gap}{symbol}"


def _decimal(amount: Any) -> Decimal:
    if isinstance(amount, Undefined):
        str(amount)  # names the missing variable
    if isinstance(amount, bool) or not isinstance(amount, int | float | Decimal | str):
        raise RenderError(f"money: not an amount: {type(amount).__name__}")
    try:
        value = Decimal(str(amount).strip())
    except InvalidOperation:
        raise RenderError(f"money: not an amount: {str(amount)[:40]!r}") from None
    if not value.is_finite() or value.adjusted() >= 15:
        raise RenderError(f"money: amount out of range: {str(amount)[:40]!r}")
    return value


@dataclass(frozen=True)
class _DateStyle:
    short: str
    medium: str
    long: str
    time: str
    months: tuple[str, ...] = ()
    months_short: tuple[str, ...] = ()
    joiner: str = ", "


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_EN_MONTHS = _words("January February March April May June July August September October November December")
_EN_US_DATES = _DateStyle(
    "{M}/{d}/{yy}",
    "{MMM} {d}, {yyyy}",
    "{MMMM} {d}, {yyyy}",
    "{h}:{mm} {a}",
    _EN_MONTHS,
    tuple(m[:3] for m in _EN_MONTHS),
)
_ISO_DATES = _DateStyle("{yyyy}-{MM}-{dd}", "{yyyy}-{MM}-{dd}", "{yyyy}-{MM}-{dd}", "{HH}:{mm}", joiner=" ")
_EN_US_REGIONS = {"", "US", "CA", "PH"}
_DATE_STYLES: dict[str, _DateStyle] = {
    "en": _EN_US_DATES,
    "en-GB": _DateStyle(
        "{dd}/{MM}/{yyyy}",
        "{d} {MMM} {yyyy}",
        "{d} {MMMM} {yyyy}",
        "{HH}:{mm}",
        _EN_US_DATES.months,
        _EN_US_DATES.months_short,
    ),
    "fr": _DateStyle(
        "{dd}/{MM}/{yyyy}",
        "{d} {MMM} {yyyy}",
        "{d} {MMMM} {yyyy}",
        "{HH}:{mm}",
        _words("janvier février mars avril mai juin juillet août septembre octobre novembre décembre"),
        _words("janv. févr. mars avr. mai juin juil. août sept. oct. nov. déc."),
        " ",
    ),
    "de": _DateStyle(
        "{dd}.{MM}.{yy}",
        "{dd}.{MM}.{yyyy}",
        "{d}. {MMMM} {yyyy}",
        "{HH}:{mm}",
        _words("Januar Februar März April Mai Juni Juli August September Oktober November Dezember"),
        _words("Jan. Feb. März Apr. Mai Juni Juli Aug. Sept. Okt. Nov. Dez."),
    ),
    "es": _DateStyle(
        "{d}/{M}/{yy}",
        "{d} {MMM} {yyyy}",
        "{d} de {MMMM} de {yyyy}",
        "{H}:{mm}",
        _words("enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre diciembre"),
        _words("ene feb mar abr may jun jul ago sept oct nov dic"),
    ),
    "it": _DateStyle(
        "{dd}/{MM}/{yy}",
        "{d} {MMM} {yyyy}",
        "{d} {MMMM} {yyyy}",
        "{HH}:{mm}",
        _words("gennaio febbraio marzo aprile maggio giugno luglio agosto settembre ottobre novembre dicembre"),
        _words("gen feb mar apr mag giu lug ago set ott nov dic"),
    ),
    "pt": _DateStyle(
        "{dd}/{MM}/{yyyy}",
        "{d} de {MMM} de {yyyy}",
        "{d} de {MMMM} de {yyyy}",
        "{HH}:{mm}",
        _words("janeiro fevereiro março abril maio junho julho agosto setembro outubro novembro dezembro"),
        _words("jan. fev. mar. abr. mai. jun. jul. ago. set. out. nov. dez."),
        " ",
    ),
    "nl": _DateStyle(
        "{dd}-{MM}-{yyyy}",
        "{d} {MMM} {yyyy}",
        "{d} {MMMM} {yyyy}",
        "{HH}:{mm}",
        _words("januari februari maart april mei juni juli augustus september oktober november december"),
        _words("jan feb mrt apr mei jun jul aug sep okt nov dec"),
        " ",
    ),
    "ja": _DateStyle("{yyyy}/{MM}/{dd}", "{yyyy}/{MM}/{dd}", "{yyyy}年{M}月{d}日", "{H}:{mm}", joiner=" "),
    "zh": _DateStyle("{yyyy}/{M}/{d}", "{yyyy}年{M}月{d}日", "{yyyy}年{M}月{d}日", "{HH}:{mm}", joiner=" "),
}


def format_date(value: Any, format: str = "medium", *, locale: str = "en", tz: str | tzinfo | None = None) -> str:
    """The calendar day of `value` where the recipient is (`tz`): short, medium, long, iso or strftime."""
    return _format_moment(value, format, locale, tz, with_time=False)


def format_datetime(value: Any, format: str = "medium", *, locale: str = "en", tz: str | tzinfo | None = None) -> str:
    """Day and time of `value` in the recipient's zone `tz` (UTC when unknown)."""
    return _format_moment(value, format, locale, tz, with_time=True)


def zone(name: str | tzinfo | None) -> tzinfo:
    """The IANA zone `name`, falling back to UTC for anything unknown or malformed."""
    if isinstance(name, tzinfo):
        return name
    if not isinstance(name, str) or not name or len(name) > 64:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return UTC


def _format_moment(value: Any, fmt: str, locale: str, tz: str | tzinfo | None, *, with_time: bool) -> str:
    moment = _moment(value)
    if isinstance(moment, datetime):
        moment = moment.astimezone(zone(tz))
        day: date = moment.date()
    else:
        day = moment  # a calendar date (a birthday) has no zone to convert from
    if not isinstance(fmt, str):
        raise RenderError("date: the format must be text")
    if "%" in fmt:
        if len(fmt) > _MAX_STRFTIME:
            raise RenderError(f"date: strftime patterns are limited to {_MAX_STRFTIME} characters")
        return (moment if with_time else day).strftime(fmt)
    if fmt == "iso":
        if with_time and isinstance(moment, datetime):
            return moment.isoformat(timespec="seconds")
        return day.isoformat()
    if fmt not in ("short", "medium", "long"):
        raise RenderError(f"date: unknown format {fmt[:40]!r} (short, medium, long, iso or a strftime pattern)")
    style = _date_style(locale)
    months = style.months or tuple(str(m) for m in range(1, 13))
    months_short = style.months_short or months
    parts: dict[str, Any] = {
        "d": day.day,
        "dd": f"{day.day:02d}",
        "M": day.month,
        "MM": f"{day.month:02d}",
        "MMM": months_short[day.month - 1],
        "MMMM": months[day.month - 1],
        "yyyy": f"{day.year:04d}",
        "yy": f"{day.year % 100:02d}",
    }
    text = str(getattr(style, fmt)).format(**parts)
    if not with_time or not isinstance(moment, datetime):
        return text
    hour = moment.hour % 12 or 12
    clock = style.time.format(
        h=hour, H=moment.hour, HH=f"{moment.hour:02d}", mm=f"{moment.minute:02d}", a="AM" if moment.hour < 12 else "PM"
    )
    return f"{text}{style.joiner}{clock}"


def _date_style(locale: str) -> _DateStyle:
    language, _, region = locale.partition("-")
    region = region.rsplit("-", 1)[-1]
    if language == "en":
        return _EN_US_DATES if region in _EN_US_REGIONS else _DATE_STYLES["en-GB"]
    return _DATE_STYLES.get(language, _ISO_DATES)


def _moment(value: Any) -> datetime | date:
    if isinstance(value, Undefined):
        str(value)  # names the missing variable
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return value
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, UTC)  # epoch seconds
        if isinstance(value, str):
            text = value.strip()
            if len(text) == 10:
                return date.fromisoformat(text)
            moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        pass
    raise RenderError(f"date: not a date or time: {str(value)[:40]!r}")


# ------------------------------------------------------------------------------- rendering state
@dataclass
class _State:
    """One field being rendered: read by filters and guards through `_STATE`."""

    locale: str
    tz: tzinfo
    preview: bool
    missing: list[str]
    iterations_left: int = MAX_LOOP_ITERATIONS
    deadline: float = 0.0

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise RenderError(f"rendering took longer than {MAX_RENDER_SECONDS:g} s")


_STATE: ContextVar[_State | None] = ContextVar("midstage_template_state", default=None)


def _state() -> _State:
    state = _STATE.get()
    if state is None:  # only reachable if a state-dependent filter ran outside _run
        raise RenderError("template code ran outside a render")
    return state


class _MissingVariable(UndefinedError):
    def __init__(self, name: str) -> None:
        super().__init__(f"missing variable {name}")
        self.name = name


class _Scope(dict[str, Any]):
    """A dict that knows its dotted path, so a missing key can be reported by full name."""

    __slots__ = ("_ms_path",)

    def __init__(self, path: str) -> None:
        super().__init__()
        self._ms_path = path


class _Items(list[Any]):
    __slots__ = ("_ms_path",)

    def __init__(self, path: str, items: Iterable[Any]) -> None:
        super().__init__(items)
        self._ms_path = path


class _Undefined(Undefined):
    """Falsy and comparable, so `{% if person.x %}` and `| default` work; fails when output."""

    __slots__ = ()

    def __init__(
        self,
        hint: str | None = None,
        obj: Any = missing,
        name: str | None = None,
        exc: type[TemplateRuntimeError] = UndefinedError,
    ) -> None:
        if isinstance(obj, _Scope | _Items) and name is not None:
            name = _child_path(obj._ms_path, name)
        super().__init__(hint, obj, name, exc)

    @property
    def _dotted(self) -> str:
        return str(self._undefined_name) if self._undefined_name is not None else "(unnamed)"

    def _fail_with_undefined_error(self, *args: Any, **kwargs: Any) -> NoReturn:
        if self._undefined_exception is not UndefinedError:  # the sandbox's SecurityError
            raise self._undefined_exception(self._undefined_message)
        raise _MissingVariable(self._dotted)

    def _preview_missing(self) -> bool:
        state = _STATE.get()
        if state is None or not state.preview or self._undefined_exception is not UndefinedError:
            return False
        if self._dotted not in state.missing:
            state.missing.append(self._dotted)
        return True

    def __str__(self) -> str:
        if not self._preview_missing():
            self._fail_with_undefined_error()
        return ""

    def __iter__(self) -> Iterator[Any]:
        if not self._preview_missing():
            self._fail_with_undefined_error()
        return iter(())

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        # `person.address.city` with no address names the whole path, which a default can cover.
        return type(self)(name=_child_path(self._dotted, name), exc=self._undefined_exception)

    def __getitem__(self, key: Any) -> Any:
        return type(self)(name=_child_path(self._dotted, key), exc=self._undefined_exception)


# Undefined aliases its operators (`+`, `<`, `()`...) to the base class's failure at class
# creation; point them at ours so they too name the missing variable.
for _name, _value in vars(Undefined).items():
    if _value is Undefined._fail_with_undefined_error and _name not in vars(_Undefined):
        setattr(_Undefined, _name, _Undefined._fail_with_undefined_error)


def _child_path(path: str, key: Any) -> str:
    return f"{path}.{key}" if isinstance(key, str) else f"{path}[{key!r}]"


# ------------------------------------------------------------------------------- resource guards
def _weight(value: Any, limit: int = MAX_VALUE_SIZE) -> int:
    """About how many characters `value` makes as text, counting no further than past `limit`.

    Containers count their items, so `[big] * 1000` weighs 1000 bigs even though it holds
    one string: it is what `{{ }}`, `~` or `join` would turn it into.
    """
    total = 0
    stack = [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, bool) or item is None:
            total += 1
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 1
        elif isinstance(item, dict):
            total += len(item) + 1
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            total += len(item) + 1
            stack.extend(item)
        elif isinstance(item, Namespace):
            stack.append(_namespace_attrs(item))
        else:
            total += 1
    return total


def _namespace_attrs(namespace: Namespace) -> dict[str, Any]:
    # Namespace keeps its attributes in a private dict and hides every other attribute.
    attrs: dict[str, Any] = object.__getattribute__(namespace, "_Namespace__attrs")
    return attrs


def _too_large(what: str = "a value") -> RenderError:
    return RenderError(f"{what} would be larger than {MAX_VALUE_SIZE // 1024} KB")


def _bounded(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        raise RenderError(f"a number larger than {MAX_INT_BITS} bits")
    containers = str | bytes | list | tuple | dict | set | frozenset | Namespace
    if isinstance(value, containers) and _weight(value) > MAX_VALUE_SIZE:
        raise _too_large()
    return value


def _check_repeat(left: Any, right: Any) -> None:
    """`'x' * 10**9` is computed before any check after it could run: refuse it up front."""
    for sequence, times in ((left, right), (right, left)):
        repeated = isinstance(sequence, str | bytes | list | tuple) and isinstance(times, int) and times > 0
        if repeated and _weight(sequence) * times > MAX_VALUE_SIZE:
            raise _too_large("a repeated value")


def _check_power(base: Any, exponent: Any) -> None:
    integers = isinstance(base, int) and isinstance(exponent, int) and abs(base) > 1 and exponent > 0
    if integers and abs(base).bit_length() * exponent > MAX_INT_BITS:
        raise RenderError(f"a number larger than {MAX_INT_BITS} bits")


_PRINTF_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?([a-zA-Z%])")


def _check_printf(fmt: str, args: Any) -> None:
    """`'%999999999d' % 1` and `'%(x)s' * n % {x: big}` allocate before anything can look."""
    specs = 0
    total = len(fmt)
    for match in _PRINTF_SPEC.finditer(fmt):
        width, precision, conversion = match.groups()
        if "*" in (width, precision):
            raise RenderError("`*` widths are not supported in % formatting")
        total += int(width or 0) + int(precision or 0)
        specs += conversion != "%"
    if total + specs * _weight(args) > MAX_VALUE_SIZE:
        raise _too_large("a formatted string")


def _check_format(fmt: str, args: tuple[Any, ...], kwargs: Mapping[str, Any], by_map: bool) -> None:
    """The same for `str.format`: widths, and fields that repeat one large argument."""
    mapping = args[0] if by_map and args else kwargs
    total = 0
    auto = 0
    try:
        parsed = list(Formatter().parse(fmt))
    except ValueError:
        return  # the call itself raises it
    for literal, name, spec, _ in parsed:
        total += len(literal)
        if name is None:
            continue
        if spec and "{" in spec:
            raise RenderError("nested replacement fields are not supported in format()")
        total += sum(int(n) for n in re.findall(r"\d+", spec or ""))
        first = re.match(r"[^.\[]*", name)
        key = first.group() if first else ""
        argument: Any = None
        if key == "" or key.isdigit():
            index = auto if key == "" else int(key)
            auto += key == ""
            argument = args[index] if not by_map and index < len(args) else None
        elif isinstance(mapping, Mapping):
            argument = mapping.get(key)
        total += _weight(argument)
        if total > MAX_VALUE_SIZE:
            raise _too_large("a formatted string")


def _check_str_method(
    owner: str | bytes, name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> tuple[Any, ...]:
    """Bounds for the str (and bytes) methods whose result can outgrow their inputs."""
    if name in ("format", "format_map"):
        return args  # str.format is wrapped, and checked, when it is looked up: wrap_str_format
    if name == "join" and args:
        items = list(islice(iter(args[0]), MAX_VALUE_SIZE + 1))
        if _weight(items) + len(owner) * max(0, len(items) - 1) > MAX_VALUE_SIZE:
            raise _too_large("a joined string")
        return (items, *args[1:])
    if name == "replace" and len(args) >= 2:
        old, new = args[0], args[1]
        count = args[2] if len(args) > 2 else kwargs.get("count", -1)
        if isinstance(old, str | bytes) and isinstance(new, str | bytes):
            found = len(owner) // len(old) if old else len(owner) + 1
            if isinstance(count, int) and count >= 0:
                found = min(found, count)
            if len(owner) + found * max(0, len(new) - len(old)) > MAX_VALUE_SIZE:
                raise _too_large("a replaced string")
        return args
    if name == "expandtabs":
        size = args[0] if args else kwargs.get("tabsize", 8)
        tab = "\t" if isinstance(owner, str) else b"\t"
        if isinstance(size, int) and len(owner) + owner.count(tab) * size > MAX_VALUE_SIZE:  # type: ignore[arg-type]
            raise _too_large("an expanded string")
    if name == "translate" and args and isinstance(args[0], Mapping):
        longest = max((len(v) for v in args[0].values() if isinstance(v, str | bytes)), default=1)
        if len(owner) * longest > MAX_VALUE_SIZE:
            raise _too_large("a translated string")
    _check_int_arguments(args, kwargs)
    return args


def _check_int_arguments(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    # Widths and lengths (`center`, `zfill`, `to_bytes`...) past the value cap can only blow up.
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_VALUE_SIZE:
            raise _too_large("a sized value")


def _safe_range(*args: int) -> range:
    numbers = range(*args)
    try:
        size = len(numbers)
    except OverflowError:
        size = MAX_RANGE + 1
    if size > MAX_RANGE:
        raise RenderError(f"range() is limited to {MAX_RANGE} items")
    return numbers


class _Namespace(Namespace):
    """`namespace()` is the only state a loop can carry between iterations: bound what it holds."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _bounded(self)

    def __setitem__(self, name: str, value: Any) -> None:
        super().__setitem__(name, value)
        _bounded(self)


class _Steps:
    """A loop's items, counted against the field's iteration budget, checking the deadline."""

    __slots__ = ("_items", "_state")

    def __init__(self, items: list[Any], state: _State) -> None:
        self._items = items
        self._state = state

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Any]:
        for item in self._items:
            self._state.tick()
            yield item


@pass_context  # never folded at compile time: it needs the render's budget
def _loop_guard(context: Context, iterable: Any) -> Any:
    if isinstance(iterable, Undefined):
        return iterable  # iterating it fails by name (or, in a preview, yields nothing)
    state = _state()
    items = list(islice(iter(iterable), state.iterations_left + 1))
    if len(items) > state.iterations_left:
        raise RenderError(f"loops may run at most {MAX_LOOP_ITERATIONS} times in one field")
    state.iterations_left -= len(items)
    return _Steps(items, state)


class _Buffer(list[Any]):
    """What `{% set x %}...{% endset %}` and `{% filter %}` capture, capped like output."""

    __slots__ = ("_size",)

    def __init__(self) -> None:
        super().__init__()
        self._size = 0

    def append(self, item: Any) -> None:
        self._size += len(item) if isinstance(item, str) else _weight(item)
        if self._size > MAX_OUTPUT_BYTES:
            raise RenderError(f"a captured block is larger than {MAX_OUTPUT_BYTES // 1024} KB")
        super().append(item)

    def extend(self, items: Iterable[Any]) -> None:
        for item in items:
            self.append(item)


class _GuardedCodeGenerator(CodeGenerator):
    """Routes what Jinja builds inline (`~`, literals, captured blocks) through the guards."""

    def buffer(self, frame: Frame) -> None:
        frame.buffer = self.temporary_identifier()
        self.writeline(f"{frame.buffer} = environment.ms_buffer()")

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        escaping = "context.eval_ctx.autoescape" if frame.eval_ctx.volatile else repr(frame.eval_ctx.autoescape)
        self.write(f"environment.ms_concat({escaping}, (")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self.write("environment.ms_bounded(")
        super().visit_List(node, frame)
        self.write(")")

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self.write("environment.ms_bounded(")
        super().visit_Dict(node, frame)
        self.write(")")

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        if node.ctx != "load":  # an assignment target (`for k, v in ...`) is not a value
            super().visit_Tuple(node, frame)
            return
        self.write("environment.ms_bounded(")
        super().visit_Tuple(node, frame)
        self.write(")")


def _guard_filter(name: str, check: Callable[..., None] | None = None) -> Callable[..., Any]:
    original = FILTERS[name]
    # Checks take the filter's own arguments, without the context Jinja may pass first.
    skip = 0 if _PassArg.from_obj(original) is None else 1

    @wraps(original)  # keeps jinja_pass_arg, so context-taking filters still get one
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if check is not None:
            check(*args[skip:], **kwargs)
        return _bounded(original(*args, **kwargs))

    return guarded


def _check_center(value: Any, width: Any = 80) -> None:
    _check_int_arguments((width,), {})


def _check_indent(s: Any, width: Any = 4, first: bool = False, blank: bool = False) -> None:
    text = str(s)
    step = width if isinstance(width, int) else len(str(width))
    if len(text) + (text.count("\n") + 1) * max(0, step) > MAX_VALUE_SIZE:
        raise _too_large("an indented string")


def _check_wordwrap(s: Any, width: Any = 79, break_long_words: Any = True, wrapstring: Any = None, *_: Any) -> None:
    if wrapstring is not None and (len(str(s)) + 1) * (len(str(wrapstring)) + 1) > MAX_VALUE_SIZE:
        raise _too_large("a wrapped string")


def _check_format_filter(value: Any, *args: Any, **kwargs: Any) -> None:
    _check_printf(str(value), kwargs or args)


def _check_replace(s: Any, old: Any, new: Any, count: Any = None) -> None:
    _check_str_method(str(s), "replace", (str(old), str(new), -1 if count is None else count), {})


def _check_batch(value: Any, linecount: Any, fill_with: Any = None) -> None:
    _check_int_arguments((linecount,), {})
    if fill_with is not None and isinstance(linecount, int) and linecount * _weight(fill_with) > MAX_VALUE_SIZE:
        raise _too_large("a batch")


def _check_tojson(value: Any, indent: Any = None) -> None:
    size = indent if isinstance(indent, int) else len(str(indent)) if indent is not None else 0
    if size > _MAX_JSON_INDENT:
        raise RenderError(f"tojson indents by at most {_MAX_JSON_INDENT}")


def _check_sum(iterable: Any, attribute: Any = None, start: Any = 0) -> None:
    if isinstance(start, list | tuple) and _weight(iterable) + _weight(start) > MAX_VALUE_SIZE:
        raise _too_large("a sum")


@wraps(FILTERS["join"])
def _join_filter(eval_ctx: Any, value: Any, d: str = "", attribute: Any = None) -> Any:
    items = value if isinstance(value, Undefined) else list(islice(iter(value), MAX_VALUE_SIZE + 1))
    if not isinstance(items, Undefined) and _weight(items) + len(str(d)) * len(items) > MAX_VALUE_SIZE:
        raise _too_large("a joined string")
    return _bounded(FILTERS["join"](eval_ctx, items, d, attribute))


_GUARDED_FILTERS: dict[str, Callable[..., None] | None] = {
    "center": _check_center,
    "indent": _check_indent,
    "wordwrap": _check_wordwrap,
    "format": _check_format_filter,
    "replace": _check_replace,
    "batch": _check_batch,
    "slice": _check_batch,
    "tojson": _check_tojson,
    "sum": _check_sum,
}
# Debugging and link-making helpers that templates for messages do not need.
_DROPPED_FILTERS = {"pprint", "urlize"}


@pass_context
def _money_filter(context: Context, amount: Any, currency: str = "USD") -> str:
    return format_money(amount, currency, _state().locale)


@pass_context
def _date_filter(context: Context, value: Any, format: str = "medium") -> str:
    state = _state()
    return format_date(value, format, locale=state.locale, tz=state.tz)


@pass_context
def _datetime_filter(context: Context, value: Any, format: str = "medium") -> str:
    state = _state()
    return format_datetime(value, format, locale=state.locale, tz=state.tz)


def _plain_finalize(value: Any) -> Any:
    return "" if value is None else value


def _json_finalize(value: Any) -> Any:
    """In a JSON body, `{{ }}` inside quotes writes an escaped string; outside, a JSON value."""
    if isinstance(value, Undefined | Markup):  # Markup: already JSON (`tojson`)
        return value
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)[1:-1]
    if isinstance(value, Decimal):
        return str(value)
    return json.dumps(value, ensure_ascii=False, default=str)


class _Sandbox(ImmutableSandboxedEnvironment):
    # Intercepted operators are also never folded at compile time, where `10**10**10` would hang.
    intercepted_binops = frozenset({"+", "*", "**", "%"})
    code_generator_class = _GuardedCodeGenerator

    def __init__(self, kind: str) -> None:
        super().__init__(
            autoescape=kind == "html",
            undefined=_Undefined,
            finalize=_json_finalize if kind == "json" else _plain_finalize,
            keep_trailing_newline=True,
            cache_size=0,
            auto_reload=False,
        )
        self.globals = {
            "range": _safe_range,
            "dict": dict,
            "cycler": Cycler,
            "joiner": Joiner,
            "namespace": _Namespace,
        }
        filters: dict[str, Callable[..., Any]] = {}
        for name in FILTERS:
            if name not in _DROPPED_FILTERS:
                filters[name] = _guard_filter(name, _GUARDED_FILTERS.get(name))
        filters["join"] = _join_filter
        filters["money"] = _money_filter
        filters["date"] = _date_filter
        filters["datetime"] = _datetime_filter
        filters["ms_loop"] = _loop_guard
        self.filters = filters

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            _check_repeat(left, right)
        elif operator == "**":
            _check_power(left, right)
        elif operator == "%" and isinstance(left, str):
            _check_printf(left, right)
        return _bounded(self.binop_table[operator](left, right))

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(obj, Undefined):
            owner = getattr(obj, "__self__", None)
            if isinstance(owner, str | bytes):
                args = _check_str_method(owner, getattr(obj, "__name__", ""), args, kwargs)
            elif isinstance(owner, int):
                _check_int_arguments(args, kwargs)
        return _bounded(super().call(context, obj, *args, **kwargs))

    def getattr(self, obj: Any, attribute: str) -> Any:
        # In person/event/vars data a key wins over a dict method: `event.properties.items` is
        # the cart's items, not dict.items.
        if isinstance(obj, _Scope) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        owner: str = value.__self__
        by_map = value.__name__ == "format_map"

        def checked(*args: Any, **kwargs: Any) -> str:
            _check_format(owner, args, kwargs, by_map)
            return _bounded(wrapped(*args, **kwargs))

        return checked

    def ms_bounded(self, value: Any) -> Any:
        return _bounded(value)

    def ms_concat(self, autoescape: bool, values: tuple[Any, ...]) -> str:
        parts = []
        size = 0
        for value in values:
            text = soft_str(value)
            size += len(text)
            if size > MAX_VALUE_SIZE:
                raise _too_large("a joined string")
            parts.append(text)
        if autoescape and any(hasattr(part, "__html__") for part in parts):
            return _bounded(Markup("").join(parts))
        return "".join(parts)

    def ms_buffer(self) -> _Buffer:
        return _Buffer()


_ENVIRONMENTS = {kind: _Sandbox(kind) for kind in ("html", "text", "json")}


def _kind_of(channel: str, field_name: str) -> str:
    if field_name == "html":
        return "html"
    return "json" if channel == "webhook" else "text"


# ------------------------------------------------------------------------------- static checks
_NOT_AVAILABLE: dict[type[nodes.Node], str] = {
    nodes.Extends: "{% extends %}",
    nodes.Include: "{% include %}",
    nodes.Import: "{% import %}",
    nodes.FromImport: "{% from ... import %}",
    nodes.Macro: "{% macro %}",
    nodes.CallBlock: "{% call %}",
    nodes.Block: "{% block %}",
}
# Filters that look attributes up by a name given as an argument.
_ATTRIBUTE_FILTERS = {"attr", "map", "selectattr", "rejectattr", "sort", "groupby", "sum", "unique", "min", "max"}
_PRIVATE = "names starting with _ are not accessible in templates"


def _refusals(tree: nodes.Template) -> list[tuple[int, str]]:
    """Constructs a template may not use, as (line, reason), in source order."""
    found: list[tuple[int, str]] = []

    def private(value: Any) -> bool:
        return isinstance(value, str) and any(part.startswith("_") for part in value.split("."))

    def walk(node: nodes.Node, depth: int) -> None:
        line = getattr(node, "lineno", 0) or 0
        for kind, label in _NOT_AVAILABLE.items():
            if isinstance(node, kind):
                found.append((line, f"{label} is not available: a message template stands alone"))
        if isinstance(node, nodes.Getattr):
            if node.attr.startswith("_"):
                found.append((line, _PRIVATE))
        elif isinstance(node, nodes.Getitem):
            if isinstance(node.arg, nodes.Const) and private(node.arg.value):
                found.append((line, _PRIVATE))
        elif isinstance(node, nodes.Filter) and node.name in _ATTRIBUTE_FILTERS:
            arguments = [*node.args, *(kw.value for kw in node.kwargs)]
            if any(isinstance(a, nodes.Const) and private(a.value) for a in arguments):
                found.append((line, _PRIVATE))
        elif isinstance(node, nodes.Name) and node.name == "self":
            found.append((line, "`self` is not available"))
        if isinstance(node, nodes.For):
            if node.recursive:
                found.append((line, "recursive loops are not allowed"))
            if depth + 1 > MAX_LOOP_DEPTH:
                found.append((line, f"loops may be nested at most {MAX_LOOP_DEPTH} deep"))
            walk(node.target, depth)
            walk(node.iter, depth)
            for child in node.body:
                walk(child, depth + 1)
            if node.test is not None:
                walk(node.test, depth + 1)
            for child in node.else_:
                walk(child, depth)
            return
        for child in node.iter_child_nodes():
            walk(child, depth)

    walk(tree, 0)
    return sorted(found, key=lambda item: item[0])


def _guard_loops(tree: nodes.Template) -> None:
    for loop in tree.find_all(nodes.For):
        loop.iter = nodes.Filter(loop.iter, "ms_loop", [], [], None, None, lineno=loop.lineno)


class _LRU:
    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[tuple[str, bytes], Template] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, bytes]) -> Template | None:
        with self._lock:
            template = self._items.get(key)
            if template is not None:
                self._items.move_to_end(key)
            return template

    def put(self, key: tuple[str, bytes], template: Template) -> None:
        with self._lock:
            self._items[key] = template
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_COMPILED = _LRU(CACHE_SIZE)


def _compile(kind: str, source: str) -> Template:
    """The compiled template for `source`, checked as at save time (cached by content hash)."""
    key = (kind, hashlib.sha256(source.encode()).digest())
    template = _COMPILED.get(key)
    if template is not None:
        return template
    if len(source.encode()) > MAX_FIELD_BYTES:
        raise RenderError(f"a template field is limited to {MAX_FIELD_BYTES // 1024} KB")
    environment = _ENVIRONMENTS[kind]
    try:
        tree = environment.parse(source)
        refused = _refusals(tree)
        if refused:
            line, reason = refused[0]
            raise RenderError(f"line {line}: {reason}", line=line)
        _guard_loops(tree)
        code = environment.compile(tree)
    except TemplateSyntaxError as error:
        raise RenderError(f"line {error.lineno}: {error.message}", line=error.lineno) from None
    except RecursionError:
        raise RenderError("the template is nested too deeply") from None
    template = environment.template_class.from_code(environment, code, environment.make_globals(None), None)
    _COMPILED.put(key, template)
    return template


def _check_source(kind: str, source: str, where: str) -> list[Issue]:
    size = len(source.encode())
    if size > MAX_FIELD_BYTES:
        return [Issue(where, f"is {size} bytes; the limit is {MAX_FIELD_BYTES // 1024} KB")]
    environment = _ENVIRONMENTS[kind]
    try:
        tree = environment.parse(source)
        refused = _refusals(tree)
        unknown = meta.find_undeclared_variables(tree) - set(ROOTS) - set(environment.globals)
    except TemplateSyntaxError as error:
        return [Issue(f"{where}:{error.lineno}", error.message or "syntax error", error.lineno)]
    except RecursionError:
        return [Issue(where, "is nested too deeply")]
    issues = [Issue(f"{where}:{line}", reason, line) for line, reason in refused]
    first_use: dict[str, int] = {}
    for use in tree.find_all(nodes.Name):
        first_use.setdefault(use.name, use.lineno)
    for name in sorted(unknown):
        line = first_use.get(name)
        message = f"unknown variable {name!r}: start with one of {', '.join(ROOTS)}"
        issues.append(Issue(f"{where}:{line}" if line else where, message, line))
    if not issues:
        try:
            _compile(kind, source)  # unknown filters and tests only show when compiling
        except RenderError as error:
            issues.append(Issue(f"{where}:{error.line}" if error.line else where, error.message, error.line))
    return issues


def _check_variables(variables: Mapping[str, VariableSpec]) -> list[Issue]:
    issues = []
    for path in variables:
        where = f"variables.{path}"
        if not isinstance(path, str) or not _PATH.match(path):
            issues.append(Issue(where, "not a dotted variable path like person.first_name"))
        elif path.split(".")[0] not in ROOTS:
            issues.append(Issue(where, f"must start with one of {', '.join(r + '.' for r in ROOTS)}"))
        elif "." not in path:
            issues.append(Issue(where, f"name a value below {path}, like {path}.name"))
    return issues


# ------------------------------------------------------------------------------- rendering
def _render(
    channel: str,
    locales: Mapping[str, Mapping[str, str]],
    variables_spec: Mapping[str, VariableSpec],
    wanted: str | None,
    default_locale: str,
    context: RenderContext,
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

    formatting = _formatting_locale(wanted, chosen)
    tz = zone(context.tz)
    rendered: dict[str, str] = {}
    links: list[str] = []
    for name in present:
        state = _State(locale=formatting, tz=tz, preview=preview, missing=missing)
        text = _run(_compile(_kind_of(channel, name), content[name]), data, state, name, chosen)
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


def _run(template: Template, data: dict[str, Any], state: _State, field_name: str, locale: str) -> str:
    state.deadline = time.monotonic() + MAX_RENDER_SECONDS
    token = _STATE.set(state)
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
    except _MissingVariable as error:
        raise RenderError(str(error), variable=error.name, field=field_name, locale=locale) from None
    except SecurityError as error:
        raise RenderError(f"not allowed in templates: {error}", field=field_name, locale=locale) from None
    except RecursionError:
        raise RenderError("the template recursed too deeply", field=field_name, locale=locale) from None
    except Exception as error:  # anything a template can make data or Jinja raise
        message = f"could not render {field_name}: {type(error).__name__}: {str(error)[:200]}"
        raise RenderError(message, field=field_name, locale=locale) from None
    finally:
        _STATE.reset(token)
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
        scope = _Scope(path)
        for key, item in value.items():
            if item is not None:
                scope[key] = _wrap(item, _child_path(path, key), depth + 1)
        return scope
    if isinstance(value, list | tuple):
        return _Items(path, (_wrap(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)))
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
            child = node[part] = _Scope(".".join(parts[: i + 1]))
        if not isinstance(child, dict):
            return  # `person.address.city` when address is text: leave it to fail by name
        node = child
    node[parts[-1]] = _wrap(value, path, len(parts))


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _formatting_locale(wanted: str | None, chosen: str) -> str:
    """The recipient's own conventions (en-GB dates) when the content is in their language."""
    tag = normalize_locale(wanted)
    content = normalize_locale(chosen) or "en"
    if tag and tag.split("-")[0] == content.split("-")[0]:
        return tag
    return content
