"""The web's logging: one line per event on stdout, plain text or JSON.

gunicorn applies `config(...)` (see gunicorn.conf.py), so the app's own lines,
gunicorn's error log and its access log all come out in one format.  Lines
about a submission pass its id as `extra={"submission_id": ...}`, which JSON
lines carry as a field.  Every line leaves as it is written but with each
submission id replaced by its reference (submission/logref.py): an operator
can follow one submission from the web's lines to the worker's (worker/logs.py
does the same), and no line holds a receipt link.
"""

import json
import logging
from datetime import datetime, timezone

from submission import logref

TEXT_FORMAT = "%(asctime)s [%(process)d] %(name)s %(levelname)s %(message)s"

# gunicorn passes its access-log atoms as the record's args; these few make a
# JSON access line that a log query can filter on without parsing text.
ACCESS_FIELDS = {"m": "method", "U": "path", "s": "status", "M": "duration_ms", "h": "remote"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service="web"):
        super().__init__()
        self.service = service

    def format(self, record):
        line = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if getattr(record, "submission_id", None):
            line["submission"] = record.submission_id  # a reference once the line is redacted
        if record.name == "gunicorn.access" and isinstance(record.args, dict):
            for atom, field in ACCESS_FIELDS.items():
                if atom in record.args:
                    line[field] = record.args[atom]
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def formatter(log_format="text", key=None):
    """The formatter of every line: JSON or text, with its submission ids as references."""
    inner = JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    return logref.Redacting(inner, key)


def config(log_format="text", level="INFO", key=None):
    """A logging.config.dictConfig dict: everything to stdout in one format."""
    handler = {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stdout"}
    # gunicorn's loggers get the handler themselves and don't propagate, so
    # each line is written once.
    own = {"handlers": ["stdout"], "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": {"()": formatter, "log_format": log_format, "key": key}},
        "handlers": {"stdout": handler},
        "root": {"level": level.upper(), "handlers": ["stdout"]},
        "loggers": {
            "gunicorn.error": {"level": level.upper(), **own},
            "gunicorn.access": {"level": "INFO", **own},
        },
    }
