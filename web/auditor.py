"""The auditor's login: HTTP Basic, checked by PostgreSQL itself.

The web keeps no auditor password.  The credentials a client sends are
tried as a connection to PostgreSQL as role `auditor`, and what the auditor
asked for then runs on that connection, with that role's privileges.  Failed
tries are counted per client address in Redis; past AUTH_MAX_FAILURES within
AUTH_FAILURE_WINDOW seconds the address gets 429 without PostgreSQL being
asked, so the password cannot be guessed at the speed of the network.
"""

import logging

import psycopg2
import redis
from flask import abort, current_app, render_template, request

log = logging.getLogger(__name__)

USER = "auditor"
REALM = "Cat survey auditor"
FAILURES_KEY = "survey:auth-failures:{}"


def _page(status, title, message, headers=None):
    response = current_app.make_response((render_template("error.html", title=title, message=message), status))
    response.headers.update(headers or {})
    return response


def _unauthorized():
    return _page(401, "Sign in to see the answers",
                 "Individual answers are for the survey's auditor. Sign in as “auditor” with the "
                 "auditor's database password (from a terminal: curl -u auditor followed by this address).",
                 {"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'})


def _unavailable():
    return _page(503, "Sign-in unavailable",
                 "Your sign-in can't be checked just now; please try again in a moment.",
                 {"Retry-After": "5"})


def _redis():
    return current_app.extensions["submission_queue"].redis


def _store():
    return current_app.extensions["submission_store"]


def _locked_out(key):
    """Seconds until this address may try again, or 0."""
    failures, ttl = _redis().pipeline(transaction=False).get(key).ttl(key).execute()
    if failures is not None and int(failures) >= current_app.config["AUTH_MAX_FAILURES"]:
        return max(ttl, 1)
    return 0


def _count_failure(key):
    # The window starts at the first failure; later ones do not extend it.
    pipe = _redis().pipeline(transaction=True)
    pipe.set(key, 0, ex=current_app.config["AUTH_FAILURE_WINDOW"], nx=True)
    pipe.incr(key)
    pipe.execute()


def connect():
    """A PostgreSQL connection as the auditor, with the password this request
    carries; anything else ends the request with 401, 429 or 503."""
    client = request.remote_addr  # the real client's, through ProxyFix
    auth = request.authorization
    if auth is None or auth.type != "basic":
        # Not a guess: how every browser asks first, before it prompts.
        log.info("auditor sign-in needed for %s from %s", request.path, client)
        abort(_unauthorized())
    key = FAILURES_KEY.format(client)
    try:
        wait = _locked_out(key)
    except redis.RedisError as exc:
        # Without the counter the limit cannot hold: refuse rather than allow unlimited guesses.
        log.error("auditor sign-in from %s not checked: Redis unavailable: %s", client, exc)
        abort(_unavailable())
    if wait:
        log.warning("auditor sign-in from %s refused: too many failures, %ss left", client, wait)
        abort(_page(429, "Too many failed sign-ins",
                    "This address has failed to sign in too often. Please wait a few minutes and try again.",
                    {"Retry-After": str(wait)}))
    conn = None
    if auth.username == USER and auth.password:
        try:
            conn = _store().connect_as(USER, auth.password)
        except psycopg2.OperationalError as exc:
            # Turned away, or PostgreSQL is down?  Our own connection tells which.
            try:
                _store().ping()
            except psycopg2.Error:
                log.warning("auditor sign-in from %s not checked: database unavailable: %s", client, exc)
                abort(_unavailable())
    if conn is None:
        log.warning("auditor sign-in failed from %s (user %r)", client, auth.username)
        try:
            _count_failure(key)
        except redis.RedisError as exc:
            log.error("failed sign-in from %s not counted: %s", client, exc)
        abort(_unauthorized())
    try:
        _redis().delete(key)
    except redis.RedisError:
        pass  # the auditor is in; the count expires by itself
    log.info("auditor signed in from %s for %s", client, request.path)
    return conn
