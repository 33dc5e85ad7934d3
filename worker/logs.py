"""The worker's logging: one line per event on stdout, plain text or JSON.

RQ's own lines (job started, job OK, retry scheduled) go through the same
handler, since RQ only adds its handler when none is configured.  Every JSON
line about a job carries the submission's reference (its id, the job id, as
submission/logref.py hashes it, as every id in every line is), so one
submission can be followed from the web's lines (web/logs.py) to the row,
and no line holds a receipt link.
"""

import json
import logging
import sys
from datetime import datetime, timezone

from submission import logref

TEXT_FORMAT = "%(asctime)s [%(process)d] %(name)s %(levelname)s %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record):
        message = record.getMessage()
        line = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": "worker",
            "logger": record.name,
            "message": message,
        }
        submission_id = getattr(record, "submission_id", None) or getattr(record, "job_id", None)
        if not submission_id:
            # RQ names jobs only in its messages; a submission id is a UUID.
            found = logref.UUID.search(message)
            submission_id = found and found.group(0)
        if submission_id:
            line["submission"] = submission_id  # a reference once the line is redacted
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def setup(log_format="text", level="INFO", key=None):
    handler = logging.StreamHandler(sys.stdout)
    inner = JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(logref.Redacting(inner, key))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
