"""The owner's email of new answers (a survey file's [notify] email): one
short message per stored answer, or with NOTIFY_DIGEST_MINUTES one digest at
most that often, through the queue `webhooks` (the delivery worker) with the
webhooks' retries.  It says which survey, how many answers so far and where
the results are, never an answer: email is no place for a respondent's data.

Enqueued with the webhooks' deliveries, after the store's COMMIT (worker/jobs.py).
A digest is one scheduled job per survey and window, its id made of both, so
the stores of one window schedule it once; a counter per window says how
many answers it covers."""

import logging
import smtplib
import ssl
import time
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import formatdate
from urllib.parse import unquote, urlsplit

from rq import Queue, get_current_job
from rq.serializers import JSONSerializer

from . import deliveries
from .config import Config
from .db import execute

log = logging.getLogger(__name__)

NOTIFY_JOB = "worker.notify.send"
# How many answers one digest window took, kept a day past it.
WINDOW_COUNT_KEY = "survey:notify:{table}:{window}"
SCHEMES = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}
# Answers stored now (db/schema.sql): erased ones are not.
COUNT = "SELECT answers_stored(%s)"


def enqueue(connection, table, submission_ids):
    """The owner's email(s) of these stored answers, if their survey asks for one."""
    survey = deliveries.survey_of(table)
    config = Config.from_env()
    if not survey or not survey.notify_email or not submission_ids:
        return 0
    if not config.smtp_url:
        log.warning("%s: [notify] email is set, but SMTP_URL is not: no email sent", survey.path)
        return 0
    queue = Queue(deliveries.QUEUE, connection=connection, serializer=JSONSerializer)
    options = {"retry": deliveries.retry(), "failure_ttl": deliveries.FAILURE_TTL, "result_ttl": deliveries.RESULT_TTL}
    if not config.notify_digest_minutes:
        with connection.pipeline() as pipe:
            for sid in submission_ids:
                queue.enqueue_job(queue.create_job(NOTIFY_JOB, kwargs={"table": table, "submission_id": sid},
                                                   job_id=f"notify-{sid}", description=f"email {survey.slug}'s owner",
                                                   **options), pipeline=pipe)
            pipe.execute()
        return len(submission_ids)
    span = config.notify_digest_minutes * 60
    window = int(time.time() // span)
    key = WINDOW_COUNT_KEY.format(table=table, window=window)
    job = queue.create_job(NOTIFY_JOB, kwargs={"table": table, "window": window}, job_id=f"notify-{table}-{window}",
                           description=f"email {survey.slug}'s owner a digest", **options)
    with connection.pipeline() as pipe:
        pipe.incrby(key, len(submission_ids))
        pipe.expire(key, int(span) + 86400)
        # The same id and time from every store of the window: scheduled once.
        queue.schedule_job(job, datetime.fromtimestamp((window + 1) * span, timezone.utc), pipeline=pipe)
        pipe.execute()
    return 1


def send(table, submission_id=None, window=None):
    """One email to the owner of `table`'s survey (an RQ job)."""
    config = Config.from_env()
    survey = deliveries.survey_of(table)
    if survey is None or not survey.notify_email:
        return {"sent": False}
    connection = get_current_job().connection
    [(so_far,)] = execute(COUNT, (table,))
    total = f"{so_far} answer{'' if so_far == 1 else 's'} so far"
    link = f"{config.public_url}{deliveries.results_path(survey)}"
    message = EmailMessage()
    if window is None:
        message["Subject"] = f"A new answer to {survey.title}"
        lead = f"A new answer to {survey.title!r} is stored: {total}."
        # The same on every try: a mail system drops a repeat.
        message["Message-ID"] = f"<notify-{submission_id}@survey>"
    else:
        count = connection.get(WINDOW_COUNT_KEY.format(table=table, window=window))
        new = int(count) if count else 0
        message["Subject"] = f"{new} new answer{'' if new == 1 else 's'} to {survey.title}"
        lead = (f"{new} new answer{'' if new == 1 else 's'} to {survey.title!r} in the last "
                f"{config.notify_digest_minutes:g} minutes: {total}.")
        message["Message-ID"] = f"<notify-{table}-{window}@survey>"
    message["From"] = config.smtp_from
    message["To"] = survey.notify_email
    message["Date"] = formatdate(usegmt=True)
    message.set_content(f"{lead}\n\nThe results: {link}\n\n"
                        "(This email never holds an answer; the auditor reads them in the results' exports.)\n")
    _deliver(config, message)
    log.info("emailed %s's owner (%s)", survey.slug, "digest" if window is not None else "one answer")
    return {"sent": True}


def _deliver(config, message):
    parts = urlsplit(config.smtp_url)
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise ValueError(f"SMTP_URL must be smtp://, smtp+starttls:// or smtps://[user@]host:port, not {parts.scheme}://")
    port = parts.port or SCHEMES[parts.scheme]
    timeout = config.webhook_timeout  # each step's wait: a server that stalls is a failed try, retried
    if parts.scheme == "smtps":
        client = smtplib.SMTP_SSL(parts.hostname, port, timeout=timeout, context=ssl.create_default_context())
    else:
        client = smtplib.SMTP(parts.hostname, port, timeout=timeout)
    with client:
        if parts.scheme == "smtp+starttls":
            client.starttls(context=ssl.create_default_context())
        if parts.username:
            client.login(unquote(parts.username), config.smtp_password or "")
        client.send_message(message)
