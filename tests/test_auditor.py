"""/results.csv is the auditor's: HTTP Basic, checked by PostgreSQL itself
on a cluster that wants passwords (as make run's and compose's do), and
failed tries from one address end in 429 without PostgreSQL being asked."""

import base64
import concurrent.futures
import csv
import http.client
import io
import logging
import threading
import uuid

import psycopg2
import pytest

from tests.conftest import AUDITOR_PASSWORD, auditor_database
from tests.gunicorn import Gunicorn
from tests.servers import wait_until
from web import create_app

@pytest.fixture(scope="module")
def password_db(password_pg):
    url = auditor_database(password_pg, "auditor_tests")
    conn = psycopg2.connect(url)
    with conn, conn.cursor() as cur:
        cur.execute("INSERT INTO cats (submission_id, name, coat, donut, submitted_at) "
                    "SELECT gen_random_uuid(), 'Cat ' || i, 'grey', 'maple', now() FROM generate_series(1, 3000) i")
    conn.close()
    return url


def make_client(env, password_db, **config):
    return create_app({"TESTING": True, "DATABASE_URL": password_db, **config}).test_client()


@pytest.fixture
def client(env, password_db):
    return make_client(env, password_db)


def failed_logins_in_server_log(server):
    return (server.tmp / "log").read_text().count('password authentication failed for user "auditor"')


def assert_sign_in_page(response):
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith('Basic realm="Cat survey auditor"')
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert "Sign in to see the answers" in html and "curl -u auditor" in html
    assert "submission_id" not in html and "Cat 1" not in html


def test_anonymous_csv_is_401_and_logged(client, caplog):
    caplog.set_level(logging.INFO, logger="web.auditor")
    response = client.get("/results.csv", environ_base={"REMOTE_ADDR": "203.0.113.7"})
    assert_sign_in_page(response)
    assert any("203.0.113.7" in r.getMessage() for r in caplog.records)


def test_wrong_password_or_user_is_401(client, password_pg, caplog):
    before = failed_logins_in_server_log(password_pg)
    assert_sign_in_page(client.get("/results.csv", auth=("auditor", "wrong"), environ_base={"REMOTE_ADDR": "203.0.113.8"}))
    # PostgreSQL itself turned the password away.
    assert failed_logins_in_server_log(password_pg) == before + 1
    assert any("failed" in r.getMessage() and "203.0.113.8" in r.getMessage() for r in caplog.records)
    # Another role's name is no way in, whatever its password; nor is an empty password.
    assert_sign_in_page(client.get("/results.csv", auth=("survey", password_pg.password)))
    assert_sign_in_page(client.get("/results.csv", auth=("auditor", "")))


def test_the_auditor_gets_the_csv_on_the_auditors_connection(client, password_db):
    response = client.get("/results.csv", auth=("auditor", AUDITOR_PASSWORD), buffered=False)
    assert response.status_code == 200
    chunks = iter(response.response)
    first = next(chunks)
    # The export runs as the auditor: the open cursor's session belongs to that role.
    conn = psycopg2.connect(password_db)
    with conn.cursor() as cur:
        cur.execute("SELECT usename FROM pg_stat_activity WHERE application_name = 'survey-web-auditor'")
        assert cur.fetchall() == [("auditor",)]
    conn.close()
    table = list(csv.reader(io.StringIO((first + b"".join(chunks)).decode(), newline="")))
    response.close()
    assert table[0][:2] == ["submission_id", "name"]
    assert len(table) == 1 + 3000
    assert {row[1] for row in table[1:]} == {f"Cat {i}" for i in range(1, 3001)}


def test_repeated_failures_from_one_address_get_429_without_asking_postgres(client, password_pg):
    attacker = {"REMOTE_ADDR": "198.51.100.9"}
    for i in range(5):
        assert client.get("/results.csv", auth=("auditor", f"guess {i}"), environ_base=attacker).status_code == 401
    before = failed_logins_in_server_log(password_pg)
    locked = client.get("/results.csv", auth=("auditor", "guess 6"), environ_base=attacker)
    assert locked.status_code == 429
    assert 0 < int(locked.headers["Retry-After"]) <= 600
    assert "Too many failed sign-ins" in locked.get_data(as_text=True)
    # Even the right password waits: the address is locked, not the guess.
    assert client.get("/results.csv", auth=("auditor", AUDITOR_PASSWORD), environ_base=attacker).status_code == 429
    assert failed_logins_in_server_log(password_pg) == before
    # Other addresses are not locked out.
    other = client.get("/results.csv", auth=("auditor", AUDITOR_PASSWORD), environ_base={"REMOTE_ADDR": "198.51.100.10"})
    assert other.status_code == 200


def test_a_successful_sign_in_clears_the_count(client):
    me = {"REMOTE_ADDR": "198.51.100.20"}
    for _ in range(4):
        assert client.get("/results.csv", auth=("auditor", "typo"), environ_base=me).status_code == 401
    assert client.get("/results.csv", auth=("auditor", AUDITOR_PASSWORD), environ_base=me).status_code == 200
    for _ in range(4):
        assert client.get("/results.csv", auth=("auditor", "typo"), environ_base=me).status_code == 401
    assert client.get("/results.csv", auth=("auditor", AUDITOR_PASSWORD), environ_base=me).status_code == 200


def test_tallies_are_public_by_default_with_a_link_to_the_sign_in(client):
    page = client.get("/results")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'data-total="3000"' in html
    assert 'href="/results.csv"' in html and "auditor sign-in" in html
    assert client.get("/results.json").get_json()["total"] == 3000


def test_private_results_need_the_auditor(env, password_db):
    client = make_client(env, password_db, RESULTS_PUBLIC=False)
    for path in ("/results", "/results.json"):
        assert_sign_in_page(client.get(path))
        assert_sign_in_page(client.get(path, auth=("auditor", "wrong")))
    assert 'data-total="3000"' in client.get("/results", auth=("auditor", AUDITOR_PASSWORD)).get_data(as_text=True)
    assert client.get("/results.json", auth=("auditor", AUDITOR_PASSWORD)).get_json()["total"] == 3000


def test_a_receipt_needs_its_id_and_no_public_page_lists_ids(client, password_db):
    # The CSV is the one list of submission ids; a receipt needs its id.
    conn = psycopg2.connect(password_db)
    with conn.cursor() as cur:
        cur.execute("SELECT submission_id::text, name FROM cats ORDER BY name LIMIT 1")
        sid, name = cur.fetchone()
        cur.execute("SELECT submission_id::text FROM cats")
        ids = {row[0] for row in cur.fetchall()}
    conn.close()
    receipt = client.get(f"/submissions/{sid}")
    assert receipt.status_code == 200 and name in receipt.get_data(as_text=True)
    assert client.get(f"/submissions/{uuid.uuid4()}").status_code == 404
    public = "".join(client.get(path).get_data(as_text=True) for path in ("/results", "/results.json", "/results.csv"))
    assert not any(i in public for i in ids)


# Every Authorization header that is not the auditor's right password.
FUZZ = [
    "",
    "Basic",
    "Basic ",
    "Basic !!!not base64!!!",
    "Basic " + base64.b64encode(b"auditor").decode(),  # no colon
    "Basic " + base64.b64encode(b"auditor:pass\x00word").decode(),
    "Basic " + base64.b64encode(b"auditor:\x00").decode(),
    "Basic " + base64.b64encode(b"auditor:" + b"x" * 10240).decode(),
    "Basic " + base64.b64encode(b"auditor:\xff\xfe\xfd").decode(),  # not UTF-8
    "Basic " + base64.b64encode(b"\xffauditor:x").decode(),
    "Basic " + base64.b64encode(b":").decode(),
    "Basic " + base64.b64encode("auditor:mot de passe é".encode("latin-1")).decode(),
    "Bearer some-token",
    "Digest username=\"auditor\"",
    "x" * 10240,
]


def test_any_bad_authorization_header_is_a_counted_401(env, password_db, redis):
    client = make_client(env, password_db, AUTH_MAX_FAILURES=len(FUZZ))
    attacker = {"REMOTE_ADDR": "198.51.100.30"}
    for n, header in enumerate(FUZZ, 1):
        response = client.get("/results.csv", headers={"Authorization": header}, environ_base=attacker)
        assert response.status_code == 401, header[:40]
        assert int(redis.get("survey:auth-failures:198.51.100.30")) == n, header[:40]
    # and the next, whatever it is, waits
    assert client.get("/results.csv", auth=("auditor", AUDITOR_PASSWORD), environ_base=attacker).status_code == 429


def test_a_server_that_trusts_the_web_switches_the_sign_in_off(env, caplog):
    # The session's cluster trusts every loopback connection, as the official image does.
    caplog.set_level(logging.INFO, logger="web.auditor")
    client = create_app({"TESTING": True}).test_client()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("pg_hba.conf" in m and "'host survey auditor 127.0.0.1'" in m for m in errors), errors
    for auth in (None, ("auditor", "any password"), ("auditor", ""), ("survey", "x")):
        response = client.get("/results.csv", auth=auth)
        assert response.status_code == 503, auth
        html = response.get_data(as_text=True)
        assert "Sign-in switched off" in html and "pg_hba.conf" in html
        assert "submission_id" not in html


def test_the_check_is_repeated_but_not_on_every_request(env, password_db, password_pg):
    client = make_client(env, password_db, AUDITOR_TRUST_CHECK_INTERVAL=2)
    before = failed_logins_in_server_log(password_pg)
    for _ in range(10):
        assert client.get("/results.json", auth=("auditor", AUDITOR_PASSWORD)).status_code == 200
        assert client.get("/results.csv", auth=("auditor", AUDITOR_PASSWORD)).status_code == 200
    # The random password's tries fail in the server's log: none for these 20 sign-ins.
    assert failed_logins_in_server_log(password_pg) == before
    # The server starts trusting the web: within the interval the sign-in is off.
    hba = password_pg.datadir / "pg_hba.conf"
    original = hba.read_text()
    hba.write_text("host all auditor 127.0.0.1/32 trust\n" + original)
    password_pg._pg_ctl("reload")
    try:
        wait_until(lambda: client.get("/results.csv", auth=("auditor", "a guess")).status_code == 503, 10,
                   "the web to notice the trusting server")
    finally:
        hba.write_text(original)
        password_pg._pg_ctl("reload")


def test_the_auditor_is_told_unavailable_while_postgres_is_down(client, password_pg):
    password_pg.stop()
    try:
        # Unavailable, not a wrong password: and not counted against the address.
        for _ in range(8):
            response = client.get("/results.csv", auth=("auditor", AUDITOR_PASSWORD))
            assert response.status_code == 503
            assert "Sign-in unavailable" in response.get_data(as_text=True)
    finally:
        password_pg.start()
    assert client.get("/results.csv", auth=("auditor", AUDITOR_PASSWORD)).status_code == 200


@pytest.fixture
def live(env, password_db, tmp_path):
    """The real gunicorn, several processes, on the cluster that asks passwords.
    Every process may read PostgreSQL at once (WEB_DB_READERS), so that a
    guess is never turned away for want of a reader slot (503, its try
    handed back): what is counted here is the lockout alone."""
    server = Gunicorn({**env, "DATABASE_URL": password_db, "WEB_DB_READERS": "8"}, tmp_path, tmp_path / "metrics",
                      workers=8)
    yield server
    server.stop()


def basic(password):
    return {"Authorization": "Basic " + base64.b64encode(f"auditor:{password}".encode()).decode()}


def test_concurrent_guesses_get_no_more_tries_than_the_limit(live, password_pg):
    def burst(source):
        """30 wrong guesses from one address, sent at once to 8 processes."""
        start = threading.Barrier(30)

        def guess(i):
            conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=30, source_address=(source, 0))
            conn.connect()
            start.wait()
            conn.request("GET", "/results.csv", headers=basic(f"guess {i}"))
            status = conn.getresponse().status
            conn.close()
            return status

        with concurrent.futures.ThreadPoolExecutor(30) as pool:
            return sorted(pool.map(guess, range(30)))

    for source in ("127.0.0.41", "127.0.0.42", "127.0.0.43"):
        before = failed_logins_in_server_log(password_pg)
        assert burst(source) == [401] * 5 + [429] * 25, source
        # PostgreSQL itself was asked five times, no more.
        assert failed_logins_in_server_log(password_pg) - before == 5


def test_bad_authorization_headers_at_gunicorn_are_never_a_500(live, redis):
    statuses = []
    for header in FUZZ:
        conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=30)
        conn.request("GET", "/results.csv", headers={"Authorization": header})
        statuses.append(conn.getresponse().status)
        conn.close()
    # 431 (Request Header Fields Too Large): gunicorn's own answer to a 10 KB
    # header (limit_request_field_size), before the app; nginx says 400.
    assert set(statuses) <= {400, 401, 429, 431}, statuses
    assert statuses.count(401) == 5 and 431 in statuses
    assert "Traceback" not in live.log_path.read_text()


def test_a_give_back_after_the_window_expired_leaves_no_counter_without_expiry(env, redis):
    """The database went away while a sign-in was checked, and the window
    ran out meanwhile: the try is given back to a counter that is gone."""
    from web import auditor
    app = create_app({"TESTING": True, "AUTH_FAILURE_WINDOW": 60})
    key = auditor.FAILURES_KEY.format("198.51.100.8")
    with app.test_request_context():
        assert auditor._count_try(key)[0] == 1
        redis.delete(key)  # the window expired between the count and its give-back
        auditor._give_back(key)
        assert redis.get(key) is None
        # A counter that somehow lost its expiry gets it back on the next try.
        redis.set(key, 3)
        tries, ttl = auditor._count_try(key)
        assert tries == 4 and 0 < ttl <= 60 and 0 < redis.ttl(key) <= 60
        auditor._give_back(key)
        auditor._give_back(key)
        assert int(redis.get(key)) == 2 and redis.ttl(key) > 0
