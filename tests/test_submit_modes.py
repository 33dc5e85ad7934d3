"""SUBMIT_MODE, the benchmark's switch (web/config.py): the same form and
answer, with the queue ("queue"), without storing ("none"), or stored in the
request ("direct", the naive design bench/ compares against)."""

import pytest
from rq import Queue
from rq.serializers import JSONSerializer

from web import config, create_app
from tests.conftest import hidden_fields


def post(app, **fields):
    client = app.test_client()
    data = hidden_fields(client.get("/").get_data(as_text=True))
    data.update({"name": "Pika", "coat": "tortie", "donut": "strawberry"}, **fields)
    return client.post("/", data=data), data["submission_id"]


def queued(redis):
    return Queue("submissions", connection=redis, serializer=JSONSerializer).count


def test_default_mode_is_queue(env):
    assert config.from_env({})["SUBMIT_MODE"] == "queue"


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="SUBMIT_MODE"):
        config.from_env({"SUBMIT_MODE": "sync"})


def test_none_mode_answers_like_the_queue_but_stores_nothing(env, redis, rows):
    app = create_app({"SUBMIT_MODE": "none"})
    response, sid = post(app)
    assert response.status_code == 303
    assert response.headers["Location"] == f"/submissions/{sid}"
    assert queued(redis) == 0 and rows() == []
    # Validation and CSRF still run.
    assert post(app, name="")[0].status_code == 422
    assert post(app, csrf_token="forged")[0].status_code == 400


def test_direct_mode_stores_one_row_in_the_request(env, redis, rows):
    app = create_app({"SUBMIT_MODE": "direct"})
    response, sid = post(app)
    assert response.status_code == 303
    stored = rows()
    assert [r["submission_id"] for r in stored] == [sid]
    assert queued(redis) == 0
    # A double post is still one row (the worker's ON CONFLICT statement).
    client = app.test_client()
    data = hidden_fields(client.get("/").get_data(as_text=True))
    data.update(name="Tom", coat="grey", donut="maple")
    assert client.post("/", data=data).status_code == 303
    assert client.post("/", data=data).status_code == 303
    assert len(rows()) == 2
