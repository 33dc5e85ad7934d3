"""The survey's web front end: validates the form and queues it for the worker."""

import logging

import psycopg2
import redis
from flask import Flask
from flask_wtf.csrf import CSRFProtect

from . import config, forms, security
from .store import Store
from .submissions import SubmissionQueue

csrf = CSRFProtect()
log = logging.getLogger(__name__)


def _count_at_start(app):
    """With a cap, rebuild a lost count now rather than on the first post;
    and drop the set that held every id ever accepted (before submission/cap.py)."""
    queue = app.extensions["submission_queue"]
    try:
        queue.redis.delete(queue.count("cats").legacy_key)
        for survey in app.config["SURVEY_TABLES"].values():
            if survey.max_responses is not None and queue.accepted(survey.table) is None:
                queue.rebuild(app.extensions["submission_store"], survey.table)
                log.warning("the count of answers %s took was missing in Redis; rebuilt it from PostgreSQL",
                            survey.slug)
    except (redis.RedisError, psycopg2.Error) as exc:
        # The first post with a cap rebuilds it instead.
        log.warning("could not check the count of answers taken at start: %s", exc)


def create_app(overrides=None):
    app = Flask(__name__)
    app.config.from_mapping(config.from_env())
    if overrides:
        app.config.update(overrides)

    from . import auditor, health, metrics, results, views
    # Before CSRF and the form checks: a post the proxy rate-limited gets its form back as it was.
    app.before_request(views.turn_away_rate_limited)
    security.init_app(app)  # before CSRF: a post that is no form gets told so
    csrf.init_app(app)
    surveys = list(app.config["SURVEY_TABLES"].values())
    # Each survey's form class, made once (by file: / and /s/SLUG may be one survey).
    app.extensions["survey_forms"] = {survey.path: forms.form_class(survey) for survey in surveys}
    app.extensions["submission_queue"] = SubmissionQueue(app.config)
    app.extensions["submission_store"] = Store(app.config["DATABASE_URL"], app.config["WEB_DB_POOL_SIZE"],
                                               app.config["WEB_DB_TIMEOUT"], app.config["WEB_DB_READERS"],
                                               surveys)

    _count_at_start(app)

    for module in (views, health, results):
        app.register_blueprint(module.bp)
    metrics.init_app(app)
    auditor.init_app(app)
    return app
