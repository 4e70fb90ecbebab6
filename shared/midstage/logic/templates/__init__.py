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

The package, by concern (each module imports only those above it):

- `model`: channel fields, limits, RenderError, Issue, RenderContext, Rendered.
- `formatting`: locale tags and the `money`, `date` and `datetime` formats.
- `guards`: the per-field render state and the resource guards.
- `sandbox`: the Jinja environment (the only module that reaches into jinja2's internals).
- `checks`: static checks at save time and the compile cache every render goes through.
- `rendering`: render, preview, and the `person` and `event` contexts.

Import from the package; the modules are its private layout.
"""

from midstage.logic.templates.checks import assets_named, check_template, offers_named
from midstage.logic.templates.formatting import (
    choose_locale,
    format_date,
    format_datetime,
    format_money,
    normalize_locale,
    zone,
)
from midstage.logic.templates.model import (
    ANY_OF_FIELDS,
    CACHE_SIZE,
    CHANNEL_FIELDS,
    MAX_FIELD_BYTES,
    MAX_INT_BITS,
    MAX_LOCALES,
    MAX_LOOP_DEPTH,
    MAX_LOOP_ITERATIONS,
    MAX_OUTPUT_BYTES,
    MAX_RANGE,
    MAX_RENDER_SECONDS,
    MAX_VALUE_SIZE,
    REQUIRED_FIELDS,
    ROOTS,
    SINGLE_LINE_FIELDS,
    Issue,
    RenderContext,
    Rendered,
    RenderError,
    Timer,
)
from midstage.logic.templates.rendering import event_context, person_context, preview, render

__all__ = [
    "ANY_OF_FIELDS",
    "CACHE_SIZE",
    "CHANNEL_FIELDS",
    "MAX_FIELD_BYTES",
    "MAX_INT_BITS",
    "MAX_LOCALES",
    "MAX_LOOP_DEPTH",
    "MAX_LOOP_ITERATIONS",
    "MAX_OUTPUT_BYTES",
    "MAX_RANGE",
    "MAX_RENDER_SECONDS",
    "MAX_VALUE_SIZE",
    "REQUIRED_FIELDS",
    "ROOTS",
    "SINGLE_LINE_FIELDS",
    "Issue",
    "RenderContext",
    "RenderError",
    "Rendered",
    "Timer",
    "assets_named",
    "check_template",
    "choose_locale",
    "event_context",
    "format_date",
    "format_datetime",
    "format_money",
    "normalize_locale",
    "offers_named",
    "person_context",
    "preview",
    "render",
    "zone",
]
