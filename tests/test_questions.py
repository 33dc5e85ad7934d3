"""Issue 24: any survey.  Questions of every common type, conditional
questions, several surveys from one stack, and live edits that lose nothing,
against real PostgreSQL and Redis."""

import csv
import io
import json
import os
import subprocess
import sys
import textwrap
import threading
import uuid
from datetime import date
from decimal import Decimal

import prometheus_client
import psycopg2
import pytest
from rq import Queue
from rq.serializers import JSONSerializer

import survey
from tests.conftest import AUDITOR, auditor_database, hidden_fields
from tests.scrape import value
from tests.servers import ROOT
from tests.test_metrics import scrape
from tests.surveys import EVERY_ANSWER, EVERY_TYPE
from web import create_app
from worker import db as worker_db
from worker.config import Config as WorkerConfig
from worker.migrate import migrate
from worker.tables import SurveyEditError


def write(folder, name, text):
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def stack(password_pg, redis_server, env, tmp_path, monkeypatch):
    """stack(SURVEY_FILE=..., SURVEYS_DIR=...) -> (test client, settings): a
    database of its own, migrated for those surveys as a worker start does,
    with the auditor's password; run_worker() then stores what was queued."""
    url = auditor_database(password_pg, f"any_{uuid.uuid4().hex[:8]}")

    def make(**settings):
        for key, value in {"DATABASE_URL": url, **settings}.items():
            monkeypatch.setenv(key, str(value))
        migrate(WorkerConfig.from_env(dict(__import__("os").environ)))
        worker_db.configure(url)
        return create_app({"TESTING": True}).test_client(), url
    return make


def psql(url, query, params=None):
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(query, params)
            names = [c.name for c in cur.description]
            return names, cur.fetchall()
    finally:
        conn.close()


def post(client, path="/", answers=None, **extra):
    """Post the form at `path` as a browser would: several values for one name repeat."""
    data = hidden_fields(client.get(path).get_data(as_text=True))
    pairs = list(data.items())
    for key, value in {**(EVERY_ANSWER if answers is None else answers), **extra}.items():
        if value is None:
            continue
        pairs += [(key, v) for v in value] if isinstance(value, list) else [(key, value)]
    return client.post(path, data=_multi(pairs)), data["submission_id"]


def _multi(pairs):
    from werkzeug.datastructures import MultiDict
    return MultiDict(pairs)


def queued(redis):
    return Queue("submissions", connection=redis, serializer=JSONSerializer).count


def run_worker(redis):
    from worker.__main__ import build_worker
    config = WorkerConfig.from_env(dict(__import__("os").environ))
    build_worker(config, redis).work(burst=True, with_scheduler=False)


# -- 1 and 5. every type, end to end, typed in psql -----------------------------

def test_every_type_end_to_end(stack, tmp_path, redis):
    client, url = stack(SURVEY_FILE=write(tmp_path, "pets.toml", EVERY_TYPE))
    page = client.get("/").get_data(as_text=True)
    for marker in ('type="radio" value="yes"', 'name="cat_name"', "<textarea", "<select", 'type="checkbox"',
                   'value="10"', 'inputmode="numeric"', 'type="email"', 'type="date"', 'min="2000-01-01"'):
        assert marker in page, marker
    response, sid = post(client)
    assert response.status_code == 303, response.get_data(as_text=True)
    run_worker(redis)

    names, rows = psql(url, "SELECT * FROM pets")
    # The questions in the file's order, then the submission's id and times.
    assert names == ["has_cat", "cat_name", "story", "colour", "toys", "happiness", "age", "weight", "contact",
                     "birthday", "submission_id", "submitted_at", "stored_at"]
    (row,) = rows
    assert row[:10] == ("yes", "Tom", "Line one\nline two", "blue", ["ball", "mouse"], 9, 3, Decimal("4.25"),
                        "owner@example.org", date(2023, 5, 1))
    assert str(row[10]) == sid
    _, types = psql(url, "SELECT column_name, data_type FROM information_schema.columns "
                         "WHERE table_schema = 'public' AND table_name = 'pets' ORDER BY ordinal_position")
    assert [t for _, t in types][:10] == ["text", "text", "text", "text", "ARRAY", "integer", "integer",
                                          "numeric", "text", "date"]
    # Which version of the file it answered.
    _, version = psql(url, "SELECT survey_version FROM answers.pets")
    assert version == [(survey.load(tmp_path / "pets.toml").version,)]

    receipt = client.get(f"/submissions/{sid}").get_data(as_text=True)
    assert "Mouse" in receipt and "owner@example.org" in receipt and "Stored" in receipt

    exported = client.get("/results.csv", auth=AUDITOR).get_data(as_text=True)
    header, line = list(csv.reader(io.StringIO(exported)))
    assert header[:3] == ["submission_id", "has_cat", "cat_name"] and header[-1] == "survey"
    assert line[header.index("toys")] == "ball;mouse" and line[header.index("weight")] == "4.25"
    record = json.loads(client.get("/results.jsonl", auth=AUDITOR).get_data(as_text=True))
    assert record["toys"] == ["ball", "mouse"] and record["age"] == 3 and record["birthday"] == "2023-05-01"

    tallies = client.get("/results.json").get_json()
    assert tallies["total"] == 1
    assert {r["value"]: r["cats"] for r in tallies["toys"]} == {"ball": 1, "mouse": 1, "string": 0}
    assert [r["value"] for r in tallies["happiness"]] == [str(p) for p in range(11)]
    assert tallies["figures"]["happiness"]["mean"] == "9.00"
    assert tallies["figures"]["age"] == {"answered": 1, "min": "3", "max": "3"}
    assert tallies["figures"]["story"] == {"answered": 1}
    results = client.get("/results").get_data(as_text=True)
    # Free text is not public: how many answered, never what.
    assert "Line one" not in results and "owner@example.org" not in results and "Tom" not in results


BAD = [
    ({"has_cat": None}, "Please answer “Do you have a cat?”."),
    ({"has_cat": "maybe"}, "Please pick one of the choices for “Do you have a cat?”."),
    ({"cat_name": "x" * 21}, "The cat name must be 1 to 20 characters long."),
    ({"cat_name": "Tom\tCat"}, "The cat name can&#39;t contain control characters"),
    ({"story": "y" * 101}, "The story must be at most 100 characters long."),
    ({"story": "bell\x07"}, "The story can&#39;t contain control characters"),
    ({"colour": "purple"}, "Please pick a favourite colour from the list."),
    ({"colour": None}, "Please pick a favourite colour."),
    ({"toys": None}, "Please pick at least 1 for “Toys”."),
    ({"toys": ["ball", "mouse", "string"]}, "Please pick at most 2 for “Toys”."),
    ({"toys": ["ball", "laser"]}, "Please pick from the list for “Toys”."),
    ({"happiness": "11"}, "Please choose a whole number from 0 to 10 for “How happy is your pet?”."),
    ({"happiness": None}, "Please choose a rating for “How happy is your pet?”."),
    ({"age": "3.5"}, "“Age in years” must be a whole number."),
    ({"age": "41"}, "“Age in years” must be between 0 and 40."),
    ({"age": "three"}, "“Age in years” must be a number, such as 42."),
    ({"weight": "NaN"}, "“Weight in kg” must be a number, such as 42 or 3.5."),
    ({"weight": "1e3"}, "“Weight in kg” must be a number, such as 42 or 3.5."),
    ({"weight": "-1"}, "“Weight in kg” must be between 0 and 30."),
    ({"contact": "not an address"}, "“Your email” must be an email address, such as name@example.org."),
    ({"contact": "a..b@example.org"}, "“Your email” must be an email address"),
    ({"birthday": "2023-02-30"}, "“Birthday” must be a date, such as 2026-12-03."),
    ({"birthday": "1999-12-31"}, "“Birthday” must be on or after 2000-01-01."),
    ({"birthday": None}, "Please give a date for “Birthday”."),
]


def test_each_types_bad_input_is_refused_with_its_message_and_nothing_stored(stack, tmp_path, redis):
    client, url = stack(SURVEY_FILE=write(tmp_path, "pets.toml", EVERY_TYPE))
    for change, message in BAD:
        response, _ = post(client, answers={**EVERY_ANSWER, **change})
        page = response.get_data(as_text=True)
        assert response.status_code == 422, change
        assert message in page, (change, message)
        # What was typed stays, and the field says it is the one in error.
        assert 'aria-invalid="true"' in page and "Please check your answers." in page
        if "cat_name" not in change:
            assert 'value="Tom"' in page
    assert queued(redis) == 0
    run_worker(redis)
    assert psql(url, "SELECT count(*) FROM pets")[1] == [(0,)]
    assert psql(url, "SELECT count(*) FROM answers.pets")[1] == [(0,)]


# -- 3. conditional questions ---------------------------------------------------

def test_a_hidden_question_is_dropped_and_not_required_and_a_shown_one_is_stored(stack, tmp_path, redis):
    client, url = stack(SURVEY_FILE=write(tmp_path, "pets.toml", EVERY_TYPE))
    # Hidden (no cat), but posted anyway: dropped, not stored.
    hidden, hidden_id = post(client, has_cat="no", cat_name="Ghost")
    # Hidden and required, left empty: not required.
    empty, empty_id = post(client, has_cat="no", cat_name=None)
    # Shown and required, left empty: refused.
    refused, _ = post(client, has_cat="yes", cat_name=None)
    shown, shown_id = post(client, has_cat="yes", cat_name="Tom")
    assert (hidden.status_code, empty.status_code, refused.status_code, shown.status_code) == (303, 303, 422, 303)
    assert "Please tell us your cat&#39;s name." in refused.get_data(as_text=True)
    run_worker(redis)
    _, rows = psql(url, "SELECT submission_id::text, cat_name FROM pets")
    assert dict(rows) == {hidden_id: None, empty_id: None, shown_id: "Tom"}
    # Without script the question shows, with a note of when it applies; the script hides it.
    page = client.get("/").get_data(as_text=True)
    assert 'data-show-if="has_cat" data-show-values="yes"' in page
    assert "Only if your answer to “Do you have a cat?” is “Yes”" in page and "conditions.js" in page


# -- 1 and 3. broken files refused at start --------------------------------------

BROKEN = {
    "an unknown type": ("questions[0].type", 'type = "single_choice"', 'type = "slider"'),
    "an unknown key": ("questions[6].colour", "integer = true", "integer = true\n    colour = 1"),
    "min above max": ("questions[7].min", "min = 0\n    max = 30", "min = 31\n    max = 30"),
    "max_choices above the choices": ("questions[4].max_choices", "max_choices = 2", "max_choices = 4"),
    "a duplicate id": ("questions[3].id", 'id = "colour"', 'id = "story"'),
    "a reserved id": ("questions[3].id", 'id = "colour"', 'id = "stored_at"'),
    "an id /results.json has": ("questions[4].id", 'id = "toys"', 'id = "total"'),
    "a condition on a later question": ("questions[1].show_if.question", 'question = "has_cat"',
                                        'question = "colour"'),
    "a condition on an unknown question": ("questions[1].show_if.question", 'question = "has_cat"',
                                           'question = "has_dog"'),
    "a condition on a text question": (
        "questions[2].show_if.question", 'max_length = 100', 'max_length = 100\n    show_if = { question = "cat_name", equals = "Tom" }'),
    "a condition on no choice": ("questions[1].show_if.equals", 'equals = "yes"', 'equals = "maybe"'),
    "a bad date": ("questions[9].min", "min = 2000-01-01", 'min = "the year 2000"'),
    "a scale upside down": ("questions[5].max", "min = 0\n    max = 10", "min = 10\n    max = 0"),
}


@pytest.mark.parametrize("kind", BROKEN)
def test_python_m_survey_check_refuses_each_broken_file_in_one_line(tmp_path, kind):
    key, old, new = BROKEN[kind]
    assert old in EVERY_TYPE, old
    path = write(tmp_path, "pets.toml", EVERY_TYPE.replace(old, new, 1))
    result = subprocess.run([sys.executable, "-m", "survey", "check", str(path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1, result
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"{path}: {key}: "), line


def test_python_m_survey_check_passes_every_type(tmp_path):
    path = write(tmp_path, "pets.toml", EVERY_TYPE)
    result = subprocess.run([sys.executable, "-m", "survey", "check", str(path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result
    for kind in ("single_choice", "short_text, if has_cat", "long_text", "dropdown", "multiple_choice", "scale",
                 "number", "email", "date"):
        assert kind in result.stdout, kind


# -- 4. several surveys from one stack --------------------------------------------

SMALL = """
    title = "{title}"
    max_responses = {cap}
    {closes}

    [[questions]]
    id = "colour"
    type = "single_choice"
    label = "Colour"
    choices = [{{ value = "red", label = "Red" }}, {{ value = "blue", label = "Blue" }}]

    [[questions]]
    id = "score"
    type = "scale"
    label = "Score"
"""


def small(title, cap=5, closes=""):
    return SMALL.format(title=title, cap=cap, closes=closes)


def test_two_surveys_at_once_each_with_its_own_exact_cap(stack, tmp_path, redis):
    folder = tmp_path / "surveys"
    folder.mkdir()
    write(folder, "alpha.toml", small("Alpha"))
    write(folder, "beta-two.toml", small("Beta"))
    write(folder, "gone.toml", small("Gone", closes="closes_at = 2020-01-01T00:00:00Z"))
    client, url = stack(SURVEYS_DIR=folder)
    app = client.application
    # The cat survey stays at /, each file at /s/SLUG.
    assert "Tell us about your cat" in client.get("/").get_data(as_text=True)
    assert "<title>Alpha</title>" in client.get("/s/alpha").get_data(as_text=True)
    assert client.get("/s/nothing").status_code == 404

    forms = []
    for path in ["/s/alpha", "/s/beta-two"] * 20:
        browser = app.test_client()
        data = hidden_fields(browser.get(path).get_data(as_text=True))
        forms.append((browser, path, {**data, "colour": "red", "score": "4"}))
    statuses = {"/s/alpha": [], "/s/beta-two": []}

    def send(browser, path, data):
        statuses[path].append(browser.post(path, data=data).status_code)
    threads = [threading.Thread(target=send, args=form) for form in forms]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for path, got in statuses.items():
        assert sorted(got) == [303] * 5 + [410] * 15, (path, got)

    run_worker(redis)
    assert psql(url, "SELECT count(*) FROM alpha")[1] == [(5,)]
    assert psql(url, "SELECT count(*) FROM beta_two")[1] == [(5,)]
    assert psql(url, "SELECT count(*) FROM cats")[1] == [(0,)]
    # The closed one refuses, the cat survey still takes answers.
    assert "This survey is closed." in client.get("/s/gone").get_data(as_text=True)
    # (A form shown by the cat survey: alpha and beta have their 5 and show none.)
    data = hidden_fields(client.get("/").get_data(as_text=True))
    closed = client.post("/s/gone", data={**data, "colour": "red", "score": "3"})
    assert closed.status_code == 410
    cat, _ = post(client, answers={"name": "Rex", "coat": "tabby", "donut": "glazed"})
    assert cat.status_code == 303

    # Each survey's tallies and exports are its own.
    assert client.get("/s/alpha/results.json").get_json()["total"] == 5
    assert client.get("/results.json").get_json()["total"] == 0
    table = list(csv.reader(io.StringIO(client.get("/s/beta-two/results.csv", auth=AUDITOR).get_data(as_text=True))))
    assert table[0][:3] == ["submission_id", "colour", "score"] and len(table) == 6
    assert client.get("/s/alpha/results.csv").status_code == 401
    metrics = scrape(client)
    assert value(metrics, "survey_submissions_accepted_total", enqueue="queued", survey="alpha") >= 5
    assert value(metrics, "survey_submissions_rejected_total", reason="closed", survey="beta-two") >= 15
    assert value(metrics, "survey_submissions_rejected_total", reason="closed", survey="gone") >= 1
    # The worker's (run here, in this process): stored, by survey.
    assert prometheus_client.REGISTRY.get_sample_value("survey_worker_answers_stored_total",
                                                       {"survey": "beta-two"}) >= 5


def test_a_receipt_and_its_erase_work_for_a_survey_of_the_folder(stack, tmp_path, redis):
    folder = tmp_path / "surveys"
    folder.mkdir()
    write(folder, "alpha.toml", small("Alpha"))
    client, url = stack(SURVEYS_DIR=folder)
    response, sid = post(client, "/s/alpha", answers={"colour": "blue", "score": "2"})
    assert response.headers["Location"] == f"/s/alpha/submissions/{sid}"
    run_worker(redis)
    receipt = client.get(f"/s/alpha/submissions/{sid}").get_data(as_text=True)
    assert "Blue" in receipt and "Alpha" in receipt and 'href="/s/alpha"' in receipt
    # The receipt link works from anywhere: it finds the survey that stored it.
    assert "Blue" in client.get(f"/submissions/{sid}").get_data(as_text=True)
    token = hidden_fields(receipt).get("csrf_token") or __import__("re").search(
        r'name="csrf_token" type="hidden" value="([^"]+)"', receipt).group(1)
    erased = client.post(f"/s/alpha/submissions/{sid}/erase", data={"csrf_token": token})
    assert erased.status_code == 303
    run_worker(redis)
    assert psql(url, "SELECT count(*) FROM alpha")[1] == [(0,)]
    assert psql(url, "SELECT survey_table FROM erasures WHERE submission_id = %s", (sid,))[1] == [("alpha",)]
    assert client.get(f"/submissions/{sid}.json").get_json()["state"] == "erased"


def test_a_broken_file_anywhere_in_the_folder_stops_the_start(tmp_path):
    folder = tmp_path / "surveys"
    folder.mkdir()
    write(folder, "alpha.toml", small("Alpha"))
    bad = write(folder, "beta.toml", small("Beta").replace('type = "scale"', 'type = "slider"'))
    with pytest.raises(survey.SurveyFileError, match=f"^{bad}: questions\\[1\\].type: "):
        survey.all_from_env({"SURVEYS_DIR": str(folder)})
    write(folder, "beta.toml", '\n    table = "alpha"' + small("Beta"))
    with pytest.raises(survey.SurveyFileError, match="'alpha' is already the table of"):
        survey.all_from_env({"SURVEYS_DIR": str(folder)})
    (folder / "beta.toml").unlink()
    write(folder, "Not A Slug.toml", small("Odd"))
    with pytest.raises(survey.SurveyFileError, match="is not a survey's address"):
        survey.all_from_env({"SURVEYS_DIR": str(folder)})


# -- 6. editing a live survey ------------------------------------------------------

BEFORE = """
    title = "Edited"

    [[questions]]
    id = "colour"
    type = "single_choice"
    label = "Colour"
    choices = [{ value = "red", label = "Red" }, { value = "blue", label = "Blue" }]

    [[questions]]
    id = "pet"
    type = "short_text"
    label = "Your pet"
"""
# A new question, a removed one (pet), a removed choice (blue) and a relabelled one (red).
AFTER = """
    title = "Edited"

    [[questions]]
    id = "colour"
    type = "single_choice"
    label = "Colour"
    choices = [{ value = "red", label = "Crimson" }, { value = "green", label = "Green" }]

    [[questions]]
    id = "age"
    type = "number"
    label = "Age"
    integer = true
    required = false
"""


def test_every_kind_of_live_edit_keeps_every_answer(stack, tmp_path, redis):
    path = write(tmp_path, "edited.toml", BEFORE)
    client, url = stack(SURVEY_FILE=path)
    stored, stored_id = post(client, answers={"colour": "blue", "pet": "Rex"})
    run_worker(redis)
    # Queued under the old file, stored after the edit.
    waiting, waiting_id = post(client, answers={"colour": "red", "pet": "Tom"})
    assert (stored.status_code, waiting.status_code) == (303, 303)

    write(tmp_path, "edited.toml", AFTER)
    client, _ = stack(SURVEY_FILE=path)  # the owner restarts: the worker migrates, the web reloads
    run_worker(redis)
    new, new_id = post(client, answers={"colour": "green", "age": "7"})
    run_worker(redis)

    names, rows = psql(url, "SELECT * FROM edited ORDER BY stored_at")
    # The questions asked now in order, the one no longer asked after them.
    assert names == ["colour", "age", "pet", "submission_id", "submitted_at", "stored_at"]
    assert [r[:3] for r in rows] == [("blue", None, "Rex"), ("red", None, "Tom"), ("green", 7, None)]
    _, versions = psql(url, "SELECT submission_id::text, survey_version FROM answers.edited")
    versions = dict(versions)
    assert versions[stored_id] == versions[waiting_id] != versions[new_id]

    exported = list(csv.reader(io.StringIO(client.get("/results.csv", auth=AUDITOR).get_data(as_text=True))))
    assert exported[0] == ["submission_id", "colour", "age", "pet", "submitted_at", "stored_at", "survey"]
    assert [row[3] for row in exported[1:]] == ["Rex", "Tom", ""]
    results = client.get("/results").get_data(as_text=True)
    assert "Pet" not in results or "Your pet (no longer asked)" in results
    assert "Your pet (no longer asked)" in results
    tallies = client.get("/results.json").get_json()
    # The removed choice still counts, the relabelled one keeps its value.
    assert {r["value"]: (r["label"], r["cats"]) for r in tallies["colour"]} == {
        "red": ("Crimson", 1), "green": ("Green", 1), "blue": ("blue", 1)}
    assert tallies["figures"]["pet"] == {"answered": 2}


def test_an_edit_that_would_make_answers_unreadable_is_refused_at_start(stack, tmp_path, redis):
    path = write(tmp_path, "edited.toml", BEFORE)
    client, url = stack(SURVEY_FILE=path)
    post(client, answers={"colour": "red", "pet": "Rex"})
    run_worker(redis)
    retyped = write(tmp_path, "edited.toml", BEFORE.replace('type = "short_text"', 'type = "number"'))
    config = WorkerConfig.from_env({"DATABASE_URL": url, "SURVEY_FILE": str(retyped)})
    with pytest.raises(SurveyEditError, match=f"^{retyped}: pet: its answers are stored as text, a number "
                                              "question stores numeric: give the changed question a new id"):
        migrate(config)
    renamed = write(tmp_path, "edited.toml", '\n    table = "renamed"' + BEFORE)
    with pytest.raises(SurveyEditError, match="this survey's 1 answers are in table 'edited'"):
        migrate(WorkerConfig.from_env({"DATABASE_URL": url, "SURVEY_FILE": str(renamed)}))
    # The worker's start says so in one line and exits non-zero.
    write(tmp_path, "edited.toml", BEFORE.replace('type = "short_text"', 'type = "number"'))
    result = subprocess.run([sys.executable, "-m", "worker", "--burst"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60, env={**__import__("os").environ, "DATABASE_URL": url,
                                             "SURVEY_FILE": str(retyped)})
    assert result.returncode != 0 and "pet: its answers are stored as text" in result.stderr.splitlines()[-1]
    # A service that does not migrate (the web; the worker, as compose and
    # Kubernetes run it) refuses too: the migration did not take the file.
    not_taken = f"survey: {retyped}: pet: the database has a short_text question for this number question"
    for argv, extra in (([sys.executable, "-m", "worker", "--burst"], {"MIGRATE_ON_START": "0"}),
                        ([sys.executable, "-m", "gunicorn", "--config", "web/gunicorn.conf.py", "--check-config"], {})):
        result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60,
                                env={**os.environ, "DATABASE_URL": url, "SURVEY_FILE": str(retyped), **extra})
        assert result.returncode != 0 and result.stderr.splitlines()[-1].startswith(not_taken), (argv, result.stderr)
    # The file as the database took it starts the web; so does any file while the database is away.
    check_config = [sys.executable, "-m", "gunicorn", "--config", "web/gunicorn.conf.py", "--check-config"]
    retyped_text = retyped.read_text()
    for text, database in ((BEFORE, url), (retyped_text, "postgresql://survey@127.0.0.1:1/none")):
        survey_file = write(tmp_path, "edited.toml", text)
        result = subprocess.run(check_config, cwd=ROOT, capture_output=True, text=True, timeout=60,
                                env={**os.environ, "DATABASE_URL": database, "SURVEY_FILE": str(survey_file)})
        assert result.returncode == 0, (text, result.stderr)
    # Nothing was changed by the refused starts.
    assert psql(url, "SELECT * FROM edited")[0][:2] == ["colour", "pet"]


def test_the_docs_two_surveys_are_live_and_read_in_psql_as_the_docs_show(stack, tmp_path, redis):
    from tests.test_survey import owners_first_steps
    client, url = stack(SURVEYS_DIR=owners_first_steps(tmp_path))
    answered, _ = post(client, "/s/pets", answers={"has_cat": "yes", "cat_name": "Tom", "toys": ["box", "ball"],
                                                   "happiness": "9"})
    polled, _ = post(client, "/s/poll", answers={"tea_or_coffee": "tea"})
    assert (answered.status_code, polled.status_code) == (303, 303)
    run_worker(redis)
    names, rows = psql(url, "select * from pets;")
    # The header docs/survey.md shows.
    header = next(line for line in (ROOT / "docs" / "survey.md").read_text().splitlines()
                  if line.startswith(" has_cat |"))
    assert names == [name.strip() for name in header.split("|")]
    assert [r[:4] for r in rows] == [("yes", "Tom", ["ball", "box"], 9)]
    assert psql(url, "select tea_or_coffee from poll;")[1] == [("tea",)]
