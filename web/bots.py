"""Posts no person sends: a filled honeypot field, a form sent sooner after
it was rendered than anyone could read and answer it, and a form's token
used for an answer other than the one it was shown for.

Each form carries a token that signs, with SECRET_KEY (as the CSRF token
is), the submission id it was rendered with and when.  So a client can
neither forge an older render time nor leave it out, one page load is good
for one answer only (a post whose id is not its token's is refused, like
one sent too fast), and a token expires with the CSRF token
(CSRF_TIME_LIMIT, a day by default).  MIN_FILL_SECONDS=0 switches the token
check off, the too-fast and the one-answer checks with it."""

import time
import uuid

from itsdangerous import BadSignature, URLSafeSerializer

# The hidden field carrying the form's token.
STARTED_FIELD = "form_started"


def _serializer(config):
    return URLSafeSerializer(config["SECRET_KEY"], salt="survey-form-token")


def _checking(config):
    return config["MIN_FILL_SECONDS"] > 0


def _read(config, token):
    """(submission id, render time) if `token` is genuine, else None."""
    try:
        value = _serializer(config).loads(token or "")
    except BadSignature:
        return None
    if (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
            and isinstance(value[1], (int, float))):
        return value[0], value[1]
    return None


def _expired(config, started):
    return time.time() - started > config["WTF_CSRF_TIME_LIMIT"]


def form_token(config, submission_id, started=None):
    return _serializer(config).dumps([submission_id, round(time.time() if started is None else started, 3)])


def form_identity(config, form_id, posted_token, posted):
    """The submission id and token a form shown now carries.

    The posted ones when the token is genuine, unexpired and signed for
    that id: a form shown again after an error keeps its id and first
    render time, so sending it again just works.  Else, after a post (while
    the check is on), a new id with a new token: a token that was forged,
    expired or replayed never passes its id on.  Else (a new form) a token
    for `form_id`."""
    read = _read(config, posted_token)
    if read and read[0] == form_id and not _expired(config, read[1]):
        return form_id, posted_token
    if posted and _checking(config):
        form_id = str(uuid.uuid4())
    return form_id, form_token(config, form_id)


def rejection(config, form_data):
    """None for a post a person could have sent, else why not: 'honeypot';
    'too_fast' (sent too soon, or a token missing or forged); 'replayed'
    (the token was signed for another submission id); 'expired'."""
    if form_data.get(config["HONEYPOT_FIELD"], ""):
        return "honeypot"
    if not _checking(config):
        return None
    read = _read(config, form_data.get(STARTED_FIELD, ""))
    if read is None:
        return "too_fast"
    submission_id, started = read
    if submission_id != _canonical(form_data.get("submission_id", "")):
        return "replayed"
    if _expired(config, started):
        return "expired"
    if time.time() - started < config["MIN_FILL_SECONDS"]:
        return "too_fast"
    return None


def _canonical(value):
    try:
        return str(uuid.UUID(value))
    except (TypeError, ValueError, AttributeError):
        return value
