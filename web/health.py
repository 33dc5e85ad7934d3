"""/healthz and /readyz, for the compose healthcheck and anything else that asks.

/healthz says the process answers.  /readyz says it can accept a submission:
its status is Redis's, where the form's submissions go.  PostgreSQL, where
receipts and /results read, is reported in the body but does not make the web
unready: submissions still queue while it is down, and the worker stores them
when it is back.  Each check has a short timeout, so a probe gets its answer
in seconds.  An anonymous client learns "ok" or "unavailable" per check; the
reason goes to the log, never to the client.
"""

import logging

import psycopg2
import redis
from flask import Blueprint, current_app, jsonify

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)
# The checks whose failure makes the web unready.
REQUIRED = ("redis",)


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    checks = {
        "redis": (current_app.extensions["submission_queue"].ping, redis.RedisError),
        "postgres": (current_app.extensions["submission_store"].ping, psycopg2.Error),
    }
    body = {}
    for name, (check, errors) in checks.items():
        try:
            check()
            body[name] = "ok"
        except errors as exc:
            log.warning("readyz: %s unavailable: %s", name, str(exc).strip() or type(exc).__name__)
            body[name] = "unavailable"
    ready = all(body[name] == "ok" for name in REQUIRED)
    return jsonify(status="ok" if ready else "unavailable", **body), 200 if ready else 503
