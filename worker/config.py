"""Every setting the worker reads from the environment, in one place."""

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from psycopg2.extensions import make_dsn

import survey
from submission import DEFAULT_CSRF_TIME_LIMIT, DEFAULT_JOB_TIMEOUT, secret

DB_DIR = Path(__file__).resolve().parent.parent / "db"
DEFAULT_SCHEMA = DB_DIR / "schema.sql"
DEFAULT_ROLES = DB_DIR / "roles.sql"
DEFAULT_DATABASE_URL = "postgresql://survey@127.0.0.1:15432/survey"
# Below JOB_TIMEOUT (30 s), with room for pgbounds' margin and the pause after a failure.
DEFAULT_DB_TIMEOUT = 10.0

# After the first try, as the Standard Webhooks specification retries: 5 s,
# 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h and 24 h (about 3 days in all).
WEBHOOK_SCHEDULE = "5,300,1800,7200,18000,36000,50400,72000,86400"

# The database roles of db/roles.sql, and the variables holding their passwords.
ROLE_PASSWORDS = {
    "survey_worker": "WORKER_DATABASE_PASSWORD",
    "survey_web": "WEB_DATABASE_PASSWORD",
    "auditor": "AUDITOR_DATABASE_PASSWORD",
}


# with_password has a twin in web/config.py.
def with_password(url, password):
    # make_dsn merges it into the connection string, so it never sits in a URL in a config file.
    return make_dsn(url, password=password) if password else url


def _positive(env, name):
    """A whole number above 0, or None when unset: a typo must not erase everything."""
    if not env.get(name):
        return None
    value = int(env[name])
    if value < 1:
        raise ValueError(f"{name} must be a whole number of at least 1, not {env[name]!r}")
    return value


@dataclass(frozen=True)
class Config:
    # The worker's own connection for storing submissions (role survey_worker
    # where roles are set up), and the owner's for applying db/*.sql.
    database_url: str = field(repr=False)
    migrate_url: str = field(repr=False)
    migrate_on_start: bool
    redis_url: str
    queue_name: str
    schema_path: Path
    roles_path: Path
    role_passwords: dict = field(repr=False)
    # How often a worker looks for jobs abandoned by a crashed worker
    # (RQ's default of 10 minutes is too slow for a form's visitor).
    maintenance_interval: int
    # An idle worker blocks on the queue for worker_ttl - 15 seconds and only
    # runs its maintenance between two waits, so this also bounds how long an
    # abandoned job can go unnoticed (RQ's default of 420 makes that 7 minutes).
    worker_ttl: int
    # How many waiting submissions a worker stores with one INSERT, at most
    # (worker/batch_worker.py); 1 stores each job alone, as RQ does.
    batch_size: int
    # Seconds the server may spend on one statement, or waiting for a lock,
    # before it ends it; keep it (+ pgbounds' margin and the pause after a failure) below JOB_TIMEOUT.
    db_timeout: float
    # The web's job timeout and form token lifetime (submission/): how long the
    # erasure waits for its second pass, and keeps an erased id's mark.
    job_timeout: int
    form_token_ttl: int
    # Where the worker writes its RQ name, for the container healthcheck to find.
    name_file: Path
    # The same, of the delivery worker (python -m worker.deliver).
    deliver_name_file: Path
    log_level: str
    log_format: str
    # Keys the references that stand for submission ids in the logs (submission/logref.py).
    log_key: str = field(repr=False)
    # Where the worker serves /metrics; no port, no endpoint.
    metrics_host: str
    metrics_port: int | None
    # The delivery worker's /metrics (python -m worker.deliver); no port, no endpoint.
    deliver_metrics_port: int | None
    # The survey file, checked at start: the worker stores whatever the web
    # accepted, but a broken file must stop it too.
    survey_file: Path
    # SURVEYS_DIR's surveys, each of which has its table too; None: only SURVEY_FILE's.
    surveys_dir: Path | None
    # Answers stored more than this many days ago are erased (with
    # tombstones) by worker/retention.py; None keeps them forever.
    retention_days: int | None
    # Seconds between two retention runs.
    retention_interval: int
    # Webhook deliveries (worker/deliveries.py): seconds for the whole of one
    # try, the waits between tries (the Standard Webhooks schedule), and
    # whether loopback and private addresses may receive (the tests' receivers).
    webhook_timeout: float = 5.0
    webhook_retry_intervals: tuple = ()
    webhook_allow_private: bool = False
    # The owner's emails (worker/notify.py): the SMTP server
    # (smtp://, smtp+starttls://, smtps://[user@]host:port), its password,
    # the sender, one email per answer or a digest every this many minutes,
    # and the address the results are linked at.
    smtp_url: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_from: str = "survey@localhost"
    notify_digest_minutes: float | None = None
    public_url: str = ""

    @classmethod
    def from_env(cls, env=os.environ):
        owner_url = with_password(env.get("DATABASE_URL") or env.get("WORKER_DATABASE_URL") or DEFAULT_DATABASE_URL,
                                  secret(env, "DATABASE_PASSWORD"))
        # Without a role of its own the worker connects as the owner, with the owner's password.
        worker_url = (with_password(env["WORKER_DATABASE_URL"], secret(env, "WORKER_DATABASE_PASSWORD"))
                      if env.get("WORKER_DATABASE_URL") else owner_url)
        return cls(
            database_url=worker_url,
            migrate_url=owner_url,
            migrate_on_start=env.get("MIGRATE_ON_START", "1") != "0",
            redis_url=env.get("REDIS_URL", "redis://127.0.0.1:16379/0"),
            queue_name=env.get("QUEUE_NAME", "submissions"),
            schema_path=Path(env.get("SCHEMA_PATH", DEFAULT_SCHEMA)),
            roles_path=Path(env.get("ROLES_PATH", DEFAULT_ROLES)),
            role_passwords={role: password for role, var in ROLE_PASSWORDS.items() if (password := secret(env, var))},
            maintenance_interval=int(env.get("WORKER_MAINTENANCE_INTERVAL", "30")),
            worker_ttl=int(env.get("WORKER_TTL", "45")),
            batch_size=max(1, int(env.get("WORKER_BATCH_SIZE", "200"))),
            db_timeout=float(env.get("WORKER_DB_TIMEOUT", str(DEFAULT_DB_TIMEOUT))),
            job_timeout=int(env.get("JOB_TIMEOUT", DEFAULT_JOB_TIMEOUT)),
            form_token_ttl=int(env.get("CSRF_TIME_LIMIT", DEFAULT_CSRF_TIME_LIMIT)),
            name_file=Path(env.get("WORKER_NAME_FILE", Path(tempfile.gettempdir()) / "survey-worker.name")),
            deliver_name_file=Path(env.get("DELIVER_NAME_FILE", Path(tempfile.gettempdir()) / "survey-deliver.name")),
            log_level=env.get("LOG_LEVEL", "INFO"),
            log_format=env.get("LOG_FORMAT", "text"),
            log_key=secret(env, "LOG_KEY"),
            metrics_host=env.get("WORKER_METRICS_HOST", "127.0.0.1"),
            metrics_port=int(env["WORKER_METRICS_PORT"]) if env.get("WORKER_METRICS_PORT") else None,
            deliver_metrics_port=int(env["DELIVER_METRICS_PORT"]) if env.get("DELIVER_METRICS_PORT") else None,
            survey_file=Path(env.get("SURVEY_FILE") or survey.DEFAULT_FILE),
            surveys_dir=Path(env["SURVEYS_DIR"]) if env.get("SURVEYS_DIR") else None,
            retention_days=_positive(env, "RETENTION_DAYS"),
            retention_interval=_positive(env, "RETENTION_INTERVAL") or 3600,
            webhook_timeout=float(env.get("WEBHOOK_TIMEOUT") or 5),
            webhook_retry_intervals=tuple(int(s) for s in (env.get("WEBHOOK_RETRY_INTERVALS") or
                                                            WEBHOOK_SCHEDULE).split(",") if s.strip()),
            webhook_allow_private=env.get("WEBHOOK_ALLOW_PRIVATE", "") == "1",
            smtp_url=env.get("SMTP_URL") or None,
            smtp_password=secret(env, "SMTP_PASSWORD"),
            smtp_from=env.get("SMTP_FROM") or "survey@localhost",
            notify_digest_minutes=float(env["NOTIFY_DIGEST_MINUTES"]) if env.get("NOTIFY_DIGEST_MINUTES") else None,
            public_url=(env.get("PUBLIC_URL") or "").rstrip("/"),
        )

    def surveys(self):
        """Every survey the web serves (SURVEY_FILE's and SURVEYS_DIR's), for
        their tables; SurveyFileError if a file is broken."""
        # The process's environment holds the webhooks' secret_env; not the overrides, which are the web's.
        env = {k: v for k, v in os.environ.items() if k not in survey.OVERRIDES}
        env.pop("SURVEYS_DIR", None)
        env["SURVEY_FILE"] = str(self.survey_file)
        if self.surveys_dir:
            env["SURVEYS_DIR"] = str(self.surveys_dir)
        root, folder = survey.all_from_env(env)
        return [root] + [s for s in folder.values() if s is not root]
