-- wrk script: every request POSTs a distinct, valid survey submission.
-- Run with as many threads as connections (-t N -c N): each thread then has
-- one connection and one request in flight, so it can time its own requests.
--
-- The CSRF token is tied to the session cookie, and one token is valid for
-- every post of its session, so the harness GETs the form once and passes the
-- cookie and token in.  Each post gets a fresh submission id, a version-4 UUID
-- made of a per-run random nonce, the thread's number and a counter, so ids
-- never repeat within or across runs.
--
-- wrk abandons the requests in flight when it stops, which would leave posts
-- the server handled but nobody counted.  So after BENCH_SECONDS (or
-- BENCH_MAX_REQUESTS per thread) a thread sends only harmless GET /healthz,
-- waits for its last post's answer, prints BENCH_THREAD_DONE, and the harness
-- stops wrk with SIGINT once every thread is done.  (Going quiet instead would
-- hold an idle connection, and with it one of gunicorn's sync workers.)
--
-- Environment: BENCH_COOKIE, BENCH_CSRF (form-encoded), BENCH_NONCE (15 hex
-- digits), BENCH_SECONDS, BENCH_MAX_REQUESTS (per thread; 0: no limit),
-- BENCH_DELAY_MS (pause between posts, to offer a lower, steady rate).

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local ts = ffi.new("bench_timespec")
local function now()
    ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
    return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local cookie = os.getenv("BENCH_COOKIE")
local csrf = os.getenv("BENCH_CSRF")
local nonce = os.getenv("BENCH_NONCE")
local seconds = tonumber(os.getenv("BENCH_SECONDS"))
local max_requests = tonumber(os.getenv("BENCH_MAX_REQUESTS") or "0")
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "0")

local threads = {}
local next_id = 0

function setup(thread)
    thread:set("thread_id", next_id)
    next_id = next_id + 1
    table.insert(threads, thread)
end

function init(args)
    posts, accepted, first_sent, last_answer = 0, 0, 0, 0
    statuses, latencies = {}, {}
    in_flight, posting, reported = false, true, false
    started = 0
    headers = {
        ["Content-Type"] = "application/x-www-form-urlencoded",
        ["Cookie"] = cookie,
    }
end

local function finish_if_done()
    if not posting and not in_flight and not reported then
        reported = true
        io.write("BENCH_THREAD_DONE\n")
        io.stdout:flush()
    end
end

function delay()
    if posting and posts > 0 then
        return delay_ms
    end
    return 0
end

function request()
    if posting and posts > 0 and ((max_requests > 0 and posts >= max_requests) or now() - first_sent >= seconds) then
        posting = false
    end
    if not posting then
        in_flight = false
        return wrk.format("GET", "/healthz")
    end
    posts = posts + 1
    started = now()
    if first_sent == 0 then
        first_sent = started
    end
    in_flight = true
    local tail = string.format("%03x%012x", thread_id, posts)
    local sid = string.format("%s-%s-4%s-8%s-%s", nonce:sub(1, 8), nonce:sub(9, 12), nonce:sub(13, 15),
        tail:sub(1, 3), tail:sub(4, 15))
    local body = "csrf_token=" .. csrf .. "&submission_id=" .. sid .. "&name=Cat+" .. posts ..
        "&coat=tabby&donut=glazed"
    return wrk.format("POST", "/", headers, body)
end

function response(status, hdrs, body)
    if in_flight then
        in_flight = false
        last_answer = now()
        table.insert(latencies, (last_answer - started) * 1000)
        if status == 303 then
            accepted = accepted + 1
        end
        local key = tostring(status)
        statuses[key] = (statuses[key] or 0) + 1
    end
    finish_if_done()
end

function done(summary, latency, requests)
    local all, by_status = {}, {}
    local answered, total_accepted, first, last = 0, 0, nil, 0
    for _, t in ipairs(threads) do
        total_accepted = total_accepted + t:get("accepted")
        local f, l = t:get("first_sent"), t:get("last_answer")
        if f > 0 and (first == nil or f < first) then first = f end
        if l > last then last = l end
        for k, v in pairs(t:get("statuses")) do
            by_status[k] = (by_status[k] or 0) + v
            answered = answered + v
        end
        for _, v in ipairs(t:get("latencies")) do
            table.insert(all, v)
        end
    end
    table.sort(all)
    local function pct(p)
        if #all == 0 then return 0 end
        return all[math.max(1, math.ceil(#all * p / 100))]
    end
    local parts = {}
    for k, v in pairs(by_status) do
        table.insert(parts, string.format('"%s": %d', k, v))
    end
    local e = summary.errors
    io.write(string.format(
        'BENCH_RESULT {"answered": %d, "accepted": %d, "seconds": %.6f, ' ..
        '"p50_ms": %.3f, "p90_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f, "statuses": {%s}, ' ..
        '"errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}}\n',
        answered, total_accepted, first and (last - first) or 0,
        pct(50), pct(90), pct(99), pct(100), table.concat(parts, ", "),
        e.connect, e.read, e.write, e.timeout))
end
