"""/results and /results.csv read what is in the table, whatever is in it."""

import csv
import io
import json
import re
import uuid
from datetime import datetime

import psycopg2
from psycopg2.extensions import make_dsn
import pytest

from tests.conftest import AUDITOR
from tests.surveys import COATS, DONUTS

TALLY_ROW = re.compile(r'<tr data-value="([^"]*)"><th scope="row">([^<]*)</th><td>(\d+)</td>'
                       r'<td class="share"><span class="pct">(\d+)%</span><svg class="bar"[^>]*>'
                       r'<rect class="bar-track"[^>]*/><rect class="bar-fill" width="(\d+)"')
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@pytest.fixture
def env(auditor_env):
    # On the cluster that asks passwords, where the auditor's sign-in is on.
    return auditor_env


def insert(database_url, rows):
    """Rows straight into the table, as the worker would write them; returns their ids."""
    ids = []
    conn = psycopg2.connect(database_url)
    with conn, conn.cursor() as cur:
        for name, coat, donut in rows:
            ids.append(str(uuid.uuid4()))
            cur.execute("INSERT INTO cats (submission_id, name, coat, donut, submitted_at) "
                        "VALUES (%s, %s, %s, %s, now() - interval '1 second')", (ids[-1], name, coat, donut))
    conn.close()
    return ids


def tables(html):
    """The page's two tallies as {value: cats}, in page order."""
    coats, donuts = html.split("By donut")
    for _, _, _, percent, bar in TALLY_ROW.findall(html):
        assert percent == bar  # each share drawn as a bar as long as its number says
    return ({v: int(n) for v, _, n, _, _ in TALLY_ROW.findall(coats)},
            {v: int(n) for v, _, n, _, _ in TALLY_ROW.findall(donuts)})


def test_tallies_match_the_rows(client, env):
    insert(env["DATABASE_URL"], [
        ("Pika", "tortie", "glazed"), ("Tom", "tortie", "maple"), ("Kit", "black", "glazed"),
        ("Old", "sphynx", "glazed"),  # a coat since removed from the form still counts
    ])
    page = client.get("/results")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'data-total="4"' in html
    coats, donuts = tables(html)
    assert coats == {**{value: 0 for value, _ in COATS}, "tortie": 2, "black": 1, "sphynx": 1}
    assert donuts == {**{value: 0 for value, _ in DONUTS}, "glazed": 3, "maple": 1}
    # Most cats first, labels from the form.
    assert list(coats)[0] == "tortie" and list(donuts)[:2] == ["glazed", "maple"]
    assert '<th scope="row">Tortoiseshell</th><td>2</td><td class="share"><span class="pct">50%</span>' in html
    assert '<rect class="bar-fill" width="50" height="10"/>' in html


def test_results_json_has_the_tallies_and_no_rows(client, env):
    insert(env["DATABASE_URL"], [("Pika", "tortie", "glazed"), ("Tom", "tortie", "maple")])
    data = client.get("/results.json").get_json()
    assert data["status"] == "ok" and data["total"] == 2
    assert data["coat"][0] == {"value": "tortie", "label": "Tortoiseshell", "cats": 2, "percent": 100}
    assert [row["value"] for row in data["donut"]][:2] in (["glazed", "maple"], ["maple", "glazed"])
    assert "Pika" not in client.get("/results.json").get_data(as_text=True)


def test_results_with_no_rows(client):
    html = client.get("/results").get_data(as_text=True)
    assert 'data-total="0"' in html
    coats, donuts = tables(html)
    assert set(coats.values()) == {0} and len(coats) == len(COATS)
    assert set(donuts.values()) == {0} and len(donuts) == len(DONUTS)


TRICKY = [
    "Comma, the cat", 'Say "meow"', "Two\nlines", "Carriage\r\nreturn", "=1+1", "+SUM(A1:A9)",
    "-2", "@cmd", "\tTabbed", "\rReturn", "'quoted'", "Zoë 🐈", "back\\slash", ";semi;",
]


def test_csv_round_trips_every_row_and_defuses_formulas(client, env, rows):
    ids = insert(env["DATABASE_URL"], [(name, "tabby", "glazed") for name in TRICKY])
    response = client.get("/results.csv", auth=AUDITOR)
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="cats-')
    table = list(csv.reader(io.StringIO(response.get_data(as_text=True), newline="")))
    assert table[0] == ["submission_id", "name", "coat", "donut", "submitted_at", "stored_at", "survey"]
    assert len(table) == 1 + len(TRICKY)

    by_id = {row["submission_id"]: row for row in rows()}
    for record in table[1:]:
        submission_id, name, coat, donut, submitted_at, stored_at, survey = record
        assert survey == "open"
        stored = by_id[submission_id]
        expected = "'" + stored["name"] if stored["name"].startswith(FORMULA_START) else stored["name"]
        assert name == expected
        assert not name.startswith(FORMULA_START)
        assert (coat, donut) == ("tabby", "glazed")
        assert datetime.fromisoformat(submitted_at) == stored["submitted_at"]
        assert datetime.fromisoformat(stored_at) == stored["stored_at"]
    assert sorted(r[0] for r in table[1:]) == sorted(ids)


def test_jsonl_has_the_same_rows_as_json_lines_for_the_auditor_only(client, env, rows):
    ids = insert(env["DATABASE_URL"], [(name, "tabby", "glazed") for name in TRICKY])
    refused = client.get("/results.jsonl")
    assert refused.status_code == 401 and "Pika" not in refused.get_data(as_text=True)
    assert client.get("/results.jsonl", auth=("auditor", "wrong")).status_code == 401

    response = client.get("/results.jsonl", auth=AUDITOR, buffered=False)
    assert response.status_code == 200 and response.is_streamed
    assert response.mimetype == "application/jsonl"
    assert response.headers["Content-Disposition"].endswith('.jsonl"')
    body = response.get_data(as_text=True)
    assert body.endswith("\n") and body.count("\n") == len(TRICKY)  # a newline in a name stays escaped
    records = [json.loads(line) for line in body.splitlines()]
    by_id = {row["submission_id"]: row for row in rows()}
    assert sorted(r["submission_id"] for r in records) == sorted(ids)
    for record in records:
        stored = by_id[record["submission_id"]]
        assert record["name"] == stored["name"]  # JSON needs no formula guard: exact
        assert datetime.fromisoformat(record["stored_at"]) == stored["stored_at"]
        assert (record["coat"], record["survey"]) == ("tabby", "open")


def test_erased_answers_leave_the_exports_and_the_tallies(client, env, redis, rows):
    from worker import db, erasure
    kept, erased = insert(env["DATABASE_URL"], [("Kept", "tabby", "glazed"), ("Erased", "black", "maple")])
    db.configure(env["DATABASE_URL"])
    erasure.erase_submission(erased, redis)
    csv_text = client.get("/results.csv", auth=AUDITOR).get_data(as_text=True)
    jsonl = client.get("/results.jsonl", auth=AUDITOR).get_data(as_text=True)
    assert kept in csv_text and kept in jsonl
    assert erased not in csv_text and "Erased" not in csv_text and erased not in jsonl
    assert client.get("/results.json").get_json()["total"] == 1


def web_sessions_in_transaction(database_url):
    conn = psycopg2.connect(database_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_stat_activity "
                        "WHERE application_name IN ('survey-web', 'survey-web-auditor') AND state = 'idle in transaction'")
            return cur.fetchone()[0]
    finally:
        conn.close()


def test_csv_is_streamed_from_a_cursor(client, env):
    conn = psycopg2.connect(env["DATABASE_URL"])
    with conn, conn.cursor() as cur:
        cur.execute("INSERT INTO cats (submission_id, name, coat, donut, submitted_at) "
                    "SELECT gen_random_uuid(), 'Cat ' || i, 'grey', 'maple', now() FROM generate_series(1, 5000) i")
    conn.close()

    response = client.get("/results.csv", auth=AUDITOR, buffered=False)
    assert response.is_streamed
    chunks = iter(response.response)
    first = next(chunks)
    # Half-way: the rest is still in the database, behind an open cursor.
    assert first.startswith(b"submission_id,") and first.count(b"\n") < 5000
    assert web_sessions_in_transaction(env["DATABASE_URL"]) == 1
    rest = b"".join(chunks)
    assert (first + rest).count(b"\r\n") == 5001
    response.close()
    assert web_sessions_in_transaction(env["DATABASE_URL"]) == 0


def test_abandoned_download_closes_its_connection(client, env):
    insert(env["DATABASE_URL"], [(f"Cat {i}", "grey", "maple") for i in range(2000)])
    response = client.get("/results.csv", auth=AUDITOR, buffered=False)
    next(iter(response.response))
    assert web_sessions_in_transaction(env["DATABASE_URL"]) == 1
    response.close()  # the client went away
    assert web_sessions_in_transaction(env["DATABASE_URL"]) == 0


@pytest.fixture
def read_only_url(env):
    """The tables through a role that may only SELECT from them, as an auditor's would."""
    conn = psycopg2.connect(env["DATABASE_URL"])
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("DROP ROLE IF EXISTS results_reader_test")
        cur.execute("CREATE ROLE results_reader_test LOGIN PASSWORD 'reader'")
        cur.execute("GRANT SELECT ON cats, erasures, survey_tables TO results_reader_test")
    yield make_dsn(env["DATABASE_URL"], user="results_reader_test", password="reader")
    with conn.cursor() as cur:
        cur.execute("REVOKE ALL ON cats, erasures, survey_tables FROM results_reader_test")
        cur.execute("DROP ROLE results_reader_test")
    conn.close()


def test_results_need_only_select(env, read_only_url):
    from web import create_app

    insert(env["DATABASE_URL"], [("Pika", "tortie", "glazed")])
    client = create_app({"TESTING": True, "DATABASE_URL": read_only_url}).test_client()
    assert 'data-total="1"' in client.get("/results").get_data(as_text=True)
    assert client.get("/results.csv", auth=AUDITOR).get_data(as_text=True).count("\r\n") == 2
    assert client.get("/readyz").status_code == 200
