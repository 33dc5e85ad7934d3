"""One HTTP POST to a URL an owner gave (a webhook receiver), safe to point at
the open internet: every wait bounded, nothing followed, little read.

- The host is resolved once, and refused when any of its addresses is not a
  public one (loopback, private, link-local, reserved, ...), unless
  allow_private; the connection goes to the address that was checked, so no
  second lookup can swap it (DNS rebinding).
- Connect, TLS handshake, request and answer share one deadline (`timeout`
  seconds in all): a receiver that drips its answer a byte at a time is cut
  off at the deadline, as one that never answers is.
- A redirect is an answer like any other (never followed), and at most
  READ_MAX bytes of the body are read.
"""

import http.client
import io
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

READ_MAX = 64 * 1024


class Refused(Exception):
    """The URL's host is not one we may send to; the message says why."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict
    body: bytes


def _why_not_public(address):
    address = getattr(address, "ipv4_mapped", None) or address
    for name in ("is_loopback", "is_private", "is_link_local", "is_multicast", "is_reserved", "is_unspecified"):
        if getattr(address, name):
            return name[3:].replace("_", "-")
    return None if address.is_global else "not global"


def resolve(host, port, allow_private):
    """The (family, address) to connect to; Refused if any address of the host is not public."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise OSError(f"cannot resolve {host}: {exc}") from None
    if not allow_private:
        for info in infos:
            address = ipaddress.ip_address(info[4][0].split("%")[0])
            why = _why_not_public(address)
            if why:
                raise Refused(f"{host} resolves to {address}, which is {why}, not a public address "
                              "(WEBHOOK_ALLOW_PRIVATE=1 allows it)")
    family, _, _, _, sockaddr = infos[0]
    return family, sockaddr


class _DeadlineReader(io.RawIOBase):
    """The socket's reads, each given only the time left before the deadline."""

    def __init__(self, sock, deadline):
        self.sock, self.deadline = sock, deadline

    def readable(self):
        return True

    def readinto(self, buffer):
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the receiver took longer than the timeout")
        self.sock.settimeout(left)
        return self.sock.recv_into(buffer)


class _Socket:
    """What http.client.HTTPResponse needs of a socket: makefile."""

    def __init__(self, sock, deadline):
        self._reader = io.BufferedReader(_DeadlineReader(sock, deadline))

    def makefile(self, mode):
        return self._reader


def post(url, body, headers, timeout, allow_private):
    """POST `body` (bytes) to `url`; the receiver's Answer.  Raises Refused,
    OSError (refused, reset, timed out, TLS) or http.client.HTTPException."""
    deadline = time.monotonic() + timeout
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    family, sockaddr = resolve(parts.hostname, port, allow_private)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        sock.connect(sockaddr)
        if parts.scheme == "https":
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=parts.hostname)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        if ":" in parts.hostname and not host.startswith("["):
            host = f"[{parts.hostname}]" + (f":{parts.port}" if parts.port else "")
        head = [f"POST {target} HTTP/1.1", f"Host: {host}", "Content-Type: application/json",
                f"Content-Length: {len(body)}", "Connection: close", "User-Agent: survey-webhooks",
                *(f"{name}: {value}" for name, value in headers.items())]
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        response = http.client.HTTPResponse(_Socket(sock, deadline), method="POST")
        response.begin()
        try:
            data = response.read(READ_MAX)
        except (OSError, http.client.HTTPException):
            data = b""  # the status is the answer; a body cut off by the deadline does not change it
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
    finally:
        sock.close()
