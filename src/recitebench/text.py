"""Text facts shared by the data stage (which counts them at build) and the report (which shows them)."""

from __future__ import annotations

import re

# Unicode's bidirectional controls (embeddings, overrides, isolates, marks): invisible, and they reverse the display
# of the text after them, so a poem holding one reads differently in a report than it is.
BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")
