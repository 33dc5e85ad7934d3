"""/healthz and /readyz against real servers, including while one is down."""

def test_healthz_and_readyz_when_all_is_up(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json() == {"status": "ok", "redis": "ok", "postgres": "ok"}


def test_not_ready_while_redis_is_down(client, redis_server):
    redis_server.stop()
    try:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        # Ready or not, per check; the reason is for the log, not an anonymous client.
        assert ready.get_json() == {"status": "unavailable", "redis": "unavailable", "postgres": "ok"}
        # Alive all the same: a restart would not help.
        assert client.get("/healthz").status_code == 200
    finally:
        redis_server.start()
    assert client.get("/readyz").status_code == 200


def test_still_ready_while_postgres_is_down(client, pg_server, caplog):
    pg_server.stop()
    try:
        ready = client.get("/readyz")
        # Ready means a submission can be accepted: it queues in Redis, and
        # the worker stores it once PostgreSQL is back.
        assert ready.status_code == 200
        assert ready.get_json() == {"status": "ok", "redis": "ok", "postgres": "unavailable"}
        assert "127.0.0.1" not in ready.get_data(as_text=True)
        assert any("postgres unavailable" in r.getMessage() for r in caplog.records)
        # The pages that read the database say so, rather than fail.
        assert client.get("/results").status_code == 503
        assert client.get("/results.json").status_code == 503
        # (The auditor's sign-in meanwhile: tests/test_auditor.py.)
    finally:
        pg_server.start()
    assert client.get("/readyz").status_code == 200
