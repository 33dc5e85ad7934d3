"""/results.csv is the auditor's: HTTP Basic, checked by PostgreSQL itself
on a cluster that wants passwords (as make run's and compose's do), and
failed tries from one address end in 429 without PostgreSQL being asked."""

import csv
import io
import logging
import uuid

import psycopg2
import pytest

from tests.servers import PostgresServer
from web import create_app
from worker.config import Config as WorkerConfig
from worker.migrate import migrate

AUDITOR_PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def password_pg():
    server = PostgresServer(passwords=True)
    yield server
    server.destroy()


@pytest.fixture(scope="module")
def password_db(password_pg):
    url = password_pg.create_database("survey")
    migrate(WorkerConfig.from_env({"DATABASE_URL": url, "AUDITOR_DATABASE_PASSWORD": AUDITOR_PASSWORD}))
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
    response = client.get("/results.csv", headers={"X-Forwarded-For": "203.0.113.7"})
    assert_sign_in_page(response)
    assert any("203.0.113.7" in r.getMessage() for r in caplog.records)


def test_wrong_password_or_user_is_401(client, password_pg, caplog):
    before = failed_logins_in_server_log(password_pg)
    assert_sign_in_page(client.get("/results.csv", auth=("auditor", "wrong"), headers={"X-Forwarded-For": "203.0.113.8"}))
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
    attacker = {"X-Forwarded-For": "198.51.100.9"}
    for i in range(5):
        assert client.get("/results.csv", auth=("auditor", f"guess {i}"), headers=attacker).status_code == 401
    before = failed_logins_in_server_log(password_pg)
    locked = client.get("/results.csv", auth=("auditor", "guess 6"), headers=attacker)
    assert locked.status_code == 429
    assert 0 < int(locked.headers["Retry-After"]) <= 600
    assert "Too many failed sign-ins" in locked.get_data(as_text=True)
    # Even the right password waits: the address is locked, not the guess.
    assert client.get("/results.csv", auth=("auditor", AUDITOR_PASSWORD), headers=attacker).status_code == 429
    assert failed_logins_in_server_log(password_pg) == before
    # Other addresses are not locked out.
    other = client.get("/results.csv", auth=("auditor", AUDITOR_PASSWORD), headers={"X-Forwarded-For": "198.51.100.10"})
    assert other.status_code == 200


def test_a_successful_sign_in_clears_the_count(client):
    me = {"X-Forwarded-For": "198.51.100.20"}
    for _ in range(4):
        assert client.get("/results.csv", auth=("auditor", "typo"), headers=me).status_code == 401
    assert client.get("/results.csv", auth=("auditor", AUDITOR_PASSWORD), headers=me).status_code == 200
    for _ in range(4):
        assert client.get("/results.csv", auth=("auditor", "typo"), headers=me).status_code == 401
    assert client.get("/results.csv", auth=("auditor", AUDITOR_PASSWORD), headers=me).status_code == 200


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


def test_receipts_stay_unguessable(client):
    # The CSV was the one list of submission ids; a receipt needs its id.
    assert client.get(f"/submissions/{uuid.uuid4()}").status_code == 404
