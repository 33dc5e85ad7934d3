"""A bound on every wait on Redis, for every process: the web, the worker
(and its RQ scheduler), the retention scheduler, the erase command and the
healthcheck.

A frozen or partitioned Redis still has its kernel accept and acknowledge
TCP, so without a socket timeout a client waits on it for ever, silently.
`connect` gives a client whose connect and every reply end after a bound,
and whose idle sockets are probed, so a dead peer is noticed too.

Both images copy this package (web/Dockerfile, worker/Dockerfile)."""

import socket

from redis import Redis

# A connect to a server that does not answer: given up after this long.
CONNECT_TIMEOUT_S = 2
# A reply: given up after this long, unless the caller blocks for longer on
# purpose (the worker's dequeue: RQ raises its own socket timeout above that).
REPLY_TIMEOUT_S = 5
# An idle socket is probed after 5 s and dropped after 3 unanswered probes.
KEEPALIVE = {socket.TCP_KEEPIDLE: 5, socket.TCP_KEEPINTVL: 1, socket.TCP_KEEPCNT: 3}


def connect(url, reply_timeout=REPLY_TIMEOUT_S, connect_timeout=CONNECT_TIMEOUT_S):
    """A client of the Redis at `url` whose every wait is bounded."""
    return Redis.from_url(url, socket_connect_timeout=connect_timeout, socket_timeout=reply_timeout,
                          socket_keepalive=True, socket_keepalive_options=KEEPALIVE)
