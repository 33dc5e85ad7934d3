"""single_choice (radio tiles), dropdown (a <select>) and multiple_choice
(checkboxes, with min_choices and max_choices)."""

from .kinds import Invalid, Kind


def _read_one(reader, table, where):
    return {}


def _read_many(reader, table, where):
    choices = len(table.get("choices") or ())
    low = reader.count(table, "min_choices", where, default=None, minimum=0)
    high = reader.count(table, "max_choices", where, default=None)
    if high is not None and high > choices:
        reader.fail(f"{where}.max_choices", f"is {high}, but the question has {choices} choices")
    if low is not None and low > (high if high is not None else choices):
        reader.fail(f"{where}.min_choices", f"is {low}, above max_choices or the number of choices")
    return {"min_choices": low, "max_choices": high}


def _clean_one(question, values):
    value = values[0] if values else ""
    if not value:
        if question.required:
            raise Invalid("missing", f"Please answer {question.quoted}." if question.asks
                          else f"Please pick a {question.label.lower()}.")
        return None
    if value not in question.labels():
        raise Invalid("not_a_choice", f"Please pick one of the choices for {question.quoted}." if question.asks
                      else f"Please pick a {question.label.lower()} from the list.")
    return value


def _clean_many(question, values):
    picked = list(dict.fromkeys(v for v in values if v))  # a repeated box counts once
    if any(value not in question.labels() for value in picked):
        raise Invalid("not_a_choice", f"Please pick from the list for {question.quoted}.")
    if not picked:
        if question.required:
            raise Invalid("missing", f"Please pick at least {question.rule('min_choices') or 1} "
                                     f"for {question.quoted}.")
        return None
    low, high = question.rule("min_choices"), question.rule("max_choices")
    if low and len(picked) < low:
        raise Invalid("too_few", f"Please pick at least {low} for {question.quoted}.")
    if high and len(picked) > high:
        raise Invalid("too_many", f"Please pick at most {high} for {question.quoted}.")
    # In the file's order, whatever order the browser sent them in.
    order = list(question.labels())
    return sorted(picked, key=order.index)


SINGLE = Kind("single_choice", frozenset({"choices"}), _read_one, _clean_one, lambda q: "text", "choices")
DROPDOWN = Kind("dropdown", frozenset({"choices"}), _read_one, _clean_one, lambda q: "text", "choices")
MULTIPLE = Kind("multiple_choice", frozenset({"choices", "min_choices", "max_choices"}), _read_many, _clean_many,
                lambda q: "text[]", "choices")
