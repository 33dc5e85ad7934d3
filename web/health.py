"""/healthz and /readyz, for the compose healthcheck and anything else that asks.

/healthz says the process answers.  /readyz says it can do its work: Redis,
where the form's submissions go, and PostgreSQL, where receipts and /results
read.  Each check has a short timeout, so a probe gets its answer in seconds.
"""

import psycopg2
import redis
from flask import Blueprint, current_app, jsonify

bp = Blueprint("health", __name__)


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
            body[name] = str(exc).strip() or type(exc).__name__
    ready = all(value == "ok" for value in body.values())
    return jsonify(status="ok" if ready else "unavailable", **body), 200 if ready else 503
