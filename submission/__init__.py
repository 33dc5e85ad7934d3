"""One submission as it travels from the web to the worker: the job's payload.

Both images copy this package (web/Dockerfile, worker/Dockerfile), so the
web that writes a payload and the worker that reads it share one definition.
A payload the worker cannot read is a permanent error: retrying it cannot
help, so the worker fails its job at once (worker/failures.py)."""

import re
import uuid
from datetime import datetime

# The jobs, named by string so the web never imports the worker's code (or
# its image).  Jobs queued by an earlier release keep the worker.jobs names
# (worker/jobs.py still has them).
STORE_JOB = "worker.jobs.store_submission"
ERASE_JOB = "worker.erasure.erase_submission"

# What a table or question id may be (survey/ checks the same at start), and
# the columns every survey's table has besides its questions.
IDENTIFIER = re.compile(r"[a-z][a-z0-9_]{0,62}\Z")
META_COLUMNS = ("submission_id", "submitted_at", "stored_at", "survey_version")

# The defaults of settings both services read (web/config.py, worker/config.py).
DEFAULT_JOB_TIMEOUT = 30
# CSRF_TIME_LIMIT: a form token (web/bots.py) and the CSRF token live this
# long, as long as a visitor might leave the form open; the worker keeps an
# erased id's mark as long.
DEFAULT_CSRF_TIME_LIMIT = 24 * 3600

# Bump when a field changes meaning or type; a worker refuses versions it does not know.
# Version 1 (an earlier release's, still read): the cat survey's three answers as fields.
VERSION = 2
# name: type.  `answers` maps question ids to what each column stores (a
# string, a whole number, or a list of strings for several picks); `table`
# is the survey's (survey/, worker/tables.py), `survey_version` its file's.
FIELDS = {"id": str, "survey": str, "table": str, "survey_version": str, "answers": dict, "submitted_at": str}
V1_FIELDS = {"id": str, "name": str, "coat": str, "donut": str, "submitted_at": str}
V1_TABLE = "cats"
ANSWER_TYPES = (str, int, list)


class PayloadError(ValueError):
    """The payload does not match this definition."""


def build(submission_id, survey, answers, submitted_at):
    return {"version": VERSION, "id": submission_id, "survey": survey.slug, "table": survey.table,
            "survey_version": survey.version, "answers": answers, "submitted_at": submitted_at.isoformat()}


def _check(payload, fields):
    present = set(payload) - {"version"}
    if present != set(fields):
        raise PayloadError(f"payload fields {sorted(present)}, expected {sorted(fields)}")
    for name, kind in fields.items():
        if not isinstance(payload[name], kind):
            raise PayloadError(f"payload field {name} is a {type(payload[name]).__name__}, not a {kind.__name__}")


def parse(payload):
    """The payload as version 2's fields, checked against this definition;
    PayloadError if they do not match."""
    if not isinstance(payload, dict):
        raise PayloadError(f"payload is a {type(payload).__name__}, not an object")
    # Jobs queued before the payload carried a version are version 1.
    version = payload.get("version", 1)
    if version == 1:
        _check(payload, V1_FIELDS)
        payload = {"id": payload["id"], "survey": V1_TABLE, "table": V1_TABLE, "survey_version": "",
                   "answers": {name: payload[name] for name in ("name", "coat", "donut")},
                   "submitted_at": payload["submitted_at"]}
    elif version == VERSION:
        _check(payload, FIELDS)
    else:
        raise PayloadError(f"payload version {version!r}, this worker reads versions 1 and {VERSION}")
    if not IDENTIFIER.match(payload["table"]):
        raise PayloadError(f"payload table {payload['table']!r} is not a table name")
    for question, answer in payload["answers"].items():
        if not IDENTIFIER.match(question) or question in META_COLUMNS:
            raise PayloadError(f"payload answer {question!r} is not a question id")
        if isinstance(answer, bool) or not isinstance(answer, ANSWER_TYPES) or (
                isinstance(answer, list) and not all(isinstance(v, str) for v in answer)):
            raise PayloadError(f"payload answer {question} is a {type(answer).__name__}")
    try:
        uuid.UUID(payload["id"])
        datetime.fromisoformat(payload["submitted_at"])
    except ValueError as exc:
        raise PayloadError(f"payload field unreadable: {exc}") from None
    # With its version, so a parsed payload parses again to itself.
    return {"version": VERSION, **{name: payload[name] for name in FIELDS}}


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
