"""email: an address, its syntax checked (never sent anywhere by this project)."""

import re

from .kinds import Invalid, Kind, given

# What a person types, not all that RFC 5322 allows: a local part, one @, a
# dotted domain.  254 characters is the most SMTP carries.
ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
                     r"[A-Za-z]{2,63}\Z")
MAX_LENGTH = 254


def _clean(question, values):
    text = given(question, values, f"Please give an email address for {question.quoted}.")
    if text is None:
        return None
    local = text.split("@")[0]
    if (len(text) > MAX_LENGTH or not ADDRESS.match(text) or local.startswith(".") or local.endswith(".")
            or ".." in local):
        raise Invalid("not_an_email", f"{question.quoted} must be an email address, such as name@example.org.")
    return text


EMAIL = Kind("email", frozenset(), lambda reader, table, where: {}, _clean, lambda q: "text", "count")
