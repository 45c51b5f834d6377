"""Names and labels people type (hubs, spokes, credentials): bounded, printable, one direction.

A name is shown on every page and in every log line about its object, so it
is refused (never silently changed) when it is longer than `MAX_NAME`
characters, or holds a control character (NUL, newline, escape, ...) or a
Unicode bidirectional control (right-to-left override and its kin, the
"Trojan Source" characters) that can make one name look like another.
"""

from __future__ import annotations

import unicodedata

MAX_NAME = 200
# Unicode bidirectional formatting characters (UAX #9): embeddings, overrides, isolates and marks.
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def name_problem(value: str, what: str = "name", max_len: int = MAX_NAME) -> str | None:
    """Why `value` cannot be a name (None: it can). `value` is already stripped."""
    if len(value) > max_len:
        return f"the {what} is {len(value)} characters long; use at most {max_len}"
    for char in value:
        if char in BIDI_CONTROLS:
            return (f"the {what} contains an invisible text-direction character (U+{ord(char):04X}), which can "
                    "make it look like another name; type it again without it")
        if unicodedata.category(char) in ("Cc", "Cs") or char in "\u2028\u2029":
            return (f"the {what} contains a control character (U+{ord(char):04X}, such as a line break or NUL); "
                    "use letters, digits, spaces and punctuation only")
    return None
