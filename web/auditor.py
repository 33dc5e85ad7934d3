"""The auditor's login: HTTP Basic, checked by PostgreSQL itself.

The web keeps no auditor password.  The credentials a client sends are
tried as a connection to PostgreSQL as role `auditor`, and what the auditor
asked for then runs on that connection, with that role's privileges.  Tries
are counted per client address in Redis before PostgreSQL is asked (a
successful one clears the count); past AUTH_MAX_FAILURES within
AUTH_FAILURE_WINDOW seconds the address gets 429 without PostgreSQL being
asked, so the password cannot be guessed at the speed of the network.  A
server that does not check passwords at all switches the sign-in off.
"""

import logging
import secrets
import time

import psycopg2
import redis
from flask import abort, current_app, render_template, request

log = logging.getLogger(__name__)

USER = "auditor"
REALM = "Cat survey auditor"
FAILURES_KEY = "survey:auth-failures:{}"
# Where the server sees us from, to name the pg_hba.conf line that let us in.
DESCRIBE_CONNECTION = "SELECT host(inet_client_addr()), current_database()"


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


def _refused():
    return _page(503, "Sign-in switched off",
                 "The database lets anyone in as the auditor without checking the password, so "
                 "individual answers are not served until the operator fixes its pg_hba.conf "
                 "(the web's log names the line).",
                 {"Retry-After": "60"})


def _redis():
    return current_app.extensions["submission_queue"].redis


def _store():
    return current_app.extensions["submission_store"]


class TrustCheck:
    """Does PostgreSQL check the auditor's password at all?

    The sign-in is only as strong as pg_hba.conf for the web's address: a
    server that trusts it (the official image trusts loopback, some
    managed setups the pod network) lets any password in.  So we sign in
    with a random password, at start and then at most once per
    AUDITOR_TRUST_CHECK_INTERVAL seconds per process when someone signs
    in: if that works, the server is not checking and the sign-in is off."""

    def __init__(self, store, interval):
        self.store = store
        self.interval = interval
        self.trusts = None  # None: not known (the database was down)
        self.checked_at = None

    def _probe(self):
        """True if a random password got in, False if it was turned away, None if the database is down."""
        try:
            conn = self.store.connect_as(USER, secrets.token_urlsafe(32))
        except psycopg2.OperationalError as exc:
            try:
                self.store.ping()
            except psycopg2.Error:
                log.warning("could not check that PostgreSQL asks the auditor's password: %s", exc)
                return None
            return False
        try:
            with conn.cursor() as cur:
                cur.execute(DESCRIBE_CONNECTION)
                address, database = cur.fetchone()
        finally:
            conn.close()
        # The line PostgreSQL matched: local for a unix socket, else host from our address.
        line = f"local {database} {USER}" if address is None else f"host {database} {USER} {address}"
        log.error("PostgreSQL let role %s in with a random password: the pg_hba.conf line that matches "
                  "'%s' does not ask for a password (trust?); make it scram-sha-256. Until then "
                  "individual answers are refused (503).", USER, line)
        return True

    def check(self):
        self.trusts = self._probe()
        # Not known is asked again on the next sign-in.
        self.checked_at = time.monotonic() if self.trusts is not None else None
        return self.trusts

    def passwords_checked(self):
        """True only if PostgreSQL was seen to turn a wrong password away, lately."""
        if self.checked_at is None or time.monotonic() - self.checked_at >= self.interval:
            self.check()
        return self.trusts is False


# One step each, so the counter always carries the window's expiry: the window
# starts at the first try (later ones do not extend it), and a give-back
# never recreates a counter the window already expired (which would have no
# expiry, and lock the address out for ever).
COUNT_TRY = """
redis.call('SET', KEYS[1], 0, 'EX', ARGV[1], 'NX')
local tries = redis.call('INCR', KEYS[1])
if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return {tries, redis.call('TTL', KEYS[1])}
"""
GIVE_BACK = """
local tries = tonumber(redis.call('GET', KEYS[1]) or '0')
if tries > 0 then return redis.call('DECR', KEYS[1]) end
return 0
"""


def _count_try(key):
    """Count this try before PostgreSQL is asked, and return (tries in the
    window so far, seconds left in it): concurrent guesses each get their
    own number, so no more than AUTH_MAX_FAILURES ever reach PostgreSQL."""
    tries, ttl = _redis().eval(COUNT_TRY, 1, key, current_app.config["AUTH_FAILURE_WINDOW"])
    return tries, ttl


def _password(auth):
    """The auditor's password from a Basic header, or None for anything
    else: another scheme, another user, a header that did not parse, an
    empty password, or one PostgreSQL could never have (libpq refuses NUL)."""
    if auth is None or auth.type != "basic" or auth.username != USER:
        return None
    if not auth.password or "\x00" in auth.password:
        return None
    return auth.password


def connect():
    """A PostgreSQL connection as the auditor, with the password this request
    carries; anything else ends the request with 401, 429 or 503."""
    client = request.remote_addr  # the real client's, through ProxyFix
    if not current_app.extensions["auditor_trust_check"].passwords_checked():
        abort(_refused() if current_app.extensions["auditor_trust_check"].trusts else _unavailable())
    if "Authorization" not in request.headers:
        # Not a guess: how every browser asks first, before it prompts.
        log.info("auditor sign-in needed for %s from %s", request.path, client)
        abort(_unauthorized())
    key = FAILURES_KEY.format(client)
    try:
        tries, ttl = _count_try(key)
    except redis.RedisError as exc:
        # Without the counter the limit cannot hold: refuse rather than allow unlimited guesses.
        log.error("auditor sign-in from %s not checked: Redis unavailable: %s", client, exc)
        abort(_unavailable())
    if tries > current_app.config["AUTH_MAX_FAILURES"]:
        wait = max(ttl, 1)
        log.warning("auditor sign-in from %s refused: too many failures, %ss left", client, wait)
        abort(_page(429, "Too many failed sign-ins",
                    "This address has failed to sign in too often. Please wait a few minutes and try again.",
                    {"Retry-After": str(wait)}))
    auth = request.authorization
    password = _password(auth)
    conn = None
    if password is not None:
        try:
            conn = _store().connect_as(USER, password)
        except psycopg2.OperationalError as exc:
            # Turned away, or PostgreSQL is down?  Our own connection tells which.
            try:
                _store().ping()
            except psycopg2.Error:
                log.warning("auditor sign-in from %s not checked: database unavailable: %s", client, exc)
                _give_back(key)
                abort(_unavailable())
    if conn is None:
        log.warning("auditor sign-in failed from %s (user %r)", client, auth.username if auth else None)
        abort(_unauthorized())
    try:
        _redis().delete(key)
    except redis.RedisError:
        pass  # the auditor is in; the count expires by itself
    log.info("auditor signed in from %s for %s", client, request.path)
    return conn


def _give_back(key):
    """A try the database never judged is not a failure."""
    try:
        _redis().eval(GIVE_BACK, 1, key)
    except redis.RedisError:
        pass  # it expires with the window


def init_app(app):
    check = TrustCheck(app.extensions["submission_store"], app.config["AUDITOR_TRUST_CHECK_INTERVAL"])
    # At start, so a trusting server is in the log before anyone signs in.
    check.check()
    app.extensions["auditor_trust_check"] = check
