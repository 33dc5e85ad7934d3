"""With PostgreSQL unreachable the job fails (so RQ retries it with back-off),
but only after a pause, so that a worker does not spin through the queue
burning the CPU the web needs (worker/db.py)."""

import psycopg2
import pytest

from tests.servers import free_port
from worker import db, jobs


def test_job_pauses_then_fails_while_the_database_is_unreachable(env, monkeypatch):
    pauses = []
    monkeypatch.setattr(db.time, "sleep", pauses.append)
    db.configure(f"postgresql://survey@127.0.0.1:{free_port()}/survey")  # nothing listens there
    submission = {"id": "5be20dca-6271-4de7-b466-00e30442722b", "name": "Pika", "coat": "tortie",
                  "donut": "strawberry", "submitted_at": "2026-01-01T00:00:00+00:00"}
    with pytest.raises(psycopg2.OperationalError):
        jobs.store_submission(submission)
    assert pauses == [db.PAUSE_WHEN_DATABASE_DOWN_S]
    assert db._conn is None

    # Back to a reachable database: the next attempt stores the row.
    db.configure(env["DATABASE_URL"])
    assert jobs.store_submission(submission) == {"inserted": True}
