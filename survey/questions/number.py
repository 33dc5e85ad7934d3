"""number: optional min and max; integer = true takes whole numbers only."""

from decimal import Decimal, InvalidOperation

from .kinds import Invalid, Kind, given

# A whole number's column is a PostgreSQL integer; other numbers are numeric,
# kept to what a person types (no exponents, at most this many characters).
INT_RANGE = (-2**31, 2**31 - 1)
MAX_CHARS = 30


def _read(reader, table, where):
    whole = reader.flag(table, "integer", where, default=False)
    low = reader.number(table, "min", where, whole)
    high = reader.number(table, "max", where, whole)
    if low is not None and high is not None and low > high:
        reader.fail(f"{where}.min", f"{low} is above max ({high})")
    return {"integer": whole, "min": low, "max": high}


def _clean(question, values):
    text = given(question, values, f"Please give a number for {question.quoted}.")
    if text is None:
        return None
    whole = question.rule("integer")
    try:
        if len(text) > MAX_CHARS or not text.isascii() or "e" in text.lower():
            raise InvalidOperation(text)
        number = Decimal(text)
        if not number.is_finite():
            raise InvalidOperation(text)
    except InvalidOperation:
        example = "such as 42" if whole else "such as 42 or 3.5"
        raise Invalid("not_a_number", f"{question.quoted} must be a number, {example}.") from None
    if whole and number != number.to_integral_value():
        raise Invalid("not_whole", f"{question.quoted} must be a whole number.")
    low, high = question.rule("min"), question.rule("max")
    if whole:
        low = INT_RANGE[0] if low is None else low
        high = INT_RANGE[1] if high is None else high
    if low is not None and high is not None and not low <= number <= high:
        raise Invalid("out_of_range", f"{question.quoted} must be between {low} and {high}.")
    if low is not None and number < low:
        raise Invalid("out_of_range", f"{question.quoted} must be at least {low}.")
    if high is not None and number > high:
        raise Invalid("out_of_range", f"{question.quoted} must be at most {high}.")
    # JSON carries a whole number as a number, a decimal as its text (exact).
    return int(number) if whole else str(number.normalize() if number == number.to_integral_value() else number)


NUMBER = Kind("number", frozenset({"min", "max", "integer"}), _read, _clean,
              lambda q: "integer" if q.rule("integer") else "numeric", "range")
