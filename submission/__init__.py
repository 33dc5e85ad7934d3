"""One submission as it travels from the web to the worker: the job's payload.

Both images copy this package (web/Dockerfile, worker/Dockerfile), so the
web that writes a payload and the worker that reads it share one definition.
A payload the worker cannot read is a permanent error: retrying it cannot
help, so the worker fails its job at once (worker/failures.py)."""

import uuid
from datetime import datetime

# The jobs, named by string so the web never imports the worker's code (or
# its image).  Jobs queued by an earlier release keep the worker.jobs names
# (worker/jobs.py still has them).
STORE_JOB = "worker.jobs.store_submission"
ERASE_JOB = "worker.erasure.erase_submission"

# The defaults of settings both services read (web/config.py, worker/config.py).
DEFAULT_JOB_TIMEOUT = 30
# CSRF_TIME_LIMIT: a form token (web/bots.py) and the CSRF token live this
# long, as long as a visitor might leave the form open; the worker keeps an
# erased id's mark as long.
DEFAULT_CSRF_TIME_LIMIT = 24 * 3600

# Bump when a field changes meaning or type; a worker refuses versions it does not know.
VERSION = 1
# name: type, in the order of the table's columns.
FIELDS = {"id": str, "name": str, "coat": str, "donut": str, "submitted_at": str}


class PayloadError(ValueError):
    """The payload does not match this definition."""


def build(submission_id, name, coat, donut, submitted_at):
    return {"version": VERSION, "id": submission_id, "name": name, "coat": coat, "donut": donut,
            "submitted_at": submitted_at.isoformat()}


def parse(payload):
    """The payload's fields, checked against this definition; PayloadError if they do not match."""
    if not isinstance(payload, dict):
        raise PayloadError(f"payload is a {type(payload).__name__}, not an object")
    # Jobs queued before the payload carried a version are version 1.
    version = payload.get("version", 1)
    if version != VERSION:
        raise PayloadError(f"payload version {version!r}, this worker reads version {VERSION}")
    fields = set(payload) - {"version"}
    if fields != set(FIELDS):
        raise PayloadError(f"payload fields {sorted(fields)}, expected {sorted(FIELDS)}")
    for name, kind in FIELDS.items():
        if not isinstance(payload[name], kind):
            raise PayloadError(f"payload field {name} is a {type(payload[name]).__name__}, not a {kind.__name__}")
    try:
        uuid.UUID(payload["id"])
        datetime.fromisoformat(payload["submitted_at"])
    except ValueError as exc:
        raise PayloadError(f"payload field unreadable: {exc}") from None
    return {name: payload[name] for name in FIELDS}


def erase_job_id(submission_id):
    # Not the submission id, which the store job holds: both may be in the queue at once.
    return f"erase-{submission_id}"


def erased_key(submission_id):
    """The mark an erase by request leaves in Redis: while a form token for
    this id may still be valid, the web refuses the id at once."""
    return f"survey:erased:{submission_id}"


def secret(env, name):
    """A setting that may be a secret: NAME from the environment, or the
    contents of the file NAME_FILE names (web/config.py, worker/config.py)."""
    if env.get(name):
        return env[name]
    if env.get(f"{name}_FILE"):
        with open(env[f"{name}_FILE"]) as fh:
            return fh.read().strip()
    return None
