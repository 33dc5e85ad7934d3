"""short_text (one line) and long_text (a textarea)."""

import re
import unicodedata

from .kinds import Invalid, Kind

# C0 and C1 controls, line and paragraph separators, and the bidi overrides
# and isolates that make a text display as something it is not.
CONTROL_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# The same, less the line breaks and tabs a paragraph may hold.
CONTROL_CHARS_BUT_LINES = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# What a decoder leaves for bytes that were not UTF-8 (a multipart field, say).
UNREADABLE = "\ufffd"
# A text needs one character you can see: a letter, mark, number, punctuation or symbol.
VISIBLE = ("L", "M", "N", "P", "S")
SHORT_MAX, LONG_MAX = 200, 5000


def _read(default):
    def read(reader, table, where):
        return {"max_length": reader.count(table, "max_length", where, default=default, limit=20_000)}
    return read


def missing(question):
    # "Your cat's name" asks "Please tell us your cat's name."
    if question.asks:
        return Invalid("missing", f"Please answer {question.quoted}.")
    return Invalid("missing", f"Please tell us {question.label[:1].lower()}{question.label[1:]}.")


def _clean(controls, what):
    def clean(question, values):
        text = values[0] if values else ""
        if controls is CONTROL_CHARS_BUT_LINES:
            text = text.replace("\r\n", "\n")
        text = text.strip()
        if not text:
            if question.required:
                raise missing(question)
            return None
        limit = question.rule("max_length")
        if len(text) > limit:
            span = f"1 to {limit}" if question.required else f"at most {limit}"
            raise Invalid("too_long", f"The {question.noun} must be {span} characters long.")
        if controls.search(text):
            raise Invalid("control_chars", f"The {question.noun} can't contain control characters {what}.")
        if UNREADABLE in text:
            raise Invalid("invalid", f"Part of the {question.noun} could not be read; please type it again.")
        if not any(unicodedata.category(c)[0] in VISIBLE for c in text):
            # Zero-width spaces and the like look like nothing at all.
            if question.required:
                raise missing(question)
            return None
        return text
    return clean


SHORT = Kind("short_text", frozenset({"max_length"}), _read(SHORT_MAX),
             _clean(CONTROL_CHARS, "such as tabs or line breaks"), lambda q: "text", "count")
LONG = Kind("long_text", frozenset({"max_length"}), _read(LONG_MAX),
            _clean(CONTROL_CHARS_BUT_LINES, "(line breaks are fine)"), lambda q: "text", "count")
