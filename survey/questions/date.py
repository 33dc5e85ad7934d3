"""date: an ISO date (what <input type="date"> posts), with optional min and max."""

from datetime import date

from .kinds import Invalid, Kind, given


def _read(reader, table, where):
    low, high = reader.date(table, "min", where), reader.date(table, "max", where)
    if low and high and low > high:
        reader.fail(f"{where}.min", f"{low.isoformat()} is after max ({high.isoformat()})")
    return {"min": low, "max": high}


def _clean(question, values):
    text = given(question, values, f"Please give a date for {question.quoted}.")
    if text is None:
        return None
    try:
        if len(text) != 10:
            raise ValueError(text)
        day = date.fromisoformat(text)
    except ValueError:
        raise Invalid("not_a_date", f"{question.quoted} must be a date, such as 2026-12-03.") from None
    low, high = question.rule("min"), question.rule("max")
    if low and day < low:
        raise Invalid("out_of_range", f"{question.quoted} must be on or after {low.isoformat()}.")
    if high and day > high:
        raise Invalid("out_of_range", f"{question.quoted} must be on or before {high.isoformat()}.")
    return day.isoformat()


DATE = Kind("date", frozenset({"min", "max"}), _read, _clean, lambda q: "date", "range")
