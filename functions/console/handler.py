"""The marketers' console: its static files (HTML, CSS, ES modules) served at /console from this
function's own package, on the API's own origin.

Being on the HttpApi beside the admin API, the console calls that API without CORS, is deployed by
the same `sam deploy` and is served by the local cloud from the same template (docs/console.md).
The files are public; everything they show comes from the admin API with the signed-in key.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Any

STATIC = Path(__file__).resolve().parent / "static"
PREFIX = "/console/"
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
}
# The console loads only its own files and talks only to its own origin; it is never framed.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@cache
def _files() -> dict[str, tuple[bytes, str, str]]:
    """Every file of the console by name: its bytes, its media type and its ETag (read once)."""
    files = {}
    for path in sorted(STATIC.iterdir()):
        if path.is_file() and path.suffix in TYPES:
            body = path.read_bytes()
            files[path.name] = (body, TYPES[path.suffix], '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
    return files


def _not_found(path: str) -> dict[str, Any]:
    return {
        "statusCode": 404,
        "headers": {"Content-Type": "application/json", **SECURITY_HEADERS},
        "body": '{"success":false,"code":"not_found","message":"the console has no file here"}',
    }


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    path = str(event.get("rawPath") or "")
    # A file is a single segment after /console/; anything else (a subfolder, an encoded
    # slash or dot, a file of another kind) is not one of the console's files.
    name = "index.html" if path == PREFIX[:-1] else path[len(PREFIX) :] if path.startswith(PREFIX) else ""
    found = _files().get(name)
    if found is None:
        return _not_found(path)
    body, media_type, etag = found
    # Revalidated on every load (cheap: a 304), so a deploy is seen at once.
    headers = {"Content-Type": media_type, "Cache-Control": "no-cache", "ETag": etag, **SECURITY_HEADERS}
    asked = (event.get("headers") or {}).get("if-none-match", "")
    if etag in [tag.strip().removeprefix("W/") for tag in asked.split(",")]:
        return {"statusCode": 304, "headers": headers, "body": ""}
    return {"statusCode": 200, "headers": headers, "body": body.decode("utf-8")}
