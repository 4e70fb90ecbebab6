"""What templates are made of and what rendering answers: channel fields, limits, errors, results."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from midstage.errors import RenderError as RenderError

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


# Elapsed seconds, for the render budget: `time.monotonic` in production, a counter in tests.
Timer = Callable[[], float]


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
    # What `offer('<id>')` answers: the codes issued for this send (None: refused).
    offers: Mapping[str, str | None] = field(default_factory=dict)
    # What `asset('<name>')` answers: the URLs of the published assets the template names, fixed
    # when the template version was saved or approved (models/messaging.py Template.assets).
    assets: Mapping[str, str] = field(default_factory=dict)
    # What `recommendations(n)` answers: the person's next products, best first
    # (logic/predictions/recommendations.py `for_person`).
    recommendations: Sequence[str] = ()


@dataclass
class Rendered:
    fields: dict[str, str]
    locale: str  # the locale whose content was used
    links: list[str] = field(default_factory=list)  # original URLs rewritten for click tracking
    missing: list[str] = field(default_factory=list)  # preview only: variables that had no value
