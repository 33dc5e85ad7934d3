"""Issue 25: webhooks.  Every stored answer delivered to a receiver on
loopback that checks each delivery with `standardwebhooks` (the
specification's own library), through the real store worker and the real
delivery worker (`python -m worker`, `python -m worker.deliver`), against
real PostgreSQL and Redis; retries, 410, redirects, slow and endless
answers; an erase racing a waiting delivery; private addresses refused."""

import email
import email.policy
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import standardwebhooks
from rq import Queue
from rq.serializers import JSONSerializer

import survey
from survey import webhooks
from tests.conftest import hidden_fields
from tests.scrape import samples, value
from tests.servers import ROOT, free_port, wait_until
from web import create_app
from worker import deliveries

SECRET = webhooks.new_secret()


class Receiver:
    """An HTTP server on loopback that verifies and records each delivery;
    `answers` is what it does next (status codes, "slow", "endless",
    "redirect"), then 204 for ever."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.got = []          # (webhook-id, parsed body), verified
        self.unverified = 0
        self.answers = []
        self.times = []        # when each delivery came
        self.server = None
        self.verifier = standardwebhooks.Webhook(SECRET)

    def start(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.times.append(time.monotonic())
                try:
                    receiver.got.append((self.headers["webhook-id"], receiver.verifier.verify(body, dict(self.headers))))
                except standardwebhooks.WebhookVerificationError:
                    receiver.unverified += 1
                answer = receiver.answers.pop(0) if receiver.answers else 204
                if answer == "slow":
                    time.sleep(3)
                    answer = 204
                if answer == "redirect":
                    self.send_response(302)
                    self.send_header("Location", f"http://127.0.0.1:{receiver.port}/elsewhere")
                    self.end_headers()
                elif answer == "endless":
                    self.send_response(200)
                    self.end_headers()
                    try:
                        while True:
                            self.wfile.write(b"x" * 65536)
                    except OSError:
                        pass
                else:
                    self.send_response(answer)
                    if answer == 503:
                        self.send_header("Retry-After", "4")
                    self.send_header("Content-Length", "0")
                    self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def events(self, event):
        return [body["data"]["submission_id"] for _, body in self.got if body["type"] == event]


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


def cat_survey(folder, more):
    """The cat survey, its pictures beside it, with `more` of the file's tables."""
    shutil.copytree(ROOT / "survey", folder, ignore=shutil.ignore_patterns("*.py", "__pycache__", "questions"))
    path = folder / "cats.toml"
    path.write_text(path.read_text() + "\n" + more)
    return path


def survey_with_webhook(folder, url, extra=""):
    return cat_survey(folder, f'[[webhooks]]\nurl = "{url}"\nsecret_env = "CATS_WEBHOOK_SECRET"\n{extra}')


@pytest.fixture
def hooked(env, tmp_path, receiver, monkeypatch):
    """The environment of every service, with the cat survey's webhook at the receiver."""
    path = survey_with_webhook(tmp_path / "survey", f"http://127.0.0.1:{receiver.port}/hook")
    values = {"SURVEY_FILE": str(path), "CATS_WEBHOOK_SECRET": SECRET, "WEBHOOK_ALLOW_PRIVATE": "1",
              "WEBHOOK_RETRY_INTERVALS": "1,1", "WEBHOOK_TIMEOUT": "1.5", "WORKER_DB_TIMEOUT": "5"}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return {**env, **values}


def run(module, env, *args, timeout=60):
    done = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env={**env, "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def post_answers(client, count, name="Hook"):
    ids = []
    for n in range(count):
        hidden = hidden_fields(client.get("/").get_data(as_text=True))
        response = client.post("/", data={**hidden, "name": f"{name} {n}", "coat": "tabby", "donut": "glazed"})
        assert response.status_code == 303, response.get_data(as_text=True)[:300]
        ids.append(hidden["submission_id"])
    return ids


def webhooks_queue(redis):
    return Queue(deliveries.QUEUE, connection=redis, serializer=JSONSerializer)


def test_every_stored_answer_is_delivered_signed_with_its_answers(hooked, receiver, redis):
    client = create_app({"TESTING": True}).test_client()
    ids = post_answers(client, 12)
    run("worker", hooked, "--burst")
    # Enqueued with the batch, waiting on a queue of their own, which `rq info` lists.
    assert webhooks_queue(redis).count == 12 and receiver.got == []
    run("worker.deliver", hooked, "--burst")
    assert receiver.unverified == 0
    assert sorted(receiver.events("answer.stored")) == sorted(ids)
    seen = [msg_id for msg_id, _ in receiver.got]
    assert len(set(seen)) == len(seen) == 12
    assert all(msg_id == deliveries.message_id("answer.stored", sid)
               for msg_id, sid in zip(seen, receiver.events("answer.stored")))
    _, body = receiver.got[0]
    data = body["data"]
    assert data["survey"] == "cats" and data["version"] == survey.load(hooked["SURVEY_FILE"]).version
    assert data["answers"] == {"name": data["answers"]["name"], "coat": "tabby", "donut": "glazed"}
    assert data["answers"]["name"].startswith("Hook ") and data["submitted_at"] <= data["stored_at"]
    assert webhooks_queue(redis).count == 0 and webhooks_queue(redis).failed_job_registry.count == 0


def test_no_2xx_is_retried_a_410_stops_and_redirects_are_not_followed(hooked, receiver, redis):
    client = create_app({"TESTING": True}).test_client()
    receiver.answers = [500, "redirect", 503, "slow"]  # four tries of the first answer fail, each its own way
    [first] = post_answers(client, 1)
    run("worker", hooked, "--burst")
    metrics_port = free_port()
    deliver = subprocess.Popen([sys.executable, "-m", "worker.deliver"], cwd=ROOT,
                               env={**hooked, "DELIVER_METRICS_PORT": str(metrics_port)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # 500, then the redirect, then 503 with Retry-After: 4 (the last of its two retries): failed.
        failed = webhooks_queue(redis).failed_job_registry
        wait_until(lambda: failed.count == 1, 30, "the delivery to run out of tries")
        assert [msg_id for msg_id, _ in receiver.got] == [deliveries.message_id("answer.stored", first)] * 3
        assert receiver.answers == ["slow"]
        # An operator requeues it; the receiver is slower than WEBHOOK_TIMEOUT: a failed try again.
        [delivery] = failed.get_job_ids()
        failed.requeue(delivery)
        wait_until(lambda: failed.count == 1 and len(receiver.got) == 4, 30, "the requeued try")
        failed.requeue(delivery)
        wait_until(lambda: len(receiver.got) == 5 and failed.count == 0, 30, "the requeued try to be delivered")

        # An endless answer is read no further than READ_MAX: delivered at once.
        receiver.answers = ["endless"]
        [second] = post_answers(client, 1, name="Endless")
        run("worker", hooked, "--burst")
        wait_until(lambda: second in receiver.events("answer.stored") and webhooks_queue(redis).count == 0, 30,
                   "the delivery answered by an endless body")

        # 410: this URL hears nothing more until the delivery worker starts again.
        receiver.answers = [410]
        gone = post_answers(client, 3, name="Gone")
        run("worker", hooked, "--burst")
        wait_until(lambda: webhooks_queue(redis).count == 0 and len(receiver.got) == 7, 30, "the 410")
        time.sleep(1)
        assert receiver.events("answer.stored").count(gone[0]) <= 1 and len(receiver.got) == 7
        assert redis.sismember(deliveries.GONE_KEY, survey.load(hooked["SURVEY_FILE"]).webhooks[0].key)
        # The operator's view: every try by its outcome, and nothing left waiting.
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
            parsed = samples(response.read().decode())
        tries = {outcome: value(parsed, "survey_worker_webhook_deliveries_total", survey="cats",
                                event="answer.stored", outcome=outcome)
                 for outcome in ("delivered", "retried", "failed", "gone")}
        # 500, redirect: retried; 503, then the slow one: failed; requeued: delivered; the endless; 410 and the two after.
        assert tries == {"delivered": 2, "retried": 2, "failed": 2, "gone": 3}, tries
        assert value(parsed, "survey_worker_webhook_oldest_waiting_seconds") == 0
        assert value(parsed, "survey_worker_webhook_delivery_seconds_count") == 2
    finally:
        deliver.send_signal(signal.SIGTERM)
        deliver.wait(30)
    assert receiver.unverified == 0
    # A new start: the owner may have fixed the URL; the next answers are delivered.
    [later] = post_answers(client, 1, name="Later")
    run("worker", hooked, "--burst")
    run("worker.deliver", hooked, "--burst")
    assert later in receiver.events("answer.stored")


def test_a_retry_after_puts_the_next_try_later(hooked, receiver, redis):
    client = create_app({"TESTING": True}).test_client()
    receiver.answers = [500, 503]  # 503 with Retry-After: 4, where the schedule says 1 s
    [sid] = post_answers(client, 1)
    run("worker", {**hooked, "WEBHOOK_RETRY_INTERVALS": "1,1"}, "--burst")
    deliver = subprocess.Popen([sys.executable, "-m", "worker.deliver"], cwd=ROOT, env=hooked,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: len(receiver.got) == 3, 30, "the third try")
    finally:
        deliver.send_signal(signal.SIGTERM)
        deliver.wait(30)
    first, second, third = receiver.times
    # The scheduler looks once a second: the first retry comes 1 to 2 s on, the second no sooner than 4 s.
    assert second - first < 3 and third - second >= 4, receiver.times
    assert receiver.events("answer.stored") == [sid] * 3 and webhooks_queue(redis).failed_job_registry.count == 0


def test_an_answer_erased_while_its_delivery_waits_is_never_sent(hooked, receiver, redis):
    client = create_app({"TESTING": True}).test_client()
    receiver.stop()  # the receiver is down
    # The first retry comes after the erase, the second after the receiver is back.
    hooked = {**hooked, "WEBHOOK_RETRY_INTERVALS": "6,1,1"}
    hook = survey.load(hooked["SURVEY_FILE"], hooked).webhooks[0]
    erased, kept = post_answers(client, 2, name="Erase")
    run("worker", hooked, "--burst")
    deliver = subprocess.Popen([sys.executable, "-m", "worker.deliver"], cwd=ROOT, env=hooked,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        scheduled = webhooks_queue(redis).scheduled_job_registry
        wait_until(lambda: scheduled.count == 2, 30, "both deliveries to wait for their retry")
        html = client.get(f"/submissions/{erased}").get_data(as_text=True)
        assert client.post(f"/submissions/{erased}/erase", data=hidden_fields(html)).status_code == 303
        run("worker", hooked, "--burst")  # the erase
        assert not redis.exists(f"rq:job:{deliveries.delivery_id(hook, 'answer.stored', erased)}")
        assert redis.exists(f"rq:job:{deliveries.delivery_id(hook, 'answer.stored', kept)}")
        again = Receiver(receiver.port).start()  # the receiver is back
        try:
            wait_until(lambda: len(again.got) == 2, 30, "the kept answer and the erase")
            time.sleep(1)
            assert again.events("answer.stored") == [kept] and again.events("answer.erased") == [erased]
            erase_body = next(b for _, b in again.got if b["type"] == "answer.erased")["data"]
            assert set(erase_body) == {"survey", "submission_id", "erased_at"}
            assert again.unverified == 0
        finally:
            again.stop()
    finally:
        deliver.send_signal(signal.SIGTERM)
        deliver.wait(30)


def test_a_private_address_is_refused_without_webhook_allow_private(env, tmp_path, receiver, monkeypatch):
    path = survey_with_webhook(tmp_path / "survey", f"http://127.0.0.1:{receiver.port}/hook", "allow_http = true\n")
    values = {"SURVEY_FILE": str(path), "CATS_WEBHOOK_SECRET": SECRET, "WEBHOOK_RETRY_INTERVALS": "",
              "WEBHOOK_TIMEOUT": "1.5"}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    client = create_app({"TESTING": True}).test_client()
    post_answers(client, 1)
    run("worker", {**env, **values}, "--burst")
    done = run("worker.deliver", {**env, **values}, "--burst")
    assert receiver.got == []
    assert "resolves to 127.0.0.1, which is loopback, not a public address" in done.stdout + done.stderr


BAD = {
    "plain http": ('url = "http://example.org/h"', "is plain http"),
    "no host": ('url = "https:///h"', "needs a host"),
    "an unknown event": ('events = ["answer.read"]', "'answer.read' is not an event"),
    "an unknown key": ('retries = 3', "webhooks[0].retries: is not a key here"),
    "no secret": ('secret_env = "NOT_SET_ANYWHERE"', "the variable NOT_SET_ANYWHERE is not set"),
    "a short secret": ('secret_env = "SHORT_SECRET"', "holds 8 bytes"),
    "a secret without its prefix": ('secret_env = "BARE_SECRET"', "does not start with whsec_"),
}


@pytest.mark.parametrize("case", BAD)
def test_a_broken_webhook_is_refused_at_start_with_one_line(tmp_path, case):
    line, problem = BAD[case]
    base = {"url": 'url = "https://example.org/h"', "events": 'events = ["answer.stored"]',
            "secret_env": 'secret_env = "GOOD_SECRET"'}
    key = line.split(" ")[0]
    table = "\n".join({**base, key: line}.values()) if key in base else "\n".join([*base.values(), line])
    path = tmp_path / "s.toml"
    path.write_text('title = "S"\n[[questions]]\nid = "q"\ntype = "short_text"\nlabel = "Q"\n'
                    f"[[webhooks]]\n{table}\n")
    env = {"GOOD_SECRET": SECRET, "SHORT_SECRET": "whsec_" + "QUJDREVGR0g=", "BARE_SECRET": SECRET[6:],
           "SURVEY_FILE": str(path), "PATH": "/usr/bin:/bin"}
    with pytest.raises(survey.SurveyFileError) as refused:
        survey.load(path, env)
    assert str(refused.value).startswith(f"{path}: webhooks[0].") and problem in str(refused.value)
    if case != "no secret":
        return
    # Every service refuses to start on it, with that line (once: the check is survey.load's).
    for argv in (["-m", "worker", "--burst"], ["-m", "worker.deliver", "--burst"],
                 ["-m", "gunicorn", "--config", "web/gunicorn.conf.py", "--check-config"]):
        done = subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode != 0 and done.stderr.strip().splitlines()[-1] == f"survey: {refused.value}", argv


def test_a_new_secret_is_one_the_library_takes():
    done = subprocess.run([sys.executable, "-m", "survey", "new-webhook-secret"], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    secret = done.stdout.strip()
    assert done.returncode == 0 and len(webhooks.decode_secret(secret)) == 32
    signature = deliveries.sign(webhooks.decode_secret(secret), "msg_1", 1700000000, b"{}")
    standardwebhooks.Webhook(secret)  # the library reads it
    assert signature == standardwebhooks.Webhook(secret).sign("msg_1", __import__("datetime").datetime.fromtimestamp(
        1700000000, __import__("datetime").timezone.utc), b"{}")


@pytest.fixture
def smtp_server():
    """A real SMTP server on loopback (aiosmtpd), keeping what it is sent."""
    from aiosmtpd.controller import Controller

    class Keep:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append((envelope.rcpt_tos, email.message_from_bytes(envelope.content, policy=email.policy.default)))
            return "250 OK"

    keep = Keep()
    controller = Controller(keep, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller.port, keep.messages
    controller.stop()


def test_the_owner_is_emailed_of_each_answer_and_then_by_digest(env, tmp_path, monkeypatch, smtp_server):
    port, messages = smtp_server
    path = cat_survey(tmp_path / "survey", '[notify]\nemail = "owner@example.org"\n')
    values = {"SURVEY_FILE": str(path), "SMTP_URL": f"smtp://127.0.0.1:{port}",
              "PUBLIC_URL": "https://survey.example.org", "SMTP_FROM": "survey@example.org"}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    client = create_app({"TESTING": True}).test_client()
    post_answers(client, 2, name="Secret Whiskers")
    run("worker", {**env, **values}, "--burst")
    run("worker.deliver", {**env, **values}, "--burst")
    assert len(messages) == 2
    for to, message in messages:
        body = message.get_content()
        assert to == ["owner@example.org"] and message["Subject"] == "A new answer to Cat survey"
        assert "2 answers so far" in body and "https://survey.example.org/results" in body
        # Never an answer: no name, no choice.
        assert "Whiskers" not in message.as_string() and "tabby" not in message.as_string()
    assert len({message["Message-ID"] for _, message in messages}) == 2

    # A digest every 3 s: three answers, one email.
    values["NOTIFY_DIGEST_MINUTES"] = "0.05"
    post_answers(client, 3, name="Digest")
    run("worker", {**env, **values}, "--burst")
    deliver = subprocess.Popen([sys.executable, "-m", "worker.deliver"], cwd=ROOT, env={**env, **values},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: len(messages) == 3, 30, "the digest")
        time.sleep(1)
    finally:
        deliver.send_signal(signal.SIGTERM)
        deliver.wait(30)
    [(to, digest)] = messages[2:]
    assert digest["Subject"] == "3 new answers to Cat survey" and "5 answers so far" in digest.get_content()
