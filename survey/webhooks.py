"""A survey file's [[webhooks]]: where each stored or erased answer is told,
signed as the Standard Webhooks specification says (worker/deliveries.py
sends them); and its [notify] email, the owner told of new answers
(worker/notify.py).  Checked whole at start, as the rest of the file is: a bad URL,
an unknown event or a missing or malformed secret stops every service.

The secret is never in the file, only where to find it (secret_env, the
name of a variable; secret_file, a path), so the file can be published."""

import base64
import binascii
import hashlib
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .questions.email import ADDRESS, MAX_LENGTH

EVENTS = ("answer.stored", "answer.erased")
KEYS = {"url", "events", "secret_env", "secret_file", "allow_http"}
SECRET_PREFIX = "whsec_"
# The specification: 24 to 64 random bytes.
SECRET_BYTES = (24, 64)
URL_MAX = 2000


@dataclass(frozen=True)
class Webhook:
    url: str
    events: tuple
    secret: bytes = field(repr=False)

    @property
    def key(self):
        """Names this URL's delivery jobs and its 'gone' mark: the same across
        edits that keep the URL, so an erase finds a delivery queued before."""
        return hashlib.sha256(self.url.encode()).hexdigest()[:12]


def new_secret():
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def decode_secret(text):
    """The secret's bytes; ValueError naming what is wrong."""
    text = text.strip()
    if not text.startswith(SECRET_PREFIX):
        raise ValueError(f"does not start with {SECRET_PREFIX} (make one with `python -m survey new-webhook-secret`)")
    try:
        raw = base64.b64decode(text[len(SECRET_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"is not {SECRET_PREFIX} and base64") from None
    if not SECRET_BYTES[0] <= len(raw) <= SECRET_BYTES[1]:
        raise ValueError(f"holds {len(raw)} bytes; the specification asks for {SECRET_BYTES[0]} to {SECRET_BYTES[1]}")
    return raw


def read(items, fail, env, base):
    """The file's [[webhooks]] as Webhooks; `fail(key, problem)` raises."""
    if items is None:
        return ()
    if not isinstance(items, list):
        fail("webhooks", "must be [[webhooks]] tables")
    allow_private = env.get("WEBHOOK_ALLOW_PRIVATE", "") == "1"
    hooks = []
    for i, item in enumerate(items):
        where = f"webhooks[{i}]"
        if not isinstance(item, dict):
            fail(where, "must be a table")
        unknown = sorted(set(item) - KEYS)
        if unknown:
            fail(f"{where}.{unknown[0]}", f"is not a key here (one of {', '.join(sorted(KEYS))})")
        allow_http = item.get("allow_http", False)
        if not isinstance(allow_http, bool):
            fail(f"{where}.allow_http", "must be true or false")
        url = _url(item.get("url"), allow_http or allow_private, lambda p: fail(f"{where}.url", p))
        events = item.get("events", list(EVENTS))
        if not isinstance(events, list) or not events:
            fail(f"{where}.events", f"must be a list of events ({', '.join(EVENTS)})")
        for event in events:
            if event not in EVENTS:
                fail(f"{where}.events", f"{event!r} is not an event (one of {', '.join(EVENTS)})")
        if any(h.url == url for h in hooks):
            fail(f"{where}.url", "is already the URL of another webhook of this file")
        hooks.append(Webhook(url, tuple(dict.fromkeys(events)), _secret(item, where, fail, env, base)))
    return tuple(hooks)


def _url(url, allow_http, fail):
    if not isinstance(url, str) or not url:
        fail("missing: the receiver's https:// address")
    if len(url) > URL_MAX or any(c.isspace() for c in url):
        fail("is not a URL")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http"):
        fail(f"{url!r} is not an https:// URL")
    if parts.scheme == "http" and not allow_http:
        fail(f"{url!r} is plain http: use https, or say allow_http = true for a receiver that takes no secrets")
    try:
        parts.port
    except ValueError:
        fail(f"{url!r} has a port that is not a number from 1 to 65535")
    if not parts.hostname or parts.username or parts.password or parts.fragment:
        fail(f"{url!r} needs a host, and no user, password or #fragment")
    return url


def _secret(item, where, fail, env, base):
    given = [k for k in ("secret_env", "secret_file") if k in item]
    if len(given) != 1:
        fail(f"{where}.secret_env", "give one of secret_env = \"NAME\" or secret_file = \"PATH\" "
             "(the secret itself never goes in the file)")
    key = f"{where}.{given[0]}"
    name = item[given[0]]
    if not isinstance(name, str) or not name:
        fail(key, "must be a variable's name" if given[0] == "secret_env" else "must be a path")
    if given[0] == "secret_env":
        text = env.get(name)
        if not text:
            fail(key, f"the variable {name} is not set")
    else:
        path = base / Path(name)
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            fail(key, f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}")
    try:
        return decode_secret(text)
    except ValueError as exc:
        fail(key, f"the secret {exc}")


NOTIFY_KEYS = {"email"}


def read_notify(table, fail):
    """[notify]'s email address, or None."""
    if table is None:
        return None
    if not isinstance(table, dict):
        fail("notify", "must be a table: [notify] email = \"owner@example.org\"")
    unknown = sorted(set(table) - NOTIFY_KEYS)
    if unknown:
        fail(f"notify.{unknown[0]}", "is not a key here (one of email)")
    address = table.get("email")
    # As the email question checks one (survey/questions/email.py).
    if not isinstance(address, str) or len(address) > MAX_LENGTH or not ADDRESS.match(address):
        fail("notify.email", f"{address!r} is not an email address")
    return address
