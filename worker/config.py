"""Every setting the worker reads from the environment, in one place."""

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_SCHEMA = Path(__file__).resolve().parent.parent / "db" / "schema.sql"


@dataclass(frozen=True)
class Config:
    database_url: str
    redis_url: str
    queue_name: str
    schema_path: Path
    # How often a worker looks for jobs abandoned by a crashed worker
    # (RQ's default of 10 minutes is too slow for a form's visitor).
    maintenance_interval: int
    # An idle worker blocks on the queue for worker_ttl - 15 seconds and only
    # runs its maintenance between two waits, so this also bounds how long an
    # abandoned job can go unnoticed (RQ's default of 420 makes that 7 minutes).
    worker_ttl: int
    log_level: str

    @classmethod
    def from_env(cls, env=os.environ):
        return cls(
            database_url=env.get("DATABASE_URL", "postgresql://survey@127.0.0.1:15432/survey"),
            redis_url=env.get("REDIS_URL", "redis://127.0.0.1:16379/0"),
            queue_name=env.get("QUEUE_NAME", "submissions"),
            schema_path=Path(env.get("SCHEMA_PATH", DEFAULT_SCHEMA)),
            maintenance_interval=int(env.get("WORKER_MAINTENANCE_INTERVAL", "30")),
            worker_ttl=int(env.get("WORKER_TTL", "45")),
            log_level=env.get("LOG_LEVEL", "INFO"),
        )
