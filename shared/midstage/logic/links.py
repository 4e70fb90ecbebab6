"""Signed link tokens, and the HTML rewrites that use them: click tracking and the open pixel.

A token is `<base64url JSON payload>.<base64url HMAC-SHA256, first 128 bits>.<key id>`, signed
with the current key of the `links` key ring (logic/keyring.py); the key id is inside the MAC.
Tokens made before key rings have no key id (`<payload>.<mac>`) and are checked against every
key the ring still verifies with, so links in mail already sent keep working after a rotation.
Whatever a tracking endpoint acts on is inside the signed payload: a click redirects only to the
URL that was in the message, an unsubscribe names the exact person, address and channel. Tokens
themselves do not expire: a token is refused only once its key has expired or left the ring.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import json
import re
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import Any

from midstage.errors import BadToken as BadToken
from midstage.logic.keyring import KEY_ID, KeyRing, SigningKey

MAX_TOKEN_CHARS = 4096
MAX_TRACKED_URL = 2048  # longer links are left as they are, so their tokens stay well under the cap
MIN_SECRET_BYTES = 16
_MAC_BYTES = 16
_MAC_CHARS = 22  # base64url of 16 bytes, unpadded
# Bound into every MAC, so a token can never be confused with another use of the same secret;
# v2 MACs also cover the key id, so a token cannot be re-labelled with another key's id.
_DOMAIN = b"midstage-link-v1."
_DOMAIN_V2 = b"midstage-link-v2."
_MAX_KEY_ID_CHARS = 10
KIND_FIELDS: dict[str, tuple[str, ...]] = {
    "o": ("m",),  # open: message id
    "c": ("m", "u"),  # click: message id, URL
    "u": ("m", "p", "a", "c"),  # unsubscribe: message id, profile id, address, channel
}
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


def open_payload(message_id: str) -> dict[str, str]:
    return {"k": "o", "m": message_id}


def click_payload(message_id: str, url: str) -> dict[str, str]:
    return {"k": "c", "m": message_id, "u": url}


def unsubscribe_payload(message_id: str, profile_id: str, address: str, channel: str) -> dict[str, str]:
    return {"k": "u", "m": message_id, "p": profile_id, "a": address, "c": channel}


def sign(payload: Mapping[str, Any], key: SigningKey | bytes) -> str:
    """A URL-safe token carrying `payload` (one of the KIND_FIELDS shapes), naming `key`'s id.

    Given bare bytes, the token has the format of before key rings (no key id): what mail already
    sent carries, kept so that format can be made and checked."""
    secret = key.secret if isinstance(key, SigningKey) else key
    _check_secret(secret)
    problem = _shape_problem(payload)
    if problem:
        raise ValueError(f"cannot sign this payload: {problem}")
    text = json.dumps(dict(payload), separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    body = _encode(text.encode())
    if isinstance(key, SigningKey):
        token = f"{body}.{_mac_v2(secret, key.id, body)}.{key.id}"
    else:
        token = f"{body}.{_mac(secret, body)}"
    if len(token) > MAX_TOKEN_CHARS:
        raise ValueError(f"the token would be {len(token)} characters; the limit is {MAX_TOKEN_CHARS}")
    return token


def verify(
    token: str, keys: KeyRing | bytes, *, kind: str | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """The payload of a token signed by a key of the ring still verifying at `now` (of `kind` if
    given), else BadToken. Given bare bytes: a token of the format before key rings, under them."""
    if isinstance(keys, KeyRing):
        if now is None:
            raise TypeError("verifying against a key ring needs the time (keys expire)")
        candidates = keys.verifying(now)
    else:
        _check_secret(keys)
        candidates = ()
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        raise BadToken("not a token or too long")
    body, dot, rest = token.partition(".")
    mac, second_dot, key_id = rest.partition(".")
    if not dot or len(mac) != _MAC_CHARS or not _BASE64URL.fullmatch(body) or not _BASE64URL.fullmatch(mac):
        raise BadToken("malformed")
    # Compare the text, not decoded bytes: base64 has spare bits, so two texts can decode alike.
    if second_dot:
        if len(key_id) > _MAX_KEY_ID_CHARS or not KEY_ID.fullmatch(key_id):
            raise BadToken("malformed key id")
        key = keys.key(key_id, now) if isinstance(keys, KeyRing) and now is not None else None
        if key is None:
            raise BadToken("unknown or expired key")
        if not hmac.compare_digest(_mac_v2(key.secret, key_id, body), mac):
            raise BadToken("bad signature")
    elif isinstance(keys, bytes):
        if not hmac.compare_digest(_mac(keys, body), mac):
            raise BadToken("bad signature")
    # A token without a key id: made before rings, under whichever key was then the only one.
    elif not any(hmac.compare_digest(_mac(key.secret, body), mac) for key in candidates):
        raise BadToken("bad signature")
    try:
        payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (ValueError, binascii.Error):
        raise BadToken("undecodable payload") from None
    problem = _shape_problem(payload)
    if problem:
        raise BadToken(problem)
    if kind is not None and payload["k"] != kind:
        raise BadToken(f"a {payload['k']!r} token where {kind!r} was expected")
    return dict(payload)


def names_unknown_key(token: str, ring: KeyRing, now: datetime) -> bool:
    """Whether a well-formed token names a key id this ring does not hold (perhaps one rotated in
    since the ring was read): worth reading the ring again, once."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
        return False
    key_id = token.rpartition(".")[2]
    return bool(KEY_ID.fullmatch(key_id)) and all(key.id != key_id for key in ring.keys)


def click_target(token: str, keys: KeyRing | bytes, now: datetime | None = None) -> str:
    """Where a click token may redirect: the http(s) URL it was signed with, nothing else."""
    url = str(verify(token, keys, kind="c", now=now)["u"])
    if _scheme(url) not in ("http", "https"):
        raise BadToken("not an http(s) URL")
    return url


def track_links(
    html_text: str, make_click_url: Callable[[str], str], *, keep: Collection[str] = ()
) -> tuple[str, list[str]]:
    """Point every http(s) link of `<a href>` at `make_click_url(url)`.

    Left alone: mailto:, tel:, #anchors and other non-http links, links marked
    `data-track="false"`, URLs in `keep` (the unsubscribe link) and URLs over MAX_TRACKED_URL.
    `javascript:`, `vbscript:` and `data:` hrefs are removed whatever the marking: the link
    text stays, inert. Returns the new HTML and the original URLs tracked, first seen first.
    """
    out: list[str] = []
    urls: list[str] = []
    position = 0
    for tag in _anchor_tags(html_text):
        href = next((a for a in tag.attributes if a.name == "href"), None)
        if href is None or href.value is None:
            continue
        url = _clean_url(href.value)
        if _scheme(url) in _HOSTILE_SCHEMES:
            # Every href goes: with the first removed, a browser would follow the next one.
            for attribute in tag.attributes:
                if attribute.name == "href":
                    out.append(html_text[position : attribute.start])
                    position = attribute.end
            continue
        marked = next((a for a in tag.attributes if a.name == "data-track"), None)
        opted_out = marked is not None and (marked.value or "").strip().lower() == "false"
        if opted_out or url in keep or _scheme(url) not in ("http", "https") or len(url) > MAX_TRACKED_URL:
            continue
        out.append(html_text[position : href.value_start])
        out.append('"' + html.escape(make_click_url(url), quote=True) + '"')
        position = href.end
        if url not in urls:
            urls.append(url)
    out.append(html_text[position:])
    return "".join(out), urls


def add_open_pixel(html_text: str, pixel_url: str) -> str:
    """A 1x1 image loading `pixel_url`, just before the last `</body>` (or at the very end)."""
    pixel = (
        f'<img src="{html.escape(pixel_url, quote=True)}" width="1" height="1" alt="" border="0"'
        ' style="display:block;width:1px;height:1px;border:0;margin:0;padding:0">'
    )
    ends = list(_BODY_END.finditer(html_text))
    if not ends:
        return html_text + pixel
    at = ends[-1].start()
    return html_text[:at] + pixel + html_text[at:]


# ------------------------------------------------------------------------------- internals
def _check_secret(secret: bytes) -> None:
    if not isinstance(secret, bytes) or len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the link secret must be at least {MIN_SECRET_BYTES} bytes")


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _mac(secret: bytes, body: str) -> str:
    return _encode(hmac.new(secret, _DOMAIN + body.encode("ascii"), hashlib.sha256).digest()[:_MAC_BYTES])


def _mac_v2(secret: bytes, key_id: str, body: str) -> str:
    message = _DOMAIN_V2 + key_id.encode("ascii") + b"." + body.encode("ascii")
    return _encode(hmac.new(secret, message, hashlib.sha256).digest()[:_MAC_BYTES])


def _shape_problem(payload: Any) -> str | None:
    if not isinstance(payload, Mapping):
        return "the payload is not an object"
    kind = payload.get("k")
    fields = KIND_FIELDS.get(kind) if isinstance(kind, str) else None
    if fields is None:
        return "unknown kind"
    if set(payload) != {"k", *fields}:
        return f"a {payload['k']!r} payload has exactly the fields {', '.join(fields)}"
    if not all(isinstance(payload[name], str) and payload[name] for name in fields):
        return "payload fields must be non-empty text"
    return None


_ANCHOR_START = re.compile(r"<a(?=[\s/>])", re.IGNORECASE)
_SPACE_OR_SLASH = re.compile(r"[\s/]*")
_ATTRIBUTE_NAME = re.compile(r"[^\s/>][^\s/>=]*")
_EQUALS = re.compile(r"\s*=\s*")
_UNQUOTED = re.compile(r"[^\s>]*")
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
_SCHEME = re.compile(r"([a-zA-Z][a-zA-Z0-9+.\-]*):")
_HOSTILE_SCHEMES = frozenset({"javascript", "vbscript", "data"})
_C0_AND_SPACE = "".join(map(chr, range(0x21)))  # what browsers strip around a URL


class _Attribute:
    __slots__ = ("end", "name", "start", "value", "value_start")

    def __init__(self, name: str, value: str | None, start: int, value_start: int, end: int) -> None:
        self.name = name  # lower-cased
        self.value = value  # raw text between the quotes (entities not decoded); None if bare
        self.start = start  # where the attribute begins (its name)
        self.value_start = value_start  # where its value begins, quotes included
        self.end = end


class _Tag:
    __slots__ = ("attributes",)

    def __init__(self, attributes: list[_Attribute]) -> None:
        self.attributes = attributes


def _anchor_tags(text: str) -> list[_Tag]:
    """Each `<a ...>` start tag with its attributes, tokenised the way a browser does.

    Linear: every step consumes input, and a tag left open at the end of the text (which a
    browser drops) ends the scan. Matches inside comments count too, so the links of Outlook's
    `<!--[if mso]>` buttons are tracked like the others.
    """
    tags: list[_Tag] = []
    position = 0
    while True:
        start = _ANCHOR_START.search(text, position)
        if start is None:
            return tags
        cursor = start.end()
        attributes: list[_Attribute] = []
        while True:
            cursor = _skip(_SPACE_OR_SLASH, text, cursor)
            if cursor >= len(text):
                return tags  # unterminated tag
            if text[cursor] == ">":
                break
            name = _ATTRIBUTE_NAME.match(text, cursor)
            if name is None:  # unreachable: the character is neither space, "/" nor ">"
                return tags
            attribute_start, cursor = cursor, name.end()
            value: str | None = None
            value_start = cursor
            equals = _EQUALS.match(text, cursor)
            if equals is not None:
                value_start = equals.end()
                quote = text[value_start : value_start + 1]
                if quote in ('"', "'"):
                    closing = text.find(quote, value_start + 1)
                    if closing < 0:
                        return tags  # an unterminated quote swallows the rest of the text
                    value, cursor = text[value_start + 1 : closing], closing + 1
                else:
                    unquoted = _UNQUOTED.match(text, value_start)
                    assert unquoted is not None  # matches the empty string at worst
                    value, cursor = unquoted.group(), unquoted.end()
            attributes.append(_Attribute(name.group().lower(), value, attribute_start, value_start, cursor))
        tags.append(_Tag(attributes))
        position = cursor + 1


def _skip(pattern: re.Pattern[str], text: str, position: int) -> int:
    match = pattern.match(text, position)
    return match.end() if match else position


def _clean_url(raw: str) -> str:
    """The URL a browser would follow for this attribute value."""
    url = html.unescape(raw)
    url = re.sub(r"[\t\n\r]", "", url)  # browsers drop these anywhere in a URL: `java\tscript:`
    return url.strip(_C0_AND_SPACE)


def _scheme(url: str) -> str | None:
    match = _SCHEME.match(url)
    return match.group(1).lower() if match else None
