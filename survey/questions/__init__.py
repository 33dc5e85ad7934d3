"""The question types a survey file may ask, one module each.

A type module gives:

- KEYS, the keys its `[[questions]]` table may have beyond the common ones;
- read(reader, table, where): its rules from the table, checked (a rule that
  cannot hold is refused, with the one line naming file, key and problem);
- clean(question, values): the answer from what the form posted (a list of
  strings), or Invalid with the message the visitor sees;
- COLUMN: the PostgreSQL type its column has (worker/tables.py);
- SUMMARY: how /results sums it up (web/results.py)."""

from . import choice, date, email, number, scale, text

TYPES = {
    "short_text": text.SHORT, "long_text": text.LONG,
    "single_choice": choice.SINGLE, "dropdown": choice.DROPDOWN, "multiple_choice": choice.MULTIPLE,
    "scale": scale.SCALE, "number": number.NUMBER, "email": email.EMAIL, "date": date.DATE,
}
# The types whose answers a condition (show_if) may test.
CHOICE_TYPES = {"single_choice", "dropdown", "multiple_choice"}
