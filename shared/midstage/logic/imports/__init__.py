"""Static segment imports: a file of people in, the internal events that put them in a segment out.

Three formats (`detect_format` tells them apart):
- `csv`: a header row, then one person per row. Identifier columns `user_id`/`userId`, `email`,
  `phone`, `anonymous_id`/`anonymousId` (at least one in the header and non-empty per row);
  every other column is a trait, kept as text.
- `pinpoint-json`: an Amazon Pinpoint export job's output, one endpoint per line (JSON lines).
- `pinpoint-csv`: Pinpoint's segment import CSV (`ChannelType`, `Address`, `User.UserId`,
  `User.UserAttributes.<name>`, `Attributes.<name>`, `Demographic.*`, `Location.*`, ...; an
  attribute's column repeated holds one more of its values), or its user-ID file (a
  `User.UserId` header alone, ids separated by spaces: one person each).

Every parser is pure: text in, an `ImportReport` out. Each accepted person gets an `identify`
event (traits and contact identifiers) and a `Segment Added` track event, both from the platform
(internal_events.SOURCE_ID, which is what lets `Segment Added` change membership). A CSV row's
message ids derive from (import id, line, kind), so running the same import twice is absorbed by
the profile updater's dedupe; a Pinpoint endpoint's from what it says (below). Rows that cannot
be used are listed with their line and why, and never sink the others; a file that is not what
it claims, too big, or binary is refused whole.

How a Pinpoint endpoint becomes a person (shared by both Pinpoint formats):
- Endpoints are grouped by `User.UserId`; an endpoint without one is a person of its own, with
  anonymousId `pinpoint:<Id>`.
- Each endpoint says what it knows in an `identify` of its own (its address, attributes,
  demographics and location), dated by its EffectiveDate: the profile keeps each trait's most
  recently effective value, whichever file or import brought it. Its message id derives from
  (person, endpoint Id, EffectiveDate, content), a device's from (endpoint Id, EffectiveDate,
  token), a refusal's from (channel, endpoint Id, EffectiveDate), `Segment Added` from the
  segment: a second export job makes the same events (internal_events.imported_id, whose
  dedupe markers the profile updater keeps 400 days), a later one new ones only for what changed.
- EMAIL gives the `email` trait, SMS the `phone` trait (VOICE when the person has no SMS endpoint
  in the import), normalised like every identifier (logic/identity.py); a bare number is read
  in the endpoint's Location.Country (logic/imports/phones.py). An INACTIVE endpoint's address
  is not used, but its person is kept.
- Push endpoints (APNS, APNS_SANDBOX, GCM, BAIDU, ADM) become devices: the profile keeps any
  event's `context.device` with a `token` (logic/profile.apply_event), and delivery pushes to
  the newest device with a token, by its `type`. A person may have several devices and an event
  carries one, so each is a `Device Registered` track event with `context.device` `{token,
  type, manufacturer, model}` at the endpoint's EffectiveDate (so the newest device stays the
  one delivery picks). No device `id` is sent: it would become a device_id identifier, and
  endpoint ids are not the ids the app's own SDK reports. Types: APNS `ios`, APNS_SANDBOX
  `ios_sandbox` (development builds need their own SNS application), GCM `android`, BAIDU
  `baidu`, ADM `adm`. VoIP, IN_APP, PUSH and CUSTOM endpoints carry no address the platform
  sends to; their people are kept.
- OptOut ALL refuses marketing on that endpoint's channel (email, sms, push) with a
  `Consent Updated` event at the endpoint's EffectiveDate. OptOut NONE is not a grant, so it
  records nothing.
- `User.UserAttributes` and endpoint `Attributes` become traits under their own names, without
  a prefix: segment conditions then read them as `traits.<name>`, as Pinpoint filters did.
  On one endpoint, per-user attributes win over per-endpoint ones. One-value lists are
  unwrapped, longer ones kept as lists. Names outside the trait alphabet have the other
  characters replaced by `_`.
- `Demographic.Timezone` (a valid IANA zone) is the `timezone` trait and `context.timezone`;
  `Demographic.Locale` (`en_US` is written `en-US`) is the `locale` trait and `context.locale`;
  `Location` Country, Region, City and PostalCode are the `country`, `region`, `city` and
  `postal_code` traits.

The package, by concern (each module imports only those above it): `model` (formats, limits, the
report), `text` (file checks and the CSV reader), `people` (people and their events), `phones`
(numbers in their country), `pinpoint` (both Pinpoint formats), `formats` (detection, dispatch
and plain CSV). Import from the package. Beside them, `pinpoint_events` reads Pinpoint's event
stream (Firehose's S3 output) for `midstage.cli pinpoint-history`: not a segment import.
"""

from midstage.logic.imports.formats import detect_format, parse_csv, parse_import
from midstage.logic.imports.model import (
    DEVICE_REGISTERED,
    MAX_CELL_BYTES,
    MAX_COLUMNS,
    MAX_IDENTIFIER_BYTES,
    MAX_LISTED_REJECTIONS,
    MAX_ROWS,
    MAX_TEXT_BYTES,
    ImportFormat,
    ImportRefused,
    ImportReport,
)
from midstage.logic.imports.pinpoint import parse_pinpoint_csv, parse_pinpoint_endpoints

__all__ = [
    "DEVICE_REGISTERED",
    "MAX_CELL_BYTES",
    "MAX_COLUMNS",
    "MAX_IDENTIFIER_BYTES",
    "MAX_LISTED_REJECTIONS",
    "MAX_ROWS",
    "MAX_TEXT_BYTES",
    "ImportFormat",
    "ImportRefused",
    "ImportReport",
    "detect_format",
    "parse_csv",
    "parse_import",
    "parse_pinpoint_csv",
    "parse_pinpoint_endpoints",
]
