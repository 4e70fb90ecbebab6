"""Webhooks over HTTP(S): signed, idempotent, and never to a private address unless allowed."""

from __future__ import annotations

import functools
import hashlib
import hmac
import http.client
import ipaddress
import re
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

from midstage.adapters.providers.errors import HEADER_UNSAFE, PERMANENT, RETRYABLE, ProviderError, brief

_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_RETRYABLE_STATUSES = frozenset({408, 425, 429})
_URL_UNSAFE = re.compile(r"[\x00-\x20\x7f]")
SIGNATURE_HEADER = "Midstage-Signature"
IDEMPOTENCY_HEADER = "Midstage-Idempotency-Key"
USER_AGENT = "Midstage-Webhooks/1"


def sign(secret: bytes | Sequence[bytes], body: bytes, timestamp: int) -> str:
    """The Midstage-Signature header value: ``t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``,
    with one `v1` per secret given (every key of the ring still verifying, current first)."""
    signing = [secret] if isinstance(secret, bytes) else list(secret)
    if not signing:
        raise ValueError("a webhook needs at least one signing secret")
    digests = (hmac.new(key, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest() for key in signing)
    return f"t={timestamp}," + ",".join(f"v1={digest}" for digest in digests)


def verify_signature(header: str, body: bytes, secret: bytes, now: int, tolerance_s: int = 300) -> bool:
    """How a receiver checks a webhook (this function is the reference implementation).

    1. Split the Midstage-Signature header on "," into key=value pairs; take `t` and every `v1`.
    2. Compute hex HMAC-SHA256 with the endpoint's secret over the bytes ``<t> + "." + <raw request body>``
       (the body exactly as received, before any JSON parsing).
    3. Accept if one `v1` equals it under a constant-time comparison and `t` is within `tolerance_s` of
       the receiver's clock (this bounds replays; the idempotency key catches the rest).
    """
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isascii() and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or abs(now - timestamp) > tolerance_s:
        return False
    expected = sign(secret, body, timestamp).partition(",v1=")[2]
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)


def _allowed_address(address: str, allow_local: bool) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return allow_local
    # is_global excludes private, link-local (169.254.169.254, the metadata service), shared (100.64/10),
    # unique-local (fd00:ec2::254) and reserved ranges.
    return ip.is_global and not ip.is_multicast


def _guarded_socket(host: str, port: int, timeout: object, allow_local: bool) -> socket.socket:
    """Resolve, vet every address, then connect to a vetted one; checking at connect time defeats rebinding."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    for info in infos:
        if not _allowed_address(str(info[4][0]), allow_local):
            raise ProviderError(
                PERMANENT,
                f"webhook host {host} resolves to {info[4][0]}, a private, loopback or reserved address; refused",
                "ssrf_guard",
            )
    last: OSError = OSError(f"no address for {host}")
    for family, kind, proto, _, address in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout if isinstance(timeout, (int, float)) else None)
            sock.connect(address)
        except OSError as error:
            sock.close()
            last = error
            continue
        return sock
    raise last


class _GuardedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, *, allow_local: bool, **kwargs: Any) -> None:
        super().__init__(host, **kwargs)
        self._allow_local = allow_local

    def connect(self) -> None:
        self.sock = _guarded_socket(self.host, self.port, self.timeout, self._allow_local)


class _GuardedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, *, allow_local: bool, tls: ssl.SSLContext, **kwargs: Any) -> None:
        super().__init__(host, context=tls, **kwargs)
        self._allow_local = allow_local
        self._tls = tls

    def connect(self) -> None:
        sock = _guarded_socket(self.host, self.port, self.timeout, self._allow_local)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)


class _GuardedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, allow_local: bool) -> None:
        super().__init__()
        self._allow_local = allow_local

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_GuardedHTTPConnection, allow_local=self._allow_local), req)


class _GuardedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, allow_local: bool) -> None:
        super().__init__()
        self._allow_local = allow_local
        self._tls = ssl.create_default_context()

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        connection = functools.partial(_GuardedHTTPSConnection, allow_local=self._allow_local, tls=self._tls)
        return self.do_open(connection, req)


def guarded_opener(allow_local: bool = False) -> urllib.request.OpenerDirector:
    """An opener with no proxies and no redirect handler: a 3xx is an answer, never a second request."""
    opener = urllib.request.OpenerDirector()
    for handler in (
        _GuardedHTTPHandler(allow_local),
        _GuardedHTTPSHandler(allow_local),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
        urllib.request.UnknownHandler(),
    ):
        opener.add_handler(handler)
    return opener


class WebhookSender:
    """Signed HTTPS POSTs to customer endpoints.

    `allow_local` admits http://localhost and http://127.0.0.1 and loopback addresses, for the local cloud;
    private, link-local and metadata addresses are refused either way.
    """

    def __init__(
        self, timeout: float = 5.0, opener: urllib.request.OpenerDirector | None = None, allow_local: bool = False
    ) -> None:
        self.timeout = timeout
        self.allow_local = allow_local
        self._opener = opener or guarded_opener(allow_local)

    def check_url(self, url: str) -> None:
        """Raise ProviderError (permanent) for a URL this sender will never call."""
        if _URL_UNSAFE.search(url):
            raise ProviderError(PERMANENT, "webhook URL contains whitespace or control characters", "bad_url")
        try:
            parts = urllib.parse.urlsplit(url)
            _ = parts.port  # raises ValueError for a port out of range
        except ValueError as error:
            raise ProviderError(PERMANENT, f"webhook URL is malformed: {error}", "bad_url") from error
        host = (parts.hostname or "").lower()
        if not host:
            raise ProviderError(PERMANENT, "webhook URL has no host", "bad_url")
        if parts.username is not None or parts.password is not None:
            raise ProviderError(PERMANENT, "webhook URL must not carry credentials", "bad_url")
        if parts.scheme == "https":
            return
        if parts.scheme == "http" and self.allow_local and host in _LOCAL_HOSTS:
            return
        raise ProviderError(
            PERMANENT,
            "webhook URLs must use https (plain http is accepted only for localhost in local development)",
            "bad_url",
        )

    def send(self, url: str, body: bytes, secret: bytes | Sequence[bytes], idempotency_key: str, now: int) -> int:
        """POST `body` signed with `secret` (or each of several); returns the 2xx status, raises
        ProviderError otherwise."""
        self.check_url(url)
        if not idempotency_key or HEADER_UNSAFE.search(idempotency_key) or not idempotency_key.isascii():
            raise ProviderError(PERMANENT, "idempotency key is empty or not a plain ASCII header value")
        request = urllib.request.Request(  # noqa: S310 -- check_url allows only https (and local http)
            url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(secret, body, now),
                IDEMPOTENCY_HEADER: idempotency_key,
                "User-Agent": USER_AGENT,
            },
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                status = int(response.status)
        except urllib.error.HTTPError as error:
            error.close()
            raise _status_error(error.code) from error
        except urllib.error.URLError as error:
            code = "timeout" if isinstance(error.reason, TimeoutError) else "network"
            raise ProviderError(RETRYABLE, f"webhook unreachable: {brief(str(error.reason)) or code}", code) from error
        except (TimeoutError, OSError, http.client.HTTPException) as error:
            code = "timeout" if isinstance(error, TimeoutError) else "network"
            raise ProviderError(RETRYABLE, f"webhook failed: {brief(str(error)) or code}", code) from error
        if not 200 <= status < 300:
            raise _status_error(status)
        return status


def _status_error(status: int) -> ProviderError:
    if status in _RETRYABLE_STATUSES or status >= 500:
        return ProviderError(RETRYABLE, f"webhook answered HTTP {status}", str(status))
    if 300 <= status < 400:
        return ProviderError(PERMANENT, f"webhook answered HTTP {status}; redirects are not followed", str(status))
    return ProviderError(PERMANENT, f"webhook answered HTTP {status}", str(status))
