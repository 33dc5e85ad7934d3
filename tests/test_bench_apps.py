"""bench/naive_app.py, the designs the benchmark compares ours against: the
same form and answer as our web, stored inside the request (the naive
design) or not stored at all (the web without enqueuing)."""

import subprocess
import sys

from rq import Queue
from rq.serializers import JSONSerializer

from bench import naive_app
from tests.conftest import hidden_fields
from tests.servers import ROOT


def post(app, **fields):
    client = app.test_client()
    data = hidden_fields(client.get("/").get_data(as_text=True))
    data.update({"name": "Pika", "coat": "tortie", "donut": "strawberry"}, **fields)
    return client.post("/", data=data), data["submission_id"]


def queued(redis):
    return Queue("submissions", connection=redis, serializer=JSONSerializer).count


def test_without_queue_answers_like_the_queue_but_stores_nothing(env, redis, rows):
    app = naive_app.create_app(store=False)
    response, sid = post(app)
    assert response.status_code == 303
    assert response.headers["Location"] == f"/submissions/{sid}"
    assert queued(redis) == 0 and rows() == []
    # Validation and CSRF still run.
    assert post(app, name="")[0].status_code == 422
    assert post(app, csrf_token="forged")[0].status_code == 400


def test_naive_stores_one_row_in_the_request(env, redis, rows):
    app = naive_app.create_app()
    response, sid = post(app)
    assert response.status_code == 303
    assert response.headers["Location"] == f"/submissions/{sid}"
    assert [r["submission_id"] for r in rows()] == [sid]
    assert queued(redis) == 0
    # A double post is still one row (the worker's ON CONFLICT statement).
    client = app.test_client()
    data = hidden_fields(client.get("/").get_data(as_text=True))
    data.update(name="Tom", coat="grey", donut="maple")
    assert client.post("/", data=data).status_code == 303
    assert client.post("/", data=data).status_code == 303
    assert len(rows()) == 2
    assert post(app, coat="plaid")[0].status_code == 422
    assert len(rows()) == 2


def test_naive_reconnects_after_losing_its_connection(env, rows):
    app = naive_app.create_app()
    assert post(app)[0].status_code == 303
    app.extensions["naive_writer"]._conn.close()
    assert post(app)[0].status_code == 303
    assert len(rows()) == 2


def test_the_web_carries_no_benchmark_switch_and_never_imports_the_worker(env):
    from web import config
    assert not any("SUBMIT" in key for key in config.from_env(env))
    check = ("import sys, web; web.create_app(); "
             "print(sorted(m for m in sys.modules if m == 'worker' or m.startswith(('worker.', 'bench'))))")
    done = subprocess.run([sys.executable, "-c", check], cwd=ROOT, env=env | {"PATH": ""},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
