"""The designs the benchmark compares ours against, as WSGI apps for gunicorn.

Both are our own web (web.create_app: the same form, CSRF, security checks,
templates, logging and metrics) with one thing changed, the view a valid POST
reaches:

- `create_app()`: the naive design the queue replaces.  The POST inserts the
  row inside the request, with the naive design's best case: one connection
  per gunicorn process, reused across requests, and the worker's own INSERT,
  so only where the insert runs differs.
- `create_app(store=False)`: the web without enqueuing.  The POST is validated
  and redirected like a queued one, and nothing is stored: the web's own cost.

bench/stack.py starts them with the web's gunicorn settings and this app:
`gunicorn --config web/gunicorn.conf.py 'bench.naive_app:create_app()'`.
They live here so that the product carries no benchmark code.
"""

import logging
import os
from datetime import datetime, timezone

import psycopg2
from flask import abort, current_app, redirect, render_template, url_for

import web
import submission as payload
from worker.jobs import inserts

log = logging.getLogger(__name__)

# The view these apps replace: web/views.py's POST to /.
SUBMIT_ENDPOINT = "survey.submit"


class Writer:
    """One PostgreSQL connection per process, opened after gunicorn forks."""

    def __init__(self, database_url):
        self.database_url = database_url
        self._conn = None
        self._pid = None

    def insert(self, submission):
        if self._conn is None or self._pid != os.getpid() or self._conn.closed:
            # A connection must not be shared across forked processes.
            self._conn = psycopg2.connect(self.database_url, connect_timeout=2, application_name="survey-bench-naive")
            self._pid = os.getpid()
        conn = self._conn
        try:
            with conn, conn.cursor() as cur:
                for statement, params in inserts([payload.parse(submission)]):
                    cur.execute(statement, params)
        except (psycopg2.OperationalError, psycopg2.InterfaceError):
            conn.close()  # reconnect on the next request
            raise


def _accepted_form():
    """The validated form, or the 422 page the web answers for an invalid one."""
    # This app's survey's form (web/forms.py).
    form = current_app.extensions["survey_forms"][current_app.config["SURVEY"].path]()
    if not form.validate():
        return None, (render_template("form.html", form=form), 422)
    return form, None


def _receipt(submission):
    # The same 303 as a queued submission.
    return redirect(url_for("survey.receipt", submission_id=submission["id"]), code=303)


def submit_in_request():
    form, invalid = _accepted_form()
    if invalid:
        return invalid
    submission = form.submission(datetime.now(timezone.utc))
    try:
        current_app.extensions["naive_writer"].insert(submission)
    except psycopg2.Error as exc:
        log.error("submission %s not stored: %s", submission["id"], exc)
        abort(503)
    return _receipt(submission)


def submit_without_storing():
    form, invalid = _accepted_form()
    if invalid:
        return invalid
    return _receipt(form.submission(datetime.now(timezone.utc)))


def create_app(store=True, overrides=None):
    app = web.create_app(overrides)
    if store:
        app.extensions["naive_writer"] = Writer(app.config["DATABASE_URL"])
        app.view_functions[SUBMIT_ENDPOINT] = submit_in_request
    else:
        app.view_functions[SUBMIT_ENDPOINT] = submit_without_storing
    return app
