"""Webhook deliveries: each stored or erased answer told to the survey's
[[webhooks]] (survey/webhooks.py), signed as the Standard Webhooks
specification says, through a queue of its own (`webhooks`).

- Enqueued by the store (worker/jobs.py) right after its COMMIT and before
  RQ marks the store job finished: a worker killed in between re-runs the
  store, which enqueues them again.  So every stored answer is delivered at
  least once; a repeat carries the same webhook-id, for the receiver to drop.
- Run by `python -m worker.deliver`, a worker of their own: a slow or dead
  receiver holds a delivery worker for at most WEBHOOK_TIMEOUT a try, and
  never the storage of answers or the form.
- A try that gets no 2xx is retried on the specification's schedule
  (WEBHOOK_RETRY_INTERVALS, with up to 10% jitter, or later when the
  receiver says Retry-After), then waits in the failed registry, where an
  operator can requeue it.  A 410 stops deliveries to that URL until the
  delivery worker's next start.
- An answer erased is never sent: the erase deletes its waiting
  answer.stored deliveries, and a delivery sends only a row it holds FOR
  SHARE (db/schema.sql's stored_answer()), so an erase waits for a send in
  progress and a delivery after it finds nothing.
"""

import base64
import hashlib
import hmac
import json
import logging
import random
import time
import uuid
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

from rq import Queue, Retry, get_current_job
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from submission import META_COLUMNS, logref

from . import db, metrics, outbound
from .config import Config

log = logging.getLogger(__name__)

QUEUE = "webhooks"
DELIVER_JOB = "worker.deliveries.deliver"
STORED, ERASED = "answer.stored", "answer.erased"
# URLs that answered 410 Gone, by webhook key: none is sent to again until the delivery worker starts anew.
GONE_KEY = "survey:webhooks:gone"
ROW = "SELECT stored_answer(%s, %s)"
# A delivery waits in the failed registry as long as a failed store does (JOB_FAILURE_TTL's default).
FAILURE_TTL = 30 * 24 * 3600
RESULT_TTL = 3600
RETRY_AFTER_MAX_S = 24 * 3600

_surveys = {}  # table: Survey, of this process (configure)
_root = []  # the table of the survey at / (SURVEY_FILE's)


def configure(surveys):
    """The surveys whose webhooks this process enqueues for and delivers to;
    the first is the one at / (Config.surveys() lists it first)."""
    _surveys.clear()
    _surveys.update({s.table: s for s in surveys})
    _root[:] = [surveys[0].table] if surveys else []


def survey_of(table):
    return _surveys.get(table)


def results_path(survey):
    return "/results" if _root and survey.table == _root[0] else f"/s/{survey.slug}/results"


def retry(intervals=None):
    """RQ's Retry on the webhooks' schedule (WEBHOOK_RETRY_INTERVALS), each wait up to 10% later."""
    intervals = Config.from_env().webhook_retry_intervals if intervals is None else intervals
    return Retry(max=len(intervals), interval=_jittered(intervals)) if intervals else None


def hooks_for(table, event):
    survey = _surveys.get(table)
    return [h for h in survey.webhooks if event in h.events] if survey else []


def delivery_id(hook, event, submission_id):
    """The RQ job id of one delivery: one per webhook, event and submission."""
    return f"webhook-{hook.key}-{event.split('.')[1]}-{submission_id}"


def message_id(event, submission_id):
    """webhook-id: the same on every try of one event, for the receiver to drop repeats."""
    return f"msg_{uuid.UUID(submission_id).hex}_{event.split('.')[1]}"


def _jittered(intervals):
    # Never sooner than the schedule, at most 10% later: many failed deliveries do not retry at one instant.
    return [round(i * random.uniform(1.0, 1.1)) for i in intervals]


def enqueue(connection, table, event, submission_ids, erased_at=None):
    """One delivery job per webhook of `table`'s survey that wants `event`,
    per submission, in one round trip; how many were enqueued."""
    hooks = hooks_for(table, event)
    if not hooks or not submission_ids:
        return 0
    queue = Queue(QUEUE, connection=connection, serializer=JSONSerializer)
    with connection.pipeline() as pipe:
        for sid in submission_ids:
            for hook in hooks:
                job = queue.create_job(
                    DELIVER_JOB, job_id=delivery_id(hook, event, sid),
                    kwargs={"table": table, "hook": hook.key, "event": event, "submission_id": sid,
                            "erased_at": erased_at},
                    retry=retry(),
                    failure_ttl=FAILURE_TTL, result_ttl=RESULT_TTL,
                    description=f"deliver {event} of {logref.ref(sid)} to {hook.url}")
                queue.enqueue_job(job, pipeline=pipe)
        pipe.execute()
    return len(submission_ids) * len(hooks)


def forget_stored(connection, table, submission_id):
    """An erase: delete the answer.stored deliveries of the submission still
    waiting (queued, scheduled for a retry, failed).  One running now holds
    the row FOR SHARE, and the erase waits for it."""
    forgotten = 0
    for hook in hooks_for(table, STORED):
        try:
            job = Job.fetch(delivery_id(hook, STORED, submission_id), connection=connection,
                            serializer=JSONSerializer)
        except NoSuchJobError:
            continue
        if job.get_status() != JobStatus.STARTED:
            job.delete(remove_from_queue=True)
            forgotten += 1
    return forgotten


def clear_gone(connection):
    """At the delivery worker's start: the owner may have fixed the URLs that answered 410."""
    connection.delete(GONE_KEY)


class NotDelivered(Exception):
    """A try that did not get a 2xx; RQ retries it on the schedule."""


def sign(secret, msg_id, timestamp, body):
    """The specification's v1 signature: base64 HMAC-SHA256 of id.timestamp.body."""
    mac = hmac.new(secret, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def _body(event, survey, submission_id, row=None, erased_at=None):
    now = datetime.now(timezone.utc).isoformat()
    data = {"survey": survey.slug, "submission_id": submission_id}
    if row is None:
        data["erased_at"] = erased_at
    else:
        data.update(version=row.get("survey_version"), submitted_at=row.get("submitted_at"),
                    stored_at=row.get("stored_at"),
                    answers={k: v for k, v in row.items() if k not in META_COLUMNS})
    return json.dumps({"type": event, "timestamp": now, "data": data}, separators=(",", ":")).encode()


def deliver(table, hook, event, submission_id, erased_at=None):
    """One try of one delivery (an RQ job on the webhooks queue)."""
    job = get_current_job()
    survey = _surveys.get(table)
    webhook = next((h for h in survey.webhooks if h.key == hook), None) if survey else None
    ref = logref.ref(submission_id)
    if webhook is None:
        log.warning("delivery of %s of %s: its webhook is no longer in the survey file; dropped", event, ref)
        return _outcome(survey, event, "dropped")
    if job.connection.sismember(GONE_KEY, hook):
        return _outcome(survey, event, "gone")
    if event == ERASED:
        return _send(job, survey, webhook, event, submission_id, _body(event, survey, submission_id,
                                                                        erased_at=erased_at))
    conn = db.connection()
    try:
        with conn, conn.cursor() as cur:
            cur.execute(ROW, (table, submission_id))
            row = cur.fetchone()[0]
            if row is None:
                log.info("delivery of %s of %s: no stored answer (erased); not sent", event, ref)
                return _outcome(survey, event, "erased")
            # Sent while the row is held: an erase waits until this try has ended.
            return _send(job, survey, webhook, event, submission_id, _body(event, survey, submission_id, row))
    except db.SERVER_AWAY:
        db.discard()
        raise


def _send(job, survey, webhook, event, submission_id, body):
    config = Config.from_env()
    msg_id = message_id(event, submission_id)
    timestamp = int(time.time())
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
               "webhook-signature": sign(webhook.secret, msg_id, timestamp, body)}
    try:
        answer = outbound.post(webhook.url, body, headers, config.webhook_timeout, config.webhook_allow_private)
    except outbound.Refused as exc:
        log.error("delivery of %s to %s refused: %s", event, webhook.url, exc)
        _count(survey, event, "refused")
        raise NotDelivered(f"refused: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - refused, reset, timed out, TLS, bad HTTP: all a failed try
        _count(survey, event, "retried" if job.retries_left else "failed")
        raise NotDelivered(f"{webhook.url}: {type(exc).__name__}: {exc}") from None
    if 200 <= answer.status < 300:
        latency = _since_stored(body)
        if latency is not None:
            metrics.DELIVERY_LATENCY.observe(latency)
        log.info("delivered %s of %s to %s (%d)", event, logref.ref(submission_id), webhook.url, answer.status)
        return _outcome(survey, event, "delivered", status=answer.status)
    if answer.status == 410:
        job.connection.sadd(GONE_KEY, webhook.key)
        log.error("%s answered 410 Gone: no more deliveries to it until the delivery worker restarts", webhook.url)
        return _outcome(survey, event, "gone", status=410)
    _honour_retry_after(job, answer.headers.get("retry-after"))
    _count(survey, event, "retried" if job.retries_left else "failed")
    raise NotDelivered(f"{webhook.url} answered {answer.status}")


def _honour_retry_after(job, value):
    """A receiver's Retry-After pushes this job's next try later, never sooner (RQ reads the interval after we raise)."""
    if not value or not job.retries_left or not job.retry_intervals:
        return
    try:
        seconds = int(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds()
        except (TypeError, ValueError):
            return
    index = max(len(job.retry_intervals) - job.retries_left, 0)
    job.retry_intervals[index] = int(min(max(job.retry_intervals[index], seconds), RETRY_AFTER_MAX_S))


def _since_stored(body):
    stored_at = json.loads(body)["data"].get("stored_at")
    if not stored_at:
        return None
    return (datetime.now(timezone.utc) - datetime.fromisoformat(stored_at)).total_seconds()


def _count(survey, event, outcome):
    metrics.DELIVERIES.labels(survey=survey.slug if survey else "", event=event, outcome=outcome).inc()


def _outcome(survey, event, outcome, status=None):
    _count(survey, event, outcome)
    return {"outcome": outcome, "status": status}
