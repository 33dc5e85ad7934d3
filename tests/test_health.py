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
        body = ready.get_json()
        assert body["status"] == "unavailable"
        assert body["redis"] != "ok" and body["postgres"] == "ok"
        # Alive all the same: a restart would not help.
        assert client.get("/healthz").status_code == 200
    finally:
        redis_server.start()
    assert client.get("/readyz").status_code == 200


def test_not_ready_while_postgres_is_down(client, pg_server):
    pg_server.stop()
    try:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        body = ready.get_json()
        assert body["status"] == "unavailable"
        assert body["postgres"] != "ok" and body["redis"] == "ok"
        # The pages that read the database say so, rather than fail.
        assert client.get("/results").status_code == 503
        assert client.get("/results.csv").status_code == 503
    finally:
        pg_server.start()
    assert client.get("/readyz").status_code == 200
