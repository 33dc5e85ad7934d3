"""What every request and response goes through before the views: the client
address and scheme come from the one trusted proxy and from no one else, the
form's posts must be a form, in UTF-8, and every page carries the security
headers."""

import ipaddress
import socket
from urllib.parse import parse_qsl

from flask import current_app, render_template, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.middleware.proxy_fix import ProxyFix

FORM_TYPES = {"application/x-www-form-urlencoded", "multipart/form-data"}

# Only our own files: no inline script or style, no framing, posts only to us.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


# Browsers that have seen this over HTTPS refuse plain HTTP to the site for a year.
HSTS = "max-age=31536000; includeSubDomains"


class SessionInterface(SecureCookieSessionInterface):
    """The session cookie (it carries the CSRF secret) is Secure whenever the
    request came over HTTPS, as the trusted proxy says, or always with HTTPS=1.
    Flask's SESSION_COOKIE_SECURE is one value for every request, so a site
    reachable both ways (a TLS terminator in front, plain HTTP on loopback for
    the operator) would have to choose between Secure cookies that plain HTTP
    drops and cookies that HTTPS leaks to plain HTTP."""

    def get_cookie_secure(self, app):
        return app.config["HTTPS"] or app.config["SESSION_COOKIE_SECURE"] or request.is_secure


def _error(status, title, message):
    return render_template("error.html", title=title, message=message), status


def check_form_post():
    """Turn away posts that are not a form before CSRF checks them, which
    would otherwise blame an 'expired form' for a body it could not read."""
    if request.method != "POST":
        return None
    if request.mimetype not in FORM_TYPES:
        return _error(415, "Not a form",
                      "The survey takes its answers as a web form "
                      "(application/x-www-form-urlencoded or multipart/form-data).")
    if request.mimetype == "application/x-www-form-urlencoded":
        # Werkzeug keeps undecodable bytes as literal "%FF" text; read strictly instead.
        try:
            parse_qsl(request.get_data(cache=True).decode("utf-8"), keep_blank_values=True, errors="strict")
        except (UnicodeDecodeError, ValueError):
            return _error(400, "We couldn't read that",
                          "The form sent text that is not valid UTF-8. Please type your answers again.")
    return None


def add_security_headers(response):
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if response.mimetype == "text/html":
        # Pages carry a per-visitor CSRF token or a visitor's answers: never cache them.
        response.headers.setdefault("Cache-Control", "no-store")
    if request.is_secure or current_app.config["HTTPS"]:
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    return response


# What only the proxy may say: who the client is, how it connected, and
# that nginx rate-limited this post (views.turn_away_rate_limited).
PROXY_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST",
                 "HTTP_X_FORWARDED_PORT", "HTTP_X_FORWARDED_PREFIX", "HTTP_X_SURVEY_RATE_LIMITED")


def from_proxy(environ, allowed):
    """Whether this connection is the proxy's: it came on gunicorn's unix
    socket (APP_SOCKET, which only the proxy can open), or from an address
    in FORWARDED_ALLOW_IPS (`allowed`: networks, or True for any)."""
    sock = environ.get("gunicorn.socket")
    if sock is not None and sock.family == socket.AF_UNIX:
        return True
    if allowed is True:
        return True
    try:
        address = ipaddress.ip_address(environ.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in network for network in allowed)


class ProxyHeaders:
    """ProxyFix for the proxy's connections only.  Anyone else who reaches
    gunicorn (another pod, another container, another local user) could
    otherwise pick a new client address per request and never be locked
    out; their proxy headers are dropped, so they are known by their own
    address."""

    def __init__(self, app, allowed):
        self.direct = app
        # nginx, the one hop we trust, overwrites X-Forwarded-For/-Proto/-Host;
        # anything further left in them came from the client and is ignored.
        self.proxied = ProxyFix(app, x_for=1, x_proto=1, x_host=1)
        self.allowed = allowed

    def __call__(self, environ, start_response):
        if from_proxy(environ, self.allowed):
            return self.proxied(environ, start_response)
        for name in PROXY_HEADERS:
            environ.pop(name, None)
        return self.direct(environ, start_response)


def init_app(app):
    app.wsgi_app = ProxyHeaders(app.wsgi_app, app.config["FORWARDED_ALLOW_IPS"])
    app.session_interface = SessionInterface()
    # Registered before CSRFProtect's own check, so it runs first.
    app.before_request(check_form_post)
    app.after_request(add_security_headers)
