"""A submission's id never reaches a log line: the id is the receipt link's
secret (whoever holds it can read and erase the answer), and logs are read
by people the roles' least privilege keeps away from the answers.

Each process's log formatter (web/logs.py, worker/logs.py) replaces every
UUID in a finished line, RQ's and gunicorn's lines included, with a short
keyed hash of it (`ref`): the same in every process, so one submission can
still be followed from the web's lines to the worker's, and no good for
finding its receipt.  The key is LOG_KEY when set; without it the hash is
keyed with a constant, which still reveals nothing of a random id.  nginx
logs the reference the web sends back in X-Log-Ref (proxy/)."""

import hashlib
import hmac
import logging
import re

UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
DEFAULT_KEY = b"survey log reference"
# The header the web answers a receipt's request with, for nginx's access log.
HEADER = "X-Log-Ref"


def key_bytes(log_key):
    """LOG_KEY as the HMAC's key; the constant without one."""
    return log_key.encode() if log_key else DEFAULT_KEY


def ref(submission_id, key=DEFAULT_KEY):
    """'ref-' and 12 hex digits (48 bits): plenty to tell a day's submissions apart in a log."""
    digest = hmac.new(key, submission_id.lower().encode(), hashlib.sha256).hexdigest()
    return f"ref-{digest[:12]}"


def redact(text, key=DEFAULT_KEY):
    return UUID.sub(lambda found: ref(found.group(0), key), text)


class Redacting(logging.Formatter):
    """Another formatter's lines, each UUID in them replaced by its reference."""

    def __init__(self, inner, log_key=None):
        super().__init__()
        self.inner = inner
        self.key = key_bytes(log_key)

    def format(self, record):
        return redact(self.inner.format(record), self.key)


def main(argv=None, env=None):
    """`python -m submission.logref ID [ID ...]`: the reference each id has in
    the logs, under this environment's LOG_KEY (or LOG_KEY_FILE)."""
    import os
    import sys

    from submission import secret

    log_key = secret(os.environ if env is None else env, "LOG_KEY")
    for submission_id in (sys.argv[1:] if argv is None else argv):
        print(submission_id, ref(submission_id, key_bytes(log_key)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
