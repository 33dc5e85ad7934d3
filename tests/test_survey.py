"""Issue 18, items 1 to 3: the survey as a file, open and closed, robots kept out."""

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from rq import Queue
from rq.serializers import JSONSerializer

import survey
from submission.cap import Cap
from tests.conftest import hidden_fields
from tests.gunicorn import Gunicorn
from tests.http import Browser
from tests.scrape import value
from tests.servers import ROOT
from tests.surveys import DOGS, write
from tests.test_metrics import REJECTED, scrape
from web import create_app
from web.config import from_env as web_config

PAST = "2020-01-01T00:00:00+00:00"
FUTURE = "2999-01-01T09:00:00+01:00"


@pytest.fixture
def make_client(env, monkeypatch):
    """make_client(**environment) -> a test client of an app started with it."""
    def make(**settings):
        for key, value_ in settings.items():
            monkeypatch.setenv(key, str(value_))
        app = create_app({"TESTING": True})
        return app.test_client()
    return make


def taken(redis):
    """Answers counted against the cap (submission/cap.py); 0 where nothing is kept."""
    return Cap(redis, "submissions").taken() or 0


def queued(redis):
    return Queue("submissions", connection=redis, serializer=JSONSerializer).count


def post(client, **fields):
    data = hidden_fields(client.get("/").get_data(as_text=True))
    data.update({"name": "Rex", "coat": "curly", "donut": "bone", **fields})
    return client.post("/", data=data), data


def post_form_of(opened, client, **fields):
    """POST to `client` a form `opened` showed before (with its session), as a
    visitor does whose page was open across the change."""
    data = hidden_fields(opened.get("/").get_data(as_text=True))
    client.set_cookie("session", opened.get_cookie("session").value)
    return client.post("/", data={**data, "name": "Rex", **fields})


# -- 1. the survey as a file ----------------------------------------------------

def test_the_default_file_is_todays_cat_survey():
    cats = survey.load()
    assert [c.value for c in cats.coat.choices] == ["tabby", "tortie", "calico", "black", "white", "ginger",
                                                   "grey", "tuxedo"]
    assert all(c.picture and c.picture.is_file() for c in cats.coat.choices + cats.donut.choices)
    assert (cats.title, cats.heading) == ("Cat survey", "Tell us about your cat")


def test_a_survey_of_ones_own_end_to_end(make_client, tmp_path, redis, run_worker, rows):
    client = make_client(SURVEY_FILE=write(tmp_path))
    page = client.get("/").get_data(as_text=True)
    assert "Tell us about your dog" in page and "<title>Dog survey</title>" in page
    assert "Curly" in page and "A bone" in page and "Tabby" not in page
    # A choice with a picture shows it; one without gets a plain tile.
    assert 'src="/survey/pictures/coat/curly"' in page and '<span class="swatch" aria-hidden="true">' in page
    picture = client.get("/survey/pictures/coat/curly")
    assert picture.status_code == 200 and picture.mimetype == "image/svg+xml"
    assert client.get("/survey/pictures/coat/wiry").status_code == 404

    response, data = post(client)
    assert response.status_code == 303
    run_worker()
    assert [(r["name"], r["coat"], r["donut"]) for r in rows()] == [("Rex", "curly", "bone")]

    # Today's cat values are no choices of this survey.
    refused, _ = post(client, coat="tabby")
    assert refused.status_code == 422
    assert "Please pick a fur from the list." in refused.get_data(as_text=True)
    assert queued(redis) == 0


def test_a_choice_removed_after_it_was_accepted_is_still_stored_and_counted(make_client, tmp_path, redis,
                                                                            run_worker, rows):
    cats = make_client()
    response, data = post(cats, coat="tabby", donut="glazed")
    assert response.status_code == 303
    # The owner edits the file and restarts; the worker meets the old job.
    dogs = make_client(SURVEY_FILE=write(tmp_path))
    run_worker()
    assert [(r["coat"], r["donut"]) for r in rows()] == [("tabby", "glazed")]
    results = dogs.get("/results").get_data(as_text=True)
    assert 'data-value="tabby"' in results and 'data-value="curly"' in results


BROKEN = {
    "a syntax error": ("-", DOGS.replace('label = "Fur"', 'label = "Fur')),
    "an unknown key": ("coat.colour", DOGS.replace('label = "Fur"', 'label = "Fur"\n    colour = "red"')),
    "a duplicate value": ("donut.choices[1].value", DOGS.replace('"cheese"', '"bone"')),
    "an empty choice list": ("coat.choices", DOGS.split("    [coat]")[0] + '    [coat]\n    label = "Fur"\n'
                             '    choices = []\n' + "    [donut]" + DOGS.split("    [donut]")[1]),
    "a label too long": ("donut.label", DOGS.replace('label = "Treat"', 'label = "' + "T" * 61 + '"')),
    "a missing picture": ("coat.choices[0].picture", DOGS.replace("curly.svg", "gone.svg")),
    "a time without its offset": ("closes_at", 'closes_at = 2026-12-01T09:00:00\n' + DOGS),
    "a bad value": ("coat.choices[1].value", DOGS.replace('"wiry"', '"Wiry Hair"')),
}


@pytest.mark.parametrize("kind", BROKEN)
def test_python_m_survey_check_refuses_a_broken_file_in_one_line(tmp_path, kind):
    key, text = BROKEN[kind]
    path = write(tmp_path, text)
    result = subprocess.run([sys.executable, "-m", "survey", "check", str(path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1, result
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"{path}: {key}: "), line
    assert result.stdout == ""


def test_python_m_survey_check_passes_the_default_and_a_good_file(tmp_path):
    for args in ([], [str(write(tmp_path))]):
        result = subprocess.run([sys.executable, "-m", "survey", "check", *args], cwd=ROOT,
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 0 and ": ok: " in result.stdout, result


def test_an_override_from_the_environment_is_checked_too(tmp_path):
    with pytest.raises(survey.SurveyFileError, match="CLOSES_AT: 'tomorrow' is not an RFC 3339 time"):
        survey.from_env({"SURVEY_FILE": str(write(tmp_path)), "CLOSES_AT": "tomorrow"})
    with pytest.raises(survey.SurveyFileError, match="closes_at: .* is not after opens_at"):
        survey.from_env({"OPENS_AT": FUTURE, "CLOSES_AT": PAST})
    with pytest.raises(survey.SurveyFileError, match="MAX_RESPONSES: must be a whole number, 1 or more"):
        survey.from_env({"MAX_RESPONSES": "0"})


def one_line_exit(command, env, tmp_path, timeout=60):
    result = subprocess.run(command, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True,
                            timeout=timeout)
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    return result.returncode, lines


@pytest.mark.parametrize("kind", ["an unknown key", "a missing picture"])
def test_gunicorn_the_worker_and_make_runs_start_refuse_a_broken_file(env, tmp_path, kind):
    key, text = BROKEN[kind]
    path = write(tmp_path, text)
    bad = {**env, "SURVEY_FILE": str(path), "APP_PORT": "1", "WEB_METRICS_PORT": "2",
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    expected = f"survey: {path}: {key}: "
    gunicorn = [str(ROOT / ".venv" / "bin" / "gunicorn"), "--config", "web/gunicorn.conf.py"]
    code, lines = one_line_exit(gunicorn, bad, tmp_path)
    assert code != 0 and len(lines) == 1 and lines[0].startswith(expected), lines
    code, lines = one_line_exit([sys.executable, "-m", "worker"], bad, tmp_path)
    assert code != 0 and len(lines) == 1 and lines[0].startswith(expected), lines
    # make run's start: scripts/run checks the file before supervisord starts anything.
    code, lines = one_line_exit([str(ROOT / "scripts" / "run")], {**bad, "DATA_DIR": str(tmp_path / "data")},
                                tmp_path)
    assert code != 0 and len(lines) == 1 and lines[0].startswith(f"{path}: {key}: "), lines


# -- 2. open and closed -----------------------------------------------------------

def test_before_it_opens_the_page_says_when_and_a_post_gets_403(make_client, redis):
    opened = make_client()
    client = make_client(OPENS_AT=FUTURE)
    page = client.get("/").get_data(as_text=True)
    assert "This survey is not open yet." in page and "1 January 2999 at 08:00 UTC" in page
    assert "<form" not in page
    response = post_form_of(opened, client, name="Early Bird", coat="tabby", donut="glazed")
    assert response.status_code == 403
    html = response.get_data(as_text=True)
    assert "not open yet" in html and 'value="Early Bird"' in html and '<input checked id="coat-0"' in html
    assert queued(redis) == 0 and taken(redis) == 0
    assert "not open yet" in client.get("/results").get_data(as_text=True)


def test_after_it_closes_a_post_gets_410_and_keeps_the_answers(make_client, redis, run_worker, rows):
    open_client = make_client()
    before_close, _ = post(open_client, coat="tabby", donut="glazed")
    assert before_close.status_code == 303
    client = make_client(CLOSES_AT=PAST)
    assert "This survey is closed." in client.get("/").get_data(as_text=True)
    response = post_form_of(open_client, client, name="Late", coat="black", donut="maple")
    assert response.status_code == 410
    html = response.get_data(as_text=True)
    assert "closed" in html and 'value="Late"' in html and '<input checked id="coat-3"' in html
    # What got its 303 before the close is stored, whenever the worker gets to it; the receipt still answers.
    run_worker()
    assert [r["name"] for r in rows()] == ["Rex"]
    assert client.get(before_close.headers["Location"]).status_code == 200
    assert "The survey is closed." in client.get("/results").get_data(as_text=True)
    assert value(scrape(client), REJECTED, field="form", reason="closed") >= 1


def test_a_double_post_counts_once_against_the_cap(make_client, redis):
    client = make_client(MAX_RESPONSES="2")
    first, data = post(client, coat="tabby", donut="glazed")
    assert first.status_code == 303
    assert client.post("/", data=data).status_code == 303  # the double click
    assert taken(redis) == 1 and queued(redis) == 1
    # A form opened before the cap was reached.
    late = {**hidden_fields(client.get("/").get_data(as_text=True)), "name": "Late", "coat": "white", "donut": "maple"}
    assert post(client, coat="black", donut="maple")[0].status_code == 303
    third = client.post("/", data=late)
    assert third.status_code == 410 and queued(redis) == 2
    assert 'value="Late"' in third.get_data(as_text=True)
    # The first submission sent again after the close is still the accepted one.
    assert client.post("/", data=data).status_code == 303
    results = client.get("/results").get_data(as_text=True)
    assert "The survey is closed." in results and '<span id="accepted">2</span>' in results
    assert '<span id="max-responses">2</span>' in results


def test_the_cap_is_exact_across_gunicorn_processes(env, tmp_path, redis):
    server = Gunicorn({**env, "MAX_RESPONSES": "5"}, tmp_path, tmp_path / "metrics", workers=4)
    try:
        forms = []
        for _ in range(20):
            browser = Browser(f"http://127.0.0.1:{server.port}")
            forms.append((browser, {**browser.form(), "name": "Racer", "coat": "tabby", "donut": "glazed"}))
        start = threading.Barrier(len(forms))
        statuses = []

        def send(browser, data):
            start.wait()
            statuses.append(browser.request("/", data)[0])
        threads = [threading.Thread(target=send, args=f) for f in forms]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(statuses) == [303] * 5 + [410] * 15
        assert queued(redis) == 5 and taken(redis) == 5
        assert "This survey is closed." in server.browser.request("/")[2]
    finally:
        server.stop()


# -- 3. robots kept out, people not ---------------------------------------------------

def test_the_honeypot_is_out_of_sight_of_the_tab_order_and_of_screen_readers(make_client):
    page = make_client(HONEYPOT_FIELD="homepage").get("/").get_data(as_text=True)
    assert '<div class="hp" aria-hidden="true">' in page
    assert ('<input id="homepage" name="homepage" type="text" value="" tabindex="-1" autocomplete="off">'
            in page)
    css = (ROOT / "web" / "static" / "style.css").read_text()
    assert ".hp { display: none; }" in css


def test_a_filled_honeypot_stores_nothing_and_is_counted(make_client, redis):
    client = make_client()
    before = value(scrape(client), REJECTED, field="form", reason="honeypot") or 0
    response, _ = post(client, coat="tabby", donut="glazed", website="http://spam.example")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "A field meant to stay empty was filled in" in html and 'value="Rex"' in html
    assert "spam.example" not in html
    assert queued(redis) == 0 and taken(redis) == 0
    assert value(scrape(client), REJECTED, field="form", reason="honeypot") == before + 1


def test_a_form_sent_faster_than_a_person_could_is_refused(make_client, redis):
    client = make_client(MIN_FILL_SECONDS="1")
    before = value(scrape(client), REJECTED, field="form", reason="too_fast") or 0
    response, data = post(client, coat="tabby", donut="glazed")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "sooner than anyone could answer" in html and 'value="Rex"' in html
    assert queued(redis) == 0
    assert value(scrape(client), REJECTED, field="form", reason="too_fast") == before + 1
    # A forged or missing render time counts as too fast.
    forged = {**data, "form_started": "1.0"}
    assert client.post("/", data=forged).status_code == 422
    assert client.post("/", data={k: v for k, v in data.items() if k != "form_started"}).status_code == 422
    # The form shown again keeps its first render time: sent again a second later, it is taken.
    again = hidden_fields(html)
    assert again["form_started"] == data["form_started"]
    time.sleep(1.1)
    assert client.post("/", data={**data, **again}).status_code == 303
    assert queued(redis) == 1


def test_min_fill_seconds_defaults_to_2_and_honeypot_to_website(env):
    config = web_config({"SECRET_KEY": "x"})
    assert (config["MIN_FILL_SECONDS"], config["HONEYPOT_FIELD"]) == (2, "website")
    with pytest.raises(ValueError, match="HONEYPOT_FIELD"):
        web_config({"SECRET_KEY": "x", "HONEYPOT_FIELD": "name"})


def owners_first_steps(tmp_path):
    """docs/survey.md's first block, as written, from a checkout's top (here
    one whose survey/, submission/ and .venv are this one's), all but its `make run`; the
    folder of surveys it made."""
    block = re.search(r"```sh\n(.*?)```", (ROOT / "docs" / "survey.md").read_text(), re.S).group(1)
    script = "set -e\n" + "\n".join(line for line in block.splitlines() if "make run" not in line)
    for package in ("survey", "submission"):
        (tmp_path / package).symlink_to(ROOT / package)
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert ": ok: 'Pet survey', stored in table pets, 4 questions:" in result.stdout
    return tmp_path / "mysurveys"


def test_the_owners_first_steps_work_word_for_word(tmp_path):
    root, folder = survey.all_from_env({"SURVEYS_DIR": str(owners_first_steps(tmp_path))})
    assert sorted(folder) == ["pets", "poll"]
    pets = folder["pets"]
    # A rating, several picks and a conditional question, as the docs promise.
    assert {q.type for q in pets.questions} >= {"scale", "multiple_choice"}
    assert pets.cat_name.show_if.question == "has_cat"
