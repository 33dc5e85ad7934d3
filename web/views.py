"""The pages: the form, the receipt, and the receipt's "Erase my answer"."""

import logging
import uuid
from datetime import datetime, timezone

import psycopg2
import redis
from flask import Blueprint, abort, current_app, g, jsonify, redirect, render_template, request, send_file, url_for
from flask_wtf.csrf import CSRFError

import survey as surveys
from submission import logref

from . import bots, metrics, security

log = logging.getLogger(__name__)
bp = Blueprint("survey", __name__)

# Seconds a visitor is asked to wait while the queue is full: the worker
# drains thousands a second, so this is a backlog, not an outage.
QUEUE_FULL_RETRY_AFTER = 10

STATE_TEXT = {
    "queued": "Received, waiting in the queue",
    "stored": "Stored",
    "failed": "Could not be stored yet",
    "erasing": "Erase requested, waiting in the queue",
    "erase_failed": "Could not be erased yet",
    "erased": "Erased",
}
# The erase job's state (SubmissionQueue.state's words) as the receipt's.
ERASE_STATE = {"queued": "erasing", "failed": "erase_failed", "stored": "erased"}


# What a post to a survey that is not open gets: the page says why, with the
# visitor's answers still in the form.
NOT_OPEN_STATUS = {"not_open": 403, "closed": 410}


def current_survey():
    """The survey this request is for: SURVEYS_DIR's at /s/SLUG, else SURVEY_FILE's."""
    return g.get("survey") or current_app.config["SURVEY"]


def survey_slug(survey):
    """Its SLUG under /s/, None for the survey at /."""
    return None if survey is current_app.config["SURVEY"] else survey.slug


@bp.app_url_value_preprocessor
def pick_survey(endpoint, values):
    """/s/SLUG/... is SURVEYS_DIR's survey SLUG: an unknown one is 404."""
    if values and "slug" in values:
        slug = values.pop("slug")
        if slug is not None:
            survey = current_app.config["SURVEYS"].get(slug)
            if survey is None:
                abort(404)
            g.survey = survey


@bp.app_url_defaults
def keep_survey(endpoint, values):
    """A survey's pages link to that survey's form and results."""
    survey = g.get("survey")
    if (survey is not None and "slug" not in values and endpoint.split(".")[0] in ("survey", "results")
            and current_app.url_map.is_endpoint_expecting(endpoint, "slug")):
        values["slug"] = survey_slug(survey)


@bp.app_context_processor
def survey_context():
    return {
        "survey": current_survey(),
        "honeypot_field": current_app.config["HONEYPOT_FIELD"],
        "started_field": bots.STARTED_FIELD,
        "form_identity": lambda form: bots.form_identity(current_app.config, form.submission_id.data,
                                                          request.form.get(bots.STARTED_FIELD),
                                                          request.method == "POST"),
    }


def _form(*args, **kwargs):
    """A form of this request's survey (web/forms.py)."""
    return current_app.extensions["survey_forms"][current_survey().path](*args, **kwargs)


def availability(count=False):
    """Whether the survey takes answers now ('open', 'not_open', 'closed'),
    and how many it has taken (None if not asked for, or not known just now).

    The count is a short read of Redis (SubmissionQueue.taken_lately), skipped
    for a while after one failed: the form and the tallies never wait long
    on Redis, and a post's own accept is what enforces the cap, exactly."""
    survey = current_survey()
    accepted = None
    if count or survey.max_responses is not None:
        accepted = _queue().taken_lately(survey.table)
    state = surveys.status(survey, accepted or 0, datetime.now(timezone.utc))
    return {"state": state, "accepted": accepted, "max_responses": survey.max_responses,
            "opens_at": survey.opens_at, "closes_at": survey.closes_at}


def _queue():
    return current_app.extensions["submission_queue"]


def _store():
    return current_app.extensions["submission_store"]


@bp.get("/", defaults={"slug": None})
@bp.get("/s/<slug>")
def form():
    form = _form()
    form.submission_id.data = str(uuid.uuid4())
    return render_template("form.html", form=form, availability=availability(), questions_html=_fresh_questions(form))


def _fresh_questions(form):
    """The questions of a form not yet answered, as HTML: the same for every
    visitor of the survey at this address, so rendered once per process
    (a survey file changes with a restart)."""
    survey = current_survey()
    key = (survey.path, survey_slug(survey))  # / and /s/SLUG may be one survey; their links differ
    rendered = current_app.extensions.setdefault("fresh_questions", {})
    if key not in rendered:
        rendered[key] = render_template("_questions.html", form=form, first_error=None)
    return rendered[key]


@bp.get("/survey/pictures/<question>/<value>", defaults={"slug": None})
@bp.get("/s/<slug>/pictures/<question>/<value>")
def picture(question, value):
    # Only the pictures the survey file names, by choice: no path comes from the URL.
    asked = current_survey().question(question)
    choice = next((c for c in asked.choices if c.value == value), None) if asked else None
    if choice is None or choice.picture is None:
        abort(404)
    return send_file(choice.picture, mimetype=surveys.PICTURE_TYPES[choice.picture.suffix.lower()], max_age=3600)


def _refuse(form, status, reason, **flags):
    metrics.count_rejections([("form", reason)])
    return render_template("form.html", form=form, **flags), status


# The proxy (nginx limit_req) turned this post away for coming too fast and
# passed it on to us with this header, so the visitor gets the form back.
RATE_LIMITED_HEADER = "X-Survey-Rate-Limited"


def turn_away_rate_limited():
    """Registered before CSRF and the form checks (web/__init__.py): a post
    the proxy rate-limited gets its form back with what was typed, 429, and
    nothing stored.  No Redis, no database: a flood costs us only a render.
    nginx blanks this header on every request it passes normally, so a
    client cannot set it through the proxy (nor would it gain anything)."""
    if request.method != "POST" or request.endpoint != "survey.submit":
        return None
    if request.headers.get(RATE_LIMITED_HEADER) != "1":
        return None
    metrics.count_rejections([("form", "rate_limited")])
    log.info("post from %s rate-limited by the proxy", request.remote_addr)
    # A fresh CSRF token, so sending the kept answers again just works.
    form = _form(request.form if request.mimetype in security.FORM_TYPES else None)
    response = current_app.make_response((render_template("form.html", form=form, rate_limited=True), 429))
    response.headers["Retry-After"] = "1"
    return response


@bp.post("/", defaults={"slug": None})
@bp.post("/s/<slug>")
def submit():
    form = _form()
    # Refused before anything is counted or queued; the answers stay in the page.
    # By date only: the cap is decided below, where a submission already
    # accepted (a double click) still gets its receipt.
    survey = current_survey()
    state = surveys.status(survey, 0, datetime.now(timezone.utc))
    if state != "open":
        return _refuse(form, NOT_OPEN_STATUS[state], state,
                       availability={"state": state, "opens_at": survey.opens_at})
    bot = bots.rejection(current_app.config, request.form)
    if bot:
        log.info("post from %s rejected: %s", request.remote_addr, bot)
        return _refuse(form, 422, bot, bot=bot)
    if not form.validate():
        rejections = form.rejections()
        metrics.count_rejections(rejections)
        # An invalid id is whatever the client sent: not fit for a log line.
        sid = None if "submission_id" in form.errors else form.submission_id.data
        log.info("submission %s to %s rejected: %s", sid or "-", survey.slug,
                 " ".join(f"{field}={reason}" for field, reason in rejections), extra={"submission_id": sid})
        return render_template("form.html", form=form), 422
    submission = form.submission(datetime.now(timezone.utc))
    sid = submission["id"]
    try:
        with metrics.ENQUEUE_SECONDS.time():
            taken = _take(submission, survey)
    except (redis.RedisError, psycopg2.Error) as exc:
        metrics.ENQUEUE_FAILURES.labels(error=type(exc).__name__).inc()
        log.error("submission %s not queued: %s", sid, exc, extra={"submission_id": sid})
        return render_template("form.html", form=form, unavailable=True), 503
    if taken == "queue_full":
        metrics.count_rejections([("form", "queue_full")])
        log.warning("submission %s refused: the queue is full", sid, extra={"submission_id": sid})
        response = current_app.make_response((render_template("form.html", form=form, queue_full=True), 503))
        response.headers["Retry-After"] = str(QUEUE_FULL_RETRY_AFTER)
        return response
    if taken == "erased":
        log.info("submission %s refused: it was erased", sid, extra={"submission_id": sid})
        # Sent again, the answers go in as a new one.
        form.submission_id.data = str(uuid.uuid4())
        return _refuse(form, 410, "erased", erased=True)
    if taken == "full":
        log.info("submission %s refused: %s has its %s answers", sid, survey.slug,
                 survey.max_responses, extra={"submission_id": sid})
        return _refuse(form, 410, "closed", availability={"state": "closed"})
    queued = taken == "queued"
    metrics.ACCEPTED.labels(enqueue="queued" if queued else "duplicate", survey=survey.slug).inc()
    log.info("submission %s to %s %s", sid, survey.slug, "queued" if queued else "was already queued",
             extra={"submission_id": sid})
    # 303 so a refresh of the next page repeats a GET, never the POST.
    return redirect(url_for(".receipt", submission_id=submission["id"]), code=303)


def _status(submission_id):
    """What a visitor may know of a submission: its tombstone if it was
    erased, an erase under way, the row if it is stored, else the store job's state.

    While a job waits the queue alone answers, so a receipt's polls cost no
    database read; a finished or missing job, the row decides."""
    sid = str(submission_id)
    try:
        state, erase = _queue().states(sid)
    except redis.RedisError as exc:
        log.warning("receipt %s: queue unavailable: %s", sid, exc, extra={"submission_id": sid})
        state, erase = "unknown", None
    erase = ERASE_STATE.get(erase)
    if erase == "erasing":
        # Its answers are on their way out: no longer shown.
        return {"id": sid, "state": erase, "row": None}
    if state == "queued" and erase is None:
        return {"id": sid, "state": state, "row": None}
    database_down = False
    try:
        row = _store().find_submission(sid)
    except psycopg2.Error as exc:
        # While the database is down the queue still knows the answer.
        log.warning("receipt %s: database unavailable: %s", sid, exc, extra={"submission_id": sid})
        row, database_down = None, True
    if row and row["erased_at"]:
        return {"id": sid, "state": "erased", "row": None, "erased_at": row["erased_at"]}
    if erase:
        return {"id": sid, "state": erase, "row": None}
    if row:
        # The receipt speaks of the survey that stored it, wherever it was asked for.
        g.survey = current_app.config["SURVEY_TABLES"].get(row["table_name"], current_survey())
        return {"id": sid, "state": "stored", "row": row}
    if state is None:
        if database_down:
            # A stored job leaves the queue after JOB_RESULT_TTL; only the row
            # could tell, and the database can't be asked just now.
            return {"id": sid, "state": "unknown", "row": None}
        abort(404)
    # The job can finish between our two reads; a finished job means a stored row.
    return {"id": sid, "state": state, "row": None}


def _take(submission, survey):
    """SubmissionQueue.take, after rebuilding the survey's MAX_RESPONSES
    count if it was lost (Redis restarted empty, a failover): PostgreSQL and
    the queue say what it was (submission/cap.py).  Raises a psycopg2.Error
    when PostgreSQL cannot be asked: no answer is taken on a count not known."""
    def take():
        return _queue().take(submission, survey.table, survey.max_responses, current_app.config["QUEUE_MAX_DEPTH"])
    taken = take()
    if taken == "lost":
        rebuilt = _queue().rebuild(_store(), survey.table)
        log.warning("the count of answers taken by %s was lost in Redis; %s", survey.slug,
                    "rebuilt it" if rebuilt else "another process rebuilt it")
        taken = take()
        if taken == "lost":
            raise redis.RedisError("the count of answers taken was lost again while it was rebuilt")
    return taken


@bp.get("/submissions/<uuid:submission_id>", defaults={"slug": None})
@bp.get("/s/<slug>/submissions/<uuid:submission_id>")
def receipt(submission_id):
    status = _status(submission_id)
    return render_template("receipt.html", status=status, state_text=STATE_TEXT.get(status["state"], "Unknown"))


@bp.get("/submissions/<uuid:submission_id>.json", defaults={"slug": None})
@bp.get("/s/<slug>/submissions/<uuid:submission_id>.json")
def receipt_json(submission_id):
    status = _status(submission_id)
    row = status["row"]
    state_text = STATE_TEXT.get(status["state"], "Unknown")
    return jsonify(
        id=status["id"],
        state=status["state"],
        state_text=state_text,
        stored_at=row["stored_at"].isoformat() if row else None,
        erased_at=status["erased_at"].isoformat() if status.get("erased_at") else None,
        # The stored receipt, for receipt.js to show in place of a reload.
        html=render_template("_receipt.html", status=status, state_text=state_text) if row else None,
    )


@bp.post("/submissions/<uuid:submission_id>/erase", defaults={"slug": None})
@bp.post("/s/<slug>/submissions/<uuid:submission_id>/erase")
def erase(submission_id):
    """The receipt's "Erase my answer": the receipt link is the proof, the
    CSRF token that this browser was shown the receipt.  The worker erases."""
    status = _status(submission_id)  # 404 for an id we never had
    sid = status["id"]
    if status["state"] not in ("erased", "erasing"):
        try:
            queued = _queue().enqueue_erase(sid)
        except redis.RedisError as exc:
            log.error("erase of %s not queued: %s", sid, exc, extra={"submission_id": sid})
            return render_template("error.html", title="Can't erase just now",
                                   message="Please try again in a moment."), 503
        log.info("erase of %s %s", sid, "queued" if queued else "was already queued", extra={"submission_id": sid})
    return redirect(url_for(".receipt", submission_id=sid), code=303)


@bp.after_app_request
def log_reference(response):
    """A receipt's answer names its submission's log reference, which nginx
    logs in the receipt link's place (proxy/nginx.conf.template) and keeps
    from the client."""
    sid = (request.view_args or {}).get("submission_id")
    if sid is not None:
        response.headers[logref.HEADER] = logref.ref(str(sid), logref.key_bytes(current_app.config["LOG_KEY"]))
    return response


@bp.app_errorhandler(CSRFError)
def csrf_error(error):
    metrics.count_rejections([("csrf_token", metrics.csrf_reason(error.description))])
    if request.endpoint == "survey.erase":
        return render_template("error.html", title="Please try again",
                               message="This page was open too long; reload the receipt, then erase."), 400
    # Keep what the visitor typed; only the token was wrong.
    form = _form(meta={"csrf": False})
    return render_template("form.html", form=form, csrf_error=error.description), 400


@bp.app_errorhandler(413)
def too_large(error):
    metrics.count_rejections([("form", "too_large")])
    return render_template("error.html", title="That was too much",
                           message="The form sent more data than a survey answer needs."), 413


@bp.app_errorhandler(404)
def not_found(error):
    return render_template("error.html", title="Not found",
                           message="There is no page or submission here."), 404
