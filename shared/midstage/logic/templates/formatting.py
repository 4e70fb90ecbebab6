"""Locale tags and the money and date formats templates print with, from small built-in tables.

No CLDR: the tables cover the locales campaigns are written in, and anything else falls back
to ISO dates and English number separators rather than failing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2.runtime import Undefined

from midstage.logic.templates.model import RenderError

LOCALE_TAG = re.compile(r"^[a-z]{2,3}(-[A-Z][a-z]{3})?(-(?:[A-Z]{2}|\d{3}))?$")


_MAX_STRFTIME = 200


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
    return result if LOCALE_TAG.match(result) else None


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


def formatting_locale(wanted: str | None, chosen: str) -> str:
    """The recipient's own conventions (en-GB dates) when the content is in their language."""
    tag = normalize_locale(wanted)
    content = normalize_locale(chosen) or "en"
    if tag and tag.split("-")[0] == content.split("-")[0]:
        return tag
    return content


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
