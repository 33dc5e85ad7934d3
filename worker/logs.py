"""The worker's logging: one line per event on stdout, plain text or JSON.

RQ's own lines (job started, job OK, retry scheduled) go through the same
handler, since RQ only adds its handler when none is configured.  Every JSON
line about a job carries the submission id (it is the job id), so one
submission can be followed from the web's lines (web/logs.py) to the row.
"""

import json
import logging
import re
import sys
from datetime import datetime, timezone

TEXT_FORMAT = "%(asctime)s [%(process)d] %(name)s %(levelname)s %(message)s"
# RQ names jobs only in its messages; a submission id is a UUID.
UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")


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
            found = UUID.search(message)
            submission_id = found and found.group(0)
        if submission_id:
            line["submission_id"] = submission_id
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def setup(log_format="text", level="INFO"):
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
