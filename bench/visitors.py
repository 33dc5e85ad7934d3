"""The visitors' load generator: an open model of full visits, as a browser makes them.

Visitors arrive on a Poisson schedule, independent of how fast the site
answers (an open model: a slow site does not slow the arrivals down, it piles
them up).  Each visit, on one keep-alive HTTP/1.1 connection like a browser's
first to a host:

1. GET / (the form), then every /static/ file the page links (once each, as a
   browser's cache would);
2. POST the form with its session cookie, CSRF token and submission id;
3. on 303, GET the receipt page and, while it says queued, receipt.js, then
   poll /submissions/<id>.json as receipt.js does (first after 500 ms, each
   wait 1.5 times the last, at most 5 s) until stored (the stored receipt
   comes with that answer: no reload).

A 429 or 503 answer to the post is a refused visitor (answered, not failed).
Failures: a connection reset or refused, a request not answered within
`request_timeout`, any other status (502s), or a receipt not stored within
`visit_limit`.

The stdlib only (asyncio streams, raw HTTP/1.1): no client library hides a
connection pool or retries from the figures.  Each visitor connects from its
own loopback address (127.0.0.2 and up), so nginx's per-address post limit
(POST_RATE_LIMIT) sees many visitors, as it would on the internet.

Every visit is bounded in time (visit_limit) and in requests (MAX_POLLS)."""

import asyncio
import ipaddress
import random
import re
import time
import urllib.parse

FIELD = re.compile(rb'name="(csrf_token|submission_id)" type="hidden" value="([^"]*)"')
ASSET = re.compile(rb'(?:href|src)="(/static/[^"?#]+)"')
STATE = re.compile(rb'data-state="([a-z]+)"')
STATUS_URL = re.compile(rb'data-status-url="([^"]+)"')
JSON_STATE = re.compile(rb'"state":\s*"([a-z]+)"')

# receipt.js's schedule.
FIRST_POLL_S, POLL_GROWTH, POLL_MAX_S = 0.5, 1.5, 5.0
MAX_POLLS = 40
# States after which receipt.js stops polling without "stored".
FINAL_NOT_STORED = {"failed", "unknown"}
# Loopback addresses the visitors connect from, in turn: 127.0.0.2 onwards.
SOURCES = 4000
FIRST_SOURCE = int(ipaddress.IPv4Address("127.0.0.2"))


def source_address(i):
    """The i-th visitor's address: 127.0.0.2, .3, ... skipping .0 and .255 in the last byte."""
    k = i % SOURCES
    return str(ipaddress.IPv4Address(FIRST_SOURCE + k // 253 * 256 + k % 253))


class Failure(Exception):
    """What went wrong for the visitor, e.g. 'post 502' or 'form timeout'."""


class Connection:
    """One keep-alive HTTP/1.1 connection, reopened if the server closes it."""

    def __init__(self, port, source, timeout):
        self.port, self.source, self.timeout = port, source, timeout
        self.reader = self.writer = None
        self.cookies = {}
        self.requests = 0

    async def request(self, method, path, body=b"", headers=()):
        """(status, headers with lower-case names, body), within the timeout."""
        return await asyncio.wait_for(self._request(method, path, body, headers), self.timeout)

    async def _request(self, method, path, body, headers):
        self.requests += 1
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port,
                                                                     local_addr=(self.source, 0))
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}", "User-Agent: survey-bench-visitor"]
        if self.cookies:
            lines.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        if body:
            lines += ["Content-Type: application/x-www-form-urlencoded", f"Content-Length: {len(body)}"]
        lines += list(headers)
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        status_line = await self.reader.readuntil(b"\r\n")
        status = int(status_line.split()[1])
        head = {}
        while True:
            line = await self.reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "set-cookie":
                k, _, v = value.split(";", 1)[0].partition("=")
                self.cookies[k.strip()] = v.strip()
            head[name] = value
        if "content-length" in head:
            data = await self.reader.readexactly(int(head["content-length"]))
        elif head.get("transfer-encoding", "").lower() == "chunked":
            data = await self._chunked()
        else:
            data = b""
        if head.get("connection", "").lower() == "close":
            self.close()
        return status, head, data

    async def _chunked(self):
        parts = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await self.reader.readexactly(size + 2)
            if size == 0:
                return b"".join(parts)
            parts.append(chunk[:-2])

    def close(self):
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


async def visit(port, source, scheduled, record, request_timeout, visit_limit):
    """One visitor, from arrival to a stored receipt; fills `record`."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    record["lag_ms"] = 1000 * (start - scheduled)
    conn = Connection(port, source, request_timeout)
    stage = "form"

    async def get(path, *headers):
        status, head, body = await conn.request("GET", path, headers=headers)
        if status != 200:
            raise Failure(f"{stage} {status}")
        return head, body

    try:
        t = loop.time()
        status, _, page = await conn.request("GET", "/")
        record["form_status"], record["form_ms"] = status, 1000 * (loop.time() - t)
        if status != 200:
            raise Failure(f"form {status}")
        fields = {k.decode(): v.decode() for k, v in FIELD.findall(page)}
        stage = "assets"
        for asset in dict.fromkeys(ASSET.findall(page)):
            await get(asset.decode())
        stage = "post"
        sid = record["sid"] = fields["submission_id"]
        body = urllib.parse.urlencode({**fields, "name": "Visitor", "coat": "tabby", "donut": "glazed"}).encode()
        record["posted"] = True
        t = loop.time()
        status, head, _ = await conn.request("POST", "/", body)
        record["post_status"], record["post_ms"] = status, 1000 * (loop.time() - t)
        if status in (429, 503):
            return  # refused, and answered: the visitor has the form back
        if status != 303:
            raise Failure(f"post {status}")
        stage = "receipt"
        receipt_path = urllib.parse.urlsplit(head["location"]).path
        _, page = await get(receipt_path)
        state = STATE.search(page).group(1).decode()
        if state == "queued":
            for asset in dict.fromkeys(ASSET.findall(page)):
                await get(asset.decode())
            status_url = STATUS_URL.search(page).group(1).decode()
            delay = FIRST_POLL_S
            for polls in range(1, MAX_POLLS + 1):
                record["polls"] = polls
                await asyncio.sleep(delay)
                if loop.time() - start > visit_limit:
                    break
                status, _, data = await conn.request("GET", status_url, headers=["Accept: application/json"])
                if status == 404:
                    raise Failure("receipt missing")
                found = JSON_STATE.search(data) if status == 200 else None
                state = found.group(1).decode() if found else "?"
                if state == "stored" or state in FINAL_NOT_STORED:
                    break
                delay = min(delay * POLL_GROWTH, POLL_MAX_S)
        if state != "stored":
            raise Failure(f"receipt {state} after {visit_limit:.0f} s" if state == "queued" else f"receipt {state}")
        record["stored_seen"] = True
    except Failure as exc:
        record["failure"] = str(exc)
    except asyncio.TimeoutError:
        record["failure"] = f"{stage} timeout"
    except (OSError, asyncio.IncompleteReadError, ValueError, IndexError, KeyError, AttributeError) as exc:
        # Reset or refused connections, or an answer that is not what a browser could use.
        record["failure"] = f"{stage} {'reset' if isinstance(exc, (OSError, asyncio.IncompleteReadError)) else 'bad answer'}"
    finally:
        conn.close()
        record["requests"] = conn.requests
        record["visit_ms"] = 1000 * (loop.time() - start)


async def _run(port, rate, seconds, seed, request_timeout, visit_limit):
    rng = random.Random(seed)
    arrivals, t = [], 0.0
    while True:
        t += rng.expovariate(rate)
        if t >= seconds:
            break
        arrivals.append(t)
    loop = asyncio.get_running_loop()
    origin = loop.time() + 0.05
    records, tasks = [], []
    for i, at in enumerate(arrivals):
        wait = origin + at - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        record = {}
        records.append(record)
        tasks.append(asyncio.create_task(visit(port, source_address(i), origin + at, record,
                                               request_timeout, visit_limit)))
    if tasks:
        # Each visit bounds itself; this only guards against a bug in that.
        _, late = await asyncio.wait(tasks, timeout=visit_limit + 2 * request_timeout + 10)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late, timeout=5)
    for record in records:
        if "visit_ms" not in record:
            record["failure"] = "cut off by the harness"
    return records


def run(port, rate, seconds, seed=0, request_timeout=30, visit_limit=60):
    """Visits arriving at `rate` per second for `seconds` at nginx on `port`:
    (records, the generator's own CPU seconds, wall seconds)."""
    cpu, wall = time.process_time(), time.monotonic()
    records = asyncio.run(_run(port, rate, seconds, seed, request_timeout, visit_limit))
    return records, time.process_time() - cpu, time.monotonic() - wall
