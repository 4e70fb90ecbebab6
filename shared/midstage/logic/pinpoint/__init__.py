"""Amazon Pinpoint definitions (segments, campaigns, journeys, templates), as the AWS CLI prints
them, converted to Midstage definitions, with every part that does not carry over exactly
reported by its place in the Pinpoint JSON and why.

Pure: the command (`midstage.pinpoint_convert_command`) reads the files, checks each converted
definition with the admin API's own validation and writes or applies them.

The package, by concern: `common` (report items, ids, durations), `dimensions` (filters as
conditions), `segments`, `templates`, `campaigns`, `journeys`, and `project` (reading CLI answers
and converting them together).
"""

from midstage.logic.pinpoint.common import Converted, Note, Refused
from midstage.logic.pinpoint.project import Conversion, Item, convert_project, items_of

__all__ = ["Conversion", "Converted", "Item", "Note", "Refused", "convert_project", "items_of"]
