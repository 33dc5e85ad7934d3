"""Every setting the worker reads from the environment, in one place."""

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

DEFAULT_SCHEMA = Path(__file__).resolve().parent.parent / "db" / "schema.sql"


def _database_url(env):
    """DATABASE_URL, with the password from DATABASE_PASSWORD_FILE when one is
    given, so a secret file never has to be pasted into an environment variable."""
    url = env.get("DATABASE_URL", "postgresql://survey@127.0.0.1:15432/survey")
    if not env.get("DATABASE_PASSWORD_FILE"):
        return url
    with open(env["DATABASE_PASSWORD_FILE"]) as fh:
        password = quote(fh.read().strip(), safe="")
    parts = urlsplit(url)
    user, _, host = parts.netloc.rpartition("@")
    user = user.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))


@dataclass(frozen=True)
class Config:
    database_url: str
    redis_url: str
    queue_name: str
    schema_path: Path
    # How often a worker looks for jobs abandoned by a crashed worker
    # (RQ's default of 10 minutes is too slow for a form's visitor).
    maintenance_interval: int
    # How long a silent worker stays registered; it heartbeats well within it.
    worker_ttl: int
    # Where the worker writes its RQ name, for the container healthcheck to find.
    name_file: Path
    log_level: str
    log_format: str
    # Where the worker serves /metrics; no port, no endpoint.
    metrics_host: str
    metrics_port: int | None

    @classmethod
    def from_env(cls, env=os.environ):
        return cls(
            database_url=_database_url(env),
            redis_url=env.get("REDIS_URL", "redis://127.0.0.1:16379/0"),
            queue_name=env.get("QUEUE_NAME", "submissions"),
            schema_path=Path(env.get("SCHEMA_PATH", DEFAULT_SCHEMA)),
            maintenance_interval=int(env.get("WORKER_MAINTENANCE_INTERVAL", "30")),
            worker_ttl=int(env.get("WORKER_TTL", "60")),
            name_file=Path(env.get("WORKER_NAME_FILE", Path(tempfile.gettempdir()) / "survey-worker.name")),
            log_level=env.get("LOG_LEVEL", "INFO"),
            log_format=env.get("LOG_FORMAT", "text"),
            metrics_host=env.get("WORKER_METRICS_HOST", "127.0.0.1"),
            metrics_port=int(env["WORKER_METRICS_PORT"]) if env.get("WORKER_METRICS_PORT") else None,
        )
