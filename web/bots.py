"""Posts no person sends: a filled honeypot field, or a form sent sooner after
it was rendered than anyone could read and answer it.

The render time travels in the form, signed with SECRET_KEY (as the CSRF
token is), so a client can neither forge an older one nor leave it out."""

import time

from itsdangerous import BadSignature, URLSafeSerializer

# The hidden field carrying the signed render time.
STARTED_FIELD = "form_started"


def _serializer(config):
    return URLSafeSerializer(config["SECRET_KEY"], salt="survey-form-started")


def started_token(config, posted=None):
    """The render time to put in the form: the posted one if it is genuine (a
    form shown again keeps the time it was first shown), else now."""
    if posted and _started(config, posted) is not None:
        return posted
    return _serializer(config).dumps(round(time.time(), 3))


def _started(config, token):
    try:
        value = _serializer(config).loads(token)
    except BadSignature:
        return None
    return value if isinstance(value, (int, float)) else None


def rejection(config, form_data):
    """'honeypot', 'too_fast' or None for a post a person could have sent."""
    if form_data.get(config["HONEYPOT_FIELD"], ""):
        return "honeypot"
    if config["MIN_FILL_SECONDS"] > 0:
        started = _started(config, form_data.get(STARTED_FIELD, ""))
        if started is None or time.time() - started < config["MIN_FILL_SECONDS"]:
            return "too_fast"
    return None
