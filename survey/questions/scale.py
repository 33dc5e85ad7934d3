"""scale: a rating, a whole number from min to max (1 to 5 by default; 0
to 10 is a Net Promoter Score question), with optional end labels."""

from .kinds import Invalid, Kind, given


def _read(reader, table, where):
    low = reader.integer(table, "min", where, default=1)
    high = reader.integer(table, "max", where, default=5)
    if not 0 <= low < high <= 100 or high - low > 20:
        reader.fail(f"{where}.max", f"a scale runs from min to max, 0 to 100 and at most 21 points, "
                                    f"not {low} to {high}")
    return {"min": low, "max": high,
            "min_label": reader.text(table, "min_label", where, 60, required=False),
            "max_label": reader.text(table, "max_label", where, 60, required=False)}


def _clean(question, values):
    text = given(question, values, f"Please choose a rating for {question.quoted}.")
    if text is None:
        return None
    low, high = question.rule("min"), question.rule("max")
    if not (text.isascii() and text.lstrip("-").isdigit() and low <= int(text) <= high):
        raise Invalid("out_of_range", f"Please choose a whole number from {low} to {high} for {question.quoted}.")
    return int(text)


def points(question):
    return range(question.rule("min"), question.rule("max") + 1)


SCALE = Kind("scale", frozenset({"min", "max", "min_label", "max_label"}), _read, _clean,
             lambda q: "integer", "scale")
