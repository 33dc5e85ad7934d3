"""Every setting the web reads from the environment, in one place."""

import ipaddress
import logging
import math
import os
import secrets

from psycopg2.extensions import make_dsn

import survey
from submission import DEFAULT_CSRF_TIME_LIMIT, DEFAULT_JOB_TIMEOUT, secret

log = logging.getLogger(__name__)


def _secret_key(env):
    key = secret(env, "SECRET_KEY")
    if key:
        return key
    # A per-process key still signs CSRF tokens correctly because gunicorn
    # loads the app before forking (preload_app), but tokens die with a restart.
    log.warning("SECRET_KEY is not set; using a random key for this run")
    return secrets.token_hex(32)


# with_password has a twin in worker/config.py.
def _with_password(url, password):
    return make_dsn(url, password=password) if password else url


def _flag(env, name, default):
    value = env.get(name, default).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be 1 or 0, not {value!r}")


# The form's own fields, which the honeypot must not shadow.
FORM_FIELDS = {"name", "coat", "donut", "submission_id", "csrf_token", "form_started"}


def _honeypot_field(name):
    if not name.isidentifier() or name in FORM_FIELDS:
        raise ValueError(f"HONEYPOT_FIELD must be a field name other than the form's own, not {name!r}")
    return name


def available_cores(cgroup_cpu_max="/sys/fs/cgroup/cpu.max"):
    """The cores this process may use: the CPUs it may run on, capped by a
    container's CPU limit (cgroup v2 quota / period), which os.cpu_count()
    ignores, so a 1-CPU container on a 32-core host is not given 65 workers."""
    cores = len(os.sched_getaffinity(0))
    try:
        quota, period = open(cgroup_cpu_max).read().split()
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass  # no cgroup v2 limit to read: the affinity stands
    return cores


def forwarded_allow_ips(value):
    """FORWARDED_ALLOW_IPS as networks, or True for "*" (every address)."""
    items = [item.strip() for item in value.split(",") if item.strip()]
    if "*" in items:
        return True
    return [ipaddress.ip_network(item) for item in items]


def server(env=os.environ):
    """What gunicorn (web/gunicorn.conf.py) and web/healthcheck.py read: the
    listeners, the number of processes and the log format."""
    # gunicorn's rule of thumb for sync workers, on the cores we may use.
    workers = int(env.get("WEB_CONCURRENCY") or 2 * available_cores() + 1)
    return {
        "HOST": env.get("HOST", "127.0.0.1"),
        # The listener the reverse proxy forwards visitors to.
        "APP_PORT": int(env.get("APP_PORT", "2156")),
        # The operator's listener: it answers /metrics and nothing else.
        "WEB_METRICS_PORT": int(env.get("WEB_METRICS_PORT", "2157")),
        # A unix socket for the proxy alone (make run, compose): connections
        # on it are the proxy's, so its forwarded headers are believed there.
        "APP_SOCKET": env.get("APP_SOCKET") or None,
        # A second one for the form alone (GET /), which the workers take
        # first (web/workers.py): at overload the form waits behind about
        # one request per worker, not behind the accept queue of posts and
        # receipt polls (docs/reliability.md, "Overload").
        "APP_FORM_SOCKET": env.get("APP_FORM_SOCKET") or None,
        # Addresses whose TCP connections may also say who the client is
        # (X-Forwarded-*): none by default, "*" where only the proxy can
        # reach APP_PORT (Kubernetes, behind a NetworkPolicy).  gunicorn
        # reads the same list for the scheme.
        "FORWARDED_ALLOW_IPS": env.get("FORWARDED_ALLOW_IPS", ""),
        "WEB_CONCURRENCY": workers,
        # Connections waiting for a free worker, per listener; past it the
        # kernel refuses new ones at once and the proxy answers 503 (its
        # busy page).  A sync worker serves some 100-700 requests a second
        # (the latter alone on two cores), so 16 each is a wait of a few
        # tenths of a second, where gunicorn's 2048 was many seconds; 32
        # each, behind the form served first, let the posts' p99 reach 1 s
        # at twice the capacity (docs/capacity.md).
        "WEB_BACKLOG": int(env.get("WEB_BACKLOG") or 16 * workers),
        "LOG_LEVEL": env.get("LOG_LEVEL", "info").lower(),
        "LOG_FORMAT": env.get("LOG_FORMAT", "text"),
        # Keys the references that stand for submission ids in the logs
        # (submission/logref.py); the worker's must be the same.
        "LOG_KEY": secret(env, "LOG_KEY"),
        "PROMETHEUS_MULTIPROC_DIR": env.get("PROMETHEUS_MULTIPROC_DIR") or None,
    }


def from_env(env=os.environ):
    # A broken file raises survey.SurveyFileError before anything serves.
    root, folder = survey.all_from_env(env)
    return {
        "SECRET_KEY": _secret_key(env),
        # The web only reads: where roles are set up (db/roles.sql) it connects as survey_web.
        "DATABASE_URL": (
            _with_password(env["WEB_DATABASE_URL"], secret(env, "WEB_DATABASE_PASSWORD")) if env.get("WEB_DATABASE_URL")
            else _with_password(env.get("DATABASE_URL", "postgresql://survey@127.0.0.1:15432/survey"),
                                secret(env, "DATABASE_PASSWORD"))),
        # PostgreSQL connections each gunicorn process keeps open for receipts,
        # /readyz and /results; a sync worker serves one request at a time, so
        # one is enough.  WEB_CONCURRENCY x this, plus the worker's, must
        # stay well below the server's max_connections (100 by default).
        "WEB_DB_POOL_SIZE": int(env.get("WEB_DB_POOL_SIZE", "1")),
        # Seconds one read of PostgreSQL (connect, query) may take before the
        # page answers without it: a hung server must not hold a visitor.
        "WEB_DB_TIMEOUT": float(env.get("WEB_DB_TIMEOUT", "1")),
        # How many of the web's processes may be reading PostgreSQL at once;
        # the rest keep serving the form and the posts, which need only Redis.
        "WEB_DB_READERS": int(env.get("WEB_DB_READERS") or max(1, server(env)["WEB_CONCURRENCY"] // 2)),
        "REDIS_URL": env.get("REDIS_URL", "redis://127.0.0.1:16379/0"),
        "QUEUE_NAME": env.get("QUEUE_NAME", "submissions"),
        # A job retries a database outage for about 30 minutes before it is
        # parked in RQ's failed registry, where it stays for 30 days.
        "JOB_RETRY_INTERVALS": [int(s) for s in env.get("JOB_RETRY_INTERVALS", "1,2,5,10,30,60,120,300,600,600").split(",")],
        "JOB_TIMEOUT": int(env.get("JOB_TIMEOUT", DEFAULT_JOB_TIMEOUT)),
        "JOB_FAILURE_TTL": int(env.get("JOB_FAILURE_TTL", str(30 * 24 * 3600))),
        "JOB_RESULT_TTL": int(env.get("JOB_RESULT_TTL", "60")),
        # Far above any valid form, far below anything that costs us memory.
        "MAX_CONTENT_LENGTH": int(env.get("MAX_CONTENT_LENGTH", "16384")),
        "WTF_CSRF_TIME_LIMIT": int(env.get("CSRF_TIME_LIMIT", DEFAULT_CSRF_TIME_LIMIT)),
        # The session cookie carries the CSRF secret: not for scripts, not for other sites' posts.
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        # HTTPS=1 where a TLS terminator stands in front: every session
        # cookie is Secure and every response carries HSTS.  A request that
        # the trusted proxy marks https gets both anyway (web/security.py).
        "HTTPS": _flag(env, "HTTPS", "0"),
        "WEB_METRICS_PORT": server(env)["WEB_METRICS_PORT"],
        "LOG_KEY": server(env)["LOG_KEY"],
        "FORWARDED_ALLOW_IPS": forwarded_allow_ips(server(env)["FORWARDED_ALLOW_IPS"]),
        # Above this many waiting jobs a post gets 503: Redis holds about
        # 800 bytes per queued submission, so 100000 is ~80 MB of a 256 MB maxmemory.
        "QUEUE_MAX_DEPTH": int(env.get("QUEUE_MAX_DEPTH", "100000")),
        # 0 puts the /results tallies behind the auditor's login, as /results.csv always is.
        "RESULTS_PUBLIC": _flag(env, "RESULTS_PUBLIC", "1"),
        # Failed auditor logins one client address may make in AUTH_FAILURE_WINDOW
        # seconds before it gets 429 without PostgreSQL being asked.
        "AUTH_MAX_FAILURES": int(env.get("AUTH_MAX_FAILURES", "5")),
        "AUTH_FAILURE_WINDOW": int(env.get("AUTH_FAILURE_WINDOW", "600")),
        # How often each process asks PostgreSQL again whether it checks the
        # auditor's password at all (web/auditor.py): one connection per
        # process per interval, and only when someone signs in.
        "AUDITOR_TRUST_CHECK_INTERVAL": int(env.get("AUDITOR_TRUST_CHECK_INTERVAL", "60")),
        # The survey at / (SURVEY_FILE, with OPENS_AT, CLOSES_AT and MAX_RESPONSES
        # applied), and SURVEYS_DIR's surveys by slug, each at /s/SLUG.
        "SURVEY": root, "SURVEYS": folder,
        # Every survey by its table: a receipt names the survey that stored it.
        "SURVEY_TABLES": {s.table: s for s in [*folder.values(), root]},
        # A field people never see (web/bots.py): a post that fills it is a bot's.
        "HONEYPOT_FIELD": _honeypot_field(env.get("HONEYPOT_FIELD", "website")),
        # No person reads three questions and answers them faster; 0: no check.
        "MIN_FILL_SECONDS": float(env.get("MIN_FILL_SECONDS", "2")),
    }
